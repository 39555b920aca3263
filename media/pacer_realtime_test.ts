import assert from "node:assert/strict";
import { captureRate, DEFAULT_CAPTURE_FPS, pacedCapture } from "./pacer.ts";
import type { CapturedFrame, Capturer } from "./types.ts";
import { startXvfb } from "../tools/display/xvfb.ts";
import { X11Capturer } from "./linux/capture_x11.ts";

/** A capturer on a virtual clock: each capture takes `costMs[i]`. */
function fakeCapturer(
  clock: { t: number },
  costMs: (i: number) => number,
  rate?: number,
): Capturer {
  let i = 0;
  return {
    width: 2,
    height: 2,
    capture(): Promise<CapturedFrame> {
      const at = clock.t;
      clock.t += costMs(i++);
      return Promise.resolve({
        width: 2,
        height: 2,
        stride: 8,
        data: new Uint8Array(16),
        captureTimeUs: at * 1000,
      });
    },
    refreshRate: rate === undefined ? undefined : () => rate,
    close() {},
  };
}

async function run(capturer: Capturer, clock: { t: number }, frames: number, fps?: number) {
  const times: number[] = [];
  let skipped = 0;
  for await (
    const frame of pacedCapture(capturer, {
      fps,
      now: () => clock.t,
      sleep: (ms) => {
        clock.t += ms;
        return Promise.resolve();
      },
      onSkipped: (n) => skipped += n,
    })
  ) {
    times.push(frame.captureTimeUs / 1000);
    if (times.length === frames) break;
  }
  return { times, skipped };
}

Deno.test("pacer: frames are taken on an even grid at the requested rate", async () => {
  const clock = { t: 1000 };
  const { times, skipped } = await run(fakeCapturer(clock, () => 2), clock, 10, 50);
  assert.deepEqual(times.map((t) => t - 1000), [0, 20, 40, 60, 80, 100, 120, 140, 160, 180]);
  assert.equal(skipped, 0);
});

Deno.test("pacer: a late capture skips slots instead of bursting", async () => {
  const clock = { t: 0 };
  // The third capture takes 50 ms at 100 fps (20 -> 70): slots 3..6 are skipped and slot 7,
  // due exactly then, is taken at once; then the grid resumes.
  const { times, skipped } = await run(
    fakeCapturer(clock, (i) => (i === 2 ? 50 : 1)),
    clock,
    6,
    100,
  );
  assert.deepEqual(times, [0, 10, 20, 70, 80, 90]);
  assert.equal(skipped, 4);
});

Deno.test("pacer: the display's rate is the default, then 60; bad rates are refused", () => {
  const clock = { t: 0 };
  assert.equal(captureRate(fakeCapturer(clock, () => 0, 144)), 144);
  assert.equal(captureRate(fakeCapturer(clock, () => 0)), DEFAULT_CAPTURE_FPS);
  assert.equal(captureRate(fakeCapturer(clock, () => 0, 144), 30), 30);
  assert.throws(() => captureRate(fakeCapturer(clock, () => 0), 0), RangeError);
});

Deno.test("pacer: a real X11 capture at 30 fps for one second", async () => {
  const x = await startXvfb(640, 360);
  const capturer = X11Capturer.open({ display: x.display });
  try {
    // Xvfb reports no refresh rate through XRandR; a real monitor would.
    const rate = capturer.refreshRate();
    assert.ok(rate === undefined || rate > 0);
    const controller = new AbortController();
    const stamps: number[] = [];
    setTimeout(() => controller.abort(), 1_000);
    for await (const frame of pacedCapture(capturer, { fps: 30, signal: controller.signal })) {
      stamps.push(frame.captureTimeUs);
    }
    assert.ok(stamps.length >= 27 && stamps.length <= 31, `${stamps.length} frames`);
    const gaps = stamps.slice(1).map((t, i) => (t - stamps[i]) / 1000);
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    assert.ok(Math.abs(mean - 1000 / 30) < 3, `mean gap ${mean.toFixed(2)} ms`);
  } finally {
    capturer.close();
    await x.stop();
  }
});
