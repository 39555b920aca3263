/**
 * Calibration of the link emulator over real loopback sockets: a paced probe
 * sender, a receiver, and the scenarios whose measured/configured ratios the
 * calibration test asserts and bench/linkemu.ts prints.
 *
 * Every probe datagram carries its sequence number and its send time on this
 * thread's clock; the receiver (same thread) stamps arrivals, so one-way
 * delays need no clock synchronisation.
 *
 * @module
 */

import { gilbertElliott } from "../../core/sim/link.ts";
import { DeliveryTrace, parseMahimahiTrace, TRACE_PACKET_BYTES } from "../../core/sim/trace.ts";
import { startLinkEmulator } from "./emulator.ts";
import { openPreciseSleeper } from "./precise_sleep.ts";
import type {
  HostPort,
  LinkConfig,
  LinkEmulator,
  LinkEmulatorOptions,
  PacketLogEntry,
} from "./types.ts";

/** One received probe datagram. */
export interface Arrival {
  seq: number;
  /** Flow index the probe belonged to. */
  flow: number;
  bytes: number;
  sentAt: number;
  recvAt: number;
}

/** What a probe run saw. */
export interface ProbeResult {
  /** Datagrams sent per flow. */
  sent: number[];
  /** Arrivals in receive order. */
  arrivals: Arrival[];
  /** Achieved send rate per flow (bit/s, over the send span). */
  sendRateBps: number[];
}

/** One paced flow of a probe. */
export interface ProbeFlow {
  /** Where to send. */
  to: HostPort;
  /** Payload bit rate. */
  rateBps: number;
  /** Datagram size (>= 16). */
  packetBytes: number;
  /** Address the sending socket binds to (default 127.0.0.1). */
  bindHostname?: string;
}

/**
 * Sends paced datagrams on each flow for `durationMs`, receiving on
 * `receivers` (flow i's packets arrive at `receivers[i]`), then waits
 * `drainMs` for stragglers. Closes the receivers.
 */
export async function runProbe(
  flows: ProbeFlow[],
  receivers: Deno.DatagramConn[],
  durationMs: number,
  drainMs: number,
): Promise<ProbeResult> {
  const sleeper = openPreciseSleeper();
  const arrivals: Arrival[] = [];
  const recvLoops = receivers.map(async (r) => {
    const buf = new Uint8Array(65536);
    for (;;) {
      let got;
      try {
        got = await r.receive(buf);
      } catch {
        return; // closed
      }
      const recvAt = performance.now();
      const v = new DataView(got[0].buffer, got[0].byteOffset, got[0].byteLength);
      if (got[0].length < 16) continue;
      arrivals.push({
        seq: v.getUint32(0),
        flow: v.getUint32(12),
        bytes: got[0].length,
        sentAt: v.getFloat64(4),
        recvAt,
      });
    }
  });
  const sent = flows.map(() => 0);
  const sendRateBps = flows.map(() => 0);
  const senders = flows.map((f) =>
    Deno.listenDatagram({ transport: "udp", hostname: f.bindHostname ?? "127.0.0.1", port: 0 })
  );
  try {
    const t0 = performance.now() + 5;
    const intervals = flows.map((f) => (f.packetBytes * 8 * 1000) / f.rateBps);
    const next = flows.map(() => t0);
    const end = t0 + durationMs;
    const firstSend = flows.map(() => NaN);
    const lastSend = flows.map(() => NaN);
    for (;;) {
      let k = 0;
      for (let i = 1; i < flows.length; i++) if (next[i] < next[k]) k = i;
      if (next[k] >= end) break;
      const wait = next[k] - performance.now();
      if (wait > 0) await sleeper.sleepMs(wait);
      const f = flows[k];
      const d = new Uint8Array(f.packetBytes);
      const v = new DataView(d.buffer);
      v.setUint32(0, sent[k]);
      v.setUint32(12, k);
      const now = performance.now();
      v.setFloat64(4, now);
      if (sent[k] === 0) firstSend[k] = now;
      lastSend[k] = now;
      await senders[k].send(d, { transport: "udp", ...f.to });
      sent[k]++;
      next[k] += intervals[k];
    }
    flows.forEach((f, i) => {
      sendRateBps[i] = sent[i] > 1
        ? ((sent[i] - 1) * f.packetBytes * 8 * 1000) / (lastSend[i] - firstSend[i])
        : 0;
    });
    await sleeper.sleepMs(drainMs);
  } finally {
    for (const s of [...senders, ...receivers]) s.close();
    await Promise.all(recvLoops);
    await sleeper.close();
  }
  return { sent, arrivals, sendRateBps };
}

