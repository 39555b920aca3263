/**
 * The host's link to the gateway, on the host's main thread: registers and
 * logs in as a host, keeps presence over the signaling WebSocket (reopening
 * it when it drops), and answers connect requests by passing offers to and
 * from the input worker, which runs the ICE agents and relay bindings on the
 * RIFT socket (host/host_connector.ts). See docs/CONNECT.md.
 *
 * @module
 */
import { decodeIdentityPublicKey, type IdentityKeyPair } from "../crypto/identity.ts";
import { GatewayClient, GatewayError, type SignalingChannel } from "../gateway/client.ts";
import type { GatewayMessage } from "../gateway/schema.ts";
import {
  offerFromSignaling,
  offerToSignaling,
  parseRelayAddress,
} from "../edge/connect_signaling.ts";
import type { IceOffer } from "../edge/ice_connect.ts";
import type { HostIceOutcome } from "./host_connector.ts";

/** What the link drives: the input worker's connect commands (see `InputWorker`). */
export interface ConnectWorker {
  iceGather(sessionId: string, peerKey: Uint8Array): void;
  iceRemote(sessionId: string, offer: IceOffer): void;
  relayBind(sessionId: string, lease: string, relay: { hostname: string; port: number }): void;
  iceClose(sessionId: string): void;
}

/** Options of {@linkcode GatewayLink.start}. */
export interface GatewayLinkOptions {
  /** Gateway base URL. */
  url: string;
  /** The host's identity (registered as kind "host"). */
  identity: IdentityKeyPair;
  /** Display name shown to clients. */
  name: string;
  /** Client keys (gateway spelling) to authorise on the gateway's allow list. */
  allow?: string[];
  /** Ask the gateway for a one-time pairing code (logged). */
  pairing?: boolean;
  /** Log lines. */
  log: (line: string) => void;
}

/** Logs in as `kind`, registering the identity first if the gateway does not know it. */
export async function loginOrRegister(
  gw: GatewayClient,
  name: string,
  kind: "host" | "user",
): Promise<void> {
  try {
    await gw.login();
  } catch (error) {
    if (!(error instanceof GatewayError) || error.code !== "NotRegistered") throw error;
    await gw.register(name, kind);
    await gw.login();
  }
}

interface Request {
  gathered: IceOffer | undefined;
  remote: IceOffer | undefined;
  from: string;
}

/** The running link. */
export class GatewayLink {
  readonly gateway: GatewayClient;
  readonly #options: GatewayLinkOptions;
  #worker: ConnectWorker | undefined;
  #channel: SignalingChannel | undefined;
  #stopped = false;
  readonly #requests = new Map<string, Request>();
  #loop: Promise<void> | undefined;
  /** Connect requests answered. */
  answered = 0;

  private constructor(options: GatewayLinkOptions) {
    this.#options = options;
    this.gateway = new GatewayClient(options.url, options.identity);
  }

  /** Registers or logs in, applies the allow list, asks for a pairing code if wanted. */
  static async start(options: GatewayLinkOptions): Promise<GatewayLink> {
    const link = new GatewayLink(options);
    await loginOrRegister(link.gateway, options.name, "host");
    for (const key of options.allow ?? []) {
      // A key the gateway does not know yet cannot be allowed there; the RIFT check still applies.
      await link.gateway.allowClient(key).catch((error) =>
        options.log(`gateway allow list: ${key}: ${(error as Error).message}`)
      );
    }
    if (options.pairing) {
      const code = await link.gateway.requestPairingCode();
      options.log(`pairing code ${code.code} (valid until ${code.expiresAt})`);
    }
    return link;
  }

  /** Starts answering connect requests through `worker`; resolves once presence is up. */
  async serve(worker: ConnectWorker): Promise<void> {
    this.#worker = worker;
    this.#channel = this.#watch(await this.gateway.openSignaling());
    this.#options.log(`online at ${this.#options.url} as ${this.gateway.publicKey}`);
    this.#loop = this.#run();
  }

