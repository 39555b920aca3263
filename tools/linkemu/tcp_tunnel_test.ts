/** The pure parts of tcp_tunnel.ts: tcp_bulk.ts's line parser and the goodput bins. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { goodputSeries, parseBulkLine } from "./tcp_tunnel.ts";

Deno.test("parseBulkLine: the lines tcp_bulk.ts prints", () => {
  assert.deepEqual(parseBulkLine('{"ev":"ready"}'), { ev: "ready" });
  assert.deepEqual(parseBulkLine('{"ev":"bytes","t":1.5,"total":3000}'), {
    ev: "bytes",
    t: 1.5,
    total: 3000,
  });
  assert.deepEqual(parseBulkLine('{"ev":"connected","connectMs":41.2,"congestion":"cubic"}'), {
    ev: "connected",
    connectMs: 41.2,
    congestion: "cubic",
  });
  assert.deepEqual(parseBulkLine('{"ev":"done","written":65536}'), { ev: "done", written: 65536 });
});

Deno.test("parseBulkLine: anything else is invalid, never a throw", () => {
  for (
    const l of [
      "",
      "null",
      "[]",
      '"ready"',
      '{"ev":"bytes","t":1}',
      '{"ev":"bytes","t":1,"total":-1}',
      '{"ev":"connected","connectMs":1}',
      '{"ev":"nope"}',
      "{",
    ]
  ) assert.equal(parseBulkLine(l).ev, "invalid", l);
  fc.assert(fc.property(fc.oneof(fc.string(), fc.json()), (l) => {
    const e = parseBulkLine(l);
    if (e.ev === "bytes") assert.ok(Number.isFinite(e.t) && e.total >= 0);
    if (e.ev === "invalid") assert.equal(e.line, l);
  }));
});

Deno.test("goodputSeries: constant rate gives that rate in every bin", () => {
  // 1 Mbit/s = 125 bytes per ms, sampled every 100 ms.
  const samples = Array.from({ length: 51 }, (_, i) => ({ t: 1000 + i * 100, total: i * 12_500 }));
  const s = goodputSeries(samples, 1000, 6000, 1000);
  assert.equal(s.length, 5);
  for (const b of s) assert.ok(Math.abs(b.bps - 1e6) < 1e-6, `${b.bps}`);
});

Deno.test("goodputSeries: bins sum to the bytes counted in the span (property)", () => {
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.integer({ min: 1, max: 500 }), fc.integer({ min: 0, max: 1e6 })), {
      minLength: 1,
      maxLength: 40,
    }),
    fc.integer({ min: 10, max: 2000 }),
    (steps, binMs) => {
      let t = 0, total = 0;
      const samples = steps.map(([dt, db]) => ({ t: t += dt, total: total += db }));
      const end = samples.at(-1)!.t;
      const bins = goodputSeries(samples, 0, end, binMs);
      assert.equal(bins.length, Math.floor(end / binMs + 1e-9));
      const bytes = bins.reduce((a, b) => a + b.bps * binMs / 8000, 0);
      const covered = bins.length * binMs;
      // The bins cover [0, covered]: the counter's rise over that span, interpolated.
      const upTo = covered > 0 ? goodputSeries(samples, 0, covered, covered)[0].bps : 0;
      assert.ok(Math.abs(bytes - upTo * covered / 8000) < 1e-3 * Math.max(1, bytes));
      for (const b of bins) assert.ok(b.bps >= 0);
    },
  ));
  assert.deepEqual(goodputSeries([], 0, 2000, 1000), [{ t: 0, bps: 0 }, { t: 1000, bps: 0 }]);
  assert.throws(() => goodputSeries([], 0, 2000, 0), RangeError);
});
