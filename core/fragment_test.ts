import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeFrames, encodeFrames, type VideoFragmentFrame } from "./frames.ts";
import {
  compareFrameIds,
  type EncodedFrame,
  fragmentFrame,
  frameIdBefore,
  Reassembler,
} from "./fragment.ts";

function frameOf(id: number, size: number, keyframe = false): EncodedFrame {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + id) & 0xff;
  return { frameId: id, captureTimeUs: 1000 * id, keyframe, data };
}

/** Sends fragments through the codec into one reused buffer, as a receive loop would. */
function viaWire(fragment: VideoFragmentFrame, scratch: Uint8Array): VideoFragmentFrame {
  const enc = encodeFrames([fragment]);
  scratch.set(enc);
  const r = decodeFrames(scratch.subarray(0, enc.length));
  if (!r.ok || r.value[0].type !== "video") throw new Error("codec failed");
  return r.value[0];
}

Deno.test("fragmentFrame: sizes, views and limits", () => {
  const f = frameOf(7, 2500, true);
  const frags = fragmentFrame(f, 1000);
  assert.equal(frags.length, 3);
  assert.deepEqual(frags.map((x) => x.data.length), [1000, 1000, 500]);
  for (const [i, x] of frags.entries()) {
    assert.equal(x.type, "video");
    assert.equal(x.frameId, 7);
    assert.equal(x.fragmentIndex, i);
    assert.equal(x.fragmentCount, 3);
    assert.equal(x.keyframe, true);
    assert.equal(x.captureTimeUs, 7000);
    assert.equal(x.data.buffer, f.data.buffer); // views, no copy
  }
  assert.equal(fragmentFrame(frameOf(1, 2000), 1000).length, 2);
  const empty = fragmentFrame(frameOf(1, 0), 1000);
  assert.equal(empty.length, 1);
  assert.equal(empty[0].data.length, 0);
  assert.equal(fragmentFrame(frameOf(1, 65535), 1).length, 65535);
  assert.throws(() => fragmentFrame(frameOf(1, 65536), 1), RangeError);
  assert.throws(() => fragmentFrame(frameOf(1, 10), 0), RangeError);
  assert.throws(() => fragmentFrame(frameOf(1, 10), 65536), RangeError);
  assert.throws(() => fragmentFrame({ ...frameOf(1, 10), frameId: -1 }, 5), RangeError);
  assert.throws(() => fragmentFrame({ ...frameOf(1, 10), captureTimeUs: 2 ** 53 }, 5), RangeError);
});

Deno.test("reassembly: any permutation with duplicates yields the frame once, byte-identical", () => {
  const scenario = fc.record({
    size: fc.oneof(fc.nat({ max: 50 }), fc.nat({ max: 20_000 })),
    maxPayload: fc.integer({ min: 1, max: 1500 }),
    keyframe: fc.boolean(),
    frameId: fc.nat({ max: 0xffffffff }),
  }).chain((s) => {
    const count = Math.max(1, Math.ceil(s.size / s.maxPayload));
    return fc.record({
      s: fc.constant(s),
      order: fc.shuffledSubarray([...Array(count).keys()], { minLength: count, maxLength: count }),
      dups: fc.array(fc.tuple(fc.nat({ max: count - 1 }), fc.nat({ max: 2 * count })), {
        maxLength: 20,
      }),
    });
  });
  fc.assert(
    fc.property(scenario, ({ s, order, dups }) => {
      const frame = { ...frameOf(0, s.size, s.keyframe), frameId: s.frameId };
      const fragments = fragmentFrame(frame, s.maxPayload);
      const sequence = [...order];
      for (const [index, at] of dups) sequence.splice(at % (sequence.length + 1), 0, index);
      const r = new Reassembler();
      const scratch = new Uint8Array(2000);
      const delivered: EncodedFrame[] = [];
      let t = 0;
      for (const index of sequence) {
        const out = r.push(viaWire(fragments[index], scratch), t++ / 100);
        scratch.fill(0xee); // the caller reuses its receive buffer
        if (out !== undefined) delivered.push({ ...out, data: out.data.slice() });
      }
      assert.equal(delivered.length, 1);
      assert.equal(delivered[0].frameId, frame.frameId);
      assert.equal(delivered[0].keyframe, frame.keyframe);
      assert.equal(delivered[0].captureTimeUs, frame.captureTimeUs);
      assert.deepEqual(delivered[0].data, frame.data);
      const st = r.stats;
      assert.equal(st.completed, 1);
      assert.equal(st.duplicates + st.late, dups.length);
      assert.equal(st.inconsistent, 0);
      assert.deepEqual(r.expire(1e9), []);
      assert.equal(r.nextDeadline(), undefined);
    }),
    { numRuns: 400 },
  );
});

