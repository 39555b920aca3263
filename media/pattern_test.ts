import assert from "node:assert/strict";
import fc from "fast-check";
import { PatternGenerator, readTimeCode, writeTimeCode } from "./pattern.ts";

/** Nearest-neighbour downscale of the luma plane (what a scaled-down stream looks like). */
function downscale(src: Uint8Array, w: number, h: number, nw: number, nh: number): Uint8Array {
  const out = new Uint8Array(nw * nh * 3 / 2).fill(128);
  for (let y = 0; y < nh; y++) {
    for (let x = 0; x < nw; x++) {
      out[y * nw + x] = src[Math.floor(y * h / nh) * w + Math.floor(x * w / nw)];
    }
  }
  return out;
}

Deno.test("time code: round trip at 1280x720 through the pattern generator", () => {
  const g = new PatternGenerator({ width: 1280, height: 720 });
  for (const [n, seq, t] of [[0, 0, 0], [7, 123456, 98765.4], [1000, 0xffffff, 0xfffffffe]]) {
    const f = g.frame(n, seq, t);
    assert.deepEqual(readTimeCode(f, 1280, 720), { seq, sendMs: Math.floor(t) >>> 0 });
  }
});

Deno.test("time code: survives noise of +-60 luma steps and a scaled-down picture", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffffff }),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 1, max: 1 << 30 }),
      fc.constantFrom([1280, 720], [640, 360], [320, 180], [1920, 1080]),
      (seq, t, seed, [nw, nh]) => {
        const w = 1280, h = 720;
        const f = new Uint8Array(w * h * 3 / 2).fill(128);
        writeTimeCode(f, w, h, seq, t);
        let s = seed;
        for (let i = 0; i < w * h; i++) {
          s = (Math.imul(s, 1103515245) + 12345) >>> 0;
          f[i] = Math.max(0, Math.min(255, f[i] + ((s >>> 16) % 121) - 60));
        }
        const d = nw === w ? f : downscale(f, w, h, nw, nh);
        assert.deepEqual(readTimeCode(d, nw, nh), { seq, sendMs: t });
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("time code: a picture without a code is rejected by the CRC", () => {
  const g = new PatternGenerator({ width: 640, height: 360, seed: 3 });
  const f = g.frame(5, 1, 1).slice();
  // Wipe the code band with texture from lower down.
  f.copyWithin(0, 640 * 200, 640 * 200 + 640 * 100);
  let accepted = 0;
  for (let k = 0; k < 50; k++) {
    const r = new Uint8Array(640 * 360 * 3 / 2);
    crypto.getRandomValues(r.subarray(0, 65536));
    for (let i = 65536; i < r.length; i += 65536) r.copyWithin(i, 0, Math.min(65536, r.length - i));
    if (readTimeCode(r, 640, 360)) accepted++;
  }
  assert.equal(readTimeCode(f, 640, 360), undefined);
  assert.ok(accepted <= 2, `random pictures accepted ${accepted}/50`);
});

Deno.test("time code: too small a picture is a RangeError on write and undefined on read", () => {
  assert.throws(() => writeTimeCode(new Uint8Array(96), 8, 8, 1, 1), RangeError);
  assert.equal(readTimeCode(new Uint8Array(96), 8, 8), undefined);
});

Deno.test("pattern: deterministic per seed, moving, and fresh bands differ between frames", () => {
  const a = new PatternGenerator({ width: 320, height: 180, seed: 9 });
  const b = new PatternGenerator({ width: 320, height: 180, seed: 9 });
  const fa = a.frame(3, 3, 50).slice();
  assert.deepEqual(fa, b.frame(3, 3, 50));
  const next = a.frame(4, 4, 66).slice();
  let diff = 0;
  for (let i = 320 * 40; i < 320 * 180; i++) if (fa[i] !== next[i]) diff++;
  assert.ok(diff > 320 * 140 * 0.5, `only ${diff} pixels changed`);
  assert.throws(() => new PatternGenerator({ width: 321, height: 180 }), RangeError);
  assert.throws(() => new PatternGenerator({ width: 320, height: 180, freshShare: 2 }), RangeError);
});
