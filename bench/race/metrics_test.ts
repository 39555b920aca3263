import assert from "node:assert/strict";
import {
  capacityBits,
  computeMetrics,
  type PacketRecord,
  quantile,
  rateFromCounters,
} from "./metrics.ts";

/**
 * A fluid drop-tail bottleneck for the tests: packets of `bytes` sent at
 * `rateAt(t)` bit/s, served in order at `capAt(t)` bit/s, plus `baseMs`.
 */
function simulate(
  rateAt: (t: number) => number,
  capAt: (t: number) => number,
  durationMs: number,
  baseMs: number,
  bytes = 1000,
): PacketRecord[] {
  const out: PacketRecord[] = [];
  let t = 0;
  let busyUntil = 0;
  while (t < durationMs) {
    // Serve: integrate capacity in 0.1 ms steps from max(t, busyUntil).
    let s = Math.max(t, busyUntil);
    let left = bytes * 8;
    while (left > 0) {
      left -= capAt(s) * 0.0001;
      s += 0.1;
    }
    busyUntil = s;
    out.push({ sendMs: t, recvMs: s + baseMs, bytes });
    t += (bytes * 8 * 1000) / rateAt(t);
  }
  return out;
}

const step = (at: number, a: number, b: number) => (t: number) => t < at ? a : b;

Deno.test("metrics: quantile by nearest rank", () => {
  assert.equal(quantile([5, 1, 3, 2, 4], 0.95), 5);
  assert.equal(quantile([5, 1, 3, 2, 4], 0.5), 3);
  assert.equal(quantile(Array.from({ length: 100 }, (_, i) => i + 1), 0.95), 95);
  assert.ok(Number.isNaN(quantile([], 0.5)));
});

Deno.test("metrics: a flow under capacity has no queuing delay and its share of utilisation", () => {
  const cap = () => 2e6;
  const packets = simulate(() => 1e6, cap, 10_000, 50);
  const m = computeMetrics({
    packets,
    frames: [],
    capacityAt: cap,
    changes: [],
    baseDelayMs: 50,
    startMs: 1000,
    endMs: 9000,
  });
  assert.ok(Math.abs(m.throughputBps - 1e6) < 0.01e6, `throughput ${m.throughputBps}`);
  assert.ok(Math.abs(m.utilisation - 0.5) < 0.01, `util ${m.utilisation}`);
  // Serialization of one 1000-byte packet at 2 Mbit/s is 4 ms: that is all the "queue".
  assert.ok(m.qdelayP95Ms <= 4.1 && m.qdelayMeanMs <= 4.1, `qdelay ${m.qdelayP95Ms}`);
  assert.equal(m.packetsLost, 0);
  assert.equal(m.series.length, 40);
});

Deno.test("metrics: after a 50% drop, rate-under and drain times match the fluid model", () => {
  // Capacity 2 -> 1 Mbit/s at 10 s; the sender reacts 500 ms late, to 0.8 Mbit/s.
  const cap = step(10_000, 2e6, 1e6);
  const rate = (t: number) => (t < 10_500 ? 1.9e6 : 0.8e6);
  const packets = simulate(rate, cap, 20_000, 50);
  const m = computeMetrics({
    packets,
    frames: [],
    capacityAt: cap,
    changes: [{ atMs: 10_000, fromBps: 2e6, toBps: 1e6 }],
    baseDelayMs: 50,
    startMs: 0,
    endMs: 20_000,
  });
  const r = m.recoveries[0];
  // Reaction at 500 ms; the trailing 100-ms window is entirely at 0.8 Mbit/s 100 ms later.
  assert.ok(r.rateUnderMs! >= 550 && r.rateUnderMs! <= 610, `rate under ${r.rateUnderMs}`);
  // Backlog 0.9 Mbit/s x 0.5 s = 450 kbit, drained at 0.2 Mbit/s net: 2.25 s; under 20 ms
  // (20 kbit of backlog at 1 Mbit/s) 0.1 s earlier: about 0.5 + 2.15 = 2.65 s after the drop.
  assert.ok(
    r.qdelayDrainedMs! >= 2400 && r.qdelayDrainedMs! <= 2900,
    `drained ${r.qdelayDrainedMs}`,
  );
  // Peak queue: 450 kbit at 1 Mbit/s = 450 ms, reached as the sender reacts.
  const peak = Math.max(...m.series.map((b) => b.qdelayMs ?? 0));
  assert.ok(peak >= 400 && peak <= 460, `peak ${peak}`);
  assert.ok(m.qdelayP95Ms > 100 && m.qdelayP95Ms < peak, `p95 ${m.qdelayP95Ms}`);
});

