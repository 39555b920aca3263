import assert from "node:assert/strict";
import fc from "fast-check";
import { MIN_BURST_BYTES, Pacer } from "./pacer.ts";

/** Drains `p` by following pollTimeout; returns the departure time (µs) of every packet. */
function drain(p: Pacer, fromUs: number, untilUs = Infinity): number[] {
  const out: number[] = [];
  let now = fromUs;
  for (let guard = 0; guard < 1_000_000; guard++) {
    while (p.pollTransmit(now) !== undefined) out.push(now);
    const next = p.pollTimeout();
    if (next === undefined || next > untilUs) break;
    now = Math.max(now, next);
  }
  return out;
}

Deno.test("Pacer: spacing between packets matches the rate after the burst allowance", () => {
  const rate = 8e6; // 1 byte per µs: a 1200-byte packet every 1200 µs
  const p = new Pacer({ rateBps: rate, burstBytes: 2400 });
  for (let i = 0; i < 100; i++) p.enqueue(new Uint8Array(1200), 0);
  const t = drain(p, 0);
  assert.equal(t.length, 100);
  // The burst allowance (2 packets) plus one packet of debt leave together...
  assert.deepEqual(t.slice(0, 4), [0, 0, 0, 1200]);
  // ...then each one waits for its credit: exactly the rate.
  for (let i = 4; i < t.length; i++) assert.equal(t[i] - t[i - 1], 1200, `gap ${i}`);
  const bytes = (t.length - 4) * 1200;
  assert.equal((bytes * 8e6) / (t[99] - t[3]), rate);
  assert.equal(p.queuedPackets, 0);
  assert.equal(p.stats.sent, 100);
});

Deno.test("Pacer: a 1 Mbit keyframe leaves spread over the frame interval, never in one burst", () => {
  // 1080p60 at 40 Mbit/s: pacing 1.5 × 40 = 60 Mbit/s puts 1 Mbit in 16.7 ms, one frame interval.
  const p = new Pacer({ rateBps: 60e6 });
  const packets = Math.ceil(1e6 / 8 / 1200); // 105 packets
  for (let i = 0; i < packets; i++) p.enqueue(new Uint8Array(1200), 0);
  const t = drain(p, 0);
  assert.equal(t.length, packets);
  const span = t[t.length - 1] - t[0];
  assert.ok(span >= 15_000 && span <= 1e6 / 60, `spread over ${span} µs`);
  // No instant sees more than the burst allowance leave (plus one packet of debt).
  const perInstant = new Map<number, number>();
  for (const x of t) perInstant.set(x, (perInstant.get(x) ?? 0) + 1200);
  for (const [at, bytes] of perInstant) {
    assert.ok(bytes <= p.burstBytes + 1200, `${bytes} bytes at ${at}`);
  }
  // And any 1 ms window carries at most rate × 1 ms + the burst allowance.
  for (const start of t) {
    const inWindow = t.filter((x) => x >= start && x < start + 1000).length * 1200;
    assert.ok(inWindow <= (60e6 / 8) * 1e-3 + p.burstBytes + 1200, `${inWindow} in 1 ms`);
  }
});

Deno.test("Pacer: priority packets overtake waiting media, and still count against the rate", () => {
  const p = new Pacer({ rateBps: 8e6, burstBytes: 1200 });
  for (let i = 0; i < 10; i++) p.enqueue(new Uint8Array(1200).fill(1), 0);
  // The burst allowance plus one packet of debt.
  assert.equal(p.pollTransmit(0)?.[0], 1);
  assert.equal(p.pollTransmit(0)?.[0], 1);
  assert.equal(p.pollTransmit(0), undefined);
  p.enqueue(new Uint8Array(50).fill(9), 100, true);
  assert.equal(p.pollTimeout(), 100);
  const input = p.pollTransmit(100);
  assert.equal(input?.[0], 9);
  assert.equal(input?.length, 50);
  // The next media packet waits for the credit the input packet used as well.
  assert.equal(p.pollTimeout(), 1250);
  assert.equal(p.queueDelayUs(1000), 1000);
  assert.equal(p.pollTransmit(1249), undefined);
  assert.equal(p.pollTransmit(1250)?.[0], 1);
  assert.equal(p.stats.priorityEnqueued, 1);
});

Deno.test("Pacer: idle time earns at most the burst allowance; rate changes apply from now", () => {
  const p = new Pacer({ rateBps: 8e6 });
  assert.equal(p.burstBytes, MIN_BURST_BYTES);
  assert.equal(p.pollTimeout(), undefined);
  p.enqueue(new Uint8Array(1), 0);
  p.pollTransmit(0);
  for (let i = 0; i < 10; i++) p.enqueue(new Uint8Array(1200), 1_000_000);
  const t = drain(p, 1_000_000);
  const burst = t.filter((x) => x === 1_000_000).length;
  assert.ok(burst * 1200 <= MIN_BURST_BYTES + 1200, `burst of ${burst}`);
  p.setRate(16e6, t[t.length - 1]);
  assert.equal(p.rateBps, 16e6);
  assert.equal(new Pacer({ rateBps: 100e6 }).burstBytes, 12_500); // 1 ms at 100 Mbit/s
  assert.throws(() => new Pacer({ rateBps: 0 }), RangeError);
  assert.throws(() => p.setRate(NaN, 0), RangeError);
  assert.throws(() => new Pacer({ rateBps: 1e6, burstBytes: -1 }), RangeError);
});

Deno.test("Pacer: long-run rate never exceeds the configured rate plus one burst (property)", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 100_000, max: 200_000_000 }),
      fc.array(
        fc.record({
          at: fc.integer({ min: 0, max: 100_000 }),
          size: fc.integer({ min: 1, max: 1500 }),
        }),
        { minLength: 1, maxLength: 200 },
      ),
      (rate, arrivals) => {
        arrivals.sort((a, b) => a.at - b.at);
        const p = new Pacer({ rateBps: rate });
        const sent: { t: number; size: number }[] = [];
        let now = 0;
        let i = 0;
        for (let guard = 0; guard < 100_000; guard++) {
          while (i < arrivals.length && arrivals[i].at <= now) {
            p.enqueue(new Uint8Array(arrivals[i].size), now);
            i++;
          }
          for (let d; (d = p.pollTransmit(now)) !== undefined;) {
            sent.push({ t: now, size: d.length });
          }
          const next = Math.min(p.pollTimeout() ?? Infinity, arrivals[i]?.at ?? Infinity);
          if (next === Infinity) break;
          now = Math.max(now, next);
        }
        assert.equal(sent.length, arrivals.length);
        // Over any interval [a, b], bytes sent ≤ rate·(b − a) + burst + one packet.
        for (let a = 0; a < sent.length; a++) {
          let bytes = 0;
          for (let b = a; b < sent.length; b++) {
            bytes += sent[b].size;
            const allowed = (rate * (sent[b].t - sent[a].t)) / 8e6 + p.burstBytes + 1500;
            assert.ok(bytes <= allowed + 1e-6, `${bytes} > ${allowed}`);
          }
        }
      },
    ),
    { numRuns: 100 },
  );
});
