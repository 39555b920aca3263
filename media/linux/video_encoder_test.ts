import assert from "node:assert/strict";
import { NativeError, NativeStatus } from "../../ffi/errors.ts";
import { startXvfb } from "../../tools/display/xvfb.ts";
import { XProbe } from "../../tools/display/xprobe.ts";
import { codecConfigFromAnnexB, isIdrAccessUnit } from "../h264.ts";
import { psnr } from "../image.ts";
import type { CapturedFrame } from "../types.ts";
import { X11Capturer } from "./capture_x11.ts";
import { FfmpegVideoDecoder } from "./video_decoder.ts";
import { FfmpegVideoEncoder } from "./video_encoder.ts";
import { SyntheticCapturer } from "../synthetic_capture.ts";

const W = 1280;
const H = 720;

/** Captures `count` frames of the moving xprobe scene (copies), ~one per scene frame. */
async function captureScene(count: number): Promise<CapturedFrame[]> {
  const xvfb = await startXvfb(W, H);
  const probe = await XProbe.start(xvfb.display, { pattern: true, fps: 60 });
  const capturer = X11Capturer.open({ display: xvfb.display });
  try {
    const frames: CapturedFrame[] = [];
    for (let i = 0; i < count; i++) {
      const f = await capturer.capture();
      frames.push({ ...f, data: f.data.slice() });
      await new Promise((r) => setTimeout(r, 16));
    }
    return frames;
  } finally {
    capturer.close();
    await probe.stop();
    await xvfb.stop();
  }
}

/** Synthetic frames: the scene with fresh noise (±16) each frame, so every rate is a challenge. */
function noisyFrames(base: CapturedFrame[], count: number): CapturedFrame[] {
  let seed = 0x9e3779b9;
  const frames: CapturedFrame[] = [];
  for (let k = 0; k < count; k++) {
    const src = base[k % base.length];
    const data = src.data.slice();
    for (let i = 0; i < data.length; i += 4) {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      const n = ((seed >>> 0) % 33) - 16;
      data[i] = Math.max(0, Math.min(255, data[i] + n));
      data[i + 1] = Math.max(0, Math.min(255, data[i + 1] + n));
      data[i + 2] = Math.max(0, Math.min(255, data[i + 2] + n));
    }
    frames.push({ ...src, data });
  }
  return frames;
}

const scene = captureScene(30);

Deno.test("auto picks libx264 here; h264_vaapi fails with a clear Codec error", () => {
  const encoder = FfmpegVideoEncoder.open({
    width: 320,
    height: 240,
    fps: 30,
    bitrateBps: 500_000,
    log: false,
  });
  try {
    assert.equal(encoder.name, "libx264");
    assert.match(encoder.fallbackReason, /h264_vaapi/);
    assert.match(encoder.fallbackReason, /h264_nvenc/);
    assert.match(encoder.config.codec, /^avc1\.[0-9a-f]{6}$/);
    assert.equal(encoder.config.avcc[0], 1);
  } finally {
    encoder.close();
  }
  assert.throws(
    () =>
      FfmpegVideoEncoder.open({
        width: 320,
        height: 240,
        fps: 30,
        bitrateBps: 500_000,
        encoder: "h264_vaapi",
      }),
    (e) =>
      e instanceof NativeError && e.code === NativeStatus.Codec && /h264_vaapi/.test(e.message),
  );
});

Deno.test("bad sizes, buffers and closed handles are NativeErrors", async () => {
  for (const [width, height] of [[321, 240], [320, 0], [0, 0], [-2, 4]]) {
    assert.throws(
      () => FfmpegVideoEncoder.open({ width, height, fps: 30, bitrateBps: 500_000, log: false }),
      (e) => e instanceof NativeError && e.code === NativeStatus.InvalidArgument,
      `${width}x${height}`,
    );
  }
  assert.throws(
    () => FfmpegVideoEncoder.open({ width: 320, height: 240, fps: 0, bitrateBps: 500_000 }),
    (e) => e instanceof NativeError && e.code === NativeStatus.InvalidArgument,
  );
  const encoder = FfmpegVideoEncoder.open({
    width: 320,
    height: 240,
    fps: 30,
    bitrateBps: 500_000,
    log: false,
  });
  const good = { width: 320, height: 240, stride: 1280, data: new Uint8Array(1280 * 240) };
  await assert.rejects(
    () => encoder.encode({ ...good, data: new Uint8Array(100), captureTimeUs: 0 }),
    (e) => e instanceof NativeError && /too small/.test(e.message),
  );
  await assert.rejects(
    () => encoder.encode({ ...good, width: 640, captureTimeUs: 0 }),
    (e) => e instanceof NativeError && e.code === NativeStatus.InvalidArgument,
  );
  await assert.rejects(
    () => encoder.encode({ ...good, stride: 100, captureTimeUs: 0 }),
    (e) => e instanceof NativeError && e.code === NativeStatus.InvalidArgument,
  );
  assert.throws(() => encoder.setBitrate(5), NativeError);
  const au = await encoder.encode({ ...good, captureTimeUs: 7 });
  assert.equal(au.keyframe, true);
  assert.equal(au.captureTimeUs, 7);
  encoder.close();
  await assert.rejects(
    () => encoder.encode({ ...good, captureTimeUs: 0 }),
    (e) => e instanceof NativeError && e.code === NativeStatus.Closed,
  );
  assert.throws(() => encoder.setBitrate(1_000_000), NativeError);
  encoder.close(); // twice is fine
});

