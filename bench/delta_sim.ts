/**
 * DELTA in the link simulator on RFC 8867-style cases, against the physical
 * limit (the link capacity) and a fixed-bitrate sender (what Moonlight does:
 * a constant bitrate chosen for the link at the start, no congestion
 * control), measured in the same run.
 *
 *   deno run -A bench/delta_sim.ts [--scale 1,10] [--cases 5.1,5.2,5.3,cell] [--cell-ms 60000]
 *
 * Cases (capacities are RFC 8867's, multiplied by the scale; one-way
 * propagation delay 50 ms, drop-tail queue of 300 ms at the first capacity,
 * feedback every 20 ms):
 * - 5.1 variable capacity, one flow: 1 → 2.5 → 0.6 → 1 Mbit/s at 0/40/60/80 s, 100 s;
 * - 5.2 variable capacity, two flows: 4 → 2 → 3.5 → 1 → 2 Mbit/s at 0/25/50/75/100 s, 125 s;
 * - 5.3 congested feedback link, one flow each way: forward 2 → 1 → 0.5 → 2 at
 *   0/20/40/60 s, backward 2 → 0.8 → 2 at 0/35/70 s, 100 s;
 * - cell: each Mahimahi trace in ../shared/traces (.down for media, .up for
 *   feedback), one flow, the first `--cell-ms` ms (scale 1 only: traces are
 *   absolute).
 *
 * Per case: utilisation (delivered / capacity), queuing delay (one-way delay
 * minus the flow's minimum) mean and p95, frame delay p95, frames not
 * completed, and after every capacity drop (worst over drops and flows) the
 * time until the flow's send rate over 50 ms is under its share of the new
 * capacity (backoff_ms), until its target is (target_ms), and until the
 * queuing delay is back under 20 ms after its peak (recov20_ms). Fairness in 5.2 is Jain's index of the two flows' throughput over
 * 1 s windows where both run. Last line: `cases=N delta_util=F
 * delta_qdelay_mean_ms=N delta_qdelay_p95_ms=N fixed_util=F
 * fixed_qdelay_p95_ms=N delta_backoff_ms=N delta_recovery_ms=N
 * cell_qdelay_p95_ms=N fairness=F` (averages over cases).
 */
import { parseMahimahiTrace } from "../core/sim/trace.ts";
import {
  backoffTimes,
  delayRecoveryMs,
  type FlowResult,
  type FlowSpec,
  type HarnessResult,
  type PathSpec,
  quantile,
  queuingDelays,
  runHarness,
} from "../core/delta/sim_harness.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : fallback;
}
const SCALES = flag("scale", "1,10").split(",").map(Number);
const CASES = flag("cases", "5.1,5.2,5.3,cell").split(",");
const CELL_MS = Number(flag("cell-ms", "60000"));
const ONE_WAY_MS = 50;
const FEEDBACK_MS = 20;

type Steps = [number, number][];

interface Case {
  name: string;
  durationMs: number;
  forward: PathSpec;
  backward: PathSpec;
  /** Capacity changes of the media direction(s), for the drop metrics. */
  drops: { atMs: number; bps: number; dir: "a->b" | "b->a" }[];
  flows: (kind: "delta" | "fixed") => FlowSpec[];
}

const sched = (s: Steps, scale: number) => ({
  kind: "schedule" as const,
  steps: s.map(([atMs, mbps]) => ({ atMs, bps: mbps * 1e6 * scale })),
});

function dropsOf(s: Steps, scale: number, dir: "a->b" | "b->a") {
  const out: Case["drops"] = [];
  for (let i = 1; i < s.length; i++) {
    if (s[i][1] < s[i - 1][1]) out.push({ atMs: s[i][0], bps: s[i][1] * 1e6 * scale, dir });
  }
  return out;
}

/** Controller settings for a stream whose link peaks at `peakBps`. */
function controller(peakBps: number) {
  const hd = peakBps > 6e6;
  return {
    initialBitrateBps: Math.min(peakBps, 1e6 * (hd ? 4 : 0.5)),
    minBitrateBps: 100_000,
    maxBitrateBps: 1.2 * peakBps,
    width: hd ? 1920 : 1280,
    height: hd ? 1080 : 720,
  };
}

