/**
 * The client's side of the gateway, on the client's main thread: logs in
 * (registering the identity as a user the first time), finds the host by
 * name or key among the hosts that authorise it, opens a session with
 * `connect`, and carries the ICE offers and the relay lease for the session
 * worker (client/net_worker.ts), which runs the checks on its own socket.
 * See docs/CONNECT.md.
 *
 * @module
 */
import type { IdentityKeyPair } from "../crypto/identity.ts";
import {
  GatewayClient,
  GatewayError,
  type HostInfo,
  type SignalingChannel,
} from "../gateway/client.ts";
import type { GatewayMessage } from "../gateway/schema.ts";
import {
  offerFromSignaling,
  offerToSignaling,
  parseRelayAddress,
  type PathKind,
} from "../edge/connect_signaling.ts";
import type { IceOffer } from "../edge/ice_connect.ts";
import type { PeerAddress } from "../edge/udp_socket.ts";
import type { ConnectSignaling } from "./connection.ts";

/** Which host to reach. */
export type HostSelector = { name: string } | { key: string };

/** How long to wait for the host's answer and for a lease (ms). */
const ANSWER_TIMEOUT_MS = 10_000;
const LEASE_TIMEOUT_MS = 5_000;

/** Logs in as a user, registering the identity first if the gateway does not know it. */
export async function loginAsUser(gw: GatewayClient, name: string): Promise<void> {
  try {
    await gw.login();
  } catch (error) {
    if (!(error instanceof GatewayError) || error.code !== "NotRegistered") throw error;
    await gw.register(name, "user");
    await gw.login();
  }
}

/** One connection attempt's signaling: implements {@linkcode ConnectSignaling}. */
export class GatewaySession implements ConnectSignaling {
  /** The gateway's session id. */
  readonly sessionId: string;
  /** The host being reached. */
  readonly host: HostInfo;
  readonly #ch: SignalingChannel;
  readonly #log: (line: string) => void;
  /** The path the checks chose, once known. */
  path: PathKind | undefined;

  private constructor(
    ch: SignalingChannel,
    sessionId: string,
    host: HostInfo,
    log: (line: string) => void,
  ) {
    this.#ch = ch;
    this.sessionId = sessionId;
    this.host = host;
    this.#log = log;
  }

  /**
   * Logs in, picks the host and sends `connect`. Rejects with a clear message
   * when the host is unknown, offline, or does not authorise this client.
   */
  static async open(options: {
    url: string;
    identity: IdentityKeyPair;
    name: string;
    host: HostSelector;
    pairingCode?: string;
    log?: (line: string) => void;
  }): Promise<GatewaySession> {
    const log = options.log ?? (() => {});
    const gw = new GatewayClient(options.url, options.identity);
    await loginAsUser(gw, options.name);
    if (options.pairingCode !== undefined) {
      const paired = await gw.redeemPairingCode(options.pairingCode);
      log(`paired with host ${paired.hostName}`);
    }
    const hosts = await gw.listHosts();
    const sel = options.host;
    const matches = hosts.filter((h) =>
      "name" in sel ? h.name === sel.name : h.publicKey === sel.key
    );
    const wanted = "name" in sel ? `named ${sel.name}` : sel.key;
    if (matches.length === 0) {
      throw new Error(
        `no host ${wanted} authorises ${gw.publicKey} (known: ${
          hosts.map((h) => h.name).join(", ") || "none"
        }); ask its owner to allow this key or pair with a code`,
      );
    }
    const host = matches.find((h) => h.online) ?? matches[0];
    if (!host.online) throw new Error(`host ${wanted} is offline`);
    const ch = await gw.openSignaling();
    try {
      ch.send({ type: "connect", to: host.publicKey, ref: "c1" });
      const m = await next(ch, ["connecting"], 5_000);
      log(`session ${m.sessionId} with ${host.name}`);
      return new GatewaySession(ch, m.sessionId, host, log);
    } catch (error) {
      await ch.close();
      throw error;
    }
  }

  /** Sends our offer, resolves with the host's answer. */
  async exchange(offer: IceOffer): Promise<IceOffer> {
    this.#ch.send({ type: "offer", sessionId: this.sessionId, ...offerToSignaling(offer) });
    const answer = await next(this.#ch, ["answer"], ANSWER_TIMEOUT_MS, this.sessionId);
    return offerFromSignaling(answer);
  }

  /** Reports a direct outcome, or asks for a relay and resolves with its lease. */
  async outcome(o: {
    ok: boolean;
    path?: PathKind;
    reason?: string;
    elapsedMs: number;
  }): Promise<{ lease: string; relay: PeerAddress } | undefined> {
    if (o.ok) {
      this.path = o.path;
      this.#log(`direct path (${o.path}) in ${Math.round(o.elapsedMs)} ms`);
      this.#ch.send({
        type: "outcome",
        sessionId: this.sessionId,
        result: "direct",
        detail: `${o.path} after ${Math.round(o.elapsedMs)} ms`,
      });
      return undefined;
    }
    this.#log(
      `no direct path after ${Math.round(o.elapsedMs)} ms (${o.reason}); asking for a relay`,
    );
    this.#ch.send({ type: "relay_request", sessionId: this.sessionId });
    let lease;
    try {
      lease = await next(this.#ch, ["lease"], LEASE_TIMEOUT_MS, this.sessionId);
    } catch (error) {
      this.#ch.send({
        type: "outcome",
        sessionId: this.sessionId,
        result: "failed",
        detail: "no direct path, no relay",
      });
      throw error;
    }
    const relay = parseRelayAddress(lease.relayAddress);
    if (relay === undefined) throw new Error(`the lease names a bad relay ${lease.relayAddress}`);
    this.path = "relay";
    this.#log(`relay ${lease.relayId} at ${lease.relayAddress}`);
    this.#ch.send({
      type: "outcome",
      sessionId: this.sessionId,
      result: "relay",
      detail: lease.relayId,
    });
    return { lease: lease.token, relay };
  }

  /** The relay binding ended. */
  relayState(state: string): void {
    this.#log(`relay binding ${state}`);
  }

  /** Closes the signaling socket. */
  close(): Promise<void> {
    return this.#ch.close().catch(() => {});
  }
}

/**
 * The next message of one of `types` (for `sessionId` when given), skipping
 * others; an `error` message rejects with its code and text.
 */
async function next<T extends GatewayMessage["type"]>(
  ch: SignalingChannel,
  types: T[],
  timeoutMs: number,
  sessionId?: string,
): Promise<Extract<GatewayMessage, { type: T }>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`gateway: no ${types.join("/")} within ${timeoutMs} ms`);
    const m = await ch.receive(left);
    if (m.type === "error") throw new Error(`gateway: ${m.code}: ${m.message}`);
    if (!(types as string[]).includes(m.type)) continue;
    if (sessionId !== undefined && "sessionId" in m && m.sessionId !== sessionId) continue;
    return m as Extract<GatewayMessage, { type: T }>;
  }
}