Deno.test("requestKeyframe makes the next frame an IDR with in-band SPS/PPS", async () => {
  const frames = await scene;
  const encoder = FfmpegVideoEncoder.open({
    width: W,
    height: H,
    fps: 60,
    bitrateBps: 4_000_000,
    log: false,
  });
  try {
    const outOfBand = encoder.config;
    const keys: number[] = [];
    for (let i = 0; i < 30; i++) {
      if (i === 12) encoder.requestKeyframe();
      const au = await encoder.encode(frames[i]);
      assert.equal(au.keyframe, isIdrAccessUnit(au.data));
      if (au.keyframe) {
        keys.push(i);
        const inBand = codecConfigFromAnnexB(au.data)!;
        assert.deepEqual(inBand.sps, outOfBand.sps);
        assert.deepEqual(inBand.pps, outOfBand.pps);
      }
    }
    assert.deepEqual(keys, [0, 12]);
  } finally {
    encoder.close();
  }
});

Deno.test("intra refresh: no IDR after the first frame, and the stream stays decodable", async () => {
  const frames = await scene;
  const encoder = FfmpegVideoEncoder.open({
    width: W,
    height: H,
    fps: 60,
    bitrateBps: 4_000_000,
    intraRefresh: true,
    log: false,
  });
  const decoder = FfmpegVideoDecoder.open();
  try {
    let idr = 0;
    let last = 0;
    for (let i = 0; i < 90; i++) {
      const au = await encoder.encode(frames[i % frames.length]);
      if (isIdrAccessUnit(au.data)) idr++;
      assert.equal(isIdrAccessUnit(au.data), i === 0, `frame ${i}`);
      const picture = await decoder.decode(au.data);
      assert.ok(picture, `frame ${i} decoded`);
      last = psnr(frames[i % frames.length], picture);
    }
    assert.equal(idr, 1);
    assert.ok(last > 28, `last frame PSNR ${last.toFixed(2)} dB`);
  } finally {
    encoder.close();
    decoder.close();
  }
});

Deno.test("bitrate changes every 10 frames: no keyframe, each second within 25% of its target", async () => {
  const base = await scene;
  const frames = noisyFrames(base, 12);
  const encoder = FfmpegVideoEncoder.open({
    width: W,
    height: H,
    fps: 60,
    bitrateBps: 1_000_000,
    log: false,
  });
  try {
    const cycle = [1, 2, 4, 8, 3].map((m) => m * 1_000_000);
    const bits: number[] = [];
    const targets: number[] = [];
    for (let i = 0; i < 300; i++) {
      if (i % 10 === 0) encoder.setBitrate(cycle[(i / 10) % cycle.length]);
      const au = await encoder.encode(frames[i % frames.length]);
      assert.equal(au.keyframe, i === 0, `frame ${i} keyframe=${au.keyframe}`);
      assert.equal(isIdrAccessUnit(au.data), i === 0);
      bits.push(au.data.length * 8);
      targets.push(encoder.bitrateBps);
    }
    for (let w = 0; w < 5; w++) {
      const achieved = bits.slice(w * 60, w * 60 + 60).reduce((a, b) => a + b, 0);
      const target = targets.slice(w * 60, w * 60 + 60).reduce((a, b) => a + b, 0) / 60;
      const ratio = achieved / target;
      assert.ok(
        ratio > 0.75 && ratio < 1.25,
        `second ${w}: ${(achieved / 1e6).toFixed(2)} Mbit vs target ${(target / 1e6).toFixed(2)}`,
      );
    }
  } finally {
    encoder.close();
  }
});

Deno.test("libx264 follows a low target: mean at most the target, no frame above 1.3× its share (race picture, 360p60)", async () => {
  let t = 0;
  const capturer = new SyntheticCapturer({ width: 640, height: 360 }, () => (t += 1e6 / 60));
  for (const bps of [600_000, 1_000_000, 2_000_000]) {
    const encoder = FfmpegVideoEncoder.open({
      width: 640,
      height: 360,
      fps: 60,
      bitrateBps: bps,
      log: false,
    });
    try {
      let bits = 0, worst = 0;
      for (let i = 0; i < 180; i++) {
        const au = await encoder.encode(await capturer.capture());
        if (i < 60) continue; // the keyframe's second
        bits += au.data.length * 8;
        worst = Math.max(worst, (au.data.length * 8) / (bps / 60));
      }
      const ratio = bits / (bps * 2);
      // The old two-frame VBV at the target: mean 1.00, frames up to 1.6-1.7× their share.
      assert.ok(
        ratio <= 1 && ratio > 0.8,
        `${bps} bit/s: produced ${ratio.toFixed(3)} × the target`,
      );
      assert.ok(worst <= 1.3, `${bps} bit/s: a frame of ${worst.toFixed(2)} × its share`);
    } finally {
      encoder.close();
    }
  }
  capturer.close();
});
