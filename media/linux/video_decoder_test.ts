import assert from "node:assert/strict";
import { NativeError, NativeStatus } from "../../ffi/errors.ts";
import { startXvfb } from "../../tools/display/xvfb.ts";
import { readPatternRow, XProbe } from "../../tools/display/xprobe.ts";
import { psnr } from "../image.ts";
import { X11Capturer } from "./capture_x11.ts";
import { FfmpegVideoDecoder } from "./video_decoder.ts";
import { FfmpegVideoEncoder } from "./video_encoder.ts";

const W = 1280;
const H = 720;

/**
 * Capture -> encode -> decode at 720p and 4 Mbit/s; returns the mean PSNR
 * of the last 20 frames and checks the frame counter row of every picture.
 */
async function roundTrip(chroma: "420" | "444"): Promise<number> {
  const xvfb = await startXvfb(W, H);
  const probe = await XProbe.start(xvfb.display, { pattern: true, fps: 60 });
  const capturer = X11Capturer.open({ display: xvfb.display });
  const encoder = FfmpegVideoEncoder.open({
    width: W,
    height: H,
    fps: 60,
    bitrateBps: 4_000_000,
    chroma,
    log: false,
  });
  const decoder = FfmpegVideoDecoder.open();
  try {
    const scores: number[] = [];
    for (let i = 0; i < 40; i++) {
      const frame = await capturer.capture();
      const counter = readPatternRow(frame.data, W, 0);
      const au = await encoder.encode(frame);
      const picture = await decoder.decode(au.data);
      assert.ok(picture, `frame ${i} produced a picture`);
      assert.equal(picture.width, W);
      assert.equal(picture.height, H);
      assert.equal(readPatternRow(picture.data, W, 0), counter, "counter row survives coding");
      if (i >= 20) scores.push(psnr(frame, picture));
      await new Promise((r) => setTimeout(r, 10));
    }
    return scores.reduce((a, b) => a + b, 0) / scores.length;
  } finally {
    capturer.close();
    encoder.close();
    decoder.close();
    await probe.stop();
    await xvfb.stop();
  }
}

Deno.test("capture -> encode -> decode at 720p, 4 Mbit/s, 4:4:4: PSNR >= 35 dB", async () => {
  const db = await roundTrip("444");
  assert.ok(db >= 35, `PSNR ${db.toFixed(2)} dB`);
});

Deno.test("capture -> encode -> decode at 720p, 4 Mbit/s, 4:2:0 (what browsers decode): PSNR >= 35 dB", async () => {
  const db = await roundTrip("420");
  console.log(`PSNR 4:2:0 at 720p, 4 Mbit/s: ${db.toFixed(2)} dB`);
  assert.ok(db >= 35, `PSNR ${db.toFixed(2)} dB`);
});

Deno.test("decoder: garbage, empty input and a closed handle are errors, not crashes", async () => {
  const decoder = FfmpegVideoDecoder.open();
  const garbage = new Uint8Array(4096);
  for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919) & 0xff;
  garbage.set([0, 0, 0, 1, 0x65], 0); // an IDR slice without SPS/PPS
  try {
    const result = await decoder.decode(garbage).catch((e) => e);
    assert.ok(
      result === undefined || (result instanceof NativeError && result.code === NativeStatus.Codec),
    );
    await assert.rejects(
      () => decoder.decode(new Uint8Array(0)),
      (e) => e instanceof NativeError && e.code === NativeStatus.InvalidArgument,
    );
  } finally {
    decoder.close();
  }
  await assert.rejects(
    () => decoder.decode(garbage),
    (e) => e instanceof NativeError && e.code === NativeStatus.Closed,
  );
});

Deno.test("decoder follows a size change", async () => {
  const decoder = FfmpegVideoDecoder.open();
  try {
    for (const [w, h] of [[160, 120], [320, 240], [160, 120]]) {
      const encoder = FfmpegVideoEncoder.open({
        width: w,
        height: h,
        fps: 30,
        bitrateBps: 500_000,
        log: false,
      });
      const data = new Uint8Array(w * h * 4).fill(200);
      const au = await encoder.encode({
        width: w,
        height: h,
        stride: w * 4,
        data,
        captureTimeUs: 0,
      });
      encoder.close();
      const picture = await decoder.decode(au.data);
      assert.equal(picture?.width, w);
      assert.equal(picture?.data.length, w * h * 4);
      assert.ok(psnr({ width: w, height: h, data }, picture!) > 35);
    }
  } finally {
    decoder.close();
  }
});
