/**
 * A deterministic harness that runs video-like flows over the core/sim
 * `Link` bottleneck: each sender produces frames at its controller's target
 * (DELTA) or at a fixed bitrate (the Moonlight-style baseline) through a
 * {@linkcode Pacer}; each receiver sends FEEDBACK frames (the real RIFT
 * encoding) every feedback interval and echoes pings over the return link.
 * Everything runs in virtual time: the same configuration gives the same
 * result. Pure: trace text is parsed by the caller.
 *
 * @module
 */

import { decodeFrames, encodeFrames, type FeedbackFrame, type Frame } from "../frames.ts";
import { Link, type LossModel } from "../sim/link.ts";
import { Rng } from "../sim/rng.ts";
import { DeliveryTrace, TRACE_PACKET_BYTES } from "../sim/trace.ts";
import {
  type DeltaConfig,
  DeltaController,
  type DeltaState,
  type DeltaStats,
} from "./controller.ts";
import { Pacer } from "./pacer.ts";

/** Bottleneck capacity of one direction. */
export type Capacity =
  | { kind: "unlimited" }
  /** Piecewise constant, byte-accurate: `bps` from `atMs` on (first step at 0). */
  | { kind: "schedule"; steps: { atMs: number; bps: number }[] }
  /** Mahimahi delivery opportunities (one packet each). */
  | { kind: "trace"; trace: DeliveryTrace };

/** One direction of the path. */
export interface PathSpec {
  /** One-way propagation delay, ms. */
  delayMs: number;
  /** Uniform extra delay in [0, jitterMs), never reordering. */
  jitterMs?: number;
  /** Random loss at ingress. */
  loss?: LossModel;
  /** Bottleneck capacity. */
  capacity: Capacity;
  /** Drop-tail queue limit, bytes (default: 300 ms at the first or mean capacity, at least 16 packets). */
  queueBytes?: number;
}

/** One media flow. */
export interface FlowSpec {
  /** "delta": DELTA + pacer; "fixed": a constant bitrate, no congestion control. */
  kind: "delta" | "fixed";
  /** Which way the media goes (feedback goes the other way). */
  direction: "a->b" | "b->a";
  /** Start, ms (default 0). */
  startMs?: number;
  /** Bitrate of a fixed flow, bit/s. */
  fixedBitrateBps?: number;
  /** Controller overrides for a DELTA flow. */
  controller?: Partial<DeltaConfig>;
  /** A keyframe this often, ms (0 = only the first frame; default 0). */
  keyframeIntervalMs?: number;
  /** Keyframe size as a multiple of an average frame (default 4). */
  keyframeScale?: number;
}

/** Configuration of {@linkcode runHarness}. */
export interface HarnessConfig {
  /** Simulated time, ms. */
  durationMs: number;
  /** Path a→b. */
  forward: PathSpec;
  /** Path b→a. */
  backward: PathSpec;
  /** Media flows. */
  flows: FlowSpec[];
  /** Seed of every random choice (loss, jitter, frame sizes). */
  seed?: number;
  /** Receiver feedback interval, ms (default 20, the session's). */
  feedbackIntervalMs?: number;
  /** Media packet size, bytes (default 1200; every media packet is padded to it). */
  packetBytes?: number;
  /** Ping interval for RTT samples, ms (default 100). */
  pingIntervalMs?: number;
  /** Width of the result bins, ms (default 10). */
  binMs?: number;
  /** A DELTA sender skips a frame when its pacer holds more than this, ms (default 100). */
  maxPacerDelayMs?: number;
}

/** What happened to one flow. */
export interface FlowResult {
  /** The flow's spec. */
  spec: FlowSpec;
  /** Media bytes handed to the link per bin. */
  sentBytes: Float64Array;
  /** Media bytes delivered per bin. */
  deliveredBytes: Float64Array;
  /** Controller target (or fixed rate) at the end of each bin, bit/s. */
  targetBps: Float64Array;
  /** Frame rate in force at the end of each bin. */
  fps: Float64Array;
  /** FEC ratio in force at the end of each bin. */
  fecRatio: Float64Array;
  /** Controller state at the end of each bin. */
  state: DeltaState[];
  /** Arrival time (ms) of every delivered media packet. */
  arrivalMs: Float64Array;
  /** One-way delay (ms) of every delivered media packet (same order). */
  oneWayDelayMs: Float64Array;
  /** Frames produced, completed (all data or enough with FEC parity), and skipped at the sender. */
  frames: { produced: number; completed: number; skipped: number };
  /** Completion delay (ms) of each completed frame: last needed packet's arrival − capture. */
  frameDelayMs: Float64Array;
  /** Controller counters, for DELTA flows. */
  controllerStats?: DeltaStats;
}