function rfcCase(
  name: string,
  fwd: Steps,
  bwd: Steps | undefined,
  durationMs: number,
  flowsPerDir: number,
  scale: number,
): Case {
  const peak = Math.max(...fwd.map((x) => x[1])) * 1e6 * scale;
  const mk = (dir: "a->b" | "b->a", first: number, pk: number) => (kind: "delta" | "fixed") =>
    Array.from(
      { length: flowsPerDir },
      (): FlowSpec =>
        kind === "delta"
          ? { kind, direction: dir, controller: controller(pk) }
          : { kind, direction: dir, fixedBitrateBps: first / flowsPerDir },
    );
  const fwdFlows = mk("a->b", fwd[0][1] * 1e6 * scale, peak);
  const bwdPeak = bwd ? Math.max(...bwd.map((x) => x[1])) * 1e6 * scale : 0;
  const bwdFlows = bwd ? mk("b->a", bwd[0][1] * 1e6 * scale, bwdPeak) : () => [];
  return {
    name: `${name} x${scale}`,
    durationMs,
    forward: { delayMs: ONE_WAY_MS, capacity: sched(fwd, scale) },
    backward: bwd
      ? { delayMs: ONE_WAY_MS, capacity: sched(bwd, scale) }
      : { delayMs: ONE_WAY_MS, capacity: { kind: "unlimited" } },
    drops: [...dropsOf(fwd, scale, "a->b"), ...(bwd ? dropsOf(bwd, scale, "b->a") : [])],
    flows: (kind) => [...fwdFlows(kind), ...bwdFlows(kind)],
  };
}

const cases: Case[] = [];
for (const scale of SCALES) {
  if (CASES.includes("5.1")) {
    cases.push(
      rfcCase("5.1", [[0, 1], [40e3, 2.5], [60e3, 0.6], [80e3, 1]], undefined, 100e3, 1, scale),
    );
  }
  if (CASES.includes("5.2")) {
    cases.push(
      rfcCase(
        "5.2",
        [[0, 4], [25e3, 2], [50e3, 3.5], [75e3, 1], [100e3, 2]],
        undefined,
        125e3,
        2,
        scale,
      ),
    );
  }
  if (CASES.includes("5.3")) {
    cases.push(
      rfcCase(
        "5.3",
        [[0, 2], [20e3, 1], [40e3, 0.5], [60e3, 2]],
        [[0, 2], [35e3, 0.8], [70e3, 2]],
        100e3,
        1,
        scale,
      ),
    );
  }
}
if (CASES.includes("cell") && SCALES.includes(1)) {
  const dir = new URL("../../shared/traces/", import.meta.url);
  for (
    const name of [
      "ATT-LTE-driving-2016",
      "TMobile-LTE-short",
      "TMobile-UMTS-driving",
      "Verizon-LTE-short",
    ]
  ) {
    const down = parseMahimahiTrace(await Deno.readTextFile(new URL(`${name}.down`, dir)), name);
    const up = parseMahimahiTrace(await Deno.readTextFile(new URL(`${name}.up`, dir)), name);
    const mean = down.meanCapacityBps;
    cases.push({
      name: `cell ${name}`,
      durationMs: Math.min(CELL_MS, down.periodMs),
      forward: { delayMs: 20, capacity: { kind: "trace", trace: down } },
      backward: { delayMs: 20, capacity: { kind: "trace", trace: up } },
      drops: [],
      flows: (kind) => [
        kind === "delta"
          ? {
            kind,
            direction: "a->b",
            controller: { ...controller(mean), maxBitrateBps: 2 * mean },
          }
          : { kind, direction: "a->b", fixedBitrateBps: mean },
      ],
    });
  }
}

interface Row {
  util: number;
  qMean: number;
  q95: number;
  frame95: number;
  framesLost: number;
  framesProduced: number;
  backoff: number;
  targetBackoff: number;
  recovery: number;
  fairness: number;
  ms: number;
}

function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return xs.length > 0 ? s / xs.length : NaN;
}

function jain(r: HarnessResult, a: FlowResult, b: FlowResult): number {
  const per = Math.round(1000 / r.binMs);
  const idx: number[] = [];
  for (let i = 0; i + per <= r.bins; i += per) {
    let x = 0, y = 0;
    for (let j = i; j < i + per; j++) {
      x += a.deliveredBytes[j];
      y += b.deliveredBytes[j];
    }
    if (x + y > 0) idx.push(((x + y) ** 2) / (2 * (x * x + y * y)));
  }
  return mean(idx);
}

