import assert from "node:assert/strict";
import { readTimeCode } from "./pattern.ts";
import { SyntheticCapturer } from "./synthetic_capture.ts";

/** One BGRA channel (`offset` 0 = B) as a luma plane. */
function channel(bgra: Uint8Array, width: number, height: number, offset: number): Uint8Array {
  const out = new Uint8Array(width * height);
  for (let i = 0; i < out.length; i++) out[i] = bgra[i * 4 + offset];
  return out;
}

Deno.test("synthetic capture: grey BGRA, opaque, stamped with frame number and capture time", async () => {
  let now = 5_000_000;
  const cap = new SyntheticCapturer({ width: 320, height: 180, seed: 3 }, () => now);
  for (let n = 0; n < 3; n++) {
    now += 16_667;
    const f = await cap.capture();
    assert.equal(f.width, 320);
    assert.equal(f.height, 180);
    assert.equal(f.stride, 320 * 4);
    assert.equal(f.captureTimeUs, now);
    for (let i = 0; i < f.data.length; i += 4) {
      assert.ok(f.data[i] === f.data[i + 1] && f.data[i] === f.data[i + 2], `grey at ${i / 4}`);
      assert.equal(f.data[i + 3], 255);
    }
    for (const offset of [0, 1, 2]) {
      assert.deepEqual(readTimeCode(channel(f.data, 320, 180, offset), 320, 180), {
        seq: n,
        sendMs: Math.floor(now / 1000),
      });
    }
  }
  assert.equal(cap.framesCaptured, 3);
  cap.close();
  assert.ok(cap.closed);
  await assert.rejects(cap.capture());
});

Deno.test("synthetic capture: the picture moves between frames and a bad size is refused", async () => {
  const cap = new SyntheticCapturer({ width: 256, height: 144 });
  const a = (await cap.capture()).data.slice();
  const b = (await cap.capture()).data;
  assert.notDeepEqual(a.subarray(256 * 4 * 60), b.subarray(256 * 4 * 60));
  cap.close();
  assert.throws(() => new SyntheticCapturer({ width: 255, height: 144 }), RangeError);
  assert.throws(() => new SyntheticCapturer({ width: 32, height: 16 }), RangeError);
});
