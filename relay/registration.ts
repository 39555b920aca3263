/**
 * Registration with the gateway: the relay proves its Ed25519 identity with
 * challenge-response, then sends a heartbeat with its address and load every
 * few seconds, and learns the lease verification key.
 *
 * Everything the relay needs from the gateway is the small
 * {@linkcode RelayGatewayLink} interface, so the HTTP implementation here can
 * be swapped for the gateway's typed client (`gateway/client.ts`) once both
 * branches meet; the wire contract below follows that client:
 *
 * - `POST /v1/challenge {publicKey, purpose}` → `{nonce, expiresAt, gatewayId}`
 * - signed bytes: `"wavry-gateway-challenge-v1" \0 purpose \0 gatewayId \0 publicKey \0 nonce`
 *   (plus `\0 kind \0 name` for `register`)
 * - `POST /v1/register {publicKey, name, kind: "relay", nonce, signature}`
 * - `POST /v1/login {publicKey, nonce, signature}` → `{token, expiresAt}`
 * - `POST /v1/relays/heartbeat {relayId, address, load, capacityBps}` with
 *   `Authorization: Bearer <token>` → `{ttlMs, leaseKey, issuer}`
 * - `GET /v1/lease-key` → `{publicKey, issuer}`
 *
 * @module
 */

import { type IdentityKeyPair, signWithIdentity } from "../crypto/identity.ts";
import { encodePeerKey } from "../crypto/lease.ts";

/** What a heartbeat reports. */
export interface RelayHeartbeat {
  /** The relay's id (leases name it as `rid`). */
  relayId: string;
  /** Where peers reach the relay, `ip:port`. */
  address: string;
  /** 0..1. */
  load: number;
  /** Bits per second the relay can forward. */
  capacityBps: number;
}

/** The gateway's answer to a heartbeat. */
export interface HeartbeatAnswer {
  /** The gateway forgets a relay silent for this long (ms). */
  ttlMs: number;
  /** The current lease verification key (`k4.public.…`). */
  leaseKey: string;
}

/** What the relay needs from a gateway. */
export interface RelayGatewayLink {
  /** Proves the identity (registering it first if needed) and keeps a session token. */
  login(): Promise<void>;
  /** The lease verification key, no login needed. */
  leaseKey(): Promise<string>;
  /** One heartbeat; needs a login. */
  heartbeat(hb: RelayHeartbeat): Promise<HeartbeatAnswer>;
}

/** Why a call to the gateway failed. */
export type GatewayCallErrorKind = "Unreachable" | "Unauthorized" | "Refused" | "BadAnswer";

/** A failed call to the gateway. */
export class GatewayCallError extends Error {
  /** Why. */
  readonly kind: GatewayCallErrorKind;
  /** HTTP status (0 if there was no answer). */
  readonly status: number;

  /** Creates the error. */
  constructor(kind: GatewayCallErrorKind, status: number, message: string) {
    super(`gateway ${kind}: ${message}`);
    this.name = "GatewayCallError";
    this.kind = kind;
    this.status = status;
  }
}

