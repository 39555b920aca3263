/**
 * The race's test cases as data: RFC 8867 ("Test Cases for Evaluating
 * Congestion Control for Interactive Real-Time Media") sections 5.1, 5.2,
 * 5.3 and 5.6, plus the cellular traces of ../shared/traces.
 *
 * Values: RFC 8867 section 5 (capacities in Mbit/s = 10^6 bit/s), cross-
 * checked against the ns-3 RMCAT test suite written by one of the RFC's
 * authors (cisco/ns3-rmcat, `rmcat-wired-test-suite.cc`, which uses 2^20 for
 * a megabit; we use 10^6 as the RFC does). Common to all wired cases: one-way
 * propagation delay 50 ms, bottleneck queue 300 ms (drop-tail), duration as
 * given per case.
 *
 * Each case exists at the RFC's scale (x1) and scaled ten times up (x10, the
 * range a 1080p stream lives in); scaling multiplies every capacity, not the
 * delays or the queue's length in time.
 *
 * @module
 */

/** A capacity step: from `atMs` on the bottleneck carries `bps`. */
export interface CapacityStep {
  readonly atMs: number;
  readonly bps: number;
}

/** How one direction of the bottleneck behaves. */
export type Capacity =
  | { readonly kind: "schedule"; readonly steps: readonly CapacityStep[] }
  /** A Mahimahi trace file (one 1500-byte delivery opportunity per line, ms). */
  | { readonly kind: "trace"; readonly path: string; readonly meanBps: number };

/** A competing flow that shares the forward bottleneck with the media. */
export interface CompetingFlow {
  readonly kind: "media" | "tcp-long";
  readonly startMs: number;
  readonly stopMs: number;
}

/** One test case, ready for the runner. */
export interface RaceCase {
  /** Short id, e.g. "5.1-x1". */
  readonly id: string;
  /** Human title (RFC section title). */
  readonly title: string;
  /** Where the values come from. */
  readonly source: string;
  /** 1 or 10. */
  readonly scale: number;
  readonly durationMs: number;
  /** One-way propagation delay, each direction. */
  readonly oneWayDelayMs: number;
  /** Drop-tail queue length in time at the bottleneck (each direction). */
  readonly queueMs: number;
  /** Media direction (sender to receiver). */
  readonly forward: Capacity;
  /** Feedback direction; undefined = not a bottleneck (uncapped). */
  readonly backward?: Capacity;
  /** Number of media flows of the contender under test (sharing `forward`). */
  readonly mediaFlows: number;
  /** A media flow in the backward direction too (5.3: bi-directional media). */
  readonly backwardMedia: boolean;
  /** Other traffic on the forward bottleneck. */
  readonly competing: readonly CompetingFlow[];
  /**
   * The synthetic picture both contenders send: 1280x720 at 60 fps where the
   * link carries a 720p stream (x10), 640x360 at 60 fps at the RFC's own
   * scale and on the cellular traces, where libvpx at
   * 720p60 skips most frames and leaves GCC application-limited (wrtc's
   * RTCVideoSource never scales the picture down; measured: docs/RACE.md).
   */
  readonly picture: Picture;
}

/** Picture size and frame rate of the synthetic video. */
export interface Picture {
  readonly width: number;
  readonly height: number;
  readonly fps: number;
}

/** 720p60 from a mean capacity of 8 Mbit/s up, 360p60 below. */
export function pictureFor(meanBps: number): Picture {
  return meanBps >= 8e6
    ? { width: 1280, height: 720, fps: 60 }
    : { width: 640, height: 360, fps: 60 };
}

const MBPS = 1_000_000;

function steps(pairs: readonly [number, number][], scale: number): Capacity {
  return {
    kind: "schedule",
    steps: pairs.map(([s, mbps]) => ({ atMs: s * 1000, bps: mbps * MBPS * scale })),
  };
}

/** RFC 8867 section 5.1 at `scale`. */
export function case51(scale: number): RaceCase {
  return {
    id: `5.1-x${scale}`,
    title: "Variable Available Capacity with a Single Flow",
    source: "RFC 8867 5.1; ns3-rmcat tc51",
    scale,
    durationMs: 100_000,
    oneWayDelayMs: 50,
    queueMs: 300,
    forward: steps([[0, 1.0], [40, 2.5], [60, 0.6], [80, 1.0]], scale),
    mediaFlows: 1,
    backwardMedia: false,
    competing: [],
    picture: pictureFor(1e6 * scale),
  };
}

/** RFC 8867 section 5.2 at `scale`: two media flows of the same contender share the link. */
export function case52(scale: number): RaceCase {
  return {
    id: `5.2-x${scale}`,
    title: "Variable Available Capacity with Multiple Flows",
    source: "RFC 8867 5.2; ns3-rmcat tc52",
    scale,
    durationMs: 125_000,
    oneWayDelayMs: 50,
    queueMs: 300,
    forward: steps([[0, 4.0], [25, 2.0], [50, 3.5], [75, 1.0], [100, 2.0]], scale),
    mediaFlows: 2,
    backwardMedia: false,
    competing: [],
    // Each of the two flows gets about half of 1-4 Mbit/s (x1) or 10-40 (x10).
    picture: pictureFor(1e6 * scale),
  };
}

/** RFC 8867 section 5.3 at `scale`: media both ways, the feedback shares a congested backward link. */
export function case53(scale: number): RaceCase {
  return {
    id: `5.3-x${scale}`,
    title: "Congested Feedback Link with Bi-directional Media Flows",
    source: "RFC 8867 5.3; ns3-rmcat tc53",
    scale,
    durationMs: 100_000,
    oneWayDelayMs: 50,
    queueMs: 300,
    forward: steps([[0, 2.0], [20, 1.0], [40, 0.5], [60, 2.0]], scale),
    backward: steps([[0, 2.0], [35, 0.8], [70, 2.0]], scale),
    mediaFlows: 1,
    backwardMedia: true,
    competing: [],
    picture: pictureFor(1e6 * scale),
  };
}