/** The q-quantile (0..1) of `xs` (nearest rank; NaN when empty). */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

/** Mean (NaN when empty). */
export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Receive rate of `arrivals` in bit/s: bytes after the first over the first-to-last span. */
export function receiveRateBps(arrivals: readonly Arrival[]): number {
  if (arrivals.length < 2) return 0;
  let bytes = 0;
  for (let i = 1; i < arrivals.length; i++) bytes += arrivals[i].bytes;
  return (bytes * 8 * 1000) / (arrivals[arrivals.length - 1].recvAt - arrivals[0].recvAt);
}

/**
 * Receive rate over the saturated stretches only, in bit/s, and the fraction
 * of the first-to-last span they cover.
 *
 * A pair of consecutive arrivals counts when the later datagram reached the
 * emulator before the earlier one had left the bottleneck (from the packet
 * log), so the link was busy all the time between them. This leaves out the
 * moments the queue ran dry because the sender, or the emulator's socket
 * reads, were held up by the machine: on a shared 2-core VM a real-time
 * thread can still be throttled for tens of ms, and capacity nobody offered
 * is not the rate limit's to deliver. Needs a FIFO link (no jitter) and the
 * log of every datagram of the probe (one log per flow in send order).
 */
export function saturatedRate(
  arrivals: readonly Arrival[],
  log: readonly PacketLogEntry[],
): { bps: number; busyFraction: number } {
  const entries: PacketLogEntry[][] = [];
  for (const e of log) {
    if (e.dir !== "up" || e.duplicate) continue;
    (entries[e.flow] ??= []).push(e);
  }
  let bytes = 0, busy = 0;
  for (let i = 1; i < arrivals.length; i++) {
    const a = arrivals[i], p = arrivals[i - 1];
    const ea = entries[a.flow]?.[a.seq], ep = entries[p.flow]?.[p.seq];
    if (!ea || !ep || ep.departAt === undefined) continue;
    if (ea.inAt <= ep.departAt) {
      bytes += a.bytes;
      busy += a.recvAt - p.recvAt;
    }
  }
  const span = arrivals.length > 1 ? arrivals[arrivals.length - 1].recvAt - arrivals[0].recvAt : 0;
  return {
    bps: busy > 0 ? (bytes * 8 * 1000) / busy : 0,
    busyFraction: span > 0 ? busy / span : 0,
  };
}

/** Loss statistics of one flow from the sequence numbers that arrived. */
export function lossStats(
  sent: number,
  arrivals: readonly Arrival[],
): { lossRate: number; bursts: number; meanBurst: number } {
  const got = new Uint8Array(sent);
  for (const a of arrivals) if (a.seq < sent) got[a.seq] = 1;
  let lost = 0, bursts = 0, run = 0;
  for (let i = 0; i < sent; i++) {
    if (got[i]) {
      if (run > 0) bursts++;
      run = 0;
    } else {
      lost++;
      run++;
    }
  }
  if (run > 0) bursts++;
  return { lossRate: lost / sent, bursts, meanBurst: bursts > 0 ? lost / bursts : 0 };
}

/** Datagrams that arrived after one with a higher sequence number. */
export function reorderCount(arrivals: readonly Arrival[]): number {
  let max = -1, n = 0;
  for (const a of arrivals) {
    if (a.seq < max) n++;
    else max = a.seq;
  }
  return n;
}

/** Release lateness (actual − scheduled) of delivered datagrams in a packet log, ms. */
export function releaseLateness(log: readonly PacketLogEntry[]): number[] {
  return log.filter((e) => e.fate === "delivered").map((e) => e.outAt! - e.dueAt!);
}

