/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * The emulator's worker: owns every socket, the two shared `Link`s (the
 * virtual-time models of core/sim driven by this worker's real clock) and the
 * release scheduler. Talks to the main thread by messages; counters go through
 * shared memory. Errors are posted as values, never thrown across.
 *
 * @module
 */

import { Link, type LinkArrival } from "../../core/sim/link.ts";
import { Rng } from "../../core/sim/rng.ts";
import { openPreciseSleeper, type PreciseSleeper } from "./precise_sleep.ts";
import { setThreadRealtime } from "./realtime.ts";
import { DIRECTION_FIELDS, directionOffset, FLOW_FIELDS, flowOffset } from "./stats_layout.ts";
import {
  type DirectionStats,
  type HostPort,
  linkConfigFromWire,
  type PacketLogEntry,
  type WireLinkConfig,
} from "./types.ts";

/** First message from the main thread. */
export interface StartMessage {
  type: "start";
  flows: { listen: { hostname: string; port: number }; target: HostPort }[];
  up: WireLinkConfig;
  down: WireLinkConfig;
  seed: number;
  log: boolean;
  logLimit: number;
  spinMs: number;
  upstreamHostname?: string;
  realtimePriority: number;
  stats: SharedArrayBuffer;
}

/** Messages the worker accepts. */
export type ToWorker = StartMessage | { type: "log"; id: number } | { type: "close" };

/** Messages the worker posts. */
export type FromWorker =
  | {
    type: "started";
    flows: { listenAddr: HostPort; upstreamAddr: HostPort }[];
    timer: string;
    realtime: boolean;
    clockZeroEpochMs: number;
  }
  | { type: "log"; id: number; entries: PacketLogEntry[] }
  | { type: "error"; kind: "InvalidConfig" | "BindFailed" | "WorkerFailed"; message: string }
  | { type: "closed" };

type Dir = "up" | "down";

interface Meta {
  flow: number;
  logIndex: number; // -1 when not logged
}

class DirectionState {
  received = 0;
  noPeer = 0;
  sendErrors = 0;
  lateSum = 0;
  lateCount = 0;
  lateMax = 0;
  readonly meta = new Map<number, Meta>();
  constructor(readonly name: Dir, readonly link: Link) {}
}

function post(m: FromWorker): void {
  self.postMessage(m);
}

function addrOf(s: Deno.DatagramConn): HostPort {
  const a = s.addr as Deno.NetAddr;
  return { hostname: a.hostname, port: a.port };
}

class Engine {
  readonly #t0 = performance.now();
  readonly #dirs: Record<Dir, DirectionState>;
  readonly #listen: Deno.DatagramConn[] = [];
  readonly #upstream: Deno.DatagramConn[] = [];
  readonly #peers: (HostPort | undefined)[];
  readonly #targets: HostPort[];
  readonly #stats: Float64Array;
  readonly #flowStats: { up: number[]; down: number[] }[];
  readonly #log: PacketLogEntry[] = [];
  readonly #logOn: boolean;
  readonly #logLimit: number;
  readonly #spinMs: number;
  readonly #sleeper: PreciseSleeper;
  /** Whether this thread runs under SCHED_FIFO. */
  readonly realtime: boolean;
  #nextId = 0;
  #closed = false;
  #wakeAt = Infinity;
  #wake: (() => void) | undefined;
  #loops: Promise<void>[] = [];

