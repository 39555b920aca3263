/**
 * A pure-TS simulated network for ICE tests: two private hosts, each behind
 * a NAT with RFC 4787 mapping and filtering behaviour, a public STUN server
 * (the real {@linkcode StunServerCore}), optionally a blind relay that
 * forwards between the two peers, constant one-way delay, seeded loss. Time
 * is virtual; {@linkcode IcePeerSim.run} drives both agents until they settle.
 *
 * @module
 */

import { StunBindingClient } from "../stun/client.ts";
import type { TransportAddress } from "../stun/ip.ts";
import { StunServerCore } from "../stun/server.ts";
import { IceAgent, type IceAgentOptions, type IceEvent } from "./agent.ts";
import { addressKey, hostCandidate, relayCandidate, srflxCandidate } from "./candidate.ts";

/** RFC 4787 mapping / filtering behaviour. */
export type NatBehaviourSim = "endpoint" | "address" | "addressPort";

/** A NAT: `mapping` "addressPort" is a symmetric NAT. */
export interface SimNatSpec {
  mapping: NatBehaviourSim;
  filtering: NatBehaviourSim;
}

const v4 = (hostname: string, port: number): TransportAddress => ({
  hostname,
  port,
  family: "IPv4",
});

/** One NAT box: mapping table and filter state, sequential random-start ports. */
export class SimNat {
  readonly #mappings = new Map<string, number>();
  readonly #reverse = new Map<number, { inside: TransportAddress; sentTo: Set<string> }>();
  #nextPort: number;

  constructor(readonly spec: SimNatSpec, readonly publicIp: string, firstPort: number) {
    this.#nextPort = firstPort;
  }

  /** Translates an outbound datagram's source. */
  outbound(inside: TransportAddress, to: TransportAddress): TransportAddress {
    const dest = this.spec.mapping === "endpoint"
      ? ""
      : this.spec.mapping === "address"
      ? to.hostname
      : addressKey(to);
    const key = `${addressKey(inside)}>${dest}`;
    let port = this.#mappings.get(key);
    if (port === undefined) {
      port = this.#nextPort++;
      this.#mappings.set(key, port);
      this.#reverse.set(port, { inside, sentTo: new Set() });
    }
    const entry = this.#reverse.get(port)!;
    entry.sentTo.add(to.hostname);
    entry.sentTo.add(addressKey(to));
    return v4(this.publicIp, port);
  }

  /** The inside address an inbound datagram goes to, or `undefined` when filtered. */
  inbound(from: TransportAddress, port: number): TransportAddress | undefined {
    const entry = this.#reverse.get(port);
    if (!entry) return undefined;
    if (this.spec.filtering === "address" && !entry.sentTo.has(from.hostname)) return undefined;
    if (this.spec.filtering === "addressPort" && !entry.sentTo.has(addressKey(from))) {
      return undefined;
    }
    return entry.inside;
  }
}

interface InFlight {
  at: number;
  seq: number;
  from: TransportAddress;
  to: TransportAddress;
  bytes: Uint8Array;
}

/** Options of {@linkcode IcePeerSim}. */
export interface IcePeerSimOptions {
  /** NAT of peer A (`undefined`: A has a public address). */
  natA?: SimNatSpec;
  /** NAT of peer B. */
  natB?: SimNatSpec;
  /** One-way delay of every hop, ms (default 10). */
  delayMs?: number;
  /** Loss probability of each datagram (default 0). */
  loss?: number;
  /** Loss applied only to STUN check requests/responses between the peers (not to the server). */
  peerLoss?: number;
  /** Seed of the loss generator. */
  seed?: number;
  /** Add a blind relay both peers may use (relay candidates). */
  relay?: boolean;
  /** Agent options for A and B (role defaults: A controlling, B controlled). */
  agentA?: Partial<IceAgentOptions>;
  agentB?: Partial<IceAgentOptions>;
  /** Datagrams to inject into an agent's socket (garbage tests): called at each step. */
  inject?: (now: number) => { to: "A" | "B"; from: TransportAddress; bytes: Uint8Array }[];
}

/** What one peer ended with. */
export interface SimOutcome {
  events: IceEvent[];
  agent: IceAgent;
}

const STUN = v4("198.51.100.1", 3478);
const RELAY = v4("198.51.100.9", 4000);