function receiver(): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
}

function addr(s: Deno.DatagramConn): HostPort {
  const a = s.addr as Deno.NetAddr;
  return { hostname: a.hostname, port: a.port };
}

/** Runs one probe through a fresh emulator (one listen port per probe flow). */
export async function throughEmulator(
  up: Partial<LinkConfig>,
  flows: { rateBps: number; packetBytes: number }[],
  durationMs: number,
  drainMs: number,
  seed = 7,
  more: Pick<LinkEmulatorOptions, "spinMs" | "realtimePriority"> = {},
): Promise<{ probe: ProbeResult; log: PacketLogEntry[]; emu: LinkEmulator }> {
  const rx = flows.map(receiver);
  let emu: LinkEmulator | undefined;
  try {
    emu = await startLinkEmulator({
      target: addr(rx[0]),
      extraFlows: rx.slice(1).map((r) => ({ target: addr(r) })),
      up,
      down: {},
      seed,
      log: true,
      ...more,
    });
    const e = emu;
    const probe = await runProbe(
      flows.map((f, i) => ({ ...f, to: e.flows[i].listenAddr })),
      rx,
      durationMs,
      drainMs,
    );
    const log = await emu.packetLog();
    return { probe, log, emu };
  } finally {
    for (const r of rx) {
      try {
        r.close();
      } catch {
        // runProbe closed it
      }
    }
    await emu?.close();
  }
}

/** Calibration figures, each as measured and configured. */
export interface DelayCalibration {
  configuredMs: number;
  owdP50Ms: number;
  owdP99Ms: number;
  /** p99 − p50 of the one-way delay through the emulator. */
  jitterP99Ms: number;
  /** `jitterP99Ms` minus the same on the direct path: the emulator's share. */
  addedJitterP99Ms: number;
  /** Same on the direct path (no emulator), measured in the same run. */
  baselineJitterP99Ms: number;
  baselineOwdP50Ms: number;
  /** Emulator-internal release lateness p50/p99/max (from its packet log). */
  lateP50Ms: number;
  lateP99Ms: number;
  lateMaxMs: number;
  packets: number;
  realtime: boolean;
  timer: string;
}

/** Fixed delay, no other effect: 1000 datagrams at 1000/s, and the same on the direct path. */
export async function calibrateDelay(delayMs = 20): Promise<DelayCalibration> {
  const flow = { rateBps: 200 * 8 * 1000, packetBytes: 200 };
  const rx = receiver();
  const base = await runProbe([{ ...flow, to: addr(rx) }], [rx], 1000, 100);
  const owdB = base.arrivals.map((a) => a.recvAt - a.sentAt);
  const { probe, log, emu } = await throughEmulator({ delayMs }, [flow], 1000, delayMs + 100);
  const owd = probe.arrivals.map((a) => a.recvAt - a.sentAt);
  const late = releaseLateness(log);
  return {
    configuredMs: delayMs,
    owdP50Ms: quantile(owd, 0.5),
    owdP99Ms: quantile(owd, 0.99),
    jitterP99Ms: quantile(owd, 0.99) - quantile(owd, 0.5),
    addedJitterP99Ms: quantile(owd, 0.99) - quantile(owd, 0.5) -
      (quantile(owdB, 0.99) - quantile(owdB, 0.5)),
    baselineJitterP99Ms: quantile(owdB, 0.99) - quantile(owdB, 0.5),
    baselineOwdP50Ms: quantile(owdB, 0.5),
    lateP50Ms: quantile(late, 0.5),
    lateP99Ms: quantile(late, 0.99),
    lateMaxMs: quantile(late, 1),
    packets: owd.length,
    realtime: emu.realtime,
    timer: emu.timer,
  };
}

