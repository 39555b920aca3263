/**
 * ICE at the edge: runs the sans-IO {@linkcode IceAgent} on the UDP socket
 * RIFT will use. STUN and RIFT share the socket and are told apart by the
 * first byte (RFC 7983: 0–3 is STUN, RIFT starts at 0xC0), so the peer sees
 * the checks come from the very port the stream will use.
 *
 * ```ts
 * const ice = await IceConnection.gather({ socket: UdpSocket.bind("0.0.0.0", 0), role: "controlled",
 *   stunServer: { hostname: "203.0.113.10", port: 3478 } });
 * signaling.send(ice.offer());                       // credentials + candidates
 * ice.setRemote(await signaling.receive());          // the peer's offer (validated)
 * const outcome = await ice.connected();             // { ok: true, remote, pair } or { ok: false, reason }
 * const listener = SessionListener.listen({ identity, port: 0, attached: ice });  // or SessionDriver.connect
 * ```
 *
 * After selection the agent keeps answering the peer's checks and runs
 * consent freshness on the selected pair; non-STUN datagrams from the
 * selected remote go to the handler given to {@linkcode IceConnection.attach}.
 *
 * @module
 */

import {
  type CandidateError,
  type CandidateOffer,
  hostCandidate,
  IceAgent,
  type IceEvent,
  type IceRole,
  type IceTiming,
  parseOffer,
  type SelectedPair,
  srflxCandidate,
  toOffer,
} from "../core/ice/mod.ts";
import { err, ok, type Result } from "../core/result.ts";
import { StunBindingClient } from "../core/stun/client.ts";
import { canonicalIp, parseIp, type TransportAddress } from "../core/stun/ip.ts";
import type { AttachedSocket } from "./udp_session.ts";
import { type DatagramHandler, type PeerAddress, UdpSocket } from "./udp_socket.ts";

/**
 * What ICE needs of a socket. A {@linkcode UdpSocket} is one; the host's is a
 * view of its listener's socket (STUN arriving through `onForeign`, sends
 * through `sendRaw`), so several agents share the one socket RIFT runs on.
 */
export interface IceTransport {
  /** The bound address (the wildcard or one local IP, with the real port). */
  readonly addr: PeerAddress;
  /** Starts delivering datagrams to `handler`. */
  start(handler: DatagramHandler): void;
  /** Sends one datagram. */
  send(datagram: Uint8Array, to: PeerAddress): void;
  /** Releases the transport. */
  close(): Promise<void>;
}

/** Options of {@linkcode IceConnection.gather}. */
export interface IceGatherOptions {
  /**
   * A bound socket that nobody has started (the connection starts and owns
   * it), or another {@linkcode IceTransport}.
   */
  socket: UdpSocket | IceTransport;
  /** ICE role: by convention the client is controlling, the host controlled. */
  role: IceRole;
  /** STUN server (IP literal) for the server-reflexive candidate; none: host candidates only. */
  stunServer?: PeerAddress;
  /**
   * Local IP addresses to advertise as host candidates (default: the IPv4
   * addresses of `Deno.networkInterfaces()`, loopback excluded).
   */
  hostAddresses?: string[];
  /** Include loopback addresses in the default host candidates (tests on one machine). */
  includeLoopback?: boolean;
  /** First STUN retransmission timeout, ms (default 250; 4 sends, gives up after 2750 ms). */
  stunRtoMs?: number;
  /** ICE timer overrides (see `IceTiming`). */
  timing?: Partial<IceTiming>;
  /** Called for every agent event (selected, failed, consentLost, roleChanged). */
  onEvent?: (event: IceEvent) => void;
}

/** What one side sends the other through signaling. */
export interface IceOffer {
  /** Username fragment. */
  ufrag: string;
  /** Password. */
  pwd: string;
  /** Candidates. */
  candidates: CandidateOffer[];
}

/** How connectivity checks ended. */
export type IceOutcome =
  | { ok: true; remote: PeerAddress; pair: SelectedPair; elapsedMs: number }
  | { ok: false; reason: string; elapsedMs: number };

/** Counters of the edge part (the agent has its own). */
export interface IceEdgeCounters {
  /** STUN datagrams given to the agent. */
  stunDatagrams: number;
  /** Non-STUN datagrams routed to the attached handler. */
  routed: number;
  /** Non-STUN datagrams dropped: nothing attached yet, or not from the selected remote. */
  unrouted: number;
}

function toTransport(a: PeerAddress): TransportAddress {
  return {
    hostname: canonicalIp(a.hostname),
    port: a.port,
    family: a.hostname.includes(":") ? "IPv6" : "IPv4",
  };
}