/**
 * Two peers, their NATs, a STUN server and optionally a relay, in virtual
 * time. `gather()` runs the STUN bindings; `exchange()` moves candidates
 * and credentials (what signaling will do); `run(untilMs)` runs checks.
 */
export class IcePeerSim {
  now = 0;
  readonly a: IceAgent;
  readonly b: IceAgent;
  readonly eventsA: IceEvent[] = [];
  readonly eventsB: IceEvent[] = [];
  /** Datagrams delivered between the peers (directly or via the relay). */
  delivered = 0;
  /** Datagrams dropped by a NAT filter. */
  filtered = 0;
  /** Datagrams lost to simulated loss. */
  lost = 0;
  /** Loop iterations of {@linkcode run}: a busy timer would show here as thousands. */
  iterations = 0;
  readonly hostA = v4("10.0.1.2", 5000);
  readonly hostB = v4("10.0.2.2", 5000);
  readonly #natA?: SimNat;
  readonly #natB?: SimNat;
  readonly #server = new StunServerCore({ primary: STUN });
  readonly #opts: IcePeerSimOptions;
  readonly #queue: InFlight[] = [];
  #seq = 0;
  #rng: number;
  readonly #relayPeers: string[] = [];

  constructor(opts: IcePeerSimOptions = {}) {
    this.#opts = opts;
    this.#rng = (opts.seed ?? 1) >>> 0 || 1;
    if (opts.natA) this.#natA = new SimNat(opts.natA, "203.0.113.101", 40000);
    else this.hostA = v4("203.0.113.101", 5000);
    if (opts.natB) this.#natB = new SimNat(opts.natB, "203.0.113.102", 50000);
    else this.hostB = v4("203.0.113.102", 5000);
    const rnd = () => this.#random();
    this.a = new IceAgent({ role: "controlling", random: rnd, ...opts.agentA });
    this.b = new IceAgent({ role: "controlled", random: rnd, ...opts.agentB });
  }