/** Saturated rate limit: 1.2× the cap for `durationMs`, 1200-byte datagrams, `queueMs` queue. */
export async function calibrateRate(
  rateBps = 10e6,
  queueMs = 50,
  delayMs = 10,
  durationMs = 3000,
): Promise<{
  configuredBps: number;
  /** Over the saturated stretches (see `saturatedRate`). */
  deliveredBps: number;
  /** Over the whole first-to-last span, idle moments included. */
  deliveredSpanBps: number;
  busyFraction: number;
  sendBps: number;
  droppedQueue: number;
  maxQueueDelayMs: number;
  /** One-way delay minus the configured delay: p99 and max. */
  extraOwdP99Ms: number;
  maxExtraOwdMs: number;
}> {
  const { probe, emu, log } = await throughEmulator(
    { delayMs, rateBps, queueMs },
    [{ rateBps: rateBps * 1.2, packetBytes: 1200 }],
    durationMs,
    delayMs + queueMs + 200,
  );
  const s = emu.stats().up;
  const sat = saturatedRate(probe.arrivals, log);
  const owd = probe.arrivals.map((a) => a.recvAt - a.sentAt - delayMs);
  return {
    configuredBps: rateBps,
    deliveredBps: sat.bps,
    deliveredSpanBps: receiveRateBps(probe.arrivals),
    busyFraction: sat.busyFraction,
    sendBps: probe.sendRateBps[0],
    droppedQueue: s.droppedQueue,
    maxQueueDelayMs: s.maxQueueDelayMs,
    extraOwdP99Ms: quantile(owd, 0.99),
    maxExtraOwdMs: quantile(owd, 1),
  };
}

/**
 * Loss through the emulator: `count` small datagrams at 5000/s. `pathDrops`
 * counts datagrams lost outside the loss model: not read by the emulator, or
 * released by it but not received (socket buffers overflowing while a thread
 * was held off the CPU). A run with path drops does not measure the model.
 */
export async function calibrateLoss(
  loss: LinkConfig["loss"],
  count: number,
): Promise<
  { sent: number; lossRate: number; bursts: number; meanBurst: number; pathDrops: number }
> {
  const pps = 5000;
  const { probe, emu } = await throughEmulator(
    { loss },
    [{ rateBps: 100 * 8 * pps, packetBytes: 100 }],
    (count / pps) * 1000,
    100,
  );
  const s = emu.stats().up;
  const pathDrops = probe.sent[0] - s.received + (s.delivered - probe.arrivals.length);
  return { sent: probe.sent[0], ...lossStats(probe.sent[0], probe.arrivals), pathDrops };
}

/** Jitter with or without reordering: 2000 datagrams at 2000/s. */
export async function calibrateJitter(
  delayMs: number,
  jitterMs: number,
  reorder: boolean,
): Promise<{
  reordered: number;
  extraMeanMs: number;
  extraMinMs: number;
  extraP99Ms: number;
  extraMaxMs: number;
}> {
  const { probe } = await throughEmulator(
    { delayMs, jitterMs, reorder },
    [{ rateBps: 100 * 8 * 2000, packetBytes: 100 }],
    1000,
    delayMs + jitterMs + 100,
  );
  const extra = probe.arrivals.map((a) => a.recvAt - a.sentAt - delayMs);
  return {
    reordered: reorderCount(probe.arrivals),
    extraMeanMs: mean(extra),
    extraMinMs: quantile(extra, 0),
    extraP99Ms: quantile(extra, 0.99),
    extraMaxMs: quantile(extra, 1),
  };
}

/** The opportunities of a trace's first `periodMs` as a trace of its own. */
export function traceHead(trace: DeliveryTrace, periodMs: number): DeliveryTrace {
  const times: number[] = [];
  for (let i = 0;; i++) {
    const t = trace.opportunityTime(i);
    if (t > periodMs) break;
    times.push(t);
  }
  // The period is the last opportunity's time, as when a file ends there.
  return new DeliveryTrace(times);
}

/** Path of the shared cellular traces. */
export const TRACES_DIR = new URL("../../../shared/traces/", import.meta.url);

/**
 * Trace-driven capacity: the first 2 s of Verizon-LTE-short.down, saturated
 * with 1500-byte datagrams at 3× its mean for `durationMs`.
 */