/** The IPv4 addresses of this machine's interfaces (what `hostAddresses` defaults to). */
export function localIpv4Addresses(includeLoopback = false): string[] {
  const out: string[] = [];
  for (const i of Deno.networkInterfaces()) {
    if (i.family !== "IPv4") continue;
    if (!includeLoopback && i.address.startsWith("127.")) continue;
    if (!out.includes(i.address)) out.push(i.address);
  }
  return out;
}

/**
 * ICE on one UDP socket; implements {@linkcode AttachedSocket} so a RIFT
 * session can run on the same socket afterwards.
 */
export class IceConnection implements AttachedSocket {
  /** The transport checks run on. */
  readonly transport: UdpSocket | IceTransport;
  /** The agent (read `state`, `counters`, `selectedPair`). */
  readonly agent: IceAgent;
  /** Edge counters. */
  readonly counters: IceEdgeCounters = { stunDatagrams: 0, routed: 0, unrouted: 0 };
  /** The server-reflexive address learnt from STUN, if any. */
  serverReflexive: TransportAddress | undefined;
  readonly #onEvent?: (event: IceEvent) => void;
  #binding: StunBindingClient | undefined;
  #bindingDone: (() => void) | undefined;
  #bindingTimer: ReturnType<typeof setTimeout> | undefined;
  #failure = "no candidate pair worked";
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #handler: DatagramHandler | undefined;
  #startedAt = 0;
  #outcome: Promise<IceOutcome> | undefined;
  #resolveOutcome: ((o: IceOutcome) => void) | undefined;
  #closed = false;
  /** Set when no pair ever formed by the direct bound (the agent itself would wait forever). */
  #noPairs = false;
  #guard: ReturnType<typeof setTimeout> | undefined;

  private constructor(
    socket: UdpSocket | IceTransport,
    agent: IceAgent,
    onEvent?: (event: IceEvent) => void,
  ) {
    this.transport = socket;
    this.agent = agent;
    this.#onEvent = onEvent;
  }

