/**
 * The host's side of connecting through the gateway, inside the input worker
 * (host/input_worker.ts), on the one socket the listener reads: one ICE agent
 * per incoming connect request (controlled role), and the relay binding when
 * a lease arrives. STUN (first byte 0–3) and relay control (0x40–0x4F)
 * reach it through the listener's `onForeign`; it sends with `sendRaw`. RIFT
 * itself never passes here: the listener accepts the client's handshake from
 * whichever address the checks (or the relay) led to. See docs/CONNECT.md.
 *
 * @module
 */
import type { IceTiming } from "../core/ice/mod.ts";
import type { IdentityKeyPair } from "../crypto/identity.ts";
import { IceConnection, type IceOffer, type IceTransport } from "../edge/ice_connect.ts";
import { driveRelayBinding, type PathKind, pathOfPair } from "../edge/connect_signaling.ts";
import type { DatagramHandler, PeerAddress } from "../edge/udp_socket.ts";
import { PeerBinding } from "../relay/peer_binding.ts";

/** ICE settings of a host reachable through the gateway. */
export interface HostIceOptions {
  /** STUN server (IP literal) for the server-reflexive candidate. */
  stunServer?: PeerAddress;
  /** Host candidate addresses (default: the IPv4 interfaces, loopback excluded). */
  hostAddresses?: string[];
  /** Include loopback in the default host candidates (one-machine demos and tests). */
  includeLoopback?: boolean;
  /** ICE timer overrides. */
  timing?: Partial<IceTiming>;
}

/** How one session's checks ended, as the host reports it. */
export type HostIceOutcome =
  | { ok: true; path: PathKind; remote: PeerAddress; elapsedMs: number }
  | { ok: false; reason: string; elapsedMs: number };

/** An ICE agent's view of the listener's socket. */
class SharedTransport implements IceTransport {
  readonly addr: PeerAddress;
  handler: DatagramHandler | undefined;
  readonly #send: (datagram: Uint8Array, to: PeerAddress) => boolean;
  readonly #onClose: () => void;

  constructor(
    local: PeerAddress,
    send: (datagram: Uint8Array, to: PeerAddress) => boolean,
    onClose: () => void,
  ) {
    this.addr = { ...local };
    this.#send = send;
    this.#onClose = onClose;
  }

  start(handler: DatagramHandler): void {
    this.handler = handler;
  }

  send(datagram: Uint8Array, to: PeerAddress): void {
    this.#send(datagram, to);
  }

  close(): Promise<void> {
    this.handler = undefined;
    this.#onClose();
    return Promise.resolve();
  }
}

interface Pending {
  readonly transport: SharedTransport;
  ice: IceConnection | undefined;
  binding: PeerBinding | undefined;
  relay: PeerAddress | undefined;
  binder: AbortController | undefined;
  /** Closes the agent if no session came through within a while. */
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** How long an agent waits for its session to start after it was created (ms). */
const IDLE_AGENT_MS = 60_000;

/** The host's ICE agents and relay bindings, all on the listener's socket. */
export class HostConnector {
  readonly #sessions = new Map<string, Pending>();
  readonly #local: PeerAddress;
  readonly #sendRaw: (datagram: Uint8Array, to: PeerAddress) => boolean;
  readonly #identity: IdentityKeyPair;
  readonly #ice: HostIceOptions;
  readonly #onClosed: (sessionId: string) => void;
  /** STUN datagrams offered to the agents. */
  stunIn = 0;
  /** Relay-control datagrams handed to a binding. */
  relayControlIn = 0;
  /** Foreign datagrams nobody wanted. */
  unclaimed = 0;

  /**
   * @param local the listener socket's address (host candidates carry its port; a socket bound
   *   to one IP advertises only that IP)
   * @param sendRaw the listener's `sendRaw`
   * @param onClosed told when a session's agent and binding are gone (ended, or idle 60 s)
   */
  constructor(
    local: PeerAddress,
    sendRaw: (datagram: Uint8Array, to: PeerAddress) => boolean,
    identity: IdentityKeyPair,
    ice: HostIceOptions,
    onClosed: (sessionId: string) => void = () => {},
  ) {
    this.#onClosed = onClosed;
    this.#local = { ...local };
    this.#sendRaw = sendRaw;
    this.#identity = identity;
    this.#ice = ice;
  }