/**
 * RFC 8867 section 5.6 at `scale`: one media flow against one long TCP flow
 * (2 Mbit/s, x scale). The TCP flow is the kernel's (CUBIC) through an
 * IP-in-UDP tunnel whose datagrams share the emulator's forward queue with
 * the media (tools/linkemu/tcp_tunnel.ts). Queue: 1000 ms, the deep-buffer
 * value the RFC asks for in this case besides 300 ms (ns3-rmcat's tc56 lists
 * both, "[300ms, 1000ms]"); the 300 ms queue of 5.1-5.3 is `--queue-ms=300`.
 */
export function case56(scale: number): RaceCase {
  return {
    id: `5.6-x${scale}`,
    title: "Media Flow Competing with a Long TCP Flow",
    source: "RFC 8867 5.6 (queue 1000 ms; the RFC also asks for 300 ms); ns3-rmcat tc56",
    scale,
    durationMs: 120_000,
    oneWayDelayMs: 50,
    queueMs: 1000,
    forward: steps([[0, 2.0]], scale),
    mediaFlows: 1,
    backwardMedia: false,
    // ns3-rmcat: TCP from 0 s, media from 5 s to 119 s. Here both run from the race's 0.
    competing: [{ kind: "tcp-long", startMs: 0, stopMs: 120_000 }],
    picture: pictureFor(1e6 * scale),
  };
}

/** A cellular trace case: media over `name`.down, feedback over `name`.up. */
export function cellularCase(
  name: string,
  meanDownBps: number,
  meanUpBps: number,
  tracesDir = "/work/shared/traces",
): RaceCase {
  return {
    id: `cell-${name}`,
    title: `Cellular trace ${name} (Mahimahi, Winstein et al. NSDI 2013)`,
    source: `${tracesDir}/README.md`,
    scale: 1,
    durationMs: 120_000,
    // Our choice, not the RFC's: 20 ms propagation each way (a 40 ms LTE round trip)
    // on top of the trace's own timing; the first 120 s of each trace.
    oneWayDelayMs: 20,
    // A deep buffer as cellular base stations have (Sprout's Cellsim queue was
    // unbounded); self-inflicted delay is the measure, so the queue must not cap it early.
    queueMs: 1000,
    forward: { kind: "trace", path: `${tracesDir}/${name}.down`, meanBps: meanDownBps },
    backward: { kind: "trace", path: `${tracesDir}/${name}.up`, meanBps: meanUpBps },
    mediaFlows: 1,
    backwardMedia: false,
    competing: [],
    // 360p on every trace: at 720p60 GCC's estimate fell in the first outage and the
    // encoder, skipping most frames, kept it application-limited (even at 16.7 Mbit/s).
    picture: { width: 640, height: 360, fps: 60 },
  };
}

/** The cellular traces of ../shared/traces with their mean capacities (README table). */
export const CELLULAR = [
  ["Verizon-LTE-short", 5.03e6, 5.95e6],
  ["ATT-LTE-driving-2016", 4.56e6, 1.91e6],
  ["TMobile-LTE-short", 16.70e6, 13.32e6],
  ["TMobile-UMTS-driving", 2.02e6, 0.94e6],
] as const;

/** Every case of the race: 5.1, 5.2, 5.3, 5.6 at x1 and x10, then the cellular traces. */
export function allCases(): RaceCase[] {
  const out: RaceCase[] = [];
  for (const scale of [1, 10]) out.push(case51(scale), case52(scale), case53(scale), case56(scale));
  for (const [name, down, up] of CELLULAR) out.push(cellularCase(name, down, up));
  return out;
}

/** Capacity in bit/s at `tMs` (schedules only; the trace's mean otherwise). */
export function capacityAt(c: Capacity, tMs: number): number {
  if (c.kind === "trace") return c.meanBps;
  let bps = c.steps[0].bps;
  for (const s of c.steps) if (s.atMs <= tMs) bps = s.bps;
  return bps;
}

/**
 * The case compressed in time by `factor` (> 1 = shorter): every step time
 * and the duration divided by it; delays and queue untouched. For quick
 * looks only: the RFC's timings are what the race reports.
 */
export function compressTime(c: RaceCase, factor: number): RaceCase {
  if (!(factor >= 1)) throw new RangeError(`compressTime: factor must be >= 1, got ${factor}`);
  const sc = (cap: Capacity | undefined): Capacity | undefined =>
    cap?.kind === "schedule"
      ? { kind: "schedule", steps: cap.steps.map((s) => ({ atMs: s.atMs / factor, bps: s.bps })) }
      : cap;
  return {
    ...c,
    id: factor === 1 ? c.id : `${c.id}/t${factor}`,
    durationMs: c.durationMs / factor,
    forward: sc(c.forward)!,
    backward: sc(c.backward),
    competing: c.competing.map((f) => ({
      ...f,
      startMs: f.startMs / factor,
      stopMs: f.stopMs / factor,
    })),
  };
}

/**
 * Times at which capacity drops (to at most `ratio` of the previous value)
 * and at which it rises, from a schedule: where recovery is measured.
 */
export function capacityChanges(
  c: Capacity,
): { atMs: number; fromBps: number; toBps: number }[] {
  if (c.kind !== "schedule") return [];
  const out = [];
  for (let i = 1; i < c.steps.length; i++) {
    out.push({ atMs: c.steps[i].atMs, fromBps: c.steps[i - 1].bps, toBps: c.steps[i].bps });
  }
  return out;
}