export async function calibrateTrace(durationMs = 4000): Promise<{
  traceMeanBps: number;
  windowCapacityBps: number;
  /** Over the saturated stretches. */
  deliveredBps: number;
  deliveredSpanBps: number;
  busyFraction: number;
}> {
  const full = parseMahimahiTrace(
    await Deno.readTextFile(new URL("Verizon-LTE-short.down", TRACES_DIR)),
    "Verizon-LTE-short.down",
  );
  const trace = traceHead(full, 2000);
  const { probe, log } = await throughEmulator(
    { trace, queueMs: 300 },
    [{ rateBps: trace.meanCapacityBps * 3, packetBytes: TRACE_PACKET_BYTES }],
    durationMs,
    500,
  );
  // The capacity of the window the delivered datagrams left in, from the trace itself.
  const departs = log.filter((e) => e.fate === "delivered").map((e) => e.departAt!);
  const sat = saturatedRate(probe.arrivals, log);
  const first = departs[0], last = departs[departs.length - 1];
  const opportunities = trace.opportunityIndexAfter(last) - trace.opportunityIndexAfter(first);
  return {
    traceMeanBps: trace.meanCapacityBps,
    windowCapacityBps: (opportunities * TRACE_PACKET_BYTES * 8 * 1000) / (last - first),
    deliveredBps: sat.bps,
    deliveredSpanBps: receiveRateBps(probe.arrivals),
    busyFraction: sat.busyFraction,
  };
}

/** A capacity step: `firstBps` until `stepAtMs`, then `secondBps`; saturated at 1.2× the first. */
export async function calibrateSchedule(
  firstBps = 10e6,
  secondBps = 4e6,
  stepAtMs = 1500,
  durationMs = 3000,
): Promise<
  { firstBps: number; secondBps: number; deliveredFirstBps: number; deliveredSecondBps: number }
> {
  const { probe, log } = await throughEmulator(
    {
      rateSchedule: [{ atMs: 0, bps: firstBps }, { atMs: stepAtMs, bps: secondBps }],
      queueMs: 50,
    },
    [{ rateBps: firstBps * 1.2, packetBytes: 1200 }],
    durationMs,
    300,
  );
  // Split the arrivals by which side of the step the datagram left the bottleneck.
  const delivered = log.filter((e) => e.fate === "delivered");
  const cut = delivered.filter((e) => e.departAt! <= stepAtMs).length;
  return {
    firstBps,
    secondBps,
    deliveredFirstBps: saturatedRate(probe.arrivals.slice(0, cut), log).bps,
    deliveredSecondBps: saturatedRate(probe.arrivals.slice(cut), log).bps,
  };
}

/**
 * Two flows at 0.8× and 0.7× the cap through one shared bottleneck. (Equal,
 * perfectly paced rates would phase-lock with the drop-tail queue and one flow
 * would take most of it: Floyd and Jacobson's "phase effects".)
 */
export async function calibrateSharedBottleneck(rateBps = 10e6, durationMs = 2000): Promise<{
  configuredBps: number;
  /** Over the saturated stretches. */
  deliveredBps: number;
  busyFraction: number;
  /** Each flow's share of the delivered bytes times `deliveredBps`. */
  perFlowBps: number[];
}> {
  const { probe, log } = await throughEmulator(
    { rateBps, queueMs: 50 },
    [{ rateBps: rateBps * 0.8, packetBytes: 1200 }, { rateBps: rateBps * 0.7, packetBytes: 1200 }],
    durationMs,
    300,
  );
  const sat = saturatedRate(probe.arrivals, log);
  const total = probe.arrivals.reduce((s, a) => s + a.bytes, 0);
  return {
    configuredBps: rateBps,
    deliveredBps: sat.bps,
    busyFraction: sat.busyFraction,
    perFlowBps: [0, 1].map((i) =>
      (sat.bps * probe.arrivals.filter((a) => a.flow === i).reduce((s, a) => s + a.bytes, 0)) /
      total
    ),
  };
}

/** Gilbert-Elliott parameters used by the calibration: 5% mean loss, bursts of 3. */
export const GE_CALIBRATION = gilbertElliott(0.05, 3);