  constructor(m: StartMessage) {
    const rng = new Rng(m.seed);
    this.#dirs = {
      up: new DirectionState("up", new Link(linkConfigFromWire(m.up), rng.fork())),
      down: new DirectionState("down", new Link(linkConfigFromWire(m.down), rng.fork())),
    };
    this.#targets = m.flows.map((f) => f.target);
    this.#peers = m.flows.map(() => undefined);
    this.#stats = new Float64Array(m.stats);
    this.#flowStats = m.flows.map(() => ({ up: [0, 0, 0], down: [0, 0, 0] }));
    this.#logOn = m.log;
    this.#logLimit = m.logLimit;
    this.#spinMs = m.spinMs;
    // Before the first sleep, so the pool threads it spawns inherit the policy.
    this.realtime = m.realtimePriority > 0 && setThreadRealtime(m.realtimePriority);
    this.#sleeper = openPreciseSleeper();
    try {
      for (const f of m.flows) {
        this.#listen.push(
          Deno.listenDatagram({
            transport: "udp",
            hostname: f.listen.hostname,
            port: f.listen.port,
          }),
        );
        this.#upstream.push(Deno.listenDatagram({
          transport: "udp",
          hostname: m.upstreamHostname ?? f.listen.hostname,
          port: 0,
        }));
      }
    } catch (e) {
      for (const s of [...this.#listen, ...this.#upstream]) s.close();
      void this.#sleeper.close();
      throw e;
    }
  }

  get timer(): string {
    return this.#sleeper.mechanism;
  }

  get clockZeroEpochMs(): number {
    return performance.timeOrigin + this.#t0;
  }

  addresses(): { listenAddr: HostPort; upstreamAddr: HostPort }[] {
    return this.#listen.map((l, i) => ({
      listenAddr: addrOf(l),
      upstreamAddr: addrOf(this.#upstream[i]),
    }));
  }

  #now(): number {
    return performance.now() - this.#t0;
  }

  start(): void {
    this.#listen.forEach((s, flow) =>
      this.#loops.push(this.#receiveLoop(s, (data, from, now) => {
        this.#peers[flow] = from; // replies go to whoever spoke last on this flow
        this.#ingress("up", flow, data, now);
      }))
    );
    this.#upstream.forEach((s, flow) =>
      this.#loops.push(this.#receiveLoop(s, (data, _from, now) => {
        this.#ingress("down", flow, data, now);
      }))
    );
    this.#loops.push(this.#scheduler());
  }

  async #receiveLoop(
    sock: Deno.DatagramConn,
    handle: (data: Uint8Array, from: HostPort, now: number) => void,
  ): Promise<void> {
    const buf = new Uint8Array(65536);
    while (!this.#closed) {
      let got: [Uint8Array, Deno.Addr];
      try {
        got = await sock.receive(buf);
      } catch {
        if (this.#closed) return;
        // A transient socket error: keep serving, but never spin on one that repeats.
        await this.#sleeper.sleepMs(1);
        continue;
      }
      const now = this.#now();
      const a = got[1] as Deno.NetAddr;
      handle(got[0], { hostname: a.hostname, port: a.port }, now);
    }
  }

  #ingress(dir: Dir, flow: number, data: Uint8Array, now: number): void {
    const d = this.#dirs[dir];
    const id = this.#nextId++;
    const fate = d.link.send(data, now, id);
    d.received++;
    this.#flowStats[flow][dir][0]++;
    let logIndex = -1;
    if (this.#logOn && this.#log.length < this.#logLimit) {
      logIndex = this.#log.length;
      this.#log.push({
        dir,
        flow,
        bytes: data.length,
        inAt: now,
        fate: fate === "queued" ? "in-flight" : fate,
      });
    }
    if (fate === "queued") {
      d.meta.set(id, { flow, logIndex });
      const due = d.link.nextArrival();
      if (due !== undefined && due < this.#wakeAt) this.#wake?.();
    }
    this.#writeStats(d);
  }

  #nextDue(): number {
    const a = this.#dirs.up.link.nextArrival() ?? Infinity;
    const b = this.#dirs.down.link.nextArrival() ?? Infinity;
    return Math.min(a, b);
  }

  /** Resolves when woken (an earlier datagram was queued, or close). */
  #wakeSignal(at: number): Promise<void> {
    this.#wakeAt = at;
    return new Promise<void>((resolve) => {
      this.#wake = () => {
        this.#wake = undefined;
        this.#wakeAt = Infinity;
        resolve();
      };
    });
  }

  async #scheduler(): Promise<void> {
    while (!this.#closed) {
      const due = this.#nextDue();
      if (due === Infinity) {
        await this.#wakeSignal(Infinity);
        continue;
      }
      const sleep = due - this.#now() - this.#spinMs;
      if (sleep > 0.05) {
        const woken = this.#wakeSignal(due);
        await Promise.race([this.#sleeper.sleepMs(sleep), woken]);
        this.#wake = undefined;
        this.#wakeAt = Infinity;
        continue; // the earliest due may have changed meanwhile
      }
      // Spin the last stretch, yielding so datagrams keep being received.
      while (!this.#closed && this.#now() < this.#nextDue()) await this.#sleeper.yieldNow();
      if (this.#closed) break;
      const now = this.#now();
      this.#release(this.#dirs.up, now);
      this.#release(this.#dirs.down, now);
      // Sends are performed by the event loop: let it run before anything else.
      await this.#sleeper.yieldNow();
    }
  }

  #release(d: DirectionState, now: number): void {
    const arrivals = d.link.receiveArrivals(now);
    if (arrivals.length === 0) return;
    for (const a of arrivals) this.#forward(d, a, now);
    for (const a of arrivals) d.meta.delete(a.tag);
    this.#writeStats(d);
  }

  #forward(d: DirectionState, a: LinkArrival, now: number): void {
    const meta = d.meta.get(a.tag)!;
    const flow = meta.flow;
    const dest = d.name === "up" ? this.#targets[flow] : this.#peers[flow];
    const sock = d.name === "up" ? this.#upstream[flow] : this.#listen[flow];
    const late = now - a.at;
    d.lateSum += late;
    d.lateCount++;
    if (late > d.lateMax) d.lateMax = late;
    let fate: PacketLogEntry["fate"] = "delivered";
    if (dest === undefined) {
      d.noPeer++;
      fate = "no-peer";
    } else {
      const fs = this.#flowStats[flow][d.name];
      fs[1]++;
      fs[2] += a.data.length;
      sock.send(a.data, { transport: "udp", ...dest }).catch(() => {
        d.sendErrors++;
      });
    }
    if (meta.logIndex < 0) return;
    const times = { departAt: a.departAt, dueAt: a.at, outAt: now };
    if (a.duplicate) {
      if (this.#log.length < this.#logLimit) {
        const o = this.#log[meta.logIndex];
        this.#log.push({ ...o, ...times, fate, duplicate: true });
      }
    } else {
      Object.assign(this.#log[meta.logIndex], times, { fate });
    }
  }

  #writeStats(d: DirectionState): void {
    const s = d.link.stats;
    const full: DirectionStats = {
      ...s,
      received: d.received,
      noPeer: d.noPeer,
      sendErrors: d.sendErrors,
      queuedBytes: d.link.queuedBytes,
      releaseLateMeanMs: d.lateCount > 0 ? d.lateSum / d.lateCount : 0,
      releaseLateMaxMs: d.lateMax,
    };
    const off = directionOffset(d.name);
    DIRECTION_FIELDS.forEach((k, i) => this.#stats[off + i] = full[k]);
    this.#flowStats.forEach((f, flow) => {
      const fo = flowOffset(flow, d.name);
      for (let i = 0; i < FLOW_FIELDS.length; i++) this.#stats[fo + i] = f[d.name][i];
    });
  }

  log(): PacketLogEntry[] {
    return this.#log;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    for (const s of [...this.#listen, ...this.#upstream]) {
      try {
        s.close();
      } catch {
        // already closed
      }
    }
    await Promise.allSettled(this.#loops);
    // Let the last sends leave before the worker is terminated.
    await this.#sleeper.yieldNow();
    await this.#sleeper.close();
  }
}

let engine: Engine | undefined;

self.onmessage = async (e: MessageEvent<ToWorker>) => {
  const m = e.data;
  try {
    switch (m.type) {
      case "start": {
        try {
          engine = new Engine(m);
        } catch (err) {
          const kind = err instanceof RangeError ? "InvalidConfig" : "BindFailed";
          post({ type: "error", kind, message: String((err as Error).message ?? err) });
          return;
        }
        engine.start();
        post({
          type: "started",
          flows: engine.addresses(),
          timer: engine.timer,
          realtime: engine.realtime,
          clockZeroEpochMs: engine.clockZeroEpochMs,
        });
        return;
      }
      case "log":
        post({ type: "log", id: m.id, entries: engine?.log() ?? [] });
        return;
      case "close":
        await engine?.close();
        post({ type: "closed" });
        return;
    }
  } catch (err) {
    post({ type: "error", kind: "WorkerFailed", message: String((err as Error)?.message ?? err) });
  }
};
