import assert from "node:assert/strict";
import fc from "fast-check";
import { FecScheme } from "../frames.ts";
import { fragmentFrame } from "../fragment.ts";
import { FecReceiver, protectFrame } from "./video.ts";

function frame(bytes: number, seed: number) {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 31 + seed) & 0xff;
  return { frameId: seed, captureTimeUs: 1000 + seed, keyframe: seed % 2 === 0, data };
}

Deno.test("video FEC: any m lost fragments of a group come back byte-identical, last one trimmed", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40_000 }),
      fc.constantFrom(FecScheme.ReedSolomon, FecScheme.Xor),
      fc.integer({ min: 1, max: 100 }),
      fc.integer({ min: 0, max: 2 ** 31 }),
      (bytes, scheme, seed, pick) => {
        const fragments = fragmentFrame(frame(bytes, seed), 1148);
        const parity = protectFrame(fragments, { parityRatio: 0.25, scheme, maxGroup: 16 });
        assert.ok(parity.length > 0);
        // Lose as many fragments of the first group as it has parity.
        const group = parity.filter((p) => p.groupFirstIndex === 0);
        const k = group[0].dataCount, m = group[0].parityCount;
        // Parity carries the frame's shape, so the losses may be every fragment of the frame.
        const lost = new Set<number>();
        for (let i = 0; lost.size < Math.min(m, k); i++) {
          lost.add((pick + i) % k);
        }
        const receiver = new FecReceiver();
        const rebuilt = [];
        for (const f of fragments) {
          if (!lost.has(f.fragmentIndex)) rebuilt.push(...receiver.onFragment(f));
        }
        for (const p of parity) rebuilt.push(...receiver.onParity(p));
        assert.deepEqual(new Set(rebuilt.map((r) => r.fragmentIndex)), lost);
        for (const r of rebuilt) {
          const original = fragments[r.fragmentIndex];
          assert.deepEqual(r.data, original.data);
          assert.equal(r.fragmentCount, original.fragmentCount);
          assert.equal(r.captureTimeUs, original.captureTimeUs);
          assert.equal(r.keyframe, original.keyframe);
        }
        assert.equal(receiver.recovered, lost.size);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("video FEC: a frame lost whole comes back from its parity alone, whatever arrives first", () => {
  for (const scheme of [FecScheme.ReedSolomon, FecScheme.Xor]) {
    // One fragment and one parity (a small P-frame of a still desktop), then a two-group
    // frame whose second group is lost whole.
    const small = fragmentFrame(frame(300, 7), 1148);
    const smallParity = protectFrame(small, { parityRatio: 0.2, scheme, maxGroup: 64 });
    assert.equal(smallParity.length, 1);
    const receiver = new FecReceiver();
    const rebuilt = receiver.onParity(smallParity[0]);
    assert.equal(rebuilt.length, 1);
    assert.deepEqual(rebuilt[0], small[0]);

    const big = fragmentFrame(frame(6 * 1148, 8), 1148);
    const bigParity = protectFrame(big, { parityRatio: 1, scheme, maxGroup: 3 });
    const out = [];
    // Second group's parity before the first group's fragments: the shape comes from parity.
    for (const p of bigParity.filter((p) => p.groupFirstIndex >= 3)) {
      out.push(...receiver.onParity(p));
    }
    for (const f of big.slice(0, 3)) out.push(...receiver.onFragment(f));
    assert.deepEqual(out.map((f) => f.fragmentIndex).sort(), [3, 4, 5]);
    for (const f of out) assert.deepEqual(f, big[f.fragmentIndex]);
  }
});

Deno.test("video FEC: more losses than parity rebuild nothing; ratio 0 sends no parity", () => {
  const fragments = fragmentFrame(frame(20 * 1148, 3), 1148);
  assert.deepEqual(
    protectFrame(fragments, { parityRatio: 0, scheme: FecScheme.ReedSolomon, maxGroup: 64 }),
    [],
  );
  const parity = protectFrame(fragments, {
    parityRatio: 0.1,
    scheme: FecScheme.ReedSolomon,
    maxGroup: 64,
  });
  assert.equal(parity.length, 2);
  const receiver = new FecReceiver();
  const rebuilt = [];
  for (const f of fragments.slice(3)) rebuilt.push(...receiver.onFragment(f));
  for (const p of parity) rebuilt.push(...receiver.onParity(p));
  assert.deepEqual(rebuilt, []);
  // A parity frame whose shape disagrees with its group is ignored.
  assert.deepEqual(receiver.onParity({ ...parity[0], parityCount: 5, parityIndex: 3 }), []);
});