Deno.test("metrics: ramp to 90% after a rise, and never when the sender stays low", () => {
  const cap = step(5_000, 1e6, 2e6);
  // Sender at 1 Mbit/s, then ramps linearly to 2 Mbit/s over 4 s.
  const rate = (t: number) => (t < 5_000 ? 0.99e6 : Math.min(2e6, 0.99e6 + (t - 5_000) * 0.25e3));
  const change = [{ atMs: 5_000, fromBps: 1e6, toBps: 2e6 }];
  const m = computeMetrics({
    packets: simulate(rate, cap, 15_000, 20),
    frames: [],
    capacityAt: cap,
    changes: change,
    baseDelayMs: 20,
    startMs: 0,
    endMs: 15_000,
  });
  // 1.8 Mbit/s is reached 3.24 s after the rise; the 500-ms average lags by ~250 ms.
  const u = m.recoveries[0].util90Ms!;
  assert.ok(u >= 3200 && u <= 3800, `util90 ${u}`);
  const flat = computeMetrics({
    packets: simulate(() => 1e6, cap, 15_000, 20),
    frames: [],
    capacityAt: cap,
    changes: change,
    baseDelayMs: 20,
    startMs: 0,
    endMs: 15_000,
  });
  assert.equal(flat.recoveries[0].util90Ms, undefined);
});

Deno.test("metrics: frames lost, frame delay p95, lost packets; the last second is not judged", () => {
  const frames = Array.from({ length: 600 }, (_, i) => ({
    seq: i,
    sendMs: i * 1000 / 60,
    // Every 50th frame lost; one frame in the last second lost too (still in flight).
    recvMs: i % 50 === 7 || i === 590 ? undefined : i * 1000 / 60 + 30 + (i % 20),
  }));
  const packets = [
    { sendMs: 10, recvMs: 60, bytes: 100 },
    { sendMs: 20, bytes: 100 },
    { sendMs: 30, recvMs: 85, bytes: 100 },
  ];
  const m = computeMetrics({
    packets,
    frames,
    capacityAt: () => 1e6,
    changes: [],
    baseDelayMs: 50,
    startMs: 0,
    endMs: 10_000,
  });
  assert.equal(m.framesSent, 540);
  assert.equal(m.framesLost, 11); // i = 7, 57, ..., 507: 11 of them
  assert.ok(m.frameDelayP95Ms === 48 || m.frameDelayP95Ms === 49, `p95 ${m.frameDelayP95Ms}`);
  assert.equal(m.packetsLost, 1);
  assert.equal(m.qdelayMeanMs, 2.5);
  assert.throws(
    () =>
      computeMetrics({
        packets,
        frames,
        capacityAt: () => 1,
        changes: [],
        baseDelayMs: 0,
        startMs: 5,
        endMs: 5,
      }),
    RangeError,
  );
});

Deno.test("metrics: capacity integral and rates from counters", () => {
  assert.equal(capacityBits(step(500, 1e6, 2e6), 0, 1000), 1.5e6);
  assert.deepEqual(
    rateFromCounters([{ t: 0, bytes: 0 }, { t: 500, bytes: 62_500 }, { t: 1000, bytes: 62_500 }]),
    [
      { t: 500, bps: 1e6 },
      { t: 1000, bps: 0 },
    ],
  );
});
