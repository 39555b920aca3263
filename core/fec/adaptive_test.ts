import assert from "node:assert/strict";
import fc from "fast-check";
import { AdaptiveFecPolicy, residualByParity } from "./adaptive.ts";

function binomialTail(n: number, p: number, m: number): number {
  // P(X > m), X ~ Binomial(n, p)
  let ok = 0, c = 1;
  for (let l = 0; l <= m; l++) {
    ok += c * p ** l * (1 - p) ** (n - l);
    c = (c * (n - l)) / (l + 1);
  }
  return 1 - ok;
}

Deno.test("residualByParity: memoryless bursts give the binomial tail", () => {
  const k = 20, p = 0.05;
  const tail = residualByParity(k, 6, p, 1 / (1 - p));
  assert.equal(tail.length, 7);
  for (let m = 0; m <= 6; m++) {
    assert.ok(Math.abs(tail[m] - binomialTail(k + m, p, m)) < 1e-9, `m=${m}`);
  }
});

Deno.test("residualByParity: longer bursts need more parity at the same mean loss", () => {
  const random = residualByParity(35, 10, 0.05, 1 / 0.95);
  const bursty = residualByParity(35, 10, 0.05, 3);
  assert.ok(bursty[7] > random[7]);
  for (let m = 1; m <= 10; m++) assert.ok(random[m] <= random[m - 1] + 1e-15);
});

Deno.test("AdaptiveFecPolicy: parity follows measured loss and burstiness, capped", () => {
  const quiet = new AdaptiveFecPolicy();
  quiet.observe(new Array(20000).fill(false));
  assert.ok(quiet.lossRate < 0.001);
  const random = new AdaptiveFecPolicy();
  const bursty = new AdaptiveFecPolicy();
  const r: boolean[] = [], b: boolean[] = [];
  for (let i = 0; i < 20000; i++) {
    r.push(i % 20 === 0); // 5%, runs of 1
    b.push(i % 60 < 3); // 5%, runs of 3
  }
  random.observe(r);
  bursty.observe(b);
  assert.ok(Math.abs(random.lossRate - 0.05) < 0.01);
  assert.ok(Math.abs(bursty.meanBurst - 3) < 0.3, `burst ${bursty.meanBurst}`);
  assert.ok(random.meanBurst < 1.2);
  const k = 35;
  assert.ok(quiet.parityFor(k) < random.parityFor(k));
  assert.ok(random.parityFor(k) < bursty.parityFor(k));
  assert.ok(bursty.parityFor(k) <= Math.floor(0.5 * k));
  assert.equal(random.ratioFor(k), random.parityFor(k) / k);
  assert.equal(random.ratioFor(0), 0);
});

Deno.test("AdaptiveFecPolicy: with no measured loss, frames of a few datagrams go unprotected and large ones keep one parity", () => {
  const quiet = new AdaptiveFecPolicy();
  assert.equal(quiet.parityFor(1), 1, "before any report the initial 2% is assumed");
  quiet.observe(new Array(30000).fill(false));
  for (let k = 1; k <= 10; k++) assert.equal(quiet.parityFor(k), 0, `k=${k}`);
  assert.equal(quiet.parityFor(35), 1);
  // One loss in 500 is measured, not assumed away: a 2-datagram frame is protected again.
  const lossy = new AdaptiveFecPolicy();
  lossy.observe(Array.from({ length: 30000 }, (_, i) => i % 500 === 0));
  assert.equal(lossy.parityFor(2), 1);
});

Deno.test("AdaptiveFecPolicy: parity is in [0, cap] for any loss history (property)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.boolean(), { maxLength: 3000 }),
      fc.integer({ min: 1, max: 60 }),
      (lost, k) => {
        const p = new AdaptiveFecPolicy({ alpha: 1 / 50 });
        p.observe(lost);
        const m = p.parityFor(k);
        assert.ok(Number.isInteger(m) && m >= 0 && m <= Math.max(1, Math.floor(0.5 * k)));
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("AdaptiveFecPolicy: rejects bad configuration", () => {
  assert.throws(() => new AdaptiveFecPolicy({ alpha: 0 }), RangeError);
  assert.throws(() => new AdaptiveFecPolicy({ maxOverhead: -1 }), RangeError);
  assert.throws(() => new AdaptiveFecPolicy({ targetResidual: 1 }), RangeError);
});
