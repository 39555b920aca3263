import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeParity, invertMatrix, parityRow, reconstruct } from "./reed_solomon.ts";
import { encodeParity as xorParity } from "./xor.ts";
import { gfMul } from "./gf256.ts";

function shardsOf(k: number, seed: number, maxLen = 17): Uint8Array[] {
  const out: Uint8Array[] = [];
  let x = seed * 2654435761 >>> 0;
  for (let j = 0; j < k; j++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const len = 1 + (x >>> 8) % maxLen;
    const s = new Uint8Array(len);
    for (let i = 0; i < len; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      s[i] = x >>> 24;
    }
    out.push(s);
  }
  return out;
}

function padded(s: Uint8Array, len: number): Uint8Array {
  const p = new Uint8Array(len);
  p.set(s);
  return p;
}

/** Checks that `got` equals `data` with each shard zero-padded to `len` where it was rebuilt. */
function assertRecovered(got: Uint8Array[], data: Uint8Array[], len: number): void {
  assert.equal(got.length, data.length);
  for (let j = 0; j < data.length; j++) {
    assert.deepEqual(padded(got[j], len), padded(data[j], len), `shard ${j}`);
  }
}

Deno.test("rs: exhaustive, k <= 8, m <= 4: every erasure pattern of <= m shards recovers, more fails", () => {
  let patterns = 0;
  for (let k = 1; k <= 8; k++) {
    for (let m = 1; m <= 4; m++) {
      const data = shardsOf(k, k * 10 + m);
      const parity = encodeParity(data, m);
      const len = Math.max(...data.map((d) => d.length));
      assert.equal(parity.length, m);
      for (const p of parity) assert.equal(p.length, len);
      const all = [...data, ...parity];
      for (let mask = 0; mask < 1 << (k + m); mask++) {
        const shards = all.map((s, i) => (mask >> i) & 1 ? undefined : s);
        const lost = shards.filter((s) => s === undefined).length;
        const got = reconstruct(shards, k);
        if (lost > m) {
          assert.equal(got, undefined);
        } else {
          assert.ok(got, `k=${k} m=${m} mask=${mask}`);
          assertRecovered(got, data, len);
          for (let j = 0; j < k; j++) if (shards[j] !== undefined) assert.equal(got[j], data[j]);
        }
        patterns++;
      }
    }
  }
  assert.equal(patterns, 30 * 510); // Σ_k Σ_m 2^(k+m)
});

Deno.test("rs: random k <= 40, m <= 10, random lengths and erasures of <= m shards", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }).chain((k) =>
        fc.tuple(
          fc.array(fc.uint8Array({ maxLength: 64 }), { minLength: k, maxLength: k }),
          fc.integer({ min: 0, max: 10 }),
          fc.array(fc.nat(), { maxLength: 10 }),
        )
      ),
      ([data, m, picks]) => {
        const k = data.length;
        const parity = encodeParity(data, m);
        const len = Math.max(...data.map((d) => d.length));
        const shards: (Uint8Array | undefined)[] = [...data, ...parity];
        const pool = shards.map((_, i) => i);
        for (const pick of picks.slice(0, m)) {
          const [idx] = pool.splice(pick % pool.length, 1);
          shards[idx] = undefined;
        }
        const got = reconstruct(shards, k);
        assert.ok(got);
        assertRecovered(got, data, len);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("rs: fewer than k shards -> undefined", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 30 }),
      fc.integer({ min: 0, max: 8 }),
      fc.nat(),
      (k, m, seed) => {
        const data = shardsOf(k, seed);
        const all: (Uint8Array | undefined)[] = [...data, ...encodeParity(data, m)];
        let x = seed;
        const toDrop = m + 1;
        let dropped = 0;
        while (dropped < toDrop) {
          x = (Math.imul(x, 1103515245) + 12345) >>> 0;
          const i = x % all.length;
          if (all[i] !== undefined) {
            all[i] = undefined;
            dropped++;
          }
        }
        assert.equal(reconstruct(all, k), undefined);
      },
    ),
  );
});