  #random(): number {
    // xorshift32: deterministic per seed.
    let x = this.#rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#rng = x >>> 0;
    return this.#rng / 2 ** 32;
  }

  /** Sends from a peer's host socket (through its NAT). */
  #send(side: "A" | "B", to: TransportAddress, bytes: Uint8Array): void {
    const nat = side === "A" ? this.#natA : this.#natB;
    const inside = side === "A" ? this.hostA : this.hostB;
    const from = nat ? nat.outbound(inside, to) : inside;
    const isPeerTraffic = addressKey(to) !== addressKey(STUN);
    const p = isPeerTraffic
      ? (this.#opts.peerLoss ?? this.#opts.loss ?? 0)
      : (this.#opts.loss ?? 0);
    if (p > 0 && this.#random() < p) {
      this.lost++;
      return;
    }
    this.#queue.push({
      at: this.now + (this.#opts.delayMs ?? 10),
      seq: this.#seq++,
      from,
      to,
      bytes,
    });
  }

  /** Delivers one datagram that arrived on the public side. */
  #arrive(d: InFlight): void {
    if (addressKey(d.to) === addressKey(STUN)) {
      const action = this.#server.handle(d.bytes, d.from);
      if (action.action === "reply") {
        this.#queue.push({
          at: this.now + (this.#opts.delayMs ?? 10),
          seq: this.#seq++,
          from: STUN,
          to: action.to,
          bytes: action.bytes,
        });
      }
      return;
    }
    if (this.#opts.relay && addressKey(d.to) === addressKey(RELAY)) {
      // Blind relay: the first two sources are the leased peers; forward between them.
      const src = addressKey(d.from);
      if (!this.#relayPeers.includes(src) && this.#relayPeers.length < 2) {
        this.#relayPeers.push(src);
        this.#relayAddrs.set(src, d.from);
      }
      const other = this.#relayPeers.find((k) => k !== src);
      if (!this.#relayPeers.includes(src) || !other) return;
      this.#queue.push({
        at: this.now + (this.#opts.delayMs ?? 10),
        seq: this.#seq++,
        from: RELAY,
        to: this.#relayAddrs.get(other)!,
        bytes: d.bytes,
      });
      return;
    }
    for (const side of ["A", "B"] as const) {
      const nat = side === "A" ? this.#natA : this.#natB;
      const host = side === "A" ? this.hostA : this.hostB;
      let inside: TransportAddress | undefined;
      if (nat) {
        if (d.to.hostname !== nat.publicIp) continue;
        inside = nat.inbound(d.from, d.to.port);
        if (!inside) {
          this.filtered++;
          return;
        }
      } else {
        if (addressKey(d.to) !== addressKey(host)) continue;
        inside = host;
      }
      if (addressKey(d.from) !== addressKey(STUN)) this.delivered++;
      this.#deliver(side, d.from, d.bytes);
      return;
    }
    // Private addresses of the other network are unroutable: dropped.
  }

  readonly #relayAddrs = new Map<string, TransportAddress>();
  readonly #binding = new Map<"A" | "B", StunBindingClient>();

  #deliver(side: "A" | "B", from: TransportAddress, bytes: Uint8Array): void {
    const binding = this.#binding.get(side);
    if (binding && binding.handleResponse(bytes, this.now)) return;
    (side === "A" ? this.a : this.b).handleDatagram(bytes, from, 0, this.now);
  }

  /** Gathers host, server-reflexive (and relay) candidates for both peers. */
  gather(): void {
    for (const side of ["A", "B"] as const) {
      const host = side === "A" ? this.hostA : this.hostB;
      const agent = side === "A" ? this.a : this.b;
      agent.addLocalCandidate(hostCandidate(host));
      this.#binding.set(side, new StunBindingClient({ server: STUN, rto: 100 }, this.now));
    }
    const deadline = this.now + 5000;
    while (this.now < deadline) {
      let pending = false;
      for (const [side, c] of this.#binding) {
        const bytes = c.pollTransmit(this.now);
        if (bytes) this.#send(side, STUN, bytes);
        c.handleTimeout(this.now);
        if (!c.result()) pending = true;
      }
      if (!pending) break;
      this.#step(this.now + 5);
    }
    for (const [side, c] of this.#binding) {
      const r = c.result();
      const agent = side === "A" ? this.a : this.b;
      const host = side === "A" ? this.hostA : this.hostB;
      if (r?.ok && addressKey(r.mapped) !== addressKey(host)) {
        agent.addLocalCandidate(srflxCandidate(r.mapped, host, STUN));
      }
      if (this.#opts.relay) agent.addLocalCandidate(relayCandidate(RELAY, RELAY, host));
    }
    this.#binding.clear();
  }

  /** Moves credentials and candidates both ways (the signaling step). */
  exchange(): void {
    for (const [from, to] of [[this.a, this.b], [this.b, this.a]] as const) {
      to.setRemoteCredentials(from.localCredentials);
      for (const c of from.localCandidates) {
        to.addRemoteCandidate({
          type: c.type,
          address: c.address,
          priority: c.priority,
          foundation: c.foundation,
        });
      }
    }
  }

  #step(until: number): void {
    this.#queue.sort((x, y) => x.at - y.at || x.seq - y.seq);
    while (this.#queue.length > 0 && this.#queue[0].at <= until) {
      const d = this.#queue.shift()!;
      this.now = Math.max(this.now, d.at);
      this.#arrive(d);
      this.#queue.sort((x, y) => x.at - y.at || x.seq - y.seq);
    }
    this.now = Math.max(this.now, until);
  }

  /** Runs both agents for `durationMs` of virtual time, or until both settled and `stopWhenSettled`. */
  run(durationMs: number, stopWhenSettled = true): void {
    const end = this.now + durationMs;
    while (this.now <= end) {
      this.iterations++;
      for (const inj of this.#opts.inject?.(this.now) ?? []) {
        (inj.to === "A" ? this.a : this.b).handleDatagram(inj.bytes, inj.from, 0, this.now);
      }
      for (
        const [side, agent, events] of [["A", this.a, this.eventsA], [
          "B",
          this.b,
          this.eventsB,
        ]] as const
      ) {
        agent.handleTimeout(this.now);
        for (let t; (t = agent.pollTransmit(this.now));) this.#send(side, t.to, t.bytes);
        for (let e; (e = agent.pollEvent());) events.push(e);
      }
      const settled = (s: string) => s === "connected" || s === "failed" || s === "disconnected";
      if (stopWhenSettled && settled(this.a.state) && settled(this.b.state)) return;
      const next = Math.min(
        this.a.pollTimeout() ?? Infinity,
        this.b.pollTimeout() ?? Infinity,
        this.#queue.reduce((m, d) => Math.min(m, d.at), Infinity),
        end + 1,
      );
      this.#step(Math.max(next, this.now + 1));
    }
  }
}

export { RELAY as SIM_RELAY, STUN as SIM_STUN };
