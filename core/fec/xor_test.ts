import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeParity, reconstruct } from "./xor.ts";

function padded(s: Uint8Array, len: number): Uint8Array {
  const p = new Uint8Array(len);
  p.set(s);
  return p;
}

Deno.test("xor: any single loss rebuilds, random groups and lengths", () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 80 }), { minLength: 1, maxLength: 40 }),
      fc.nat(),
      (data, pick) => {
        const k = data.length;
        const [parity] = encodeParity(data);
        const len = Math.max(...data.map((d) => d.length));
        assert.equal(parity.length, len);
        const shards: (Uint8Array | undefined)[] = [...data, parity];
        const lost = pick % (k + 1);
        shards[lost] = undefined;
        const got = reconstruct(shards, k);
        assert.ok(got);
        for (let j = 0; j < k; j++) assert.deepEqual(padded(got[j], len), padded(data[j], len));
        assert.deepEqual(reconstruct([...data, parity], k), data);
      },
    ),
  );
});

Deno.test("xor: exhaustive small groups, every single loss and every double loss", () => {
  for (let k = 1; k <= 8; k++) {
    const data = Array.from(
      { length: k },
      (_, j) => Uint8Array.from({ length: j + 1 }, (_, i) => j * 31 + i),
    );
    const all = [...data, ...encodeParity(data, 1)];
    for (let a = 0; a <= k; a++) {
      const one = all.map((s, i) => (i === a ? undefined : s));
      assert.ok(reconstruct(one, k));
      for (let b = a + 1; b <= k; b++) {
        const two = one.map((s, i) => (i === b ? undefined : s));
        assert.equal(reconstruct(two, k), undefined);
      }
    }
  }
});

Deno.test("xor: caller bugs are RangeErrors", () => {
  const d = [new Uint8Array(3), new Uint8Array(2)];
  assert.throws(() => encodeParity([]), RangeError);
  assert.throws(() => encodeParity(d, 2), RangeError);
  assert.throws(() => reconstruct([...d], 2), RangeError);
  assert.throws(() => reconstruct([...d, new Uint8Array(3), new Uint8Array(3)], 2), RangeError);
  assert.throws(
    () => reconstruct([new Uint8Array(9), undefined, new Uint8Array(3)], 2),
    RangeError,
  );
  assert.throws(
    () => reconstruct([1 as unknown as Uint8Array, undefined, new Uint8Array(3)], 2),
    RangeError,
  );
});
