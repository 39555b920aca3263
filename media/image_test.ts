import assert from "node:assert/strict";
import { meanSquaredError, packBgra, psnr } from "./image.ts";

Deno.test("psnr over B, G, R ignores the X byte and honours strides", () => {
  const a = new Uint8Array([10, 20, 30, 0, 40, 50, 60, 0]);
  const b = new Uint8Array([10, 20, 30, 255, 40, 50, 60, 7]);
  assert.equal(psnr({ width: 2, height: 1, data: a }, { width: 2, height: 1, data: b }), Infinity);
  const c = new Uint8Array([13, 20, 30, 0, 40, 50, 60, 0]); // one error of 3 over 6 samples
  assert.equal(
    meanSquaredError({ width: 2, height: 1, data: a }, { width: 2, height: 1, data: c }),
    1.5,
  );
  assert.ok(
    Math.abs(psnr({ width: 2, height: 1, data: a }, { width: 2, height: 1, data: c }) - 46.37) <
      0.01,
  );
  const padded = new Uint8Array([10, 20, 30, 0, 99, 99, 99, 99, 40, 50, 60, 0, 99, 99, 99, 99]);
  const tight = new Uint8Array([10, 20, 30, 0, 40, 50, 60, 0]);
  const img = { width: 1, height: 2, data: padded, stride: 8 };
  assert.equal(psnr(img, { width: 1, height: 2, data: tight }), Infinity);
  assert.deepEqual(packBgra(img), tight);
});

Deno.test("psnr rejects images of different sizes or short buffers", () => {
  const a = { width: 2, height: 1, data: new Uint8Array(8) };
  assert.throws(() => psnr(a, { width: 1, height: 2, data: new Uint8Array(8) }), RangeError);
  assert.throws(() => psnr(a, { width: 2, height: 1, data: new Uint8Array(4) }), RangeError);
});