/** Result of {@linkcode runHarness}. */
export interface HarnessResult {
  /** Bin width, ms. */
  binMs: number;
  /** Number of bins. */
  bins: number;
  /** Capacity a→b per bin, bit/s (Infinity when unlimited), for packets of `packetBytes`. */
  forwardCapacityBps: Float64Array;
  /** Capacity b→a per bin, bit/s. */
  backwardCapacityBps: Float64Array;
  /** Propagation delay a→b and b→a, ms. */
  delayMs: { forward: number; backward: number };
  /** Per flow. */
  flows: FlowResult[];
  /** Link counters. */
  linkStats: { forward: Link["stats"]; backward: Link["stats"] };
}

const T_MEDIA = 1, T_FEEDBACK = 2, T_PING = 3, T_PONG = 4;
/** The receiver's clock is this far ahead of the sender's (the controller must not care). */
const RECEIVER_CLOCK_OFFSET_US = 7_654_321;
const MAX_ENTRIES_PER_FRAME = 32;
const MAX_FEEDBACK_DATAGRAM = 1100;

/** Capacity per bin in bit/s for packets of `packetBytes` (one per opportunity). */
function capacityBins(
  trace: DeliveryTrace | undefined,
  bins: number,
  binMs: number,
  packetBytes: number,
): Float64Array {
  const out = new Float64Array(bins);
  for (let i = 0; i < bins; i++) {
    if (trace === undefined) {
      out[i] = Infinity;
      continue;
    }
    const a = trace.opportunityIndexAfter(i * binMs);
    const b = trace.opportunityIndexAfter((i + 1) * binMs);
    const perOpp = Math.min(packetBytes, TRACE_PACKET_BYTES);
    out[i] = ((b - a) * perOpp * 8 * 1000) / binMs;
  }
  return out;
}

function growable(): { push(x: number): void; done(): Float64Array } {
  let buf = new Float64Array(1024);
  let n = 0;
  return {
    push(x: number) {
      if (n === buf.length) {
        const b = new Float64Array(buf.length * 2);
        b.set(buf);
        buf = b;
      }
      buf[n++] = x;
    },
    done: () => buf.slice(0, n),
  };
}

/**
 * A byte-accurate bottleneck whose rate follows a piecewise-constant
 * schedule: a drop-tail queue in bytes, serialization at the rate in force
 * (integrated across steps), then the core/sim `Link` for propagation delay,
 * jitter and random loss. (A trace-driven `Link` gives every packet a whole
 * 1500-byte slot, which would make small feedback packets cost as much as
 * media; a real rate limiter does not.)
 */
class SchedulePath {
  readonly #steps: { atMs: number; bps: number }[];
  readonly #limit: number;
  readonly #link: Link;
  #queue: { depart: number; d: Uint8Array }[] = [];
  #head = 0;
  #queued = 0;
  #busyUntil = 0;
  droppedQueue = 0;

  constructor(steps: { atMs: number; bps: number }[], queueBytes: number, link: Link) {
    if (steps.length === 0 || steps[0].atMs !== 0) {
      throw new RangeError("schedule: the first step must be at 0 ms");
    }
    for (const x of steps) {
      if (!(x.bps > 0 && Number.isFinite(x.bps))) throw new RangeError("schedule: bad rate");
    }
    this.#steps = steps;
    this.#limit = queueBytes;
    this.#link = link;
  }

  /** Capacity at `t` ms, bit/s. */
  rateAt(t: number): number {
    let r = this.#steps[0].bps;
    for (const x of this.#steps) if (x.atMs <= t) r = x.bps;
    return r;
  }

  /** When `bytes` starting at `start` finish serializing, ms. */
  #finish(start: number, bytes: number): number {
    let t = start, bits = bytes * 8;
    for (;;) {
      const rate = this.rateAt(t);
      const nextStep = this.#steps.find((x) => x.atMs > t)?.atMs ?? Infinity;
      const done = t + (bits * 1000) / rate;
      if (done <= nextStep) return done;
      bits -= ((nextStep - t) * rate) / 1000;
      t = nextStep;
    }
  }

