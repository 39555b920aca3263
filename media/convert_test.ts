import assert from "node:assert/strict";
import { NativeError } from "../ffi/errors.ts";
import { bgraToI420 } from "./convert.ts";

/** BT.709 limited range in floating point: the reference the fixed-point converter must match. */
function reference(r: number, g: number, b: number): [number, number, number] {
  const y = 16 + (219 / 255) * (0.2126 * r + 0.7152 * g + 0.0722 * b);
  const cb = 128 + (224 / 255) * ((b - (0.2126 * r + 0.7152 * g + 0.0722 * b)) / 1.8556);
  const cr = 128 + (224 / 255) * ((r - (0.2126 * r + 0.7152 * g + 0.0722 * b)) / 1.5748);
  return [y, cb, cr];
}

Deno.test("convert: every pixel within 1 of BT.709 limited range; chroma is the 2x2 mean", () => {
  // 520 rows: enough for the converter to split the work across two threads.
  const width = 64, height = 520;
  const bgra = new Uint8Array(width * height * 4);
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
  for (let i = 0; i < bgra.length; i++) bgra[i] = rand();
  // Include the extremes, where overflow would show.
  bgra.set([0, 0, 0, 0, 255, 255, 255, 0, 0, 0, 255, 0, 255, 0, 0, 0], 0);
  for (const threads of [1, 2]) {
    const { y, u, v } = bgraToI420(bgra, width, height, width * 4, threads);
    let worst = 0;
    for (let row = 0; row < height; row++) {
      for (let x = 0; x < width; x++) {
        const i = (row * width + x) * 4;
        const [ry] = reference(bgra[i + 2], bgra[i + 1], bgra[i]);
        worst = Math.max(worst, Math.abs(y[row * width + x] - ry));
      }
    }
    for (let cy = 0; cy < height / 2; cy++) {
      for (let cx = 0; cx < width / 2; cx++) {
        let r = 0, g = 0, b = 0;
        for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
          const i = ((2 * cy + dy) * width + 2 * cx + dx) * 4;
          b += bgra[i] / 4;
          g += bgra[i + 1] / 4;
          r += bgra[i + 2] / 4;
        }
        const [, rcb, rcr] = reference(r, g, b);
        worst = Math.max(worst, Math.abs(u[cy * (width / 2) + cx] - rcb));
        worst = Math.max(worst, Math.abs(v[cy * (width / 2) + cx] - rcr));
      }
    }
    assert.ok(worst <= 1, `threads ${threads}: worst error ${worst.toFixed(3)}`);
  }
});

Deno.test("convert: a padded stride is honoured; bad sizes are clear errors", () => {
  const width = 4, height = 2, stride = 32;
  const bgra = new Uint8Array(stride * height).fill(7);
  for (let row = 0; row < height; row++) bgra.fill(255, row * stride, row * stride + width * 4);
  const { y } = bgraToI420(bgra, width, height, stride);
  assert.deepEqual([...y], new Array(8).fill(235));
  assert.throws(() => bgraToI420(new Uint8Array(3 * 2 * 4), 3, 2), NativeError);
  assert.throws(() => bgraToI420(new Uint8Array(64), 4, 2, 8), NativeError);
  assert.throws(() => bgraToI420(new Uint8Array(8), 4, 2), RangeError);
});
