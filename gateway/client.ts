/**
 * A typed client for the gateway, for hosts, clients, relays and tests:
 * registration and challenge-response login with an Ed25519 identity,
 * the host list, allow lists and pairing, relay heartbeats, the lease key,
 * and the signaling WebSocket. Protocol: docs/SIGNALING.md.
 *
 * @example
 * ```ts
 * const gw = new GatewayClient("http://localhost:8080", identity);
 * await gw.register("living-room", "host");
 * await gw.login();
 * const sig = await gw.openSignaling();
 * const msg = await sig.receive(); // { type: "connect", ... }
 * ```
 *
 * @module
 */
import { type IdentityKeyPair, signWithIdentity } from "../crypto/identity.ts";
import { encodePeerKey } from "../crypto/lease.ts";
import { bytesToB64url, challengeMessage, type ChallengePurpose } from "./auth.ts";
import type { ErrorCode, GatewayMessage, PeerKind, PeerMessage, RelayHeartbeat } from "./schema.ts";

/** An error answer from the gateway. */
export class GatewayError extends Error {
  /** HTTP status (0 for WebSocket errors). */
  readonly status: number;
  /** The gateway's error code. */
  readonly code: ErrorCode | "Http";

  /** Creates the error. */
  constructor(status: number, code: ErrorCode | "Http", message: string) {
    super(`${code}: ${message}`);
    this.name = "GatewayError";
    this.status = status;
    this.code = code;
  }
}

/** Result of a login. */
export interface LoginResult {
  token: string;
  expiresAt: string;
  kind: PeerKind;
  name: string;
}

/** A host as listed by {@linkcode GatewayClient.listHosts}. */
export interface HostInfo {
  publicKey: string;
  name: string;
  online: boolean;
}

/** A live relay as listed by {@linkcode GatewayClient.listRelays}. */
export interface RelayInfo {
  relayId: string;
  address: string;
  load: number;
  capacityBps: number;
  seenAt: string;
}

/** Signs challenges; an identity key pair by default. Lets tests sign with the wrong key. */
export type ChallengeSigner = (message: Uint8Array) => Uint8Array | Promise<Uint8Array>;

/** Talks to one gateway as one identity. */
export class GatewayClient {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  /** This identity's key as the gateway spells it. */
  readonly publicKey: string;
  readonly #signer: ChallengeSigner;
  /** The session token after {@linkcode login}. */
  token: string | undefined;

  /**
   * @param url the gateway's base URL.
   * @param identity the Ed25519 identity to act as.
   * @param signer override of how challenges are signed (tests).
   */
  constructor(url: string, identity: IdentityKeyPair, signer?: ChallengeSigner) {
    this.url = url.replace(/\/+$/, "");
    this.publicKey = encodePeerKey(identity.publicKey);
    this.#signer = signer ?? ((m) => signWithIdentity(identity, m));
  }

  /**
   * Log in again (once) when an authenticated request is refused because the
   * session token expired, then retry it. On by default, so long-running hosts
   * and relays need not track token lifetimes.
   */
  autoRelogin = true;

  /** A raw JSON request; throws {@linkcode GatewayError} on an error answer. */
  async request<T>(method: string, path: string, body?: unknown, auth = true): Promise<T> {
    try {
      return await this.#request<T>(method, path, body, auth);
    } catch (e) {
      if (
        !(e instanceof GatewayError) || e.code !== "Unauthenticated" || !auth || !this.token ||
        !this.autoRelogin
      ) throw e;
      await this.login();
      return await this.#request<T>(method, path, body, auth);
    }
  }