  /** The listener's `onForeign`: STUN to the agents, relay control to the bindings. */
  handleForeign(datagram: Uint8Array, from: PeerAddress, at: number): void {
    const first = datagram[0];
    if (first <= 3) {
      this.stunIn++;
      // Every agent sees every STUN datagram: each drops what is not its own (USERNAME or
      // transaction id), and a host has a handful of agents at most.
      for (const p of this.#sessions.values()) p.transport.handler?.(datagram, from, at);
      return;
    }
    for (const p of this.#sessions.values()) {
      if (
        p.binding && p.relay && p.relay.port === from.port && p.relay.hostname === from.hostname &&
        p.binding.handle(datagram)
      ) {
        this.relayControlIn++;
        return;
      }
    }
    this.unclaimed++;
  }

  #entry(sessionId: string): Pending {
    let p = this.#sessions.get(sessionId);
    if (p === undefined) {
      const transport = new SharedTransport(this.#local, this.#sendRaw, () => {});
      p = {
        transport,
        ice: undefined,
        binding: undefined,
        relay: undefined,
        binder: undefined,
        timer: undefined,
      };
      this.#sessions.set(sessionId, p);
      p.timer = setTimeout(() => this.close(sessionId), IDLE_AGENT_MS);
    }
    return p;
  }

  /** Gathers this host's candidates for one connect request (host + srflx via STUN). */
  async gather(sessionId: string): Promise<IceOffer> {
    const p = this.#entry(sessionId);
    await p.ice?.close();
    p.ice = await IceConnection.gather({
      socket: p.transport,
      role: "controlled",
      stunServer: this.#ice.stunServer,
      hostAddresses: this.#ice.hostAddresses,
      includeLoopback: this.#ice.includeLoopback,
      timing: this.#ice.timing,
    });
    return p.ice.offer();
  }

  /** Takes the client's offer and runs the checks to their outcome (within the agent's bounds). */
  async connect(sessionId: string, offer: IceOffer): Promise<HostIceOutcome> {
    const ice = this.#sessions.get(sessionId)?.ice;
    if (ice === undefined) {
      return { ok: false, reason: "no candidates gathered for this session", elapsedMs: 0 };
    }
    const set = ice.setRemote(offer);
    if (!set.ok) return { ok: false, reason: `bad offer: ${set.error.detail}`, elapsedMs: 0 };
    const outcome = await ice.connected();
    if (!outcome.ok) return outcome;
    return {
      ok: true,
      path: pathOfPair(outcome.pair),
      remote: outcome.remote,
      elapsedMs: outcome.elapsedMs,
    };
  }

  /**
   * Binds this host to the relay with the session's lease, from the listener's
   * socket; resolves "ready" once the relay has both peers (the client's RIFT
   * handshake then arrives from the relay's address).
   */
  async bindRelay(sessionId: string, lease: string, relay: PeerAddress): Promise<string> {
    const p = this.#entry(sessionId);
    p.binder?.abort();
    p.binding = new PeerBinding({ lease, identity: this.#identity, retryMs: 250 });
    p.relay = relay;
    const abort = new AbortController();
    p.binder = abort;
    const status = await driveRelayBinding(
      p.binding,
      (d) => this.#sendRaw(d, relay),
      abort.signal,
    );
    return status.state === "failed"
      ? `failed: ${(status as { kind: string }).kind}`
      : status.state;
  }

  /** A session ended: its agent (consent) and binding go too. */
  async close(sessionId: string): Promise<void> {
    const p = this.#sessions.get(sessionId);
    if (p === undefined) return;
    this.#sessions.delete(sessionId);
    this.#onClosed(sessionId);
    clearTimeout(p.timer);
    p.binder?.abort();
    await p.ice?.close();
  }

  /** The session id whose agent selected `remote`, or whose relay is `remote`. */
  sessionOf(remote: PeerAddress): string | undefined {
    for (const [id, p] of this.#sessions) {
      const r = p.ice?.remote ?? p.relay;
      if (r && r.port === remote.port && r.hostname === remote.hostname) return id;
    }
    return undefined;
  }

  /** A session with this remote is running: its agent stays for consent (no idle timeout). */
  keep(sessionId: string): void {
    const p = this.#sessions.get(sessionId);
    if (p !== undefined) clearTimeout(p.timer);
  }

  /** Closes everything. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.#sessions.keys()].map((id) => this.close(id)));
  }
}