Deno.test("rs: large groups, k + m = 255", () => {
  const k = 200, m = 55;
  const data = shardsOf(k, 7, 40);
  const parity = encodeParity(data, m);
  const shards: (Uint8Array | undefined)[] = [...data, ...parity];
  for (let i = 0; i < m; i++) shards[(i * 97) % 255] = undefined;
  const got = reconstruct(shards, k);
  assert.ok(got);
  assertRecovered(got, data, 40);
});

Deno.test("rs: parity 0 is the XOR parity; rows do not depend on m", () => {
  const data = shardsOf(9, 3);
  assert.deepEqual(encodeParity(data, 1)[0], xorParity(data)[0]);
  const p3 = encodeParity(data, 3);
  const p6 = encodeParity(data, 6);
  assert.deepEqual(p6.slice(0, 3), p3);
  for (let j = 0; j < 9; j++) assert.equal(parityRow(9, 0)[j], 1);
});

Deno.test("rs: Cauchy submatrices are invertible (k = 10, m = 4, all square submatrices of size 2)", () => {
  const k = 10, m = 4;
  for (let r0 = 0; r0 < m; r0++) {
    for (let r1 = r0 + 1; r1 < m; r1++) {
      for (let c0 = 0; c0 < k; c0++) {
        for (let c1 = c0 + 1; c1 < k; c1++) {
          const a = [
            Uint8Array.of(parityRow(k, r0)[c0], parityRow(k, r0)[c1]),
            Uint8Array.of(parityRow(k, r1)[c0], parityRow(k, r1)[c1]),
          ];
          const inv = invertMatrix(a);
          for (let i = 0; i < 2; i++) {
            for (let j = 0; j < 2; j++) {
              const v = gfMul(a[i][0], inv[0][j]) ^ gfMul(a[i][1], inv[1][j]);
              assert.equal(v, i === j ? 1 : 0);
            }
          }
        }
      }
    }
  }
  assert.throws(() => invertMatrix([Uint8Array.of(1, 1), Uint8Array.of(1, 1)]), Error);
});

Deno.test("rs: empty shards and m = 0", () => {
  assert.deepEqual(encodeParity([new Uint8Array(0), new Uint8Array(0)], 2), [
    new Uint8Array(0),
    new Uint8Array(0),
  ]);
  const data = shardsOf(3, 1);
  assert.deepEqual(encodeParity(data, 0), []);
  assert.deepEqual(reconstruct(data, 3), data);
  assert.equal(reconstruct([data[0], undefined, data[2]], 3), undefined);
});

Deno.test("rs: caller bugs are RangeErrors", () => {
  const d = shardsOf(4, 2);
  assert.throws(() => encodeParity([], 1), RangeError);
  assert.throws(() => encodeParity(d, -1), RangeError);
  assert.throws(() => encodeParity(d, 1.5), RangeError);
  assert.throws(() => encodeParity(d, 252), RangeError);
  assert.throws(
    () => encodeParity([new Uint8Array(1), [1] as unknown as Uint8Array], 1),
    RangeError,
  );
  assert.throws(() => encodeParity(shardsOf(256, 1), 0), RangeError);
  const p = encodeParity(d, 2);
  assert.throws(() => reconstruct([...d, ...p], 0), RangeError);
  assert.throws(() => reconstruct([...d], 5), RangeError);
  assert.throws(() => reconstruct(new Array(256).fill(undefined), 3), RangeError);
  assert.throws(() => reconstruct([...d, p[0], p[1].subarray(1)], 4), RangeError);
  assert.throws(
    () => reconstruct([new Uint8Array(100), undefined, d[2], d[3], ...p], 4),
    RangeError,
  );
  assert.throws(() => reconstruct([...d, "x" as unknown as Uint8Array, p[1]], 4), RangeError);
  assert.throws(() => parityRow(0, 0), RangeError);
  assert.throws(() => parityRow(200, 55), RangeError);
});

Deno.test("rs: inputs are not modified", () => {
  const data = shardsOf(6, 9);
  const copy = data.map((d) => d.slice());
  const parity = encodeParity(data, 3);
  const pcopy = parity.map((p) => p.slice());
  reconstruct([undefined, data[1], undefined, data[3], data[4], undefined, ...parity], 6);
  assert.deepEqual(data, copy);
  assert.deepEqual(parity, pcopy);
});