  /** Forgets a channel once it closes, so the loop reopens one. */
  #watch(ch: SignalingChannel): SignalingChannel {
    ch.closed.then(() => {
      if (this.#channel !== ch) return;
      this.#channel = undefined;
      if (!this.#stopped) this.#options.log("gateway connection lost; reconnecting");
    });
    return ch;
  }

  async #run(): Promise<void> {
    let backoffMs = 500;
    while (!this.#stopped) {
      const ch = this.#channel;
      if (ch === undefined) {
        await new Promise((r) => setTimeout(r, backoffMs));
        backoffMs = Math.min(10_000, backoffMs * 2);
        try {
          if (this.#stopped) break;
          this.#channel = this.#watch(await this.gateway.openSignaling());
          this.#options.log("gateway presence restored");
          backoffMs = 500;
        } catch (error) {
          // Token expired while we were away, or the gateway is still down: log in again next time.
          this.#options.log(`gateway reconnect failed: ${(error as Error).message}`);
          await this.gateway.login().catch(() => {});
        }
        continue;
      }
      let msg: GatewayMessage;
      try {
        msg = await ch.receive(25_000);
      } catch {
        if (this.#stopped || this.#channel !== ch) continue;
        // Quiet for 25 s: a ping keeps the socket (and presence) alive through middleboxes.
        try {
          ch.send({ type: "ping" });
        } catch {
          this.#channel = undefined;
        }
        continue;
      }
      this.#handle(msg);
    }
  }

  #handle(msg: GatewayMessage): void {
    const w = this.#worker!;
    switch (msg.type) {
      case "connect": {
        const key = decodeIdentityPublicKey(msg.from);
        if (key === undefined) {
          this.#options.log(`connect request ${msg.sessionId} with a bad key ${msg.from}`);
          return;
        }
        this.#options.log(`connect request ${msg.sessionId} from ${msg.fromName}`);
        this.#requests.set(msg.sessionId, {
          gathered: undefined,
          remote: undefined,
          from: msg.from,
        });
        // The gateway checked the allow list or pairing: this identity may now handshake.
        w.iceGather(msg.sessionId, key);
        break;
      }
      case "offer": {
        const r = this.#requests.get(msg.sessionId);
        if (r === undefined) return;
        r.remote = offerFromSignaling(msg);
        // Checks start once our own candidates are out (the answer), so both sides check at once.
        if (r.gathered !== undefined) w.iceRemote(msg.sessionId, r.remote);
        break;
      }
      case "lease": {
        const relay = parseRelayAddress(msg.relayAddress);
        if (relay === undefined) {
          this.#options.log(`lease with a bad relay address ${msg.relayAddress}`);
          return;
        }
        this.#options.log(
          `lease for ${msg.sessionId}: relay ${msg.relayId} at ${msg.relayAddress}`,
        );
        w.relayBind(msg.sessionId, msg.token, relay);
        break;
      }
      case "outcome":
        this.#options.log(`session ${msg.sessionId}: the client reports ${msg.result}`);
        if (msg.result === "failed") {
          this.#requests.delete(msg.sessionId);
          w.iceClose(msg.sessionId);
        }
        break;
      case "error":
        this.#options.log(`gateway error ${msg.code}: ${msg.message}`);
        break;
      default:
        break;
    }
  }

  /** The input worker gathered this host's candidates: answer, then start the checks. */
  onIceOffer(sessionId: string, offer: IceOffer): void {
    const r = this.#requests.get(sessionId);
    if (r === undefined) return;
    r.gathered = offer;
    this.#send({ type: "answer", sessionId, ...offerToSignaling(offer) });
    this.answered++;
    if (r.remote !== undefined) this.#worker!.iceRemote(sessionId, r.remote);
  }

  /** The checks ended: report direct; on failure wait for the lease the client asks for. */
  onIceOutcome(sessionId: string, outcome: HostIceOutcome): void {
    if (outcome.ok) {
      this.#options.log(
        `session ${sessionId}: direct path (${outcome.path}) to ${outcome.remote.hostname}:${outcome.remote.port} in ${
          Math.round(outcome.elapsedMs)
        } ms`,
      );
    } else {
      this.#options.log(
        `session ${sessionId}: no direct path (${outcome.reason}); waiting for a relay lease`,
      );
    }
  }

  /** The relay binding ended. */
  onRelayState(sessionId: string, state: string): void {
    this.#options.log(`session ${sessionId}: relay binding ${state}`);
  }

  #send(msg: Parameters<SignalingChannel["send"]>[0]): void {
    try {
      this.#channel?.send(msg);
    } catch (error) {
      this.#options.log(`gateway send failed: ${(error as Error).message}`);
    }
  }

  /** Closes the signaling socket (presence ends). */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#channel?.close().catch(() => {});
    await this.#loop?.catch(() => {});
  }
}