  async #request<T>(method: string, path: string, body?: unknown, auth = true): Promise<T> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (auth && this.token) headers.authorization = `Bearer ${this.token}`;
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown = undefined;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch { /* not JSON */ }
    if (!res.ok) {
      const j = json as { code?: ErrorCode; message?: string } | undefined;
      throw new GatewayError(res.status, j?.code ?? "Http", j?.message ?? text.slice(0, 200));
    }
    return json as T;
  }

  /** Asks for a challenge nonce. */
  challenge(
    purpose: ChallengePurpose,
  ): Promise<{ nonce: string; expiresAt: string; gatewayId: string }> {
    return this.request("POST", "/v1/challenge", { publicKey: this.publicKey, purpose }, false);
  }

  /** Registers (or renames) this identity, proving possession of the key. */
  async register(
    name: string,
    kind: PeerKind,
  ): Promise<{ publicKey: string; name: string; kind: PeerKind }> {
    const ch = await this.challenge("register");
    const msg = challengeMessage({
      purpose: "register",
      gatewayId: ch.gatewayId,
      publicKey: this.publicKey,
      nonce: ch.nonce,
      kind,
      name,
    });
    const signature = bytesToB64url(await this.#signer(msg));
    return this.request("POST", "/v1/register", {
      publicKey: this.publicKey,
      name,
      kind,
      nonce: ch.nonce,
      signature,
    }, false);
  }

  /** Signs a login challenge as the gateway expects (exposed for replay tests). */
  async signLogin(ch: { nonce: string; gatewayId: string }): Promise<string> {
    const msg = challengeMessage({
      purpose: "login",
      gatewayId: ch.gatewayId,
      publicKey: this.publicKey,
      nonce: ch.nonce,
    });
    return bytesToB64url(await this.#signer(msg));
  }

  /** Challenge-response login; keeps the token for later calls. */
  async login(): Promise<LoginResult> {
    const ch = await this.challenge("login");
    const signature = await this.signLogin(ch);
    const r = await this.request<LoginResult>("POST", "/v1/login", {
      publicKey: this.publicKey,
      nonce: ch.nonce,
      signature,
    }, false);
    this.token = r.token;
    return r;
  }

  /** Hosts that have authorised this identity. */
  async listHosts(): Promise<HostInfo[]> {
    return (await this.request<{ hosts: HostInfo[] }>("GET", "/v1/hosts")).hosts;
  }

  /** (Host) authorises a client key. */
  async allowClient(clientKey: string): Promise<void> {
    await this.request("POST", "/v1/hosts/allow", { clientKey });
  }

  /** (Host) withdraws a client's authorisation. */
  async disallowClient(clientKey: string): Promise<void> {
    await this.request("DELETE", `/v1/hosts/allow/${clientKey}`);
  }

  /** (Host) the clients it authorises. */
  async listAllowed(): Promise<{ clientKey: string; via: string; at: number }[]> {
    return (await this.request<{ clients: { clientKey: string; via: string; at: number }[] }>(
      "GET",
      "/v1/hosts/allow",
    )).clients;
  }

  /** (Host) a fresh one-time pairing code to show to the user. */
  requestPairingCode(): Promise<{ code: string; expiresAt: string }> {
    return this.request("POST", "/v1/pairing/code", {});
  }

  /** (Client) redeems a pairing code shown on a host. */
  redeemPairingCode(code: string): Promise<{ hostKey: string; hostName: string }> {
    return this.request("POST", "/v1/pairing/redeem", { code });
  }

  /** (Relay) reports liveness and load. */
  relayHeartbeat(hb: RelayHeartbeat): Promise<{ ttlMs: number; leaseKey: string; issuer: string }> {
    return this.request("POST", "/v1/relays/heartbeat", hb);
  }

  /**
   * (Relay) sends a heartbeat now and then every `periodMs` until the returned
   * function is called. `heartbeat` is asked each time (load changes);
   * failures go to `onError` and the loop carries on.
   */
  keepRelayAlive(
    heartbeat: () => RelayHeartbeat,
    periodMs: number,
    onError: (e: unknown) => void = () => {},
  ): () => void {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const beat = async () => {
      try {
        await this.relayHeartbeat(heartbeat());
      } catch (e) {
        onError(e);
      }
      if (!stopped) timer = setTimeout(beat, periodMs);
    };
    beat();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  /** Live relays. */
  async listRelays(): Promise<RelayInfo[]> {
    return (await this.request<{ relays: RelayInfo[] }>("GET", "/v1/relays")).relays;
  }

  /** The gateway's lease verification key (PASERK `k4.public.`), no login needed. */
  leaseKey(): Promise<{ publicKey: string; issuer: string }> {
    return this.request("GET", "/v1/lease-key", undefined, false);
  }

  /** Opens `/v1/ws`, authenticates with the session token, and waits for `ready`. */
  async openSignaling(): Promise<SignalingChannel> {
    if (!this.token) throw new GatewayError(0, "Unauthenticated", "login first");
    const ch = await SignalingChannel.open(this.url);
    ch.send({ type: "auth", token: this.token });
    const ready = await ch.receive();
    if (ready.type !== "ready") {
      ch.close();
      throw ready.type === "error"
        ? new GatewayError(0, ready.code, ready.message)
        : new GatewayError(0, "Http", `unexpected ${ready.type}`);
    }
    return ch;
  }
}

/** The signaling WebSocket: typed send, and receive in arrival order. */
export class SignalingChannel {
  readonly #ws: WebSocket;
  readonly #queue: GatewayMessage[] = [];
  readonly #waiters: { resolve: (m: GatewayMessage) => void; reject: (e: Error) => void }[] = [];
  #closedError: Error | undefined;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    this.closed = new Promise((resolve) => {
      ws.addEventListener("close", (ev) => {
        this.#closedError = new GatewayError(0, "Http", `socket closed (${ev.code} ${ev.reason})`);
        for (const w of this.#waiters.splice(0)) w.reject(this.#closedError);
        resolve();
      });
    });
    ws.addEventListener("message", (ev) => {
      let m: GatewayMessage;
      try {
        m = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      const w = this.#waiters.shift();
      if (w) w.resolve(m);
      else this.#queue.push(m);
    });
  }

  /** Connects to `<url>/v1/ws` without authenticating (tests send raw frames with it). */
  static open(url: string): Promise<SignalingChannel> {
    const ws = new WebSocket(url.replace(/^http/, "ws").replace(/\/+$/, "") + "/v1/ws");
    return new Promise((resolve, reject) => {
      ws.onopen = () => resolve(new SignalingChannel(ws));
      ws.onerror = () => reject(new GatewayError(0, "Http", "WebSocket connection failed"));
    });
  }

  /** Sends a typed message. */
  send(msg: PeerMessage): void {
    this.#ws.send(JSON.stringify(msg));
  }

  /** Sends any text frame (tests use it for malformed input). */
  sendRaw(text: string): void {
    this.#ws.send(text);
  }

  /** The next message, waiting at most `timeoutMs`. */
  receive(timeoutMs = 5_000): Promise<GatewayMessage> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#closedError) return Promise.reject(this.#closedError);
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (m: GatewayMessage) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(w);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new GatewayError(0, "Http", `no message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  /** The next message of `type`, skipping others (they are dropped). */
  async receiveType<T extends GatewayMessage["type"]>(
    type: T,
    timeoutMs = 5_000,
  ): Promise<Extract<GatewayMessage, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.receive(Math.max(1, deadline - Date.now()));
      if (m.type === type) return m as Extract<GatewayMessage, { type: T }>;
    }
  }

  /** Closes the socket and waits until it is closed. */
  async close(): Promise<void> {
    if (this.#ws.readyState !== WebSocket.CLOSED) this.#ws.close(1000);
    await this.closed;
  }
}
