/**
 * The race's view of the link emulator (tools/linkemu): how a case becomes
 * the emulator's two link configurations, and how its per-packet log becomes
 * metric records on the race's clock.
 *
 * The emulator is loaded at run time (`loadLinkEmulator`) so that the race
 * type-checks and its pure parts test without it; the interfaces below are
 * the subset of tools/linkemu/types.ts the race uses.
 *
 * @module
 */

import { parseMahimahiTrace } from "../../core/sim/trace.ts";
import type { Capacity, RaceCase } from "./cases.ts";
import type { PacketRecord } from "./metrics.ts";

/** A UDP address as the emulator spells it. */
export interface EmuHostPort {
  hostname: string;
  port: number;
}

/** One line of the emulator's per-packet log (times in ms on its clock, 0 = start). */
export interface EmuPacketLogEntry {
  dir: "up" | "down";
  flow: number;
  bytes: number;
  inAt: number;
  fate: string;
  outAt?: number;
}

/** The running emulator (subset of tools/linkemu's LinkEmulator). */
export interface EmuLink {
  readonly listenAddr: EmuHostPort;
  readonly upstreamAddr: EmuHostPort;
  readonly flows: readonly { listenAddr: EmuHostPort; upstreamAddr: EmuHostPort }[];
  /** Wall-clock ms (performance.timeOrigin + now) at the emulator clock's 0. */
  readonly clockZeroEpochMs: number;
  stats(): unknown;
  packetLog(): Promise<EmuPacketLogEntry[]>;
  close(): Promise<void>;
}

/** `startLinkEmulator`'s options (subset). */
export interface EmuOptions {
  target: EmuHostPort;
  extraFlows?: { target: EmuHostPort }[];
  up: Record<string, unknown>;
  down: Record<string, unknown>;
  seed?: number;
  log?: boolean;
}

/** The emulator's entry point. */
export type StartLinkEmulator = (o: EmuOptions) => Promise<EmuLink>;

/** Thrown when tools/linkemu is not there. */
export class LinkEmulatorMissing extends Error {
  constructor(cause: unknown) {
    super(`link emulator missing: tools/linkemu/mod.ts could not be loaded (${cause})`);
    this.name = "LinkEmulatorMissing";
  }
}

/** Loads `startLinkEmulator` from tools/linkemu/mod.ts, or throws {@link LinkEmulatorMissing}. */
export async function loadLinkEmulator(): Promise<StartLinkEmulator> {
  // A computed specifier: the race must type-check before tools/linkemu is merged.
  const spec = new URL("../../tools/linkemu/mod.ts", import.meta.url).href;
  try {
    const mod = await import(spec);
    if (typeof mod.startLinkEmulator !== "function") throw new Error("no startLinkEmulator export");
    return mod.startLinkEmulator as StartLinkEmulator;
  } catch (e) {
    throw new LinkEmulatorMissing(e instanceof Error ? e.message : e);
  }
}

/**
 * One direction of the case as a core/sim `LinkConfig` (partial; the
 * emulator fills a perfect link's defaults): propagation delay, drop-tail
 * queue in ms, and capacity as a step schedule or a Mahimahi trace.
 */
export async function linkConfigFor(
  cap: Capacity | undefined,
  c: RaceCase,
): Promise<Record<string, unknown>> {
  const base = { delayMs: c.oneWayDelayMs };
  if (cap === undefined) return base;
  if (cap.kind === "trace") {
    const trace = parseMahimahiTrace(await Deno.readTextFile(cap.path), cap.path);
    return { ...base, trace, queueMs: c.queueMs };
  }
  const [first, ...rest] = cap.steps;
  return {
    ...base,
    rateBps: first.bps,
    ...(rest.length > 0 ? { rateSchedule: cap.steps.filter((s) => s.atMs > 0) } : {}),
    queueMs: c.queueMs,
  };
}

/**
 * The emulator's log of one direction and flow as metric records on the
 * race's clock (`epochMs` = the race's 0 in wall-clock ms): send = when the
 * emulator read the datagram, receive = when it handed it on (undefined if
 * it was dropped or lost).
 */
export function packetRecords(
  log: readonly EmuPacketLogEntry[],
  dir: "up" | "down",
  flows: readonly number[],
  clockZeroEpochMs: number,
  epochMs: number,
): PacketRecord[] {
  const shift = clockZeroEpochMs - epochMs;
  const out: PacketRecord[] = [];
  for (const e of log) {
    if (e.dir !== dir || !flows.includes(e.flow)) continue;
    out.push({
      sendMs: e.inAt + shift,
      recvMs: e.fate === "delivered" && e.outAt !== undefined ? e.outAt + shift : undefined,
      bytes: e.bytes,
    });
  }
  return out;
}

/**
 * Capacity over time of a Mahimahi trace (one 1500-byte opportunity per
 * line, repeating after its last timestamp), as bit/s averaged over
 * `bucketMs` buckets: what utilisation is measured against on trace cases.
 * Time is on the emulator's clock, as the trace is.
 */
export function traceCapacity(text: string, bucketMs = 100): (tMs: number) => number {
  const times = text.split("\n").map((l) => l.trim()).filter((l) => l.length > 0).map(Number);
  if (times.length === 0 || times.some((t) => !Number.isFinite(t) || t < 0)) {
    throw new RangeError("traceCapacity: not a Mahimahi trace");
  }
  const period = times[times.length - 1];
  if (!(period > 0)) throw new RangeError("traceCapacity: the trace's last time must be > 0");
  const width = Math.min(bucketMs, period);
  const n = Math.ceil(period / width);
  const buckets = new Float64Array(n);
  // Mahimahi's opportunity at time t (ms) serves the interval ending at t.
  for (const t of times) buckets[Math.min(n - 1, Math.floor(Math.max(0, t - 1e-9) / width))]++;
  return (tMs: number) => {
    const within = ((tMs % period) + period) % period;
    const i = Math.min(n - 1, Math.floor(within / width));
    // The last bucket may be shorter than the others.
    const w = Math.min(width, period - i * width);
    return (buckets[i] * 1500 * 8 * 1000) / w;
  };
}