  #advance(now: number): void {
    while (this.#head < this.#queue.length && this.#queue[this.#head].depart <= now) {
      const x = this.#queue[this.#head++];
      this.#queued -= x.d.length;
      this.#link.send(x.d, x.depart);
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  send(d: Uint8Array, now: number): void {
    this.#advance(now);
    if (this.#queued + d.length > this.#limit) {
      this.droppedQueue++;
      return;
    }
    const depart = this.#finish(Math.max(now, this.#busyUntil), d.length);
    this.#busyUntil = depart;
    this.#queue.push({ depart, d: d.slice() });
    this.#queued += d.length;
  }

  receive(now: number): Uint8Array[] {
    this.#advance(now);
    return this.#link.receive(now);
  }

  nextEvent(): number | undefined {
    const q = this.#queue[this.#head]?.depart;
    const l = this.#link.nextArrival();
    if (q === undefined) return l;
    return l === undefined ? q : Math.min(q, l);
  }

  get stats(): Link["stats"] {
    return { ...this.#link.stats, droppedQueue: this.#link.stats.droppedQueue + this.droppedQueue };
  }
}

/** A plain core/sim Link (unlimited or trace-driven) behind the same interface. */
class LinkPath {
  constructor(readonly link: Link) {}
  send(d: Uint8Array, now: number): void {
    this.link.send(d, now);
  }
  receive(now: number): Uint8Array[] {
    return this.link.receive(now);
  }
  nextEvent(): number | undefined {
    return this.link.nextArrival();
  }
  get stats(): Link["stats"] {
    return this.link.stats;
  }
}

type Path = SchedulePath | LinkPath;

interface FrameTrack {
  captureMs: number;
  need: number;
  got: number;
  done: boolean;
}

class Flow {
  readonly id: number;
  readonly spec: FlowSpec;
  readonly cc: DeltaController | undefined;
  readonly pacer: Pacer;
  readonly rng: Rng;
  nextFrameMs: number;
  nextPingMs: number;
  nextFeedbackMs: number;
  pn = 0;
  frameId = 0;
  lastKeyMs = -Infinity;
  /** Fractional packets owed to the next frame. */
  carry = 0;
  // receiver side
  arrivals: { packetNumber: number; receiveTimeUs: number }[] = [];
  largestReceived = -1;
  receivedCount = 0;
  frames = new Map<number, FrameTrack>();
  // results
  sent: Float64Array;
  delivered: Float64Array;
  target: Float64Array;
  fps: Float64Array;
  fec: Float64Array;
  state: DeltaState[];
  arrivalMs = growable();
  owdMs = growable();
  frameDelay = growable();
  produced = 0;
  completed = 0;
  skipped = 0;

  constructor(id: number, spec: FlowSpec, bins: number, cfg: Required<HarnessConfig>, rng: Rng) {
    this.id = id;
    this.spec = spec;
    this.rng = rng;
    const start = spec.startMs ?? 0;
    this.nextFrameMs = start;
    this.nextPingMs = spec.kind === "delta" ? start : Infinity;
    this.nextFeedbackMs = start + cfg.feedbackIntervalMs;
    if (spec.kind === "delta") {
      this.cc = new DeltaController({
        packetBytes: cfg.packetBytes,
        feedbackIntervalUs: cfg.feedbackIntervalMs * 1000,
        ...spec.controller,
      });
      this.pacer = new Pacer({ rateBps: this.cc.pacingRateBps });
    } else {
      const rate = spec.fixedBitrateBps;
      if (!(rate !== undefined && rate > 0)) {
        throw new RangeError("fixed flow needs fixedBitrateBps");
      }
      this.pacer = new Pacer({ rateBps: rate * 1.5 });
    }
    this.sent = new Float64Array(bins);
    this.delivered = new Float64Array(bins);
    this.target = new Float64Array(bins);
    this.fps = new Float64Array(bins);
    this.fec = new Float64Array(bins);
    this.state = new Array(bins).fill("stable");
  }

  get targetBps(): number {
    return this.cc?.targetBitrateBps ?? this.spec.fixedBitrateBps!;
  }
  get currentFps(): number {
    return this.cc?.fps ?? 60;
  }
}

function header(type: number, flow: number, size: number): Uint8Array {
  const d = new Uint8Array(size);
  d[0] = type;
  d[1] = flow;
  return d;
}

/**
 * Runs the flows over the two paths for `durationMs` of virtual time and
 * returns per-bin series and per-packet delays.
 */
export function runHarness(config: HarnessConfig): HarnessResult {
  const cfg: Required<HarnessConfig> = {
    seed: 1,
    feedbackIntervalMs: 20,
    packetBytes: 1200,
    pingIntervalMs: 100,
    binMs: 10,
    maxPacerDelayMs: 100,
    ...config,
  };
  const rng = new Rng(cfg.seed);
  const bins = Math.ceil(cfg.durationMs / cfg.binMs);
  const makePath = (p: PathSpec): [Path, Float64Array] => {
    const base = {
      delayMs: p.delayMs,
      jitterMs: p.jitterMs ?? 0,
      reorder: false,
      duplicateProbability: 0,
      loss: p.loss ?? { kind: "none" as const },
    };
    const caps = new Float64Array(bins);
    if (p.capacity.kind === "schedule") {
      const steps = p.capacity.steps;
      const path = new SchedulePath(
        steps,
        p.queueBytes ?? Math.max(16 * 1500, (steps[0].bps * 0.3) / 8),
        new Link(base, rng.fork()),
      );
      // Exact mean capacity over each bin.
      for (let i = 0; i < bins; i++) {
        const t0 = i * cfg.binMs, t1 = t0 + cfg.binMs;
        let bits = 0;
        for (let j = 0; j < steps.length; j++) {
          const a = Math.max(t0, steps[j].atMs);
          const b = Math.min(t1, j + 1 < steps.length ? steps[j + 1].atMs : Infinity);
          if (b > a) bits += ((b - a) * steps[j].bps) / 1000;
        }
        caps[i] = (bits * 1000) / cfg.binMs;
      }
      return [path, caps];
    }
    const trace = p.capacity.kind === "trace" ? p.capacity.trace : undefined;
    const link = new Link({
      ...base,
      trace,
      queueBytes: p.queueBytes ??
        (trace !== undefined ? Math.max(16 * 1500, (trace.meanCapacityBps * 0.3) / 8) : undefined),
    }, rng.fork());
    return [new LinkPath(link), capacityBins(trace, bins, cfg.binMs, cfg.packetBytes)];
  };
  const [ab, abCaps] = makePath(cfg.forward);
  const [ba, baCaps] = makePath(cfg.backward);
  const flows = cfg.flows.map((s, i) => new Flow(i, s, bins, cfg, rng.fork()));
  const binOf = (t: number) => Math.min(bins - 1, Math.max(0, Math.floor(t / cfg.binMs)));
  const linkTo = (dir: "a->b" | "b->a", reverse: boolean) => (dir === "a->b") !== reverse ? ab : ba;

  const produceFrame = (f: Flow, now: number) => {
    const fps = f.currentFps;
    f.nextFrameMs = now + 1000 / fps;
    if (f.cc !== undefined && f.pacer.queueDelayUs(now * 1000) > cfg.maxPacerDelayMs * 1000) {
      f.skipped++;
      return;
    }
    // Whole packets per frame that keep the total (media + parity) at the target on
    // average: the fraction carries over, and a keyframe borrows from later frames.
    let n = (f.targetBps / 8 / fps / cfg.packetBytes) * (0.9 + 0.2 * f.rng.next());
    const keyEvery = f.spec.keyframeIntervalMs ?? 0;
    if (f.frameId === 0 || (keyEvery > 0 && now - f.lastKeyMs >= keyEvery)) {
      n *= f.spec.keyframeScale ?? 4;
      f.lastKeyMs = now;
    }
    f.carry += n;
    const total = Math.floor(f.carry);
    if (total < 1) {
      f.skipped++;
      return;
    }
    // The window gate: a stalled link stops the reports, and the encoder skips frames
    // (they would only queue) until the reports catch up.
    if (
      f.cc !== undefined && !f.cc.canSend(f.pacer.queuedBytes + total * cfg.packetBytes)
    ) {
      f.skipped++;
      f.carry = Math.min(f.carry, 1);
      return;
    }
    f.carry -= total;
    const fec = f.cc?.fecRatio ?? 0;
    const m = Math.min(total - 1, Math.round((total * fec) / (1 + fec)));
    const k = total - m;
    const id = f.frameId++;
    f.produced++;
    for (let i = 0; i < k + m; i++) {
      const d = header(T_MEDIA, f.id, cfg.packetBytes);
      const v = new DataView(d.buffer);
      v.setUint32(10, id);
      v.setUint16(14, k);
      v.setFloat64(16, now);
      f.pacer.enqueue(d, now * 1000);
    }
  };

  const sendPing = (f: Flow, now: number) => {
    f.nextPingMs = now + cfg.pingIntervalMs;
    const d = header(T_PING, f.id, 16);
    new DataView(d.buffer).setFloat64(2, now);
    f.pacer.enqueue(d, now * 1000, true);
  };

  const sendFeedback = (f: Flow, now: number) => {
    f.nextFeedbackMs = now + cfg.feedbackIntervalMs;
    if (f.arrivals.length === 0) return;
    const arrivals = f.arrivals.sort((x, y) => x.packetNumber - y.packetNumber);
    f.arrivals = [];
    const lostTotal = Math.max(0, f.largestReceived + 1 - f.receivedCount);
    const frames: Frame[] = [];
    for (let i = 0; i < arrivals.length; i += MAX_ENTRIES_PER_FRAME) {
      const chunk = arrivals.slice(i, i + MAX_ENTRIES_PER_FRAME);
      const basePacketNumber = chunk[0].packetNumber;
      let baseReceiveTimeUs = chunk[0].receiveTimeUs;
      for (const a of chunk) baseReceiveTimeUs = Math.min(baseReceiveTimeUs, a.receiveTimeUs);
      const fb: FeedbackFrame = {
        type: "feedback",
        lostTotal,
        basePacketNumber,
        baseReceiveTimeUs,
        entries: chunk.map((a) => ({
          packetNumberDelta: a.packetNumber - basePacketNumber,
          receiveTimeDeltaUs: a.receiveTimeUs - baseReceiveTimeUs,
        })),
      };
      frames.push(fb);
    }
    const link = linkTo(f.spec.direction, true);
    let batch: Frame[] = [];
    let size = 2;
    const flush = () => {
      if (batch.length === 0) return;
      const body = encodeFrames(batch);
      const d = header(T_FEEDBACK, f.id, 2 + body.length);
      d.set(body, 2);
      link.send(d, now);
      batch = [];
      size = 2;
    };
    for (const fr of frames) {
      const len = 23 + 6 * (fr as FeedbackFrame).entries.length;
      if (size + len > MAX_FEEDBACK_DATAGRAM) flush();
      batch.push(fr);
      size += len;
    }
    flush();
  };

  const receive = (d: Uint8Array, now: number) => {
    const f = flows[d[1]];
    const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
    switch (d[0]) {
      case T_MEDIA: {
        const pn = v.getFloat64(2);
        const id = v.getUint32(10), k = v.getUint16(14), capture = v.getFloat64(16);
        const sentAt = v.getFloat64(24);
        f.arrivals.push({
          packetNumber: pn,
          receiveTimeUs: Math.round(now * 1000) + RECEIVER_CLOCK_OFFSET_US,
        });
        if (pn > f.largestReceived) f.largestReceived = pn;
        f.receivedCount++;
        f.delivered[binOf(now)] += d.length;
        f.arrivalMs.push(now);
        f.owdMs.push(now - sentAt);
        let tr = f.frames.get(id);
        if (tr === undefined) {
          tr = { captureMs: capture, need: k, got: 0, done: false };
          f.frames.set(id, tr);
          // Forget frames far in the past.
          if (f.frames.size > 600) f.frames.delete(f.frames.keys().next().value as number);
        }
        tr.got++;
        if (!tr.done && tr.got >= tr.need) {
          tr.done = true;
          f.completed++;
          f.frameDelay.push(now - tr.captureMs);
        }
        break;
      }
      case T_PING: {
        const back = header(T_PONG, f.id, 16);
        back.set(d.subarray(2, 10), 2);
        linkTo(f.spec.direction, true).send(back, now);
        break;
      }
      case T_PONG: {
        f.cc?.onRttSample((now - v.getFloat64(2)) * 1000);
        break;
      }
      case T_FEEDBACK: {
        const r = decodeFrames(d.subarray(2));
        if (!r.ok || f.cc === undefined) break;
        const entries: { packetNumber: number; receiveTimeUs: number }[] = [];
        for (const fr of r.value) {
          if (fr.type !== "feedback") continue;
          for (const e of fr.entries) {
            entries.push({
              packetNumber: fr.basePacketNumber + e.packetNumberDelta,
              receiveTimeUs: fr.baseReceiveTimeUs + e.receiveTimeDeltaUs,
            });
          }
        }
        f.cc.onFeedback(entries, Math.round(now * 1000));
        f.pacer.setRate(f.cc.pacingRateBps, Math.round(now * 1000));
        break;
      }
    }
  };

  const drainPacer = (f: Flow, now: number) => {
    const us = Math.round(now * 1000);
    for (let d; (d = f.pacer.pollTransmit(us)) !== undefined;) {
      if (d[0] === T_MEDIA) {
        const v = new DataView(d.buffer);
        const pn = f.pn++;
        v.setFloat64(2, pn);
        v.setFloat64(24, now);
        f.cc?.onPacketSent(pn, d.length, us);
        f.sent[binOf(now)] += d.length;
      }
      linkTo(f.spec.direction, false).send(d, now);
    }
  };

  let now = 0;
  let nextBin = 0;
  const recordBins = (upTo: number) => {
    while (nextBin < bins && (nextBin + 1) * cfg.binMs <= upTo) {
      for (const f of flows) {
        f.target[nextBin] = f.targetBps;
        f.fps[nextBin] = f.currentFps;
        f.fec[nextBin] = f.cc?.fecRatio ?? 0;
        f.state[nextBin] = f.cc?.state ?? "stable";
      }
      nextBin++;
    }
  };
  for (let guard = 0;; guard++) {
    if (guard > 50_000_000) throw new Error("runHarness: too many events");
    // Next event time.
    let next = cfg.durationMs;
    for (const l of [ab, ba]) {
      const t = l.nextEvent();
      if (t !== undefined) next = Math.min(next, t);
    }
    for (const f of flows) {
      next = Math.min(next, f.nextFrameMs, f.nextPingMs, f.nextFeedbackMs);
      const p = f.pacer.pollTimeout();
      if (p !== undefined) next = Math.min(next, p / 1000);
      const c = f.cc?.pollTimeout();
      if (c !== undefined) next = Math.min(next, c / 1000);
    }
    now = Math.max(now, next);
    recordBins(now);
    if (now >= cfg.durationMs) break;
    for (const d of ab.receive(now)) receive(d, now);
    for (const d of ba.receive(now)) receive(d, now);
    for (const f of flows) {
      const start = f.spec.startMs ?? 0;
      if (now < start) {
        // Not started: keep its timers at the start.
        continue;
      }
      if (now >= f.nextFeedbackMs) sendFeedback(f, now);
      if (now >= f.nextPingMs && f.cc !== undefined) sendPing(f, now);
      if (now >= f.nextFrameMs) produceFrame(f, now);
      const c = f.cc?.pollTimeout();
      if (c !== undefined && now * 1000 >= c - 1) {
        f.cc!.onTick(Math.ceil(now * 1000));
        f.pacer.setRate(f.cc!.pacingRateBps, Math.round(now * 1000));
      }
      drainPacer(f, now);
    }
  }
  recordBins(cfg.durationMs + cfg.binMs);
  return {
    binMs: cfg.binMs,
    bins,
    forwardCapacityBps: abCaps,
    backwardCapacityBps: baCaps,
    delayMs: { forward: cfg.forward.delayMs, backward: cfg.backward.delayMs },
    flows: flows.map((f) => ({
      spec: f.spec,
      sentBytes: f.sent,
      deliveredBytes: f.delivered,
      targetBps: f.target,
      fps: f.fps,
      fecRatio: f.fec,
      state: f.state,
      arrivalMs: f.arrivalMs.done(),
      oneWayDelayMs: f.owdMs.done(),
      frames: { produced: f.produced, completed: f.completed, skipped: f.skipped },
      frameDelayMs: f.frameDelay.done(),
      controllerStats: f.cc?.stats,
    })),
    linkStats: { forward: ab.stats, backward: ba.stats },
  };
}

// --- Analysis ---------------------------------------------------------------

/** p-quantile (0..1) of `xs` (nearest rank); NaN when empty. */
export function quantile(xs: ArrayLike<number>, p: number): number {
  if (xs.length === 0) return NaN;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
}

/**
 * Queuing delay of every delivered packet of a flow between `fromMs` and
 * `toMs` (arrival time): one-way delay minus the flow's smallest one-way
 * delay over the whole run (its base: propagation plus one packet's
 * service).
 */
export function queuingDelays(flow: FlowResult, fromMs = 0, toMs = Infinity): Float64Array {
  let base = Infinity;
  for (const d of flow.oneWayDelayMs) base = Math.min(base, d);
  const out: number[] = [];
  for (let i = 0; i < flow.arrivalMs.length; i++) {
    const t = flow.arrivalMs[i];
    if (t >= fromMs && t < toMs) out.push(flow.oneWayDelayMs[i] - base);
  }
  return Float64Array.from(out);
}

/** Delivered bytes of the given flows over capacity, between two times (ms). */
export function utilisation(
  r: HarnessResult,
  flows: FlowResult[],
  fromMs: number,
  toMs: number,
  direction: "forward" | "backward" = "forward",
): number {
  const cap = direction === "forward" ? r.forwardCapacityBps : r.backwardCapacityBps;
  let used = 0, avail = 0;
  const a = Math.floor(fromMs / r.binMs), b = Math.min(r.bins, Math.ceil(toMs / r.binMs));
  for (let i = a; i < b; i++) {
    avail += (cap[i] * r.binMs) / 8000;
    for (const f of flows) used += f.deliveredBytes[i];
  }
  return avail > 0 ? used / avail : 0;
}

/** Mean of a series over bins [fromMs, toMs). */
export function binMean(r: HarnessResult, series: Float64Array, fromMs: number, toMs: number) {
  const a = Math.floor(fromMs / r.binMs), b = Math.min(r.bins, Math.ceil(toMs / r.binMs));
  let s = 0;
  for (let i = a; i < b; i++) s += series[i];
  return b > a ? s / (b - a) : NaN;
}

/**
 * After a capacity drop at `atMs` to `capacityBps`: how long (ms) until the
 * sender's target first falls below the capacity, and until its actual send
 * rate over a `windowMs` window (ending at a bin edge) first does. Infinity
 * if never within `horizonMs`.
 */
export function backoffTimes(
  r: HarnessResult,
  flow: FlowResult,
  atMs: number,
  capacityBps: number,
  windowMs = 50,
  horizonMs = 3000,
): { targetMs: number; sendRateMs: number } {
  const a = Math.floor(atMs / r.binMs);
  const end = Math.min(r.bins, Math.floor((atMs + horizonMs) / r.binMs));
  let targetMs = Infinity, sendRateMs = Infinity;
  for (let i = a; i < end; i++) {
    if (flow.targetBps[i] < capacityBps) {
      targetMs = (i + 1) * r.binMs - atMs;
      break;
    }
  }
  const w = Math.max(1, Math.round(windowMs / r.binMs));
  for (let i = a; i < end; i++) {
    let bytes = 0;
    for (let j = Math.max(0, i - w + 1); j <= i; j++) bytes += flow.sentBytes[j];
    if ((bytes * 8000) / (w * r.binMs) < capacityBps) {
      sendRateMs = (i + 1) * r.binMs - atMs;
      break;
    }
  }
  return { targetMs, sendRateMs };
}

/**
 * After a capacity drop at `atMs`: the time (ms) from the drop until the
 * first packet, arriving after the queuing-delay peak (within `horizonMs`),
 * whose queuing delay is under `limitMs`; 0 if the delay never exceeded it.
 */
export function delayRecoveryMs(
  flow: FlowResult,
  atMs: number,
  limitMs: number,
  horizonMs = 2000,
): number {
  let base = Infinity;
  for (const d of flow.oneWayDelayMs) base = Math.min(base, d);
  let peak = -1, peakQ = -Infinity;
  for (let i = 0; i < flow.arrivalMs.length; i++) {
    const t = flow.arrivalMs[i];
    if (t < atMs || t > atMs + horizonMs) continue;
    const q = flow.oneWayDelayMs[i] - base;
    if (q > peakQ) {
      peakQ = q;
      peak = i;
    }
  }
  if (peak < 0 || peakQ <= limitMs) return 0;
  for (let i = peak; i < flow.arrivalMs.length; i++) {
    if (flow.oneWayDelayMs[i] - base < limitMs) return flow.arrivalMs[i] - atMs;
  }
  return Infinity;
}