  /**
   * Starts the socket, adds host candidates and asks the STUN server for the
   * server-reflexive one (a STUN timeout just means no srflx candidate).
   * Resolves once gathering is complete.
   */
  static async gather(options: IceGatherOptions): Promise<IceConnection> {
    const agent = new IceAgent({ role: options.role, timing: options.timing });
    const conn = new IceConnection(options.socket, agent, options.onEvent);
    const socket = options.socket;
    socket.start((datagram, from, now) => conn.#onDatagram(datagram, from, now));
    const port = socket.addr.port;
    const bound = socket.addr.hostname;
    const hosts = bound !== "0.0.0.0" && bound !== "::"
      ? [bound]
      : options.hostAddresses ?? localIpv4Addresses(options.includeLoopback);
    hosts.forEach((ip, i) => {
      if (!parseIp(ip)) return;
      agent.addLocalCandidate(
        hostCandidate(toTransport({ hostname: ip, port }), { localPreference: 65535 - i }),
      );
    });
    if (options.stunServer) {
      const server = toTransport(options.stunServer);
      const rto = options.stunRtoMs ?? 250;
      const done = new Promise<void>((resolve) => conn.#bindingDone = resolve);
      conn.#binding = new StunBindingClient({ server, rto, rc: 4, rm: 4 }, performance.now());
      conn.#pumpBinding();
      await done;
      const r = conn.#binding.result();
      conn.#binding = undefined;
      if (r?.ok) {
        conn.serverReflexive = r.mapped;
        const base = agent.localCandidates.find((c) => c.type === "host")?.address ??
          toTransport({ hostname: "0.0.0.0", port });
        if (
          !agent.localCandidates.some((c) =>
            c.address.hostname === r.mapped.hostname && c.address.port === r.mapped.port
          )
        ) {
          agent.addLocalCandidate(srflxCandidate(r.mapped, base, server));
        }
      }
    }
    return conn;
  }

  /** The shared socket (for a RIFT session on it); only when the transport is a `UdpSocket`. */
  get socket(): UdpSocket {
    if (!(this.transport instanceof UdpSocket)) {
      throw new Error("this IceConnection runs on a shared transport, not its own UdpSocket");
    }
    return this.transport;
  }

  /** Credentials and candidates to send to the peer. */
  offer(): IceOffer {
    const { ufrag, pwd } = this.agent.localCredentials;
    return {
      ufrag,
      pwd,
      candidates: this.agent.localCandidates.filter((c) => c.type !== "prflx").map(toOffer),
    };
  }

  /**
   * Takes the peer's offer (untrusted: validated; a bad candidate is refused
   * with its kind and the others are kept) and starts the checks.
   */
  setRemote(offer: unknown): Result<{ refused: CandidateError[] }, CandidateError> {
    const o = offer as Partial<IceOffer> | null;
    if (typeof o !== "object" || o === null || !Array.isArray(o.candidates)) {
      return err({ kind: "BadType", detail: "offer is not { ufrag, pwd, candidates[] }" });
    }
    const creds = this.agent.setRemoteCredentials({
      ufrag: o.ufrag as string,
      pwd: o.pwd as string,
    });
    if (!creds.ok) return creds;
    const refused: CandidateError[] = [];
    for (const c of o.candidates) {
      const parsed = parseOffer(c);
      if (!parsed.ok) refused.push(parsed.error);
      else {
        const added = this.agent.addRemoteCandidate(parsed.value);
        if (!added.ok) refused.push(added.error);
      }
    }
    this.#startedAt = performance.now();
    // With no pair at all (no usable candidate on one side) the agent never starts checking;
    // give up at the direct bound so the caller falls back to the relay like any failure.
    clearTimeout(this.#guard);
    this.#guard = setTimeout(() => {
      if (this.agent.state !== "new" || this.#closed) return;
      this.#noPairs = true;
      this.#failure = "no candidate pair to check";
      this.#checkOutcome();
    }, this.agent.timing.directBoundMs);
    this.#pump();
    return ok({ refused });
  }

  /** Resolves when a pair is selected or the checks failed (within the agent's bounds). */
  connected(): Promise<IceOutcome> {
    if (!this.#outcome) {
      this.#outcome = new Promise((resolve) => this.#resolveOutcome = resolve);
      this.#checkOutcome();
    }
    return this.#outcome;
  }

  /** The selected pair's destination as a socket address (after `connected()` succeeded). */
  get remote(): PeerAddress | undefined {
    const p = this.agent.selectedPair;
    return p ? { hostname: p.sendTo.hostname, port: p.sendTo.port } : undefined;
  }

  /** Routes non-STUN datagrams from the selected remote to `handler` (a RIFT session). */
  attach(handler: DatagramHandler): () => void {
    this.#handler = handler;
    return () => {
      if (this.#handler === handler) this.#handler = undefined;
    };
  }

  /** Stops the timers and closes the socket. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#guard);
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#bindingTimer !== undefined) clearTimeout(this.#bindingTimer);
    this.#timer = undefined;
    this.#bindingDone?.();
    this.#resolveOutcome?.({
      ok: false,
      reason: "closed",
      elapsedMs: performance.now() - this.#startedAt,
    });
    await this.transport.close();
  }

  #onDatagram(datagram: Uint8Array, from: PeerAddress, now: number): void {
    if (this.#closed) return;
    if (datagram.length > 0 && datagram[0] <= 3) {
      this.counters.stunDatagrams++;
      if (this.#binding?.handleResponse(datagram, now)) {
        this.#pumpBinding();
        return;
      }
      this.agent.handleDatagram(datagram, toTransport(from), 0, now);
      this.#pump();
      return;
    }
    const remote = this.agent.selectedPair?.sendTo;
    if (
      this.#handler && remote && canonicalIp(from.hostname) === remote.hostname &&
      from.port === remote.port
    ) {
      this.counters.routed++;
      this.#handler(datagram, from, now);
    } else this.counters.unrouted++;
  }

  #pumpBinding(): void {
    const b = this.#binding;
    if (!b || this.#closed) return;
    const now = performance.now();
    b.handleTimeout(now);
    const bytes = b.pollTransmit(now);
    if (bytes) this.transport.send(bytes, b.server);
    if (b.result()) {
      this.#bindingDone?.();
      return;
    }
    const at = b.pollTimeout();
    if (at !== undefined) {
      this.#bindingTimer = setTimeout(() => this.#pumpBinding(), Math.max(0, at - now));
    }
  }

  #pump(): void {
    if (this.#closed) return;
    const now = performance.now();
    this.agent.handleTimeout(now);
    for (let t; (t = this.agent.pollTransmit(now));) {
      this.transport.send(t.bytes, { hostname: t.to.hostname, port: t.to.port });
    }
    for (let e; (e = this.agent.pollEvent());) {
      if (e.type === "failed") this.#failure = e.reason;
      try {
        this.#onEvent?.(e);
      } catch {
        // an observer's failure must not stop ICE
      }
    }
    this.#checkOutcome();
    this.#schedule();
  }

  #checkOutcome(): void {
    if (!this.#resolveOutcome) return;
    const elapsedMs = performance.now() - this.#startedAt;
    const pair = this.agent.selectedPair;
    if (pair) {
      this.#resolveOutcome({ ok: true, remote: this.remote!, pair, elapsedMs });
      this.#resolveOutcome = undefined;
    } else if (this.agent.state === "failed" || this.#noPairs) {
      this.#resolveOutcome({ ok: false, reason: this.#failure, elapsedMs });
      this.#resolveOutcome = undefined;
    }
  }

  #schedule(): void {
    const at = this.agent.pollTimeout();
    if (at === undefined) return;
    if (this.#timer !== undefined && at >= this.#timerAt) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#pump();
    }, Math.max(0, at - performance.now()));
  }
}