Deno.test("reassembly: interleaved frames each complete once", () => {
  fc.assert(
    fc.property(
      fc.array(fc.nat({ max: 5000 }), { minLength: 1, maxLength: 8 }),
      fc.nat({ max: 0xffffffff }),
      fc.infiniteStream(fc.nat()),
      (sizes, firstId, rand) => {
        const frames = sizes.map((size, i) => ({
          ...frameOf(i, size),
          frameId: (firstId + i) >>> 0,
        }));
        const all = frames.flatMap((f) => fragmentFrame(f, 700));
        // Fisher–Yates with fast-check's randomness
        const it = rand[Symbol.iterator]();
        for (let i = all.length - 1; i > 0; i--) {
          const j = it.next().value! % (i + 1);
          [all[i], all[j]] = [all[j], all[i]];
        }
        const r = new Reassembler({ maxPendingFrames: 16 });
        const got = new Map<number, Uint8Array>();
        for (const f of all) {
          const out = r.push(f, 0);
          if (out) {
            assert.ok(!got.has(out.frameId));
            got.set(out.frameId, out.data);
          }
        }
        assert.equal(got.size, frames.length);
        for (const f of frames) assert.deepEqual(got.get(f.frameId), f.data);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("reassembly: missing fragment is given up after the deadline, reported once", () => {
  const r = new Reassembler({ deadlineMs: 50 });
  const frags = fragmentFrame(frameOf(3, 3000), 1000);
  assert.equal(r.nextDeadline(), undefined);
  assert.equal(r.push(frags[0], 10), undefined);
  assert.equal(r.push(frags[2], 20), undefined);
  assert.equal(r.nextDeadline(), 60);
  assert.deepEqual(r.expire(59), []);
  assert.equal(r.pendingFrames, 1);
  assert.deepEqual(r.expire(60), [3]);
  assert.deepEqual(r.expire(61), []);
  assert.equal(r.nextDeadline(), undefined);
  // The missing fragment arrives late: no delivery, counted as late.
  assert.equal(r.push(frags[1], 70), undefined);
  assert.equal(r.push(frags[0], 71), undefined);
  assert.deepEqual(r.expire(1000), []);
  assert.deepEqual(r.stats, {
    completed: 0,
    duplicates: 0,
    expired: 1,
    late: 2,
    inconsistent: 0,
    oversized: 0,
  });
});

Deno.test("reassembly: late fragments of a completed frame are not delivered again", () => {
  const r = new Reassembler();
  const frags = fragmentFrame(frameOf(9, 1500), 1000);
  assert.equal(r.push(frags[1], 0), undefined);
  assert.ok(r.push(frags[0], 1));
  assert.equal(r.push(frags[0], 2), undefined);
  assert.equal(r.push(frags[1], 3), undefined);
  const single = fragmentFrame(frameOf(10, 10), 1000);
  assert.ok(r.push(single[0], 4));
  assert.equal(r.push(single[0], 5), undefined);
  assert.equal(r.stats.late, 3);
  assert.equal(r.stats.completed, 2);
  // Memory is bounded, but ids far behind the newest frame are still recognized as late.
  const small = new Reassembler({ rememberFrames: 4 });
  for (let id = 100; id < 110; id++) assert.ok(small.push(fragmentFrame(frameOf(id, 5), 10)[0], 0));
  assert.equal(small.push(fragmentFrame(frameOf(100, 5), 10)[0], 0), undefined);
  assert.equal(small.stats.late, 1);
  // Serial-number arithmetic: ids wrap around 2^32.
  const wrap = new Reassembler({ rememberFrames: 4 });
  for (const id of [0xfffffffe, 0xffffffff, 0, 1, 2, 3, 4]) {
    assert.ok(wrap.push(fragmentFrame({ ...frameOf(0, 5), frameId: id }, 10)[0], 0));
  }
  assert.equal(
    wrap.push(fragmentFrame({ ...frameOf(0, 5), frameId: 0xffffffff }, 10)[0], 0),
    undefined,
  );
  assert.equal(wrap.stats.late, 1);
});

Deno.test("reassembly: inconsistent fragments are counted and dropped", () => {
  const r = new Reassembler();
  const frags = fragmentFrame(frameOf(1, 2500), 1000);
  assert.equal(r.push(frags[0], 0), undefined);
  // Same frame, different fragment count.
  assert.equal(r.push({ ...frags[1], fragmentCount: 4 }, 0), undefined);
  // Non-last fragment of another size.
  assert.equal(r.push({ ...frags[1], data: frags[1].data.subarray(0, 999) }, 0), undefined);
  // Last fragment larger than the others.
  assert.equal(r.push({ ...frags[2], data: new Uint8Array(1001) }, 0), undefined);
  // Disagreeing keyframe flag or timestamp.
  assert.equal(r.push({ ...frags[1], keyframe: true }, 0), undefined);
  assert.equal(r.push({ ...frags[1], captureTimeUs: 1 }, 0), undefined);
  // Index out of range for a new frame, and an empty non-last fragment.
  assert.equal(r.push({ ...frags[0], frameId: 2, fragmentIndex: 3 }, 0), undefined);
  assert.equal(r.push({ ...frags[0], frameId: 2, data: new Uint8Array(0) }, 0), undefined);
  assert.equal(r.stats.inconsistent, 7);
  assert.equal(r.pendingFrames, 1);
  // The genuine fragments still complete the frame.
  assert.equal(r.push(frags[2], 0), undefined);
  const out = r.push(frags[1], 0);
  assert.ok(out);
  assert.deepEqual(out.data, frameOf(1, 2500).data);
  // Last fragment first, then a non-last fragment smaller than it.
  const r2 = new Reassembler();
  const f2 = fragmentFrame(frameOf(5, 1900), 1000);
  assert.equal(r2.push(f2[1], 0), undefined); // 900 bytes
  assert.equal(r2.push({ ...f2[0], data: new Uint8Array(800) }, 0), undefined);
  assert.equal(r2.stats.inconsistent, 1);
  assert.ok(r2.push(f2[0], 0));
});

Deno.test("reassembly: the oldest pending frame is evicted beyond maxPendingFrames", () => {
  const r = new Reassembler({ maxPendingFrames: 2, deadlineMs: 100 });
  const a = fragmentFrame(frameOf(1, 20), 10);
  const b = fragmentFrame(frameOf(2, 20), 10);
  const c = fragmentFrame(frameOf(3, 20), 10);
  r.push(a[0], 0);
  r.push(b[0], 1);
  r.push(c[0], 2); // evicts frame 1
  assert.equal(r.pendingFrames, 2);
  assert.equal(r.nextDeadline(), 2); // the eviction awaits reporting
  assert.deepEqual(r.expire(3), [1]);
  assert.equal(r.nextDeadline(), 101);
  assert.equal(r.push(a[1], 4), undefined); // late
  assert.ok(r.push(b[1], 5));
  assert.deepEqual(r.stats, {
    completed: 1,
    duplicates: 0,
    expired: 1,
    late: 1,
    inconsistent: 0,
    oversized: 0,
  });
  assert.deepEqual(r.expire(102), [3]);
});

Deno.test("reassembly: frames above maxFrameBytes are given up at once", () => {
  const r = new Reassembler({ maxFrameBytes: 2500 });
  const big = fragmentFrame(frameOf(1, 3000), 1000);
  assert.equal(r.push(big[0], 0), undefined); // announces ≥ 2001 bytes: fine so far
  assert.equal(r.push(big[2], 0), undefined); // now exactly 3000: too big
  assert.equal(r.push(big[1], 0), undefined); // late
  assert.deepEqual(r.expire(0), [1]);
  const lastFirst = fragmentFrame(frameOf(2, 4000), 1000);
  assert.equal(r.push(lastFirst[3], 0), undefined); // at least 4 × 1000
  const single = fragmentFrame(frameOf(3, 2501), 4000);
  assert.equal(r.push(single[0], 0), undefined);
  assert.deepEqual(r.expire(0), [2, 3]);
  assert.equal(r.stats.oversized, 3);
  assert.ok(r.push(fragmentFrame(frameOf(4, 2500), 1000)[2], 0) === undefined);
  assert.equal(r.stats.oversized, 3);
});

Deno.test("reassembly: any frame missing a fragment is never delivered and expires exactly once", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 40 }),
      fc.nat(),
      fc.integer({ min: 1, max: 200 }),
      (count, missingSeed, deadlineMs) => {
        const frags = fragmentFrame(frameOf(42, count * 10), 10);
        const missing = missingSeed % count;
        const r = new Reassembler({ deadlineMs });
        for (const f of frags.toReversed()) {
          if (f.fragmentIndex !== missing) assert.equal(r.push(f, 5), undefined);
        }
        assert.equal(r.nextDeadline(), 5 + deadlineMs);
        assert.deepEqual(r.expire(4 + deadlineMs), []);
        assert.deepEqual(r.expire(5 + deadlineMs), [42]);
        assert.equal(r.push(frags[missing], 6 + deadlineMs), undefined);
        assert.deepEqual(r.expire(1e9), []);
        assert.equal(r.stats.expired, 1);
        assert.equal(r.stats.late, 1);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("frame ids: serial-number order across the 2^32 wrap", () => {
  assert.equal(frameIdBefore(1, 2), true);
  assert.equal(frameIdBefore(2, 1), false);
  assert.equal(frameIdBefore(5, 5), false);
  assert.equal(frameIdBefore(0xffffffff, 0), true);
  assert.deepEqual([3, 0xfffffffe, 1, 0xffffffff].sort(compareFrameIds), [
    0xfffffffe,
    0xffffffff,
    1,
    3,
  ]);
});