function b64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The bytes a challenge signature covers (the gateway's `challengeMessage`). */
export function gatewayChallengeMessage(
  purpose: "login" | "register",
  gatewayId: string,
  publicKey: string,
  nonce: string,
  register?: { kind: string; name: string },
): Uint8Array {
  const parts = ["wavry-gateway-challenge-v1", purpose, gatewayId, publicKey, nonce];
  if (purpose === "register") parts.push(register?.kind ?? "", register?.name ?? "");
  return new TextEncoder().encode(parts.join("\0"));
}

/** {@linkcode RelayGatewayLink} over the gateway's HTTP API. */
export class HttpGatewayLink implements RelayGatewayLink {
  readonly #url: string;
  readonly #identity: IdentityKeyPair;
  readonly #publicKey: string;
  readonly #name: string;
  readonly #timeoutMs: number;
  #token: string | undefined;

  /**
   * @param masterUrl the gateway's base URL, e.g. `http://localhost:8080`.
   * @param identity the relay's Ed25519 identity.
   * @param name display name registered with the identity.
   * @param timeoutMs per-request timeout.
   */
  constructor(masterUrl: string, identity: IdentityKeyPair, name: string, timeoutMs = 5_000) {
    this.#url = masterUrl.replace(/\/+$/, "");
    this.#identity = identity;
    this.#publicKey = encodePeerKey(identity.publicKey);
    this.#name = name;
    this.#timeoutMs = timeoutMs;
  }

  async #call<T>(method: string, path: string, body?: unknown, auth = false): Promise<T> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (auth && this.#token) headers.authorization = `Bearer ${this.#token}`;
    let res: Response;
    try {
      res = await fetch(`${this.#url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (e) {
      throw new GatewayCallError("Unreachable", 0, e instanceof Error ? e.message : String(e));
    }
    const text = await res.text();
    if (!res.ok) {
      const kind = res.status === 401 || res.status === 403 ? "Unauthorized" : "Refused";
      throw new GatewayCallError(kind, res.status, `${method} ${path}: ${text.slice(0, 200)}`);
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new GatewayCallError("BadAnswer", res.status, `${method} ${path}: not JSON`);
    }
  }

  async #challenge(purpose: "login" | "register"): Promise<{ nonce: string; gatewayId: string }> {
    const ch = await this.#call<{ nonce?: unknown; gatewayId?: unknown }>(
      "POST",
      "/v1/challenge",
      { publicKey: this.#publicKey, purpose },
    );
    if (typeof ch.nonce !== "string" || typeof ch.gatewayId !== "string") {
      throw new GatewayCallError("BadAnswer", 200, "challenge without nonce or gatewayId");
    }
    return { nonce: ch.nonce, gatewayId: ch.gatewayId };
  }

  /** Registers the identity as a relay (idempotent), then logs in. */
  async login(): Promise<void> {
    const reg = await this.#challenge("register");
    const regSig = signWithIdentity(
      this.#identity,
      gatewayChallengeMessage("register", reg.gatewayId, this.#publicKey, reg.nonce, {
        kind: "relay",
        name: this.#name,
      }),
    );
    await this.#call("POST", "/v1/register", {
      publicKey: this.#publicKey,
      name: this.#name,
      kind: "relay",
      nonce: reg.nonce,
      signature: b64url(regSig),
    });
    const ch = await this.#challenge("login");
    const sig = signWithIdentity(
      this.#identity,
      gatewayChallengeMessage("login", ch.gatewayId, this.#publicKey, ch.nonce),
    );
    const r = await this.#call<{ token?: unknown }>("POST", "/v1/login", {
      publicKey: this.#publicKey,
      nonce: ch.nonce,
      signature: b64url(sig),
    });
    if (typeof r.token !== "string") throw new GatewayCallError("BadAnswer", 200, "no token");
    this.#token = r.token;
  }

  /** `GET /v1/lease-key`. */
  async leaseKey(): Promise<string> {
    const r = await this.#call<{ publicKey?: unknown }>("GET", "/v1/lease-key");
    if (typeof r.publicKey !== "string" || !r.publicKey.startsWith("k4.public.")) {
      throw new GatewayCallError("BadAnswer", 200, "lease key is not a k4.public key");
    }
    return r.publicKey;
  }

  /** `POST /v1/relays/heartbeat`. */
  async heartbeat(hb: RelayHeartbeat): Promise<HeartbeatAnswer> {
    if (this.#token === undefined) throw new GatewayCallError("Unauthorized", 0, "not logged in");
    const r = await this.#call<{ ttlMs?: unknown; leaseKey?: unknown }>(
      "POST",
      "/v1/relays/heartbeat",
      hb,
      true,
    );
    if (typeof r.ttlMs !== "number" || typeof r.leaseKey !== "string") {
      throw new GatewayCallError("BadAnswer", 200, "heartbeat answer without ttlMs or leaseKey");
    }
    return { ttlMs: r.ttlMs, leaseKey: r.leaseKey };
  }
}

/** Options of {@linkcode RelayRegistration}. */
export interface RegistrationOptions {
  /** Builds the heartbeat to send (called each time, so load is current). */
  heartbeat: () => RelayHeartbeat;
  /** Heartbeat period (ms); default 5,000, and never more than a third of the gateway's ttl. */
  intervalMs?: number;
  /** Called when the gateway reports a lease key different from the last one. */
  onLeaseKey?: (key: string) => void;
  /** Called after every heartbeat attempt (for metrics and logs). */
  onResult?: (ok: boolean, error?: GatewayCallError) => void;
}

/** The heartbeat loop: log in, beat, log in again when the token is refused. */
export class RelayRegistration {
  readonly #link: RelayGatewayLink;
  readonly #options: RegistrationOptions;
  #interval: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #loggedIn = false;
  #stopped = false;
  #leaseKey: string | undefined;
  #running: Promise<unknown> | undefined;

  /** @param link how to reach the gateway. */
  constructor(link: RelayGatewayLink, options: RegistrationOptions) {
    this.#link = link;
    this.#options = options;
    this.#interval = options.intervalMs ?? 5_000;
  }

  /** Starts beating at once, then every interval. */
  start(): void {
    this.#tick();
  }

  #tick = (): void => {
    if (this.#stopped) return;
    this.#running = this.beatOnce().finally(() => {
      this.#running = undefined;
      if (!this.#stopped) this.#timer = setTimeout(this.#tick, this.#interval);
    });
  };

  /** One attempt: logs in if needed, sends one heartbeat. Never throws. */
  async beatOnce(): Promise<boolean> {
    try {
      if (!this.#loggedIn) {
        await this.#link.login();
        this.#loggedIn = true;
      }
      const answer = await this.#link.heartbeat(this.#options.heartbeat());
      this.#interval = Math.max(
        250,
        Math.min(this.#options.intervalMs ?? 5_000, Math.floor(answer.ttlMs / 3)),
      );
      if (answer.leaseKey !== this.#leaseKey) {
        this.#leaseKey = answer.leaseKey;
        this.#options.onLeaseKey?.(answer.leaseKey);
      }
      this.#options.onResult?.(true);
      return true;
    } catch (e) {
      const error = e instanceof GatewayCallError
        ? e
        : new GatewayCallError("BadAnswer", 0, e instanceof Error ? e.message : String(e));
      if (error.kind === "Unauthorized") this.#loggedIn = false;
      this.#options.onResult?.(false, error);
      return false;
    }
  }

  /** Stops the loop and waits for a heartbeat in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#running;
  }
}
