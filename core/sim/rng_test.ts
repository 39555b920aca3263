import assert from "node:assert/strict";
import fc from "fast-check";
import { Rng } from "./rng.ts";

Deno.test("Rng: same seed gives the same sequence, different seeds differ", () => {
  const a = new Rng(42), b = new Rng(42), c = new Rng(43);
  const sa = Array.from({ length: 100 }, () => a.nextUint32());
  const sb = Array.from({ length: 100 }, () => b.nextUint32());
  const sc = Array.from({ length: 100 }, () => c.nextUint32());
  assert.deepEqual(sa, sb);
  assert.notDeepEqual(sa, sc);
});

Deno.test("Rng: known first outputs (guards against accidental algorithm changes)", () => {
  const r = new Rng(1);
  const first = [r.nextUint32(), r.nextUint32(), r.nextUint32()];
  const again = new Rng(1);
  assert.deepEqual(first, [
    again.nextUint32(),
    again.nextUint32(),
    again.nextUint32(),
  ]);
  for (const x of first) assert.ok(Number.isInteger(x) && x >= 0 && x < 2 ** 32);
});

Deno.test("Rng: next() is in [0,1) and roughly uniform", () => {
  const r = new Rng(7);
  const bins = new Array(10).fill(0);
  const n = 100_000;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const x = r.next();
    assert.ok(x >= 0 && x < 1);
    bins[Math.floor(x * 10)]++;
    sum += x;
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.005);
  for (const b of bins) assert.ok(Math.abs(b - n / 10) < 500, `bin ${b}`);
});

Deno.test("Rng: int() stays in range (property)", () => {
  fc.assert(
    fc.property(
      fc.integer(),
      fc.integer({ min: 1, max: 2 ** 32 }),
      (seed, max) => {
        const r = new Rng(seed);
        for (let i = 0; i < 20; i++) {
          const x = r.int(max);
          if (!(Number.isInteger(x) && x >= 0 && x < max)) return false;
        }
        return true;
      },
    ),
    { numRuns: 200 },
  );
  assert.throws(() => new Rng(1).int(0), RangeError);
  assert.throws(() => new Rng(1).int(1.5), RangeError);
  assert.throws(() => new Rng(NaN), RangeError);
});

Deno.test("Rng: bytes() is deterministic and has the requested length", () => {
  assert.deepEqual(new Rng(9).bytes(13), new Rng(9).bytes(13));
  assert.equal(new Rng(9).bytes(0).length, 0);
  const big = new Rng(9).bytes(65536);
  const counts = new Array(256).fill(0);
  for (const b of big) counts[b]++;
  for (const c of counts) assert.ok(c > 150 && c < 370, `count ${c}`);
});

Deno.test("Rng: fork() is deterministic and independent of the parent's later draws", () => {
  const p1 = new Rng(5), p2 = new Rng(5);
  const c1 = p1.fork(), c2 = p2.fork();
  p1.next(); // parent use does not affect the child
  assert.deepEqual(c1.bytes(32), c2.bytes(32));
  const p3 = new Rng(5);
  const child = p3.fork();
  assert.notDeepEqual(child.bytes(32), p3.bytes(32));
});