function measure(c: Case, kind: "delta" | "fixed"): Row {
  const t0 = performance.now();
  const r = runHarness({
    durationMs: c.durationMs,
    forward: c.forward,
    backward: c.backward,
    flows: c.flows(kind),
    feedbackIntervalMs: FEEDBACK_MS,
  });
  const ms = performance.now() - t0;
  // Utilisation per direction that carries media, weighted by capacity.
  let used = 0, avail = 0;
  for (const dir of ["a->b", "b->a"] as const) {
    const flows = r.flows.filter((f) => f.spec.direction === dir);
    if (flows.length === 0) continue;
    const cap = dir === "a->b" ? r.forwardCapacityBps : r.backwardCapacityBps;
    for (let i = 0; i < r.bins; i++) {
      avail += (cap[i] * r.binMs) / 8000;
      for (const f of flows) used += f.deliveredBytes[i];
    }
  }
  const qs: number[] = [];
  const frames: number[] = [];
  let lost = 0, produced = 0;
  for (const f of r.flows) {
    for (const q of queuingDelays(f)) qs.push(q);
    for (const d of f.frameDelayMs) frames.push(d);
    produced += f.frames.produced;
    lost += f.frames.produced - f.frames.completed;
  }
  const backoffs: number[] = [], targets: number[] = [], recoveries: number[] = [];
  for (const d of c.drops) {
    for (const f of r.flows.filter((x) => x.spec.direction === d.dir)) {
      const share = d.bps / r.flows.filter((x) => x.spec.direction === d.dir).length;
      const b = backoffTimes(r, f, d.atMs, share);
      backoffs.push(b.sendRateMs);
      targets.push(b.targetMs);
      recoveries.push(delayRecoveryMs(f, d.atMs, 20));
    }
  }
  const fwd = r.flows.filter((f) => f.spec.direction === "a->b");
  return {
    util: avail > 0 ? used / avail : 0,
    qMean: mean(qs),
    q95: quantile(qs, 0.95),
    frame95: quantile(frames, 0.95),
    framesLost: lost,
    framesProduced: produced,
    backoff: backoffs.length ? Math.max(...backoffs) : NaN,
    targetBackoff: targets.length ? Math.max(...targets) : NaN,
    recovery: recoveries.length ? Math.max(...recoveries) : NaN,
    fairness: fwd.length === 2 ? jain(r, fwd[0], fwd[1]) : NaN,
    ms,
  };
}

const f1 = (x: number, w = 7) => (Number.isFinite(x) ? x.toFixed(1) : String(x)).padStart(w);
const f3 = (x: number, w = 6) => (Number.isFinite(x) ? x.toFixed(3) : String(x)).padStart(w);

console.log(
  `# deno run -A bench/delta_sim.ts --scale ${SCALES.join(",")} --cases ${
    CASES.join(",")
  } --cell-ms ${CELL_MS}`,
);
console.log(
  "# capacity = physical limit: utilisation 1.000, queuing delay 0 ms. fixed = constant bitrate at the first capacity (Moonlight-style).",
);
console.log(
  "case                          sender  util   q_mean   q_p95  frame_p95  frames_lost  backoff_ms  target_ms  recov20_ms  fairness  run_ms",
);
const delta: Row[] = [], fixed: Row[] = [], cell: Row[] = [];
for (const c of cases) {
  for (const kind of ["delta", "fixed"] as const) {
    const row = measure(c, kind);
    (kind === "delta" ? delta : fixed).push(row);
    if (kind === "delta" && c.name.startsWith("cell")) cell.push(row);
    console.log(
      `${c.name.padEnd(29)} ${kind.padEnd(6)} ${f3(row.util)} ${f1(row.qMean, 8)} ${f1(row.q95)} ${
        f1(row.frame95, 10)
      } ${`${row.framesLost}/${row.framesProduced}`.padStart(12)} ${f1(row.backoff, 11)} ${
        f1(row.targetBackoff, 10)
      } ${f1(row.recovery, 11)} ${f3(row.fairness, 9)} ${f1(row.ms, 7)}`,
    );
  }
}
const avg = (rows: Row[], k: keyof Row) => mean(rows.map((r) => r[k]).filter(Number.isFinite));
console.log(
  `cases=${cases.length} delta_util=${avg(delta, "util").toFixed(3)} delta_qdelay_mean_ms=${
    avg(delta, "qMean").toFixed(1)
  } delta_qdelay_p95_ms=${avg(delta, "q95").toFixed(1)} fixed_util=${
    avg(fixed, "util").toFixed(3)
  } fixed_qdelay_p95_ms=${avg(fixed, "q95").toFixed(1)} delta_backoff_ms=${
    avg(delta, "backoff").toFixed(0)
  } delta_recovery_ms=${avg(delta, "recovery").toFixed(0)} cell_qdelay_p95_ms=${
    avg(cell, "q95").toFixed(1)
  } fairness=${avg(delta, "fairness").toFixed(3)}`,
);
