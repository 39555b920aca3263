/**
 * The media pipeline against a real Xvfb showing the wavry-xprobe moving
 * pattern: frame rate, keyframes, bitrate changes, and a clean stop.
 */
import assert from "node:assert/strict";
import { decodeVideoPayload } from "../core/stream.ts";
import { XProbe } from "../tools/display/xprobe.ts";
import { startXvfb } from "../tools/display/xvfb.ts";
import { FfmpegVideoDecoder } from "../media/linux/video_decoder.ts";
import {
  type HostFrame,
  MediaPipeline,
  MediaPipelineError,
  toEncodedFrame,
} from "./media_pipeline.ts";

/** Shared-memory segments that exist now (MIT-SHM capture makes one per capturer). */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function hasStartCode(au: Uint8Array): boolean {
  return au[0] === 0 && au[1] === 0 && (au[2] === 1 || (au[2] === 0 && au[3] === 1));
}

// 30 fps here: this test checks the pipeline's behaviour. Whether 720p60 is sustained on a given
// machine is a measurement (bench/media.ts), not a pass/fail test on a shared 2-core CI box.
Deno.test("media pipeline: 1280x720@30 from the worker, keyframes on request, bitrate changes, clean stop", async () => {
  const xvfb = await startXvfb(1280, 720);
  const probe = await XProbe.start(xvfb.display, { pattern: true, fps: 30 });
  let pipeline: MediaPipeline | undefined;
  // Main-thread event-loop lag while the worker streams: the point of the worker.
  let lagMax = 0;
  let last = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    lagMax = Math.max(lagMax, now - last - 2);
    last = now;
  }, 2);
  try {
    // The pattern's P-frames are content-limited at 6 Mb/s (1-2.4 KB, smaller when a loaded CI box
    // renders the pattern slower), so the cut goes well below that: 100 kb/s is ~420 B a frame.
    const highBitrate = 6_000_000, lowBitrate = 100_000;
    pipeline = await MediaPipeline.start({
      display: xvfb.display,
      fps: 30,
      bitrateBps: highBitrate,
      encoder: "libx264",
    });
    assert.equal(pipeline.width, 1280);
    assert.equal(pipeline.height, 720);
    assert.equal(pipeline.encoderName, "libx264");
    assert.match(pipeline.config.codec, /^avc1\./);
    assert.ok(pipeline.config.avcc.length > 0);

    const frames: { frame: HostFrame; at: number }[] = [];
    const t0 = performance.now();
    let keyframeAskedAfter: number | undefined;
    let bitrateChangedAfter: number | undefined;
    for await (const frame of pipeline.frames()) {
      const at = performance.now() - t0;
      frames.push({ frame, at });
      if (keyframeAskedAfter === undefined && at > 600) {
        keyframeAskedAfter = frame.frameId;
        pipeline.requestKeyframe();
      }
      if (bitrateChangedAfter === undefined && at > 1000) {
        bitrateChangedAfter = frame.frameId;
        pipeline.setBitrate(lowBitrate);
      }
      if (at >= 2000) break;
    }
    const elapsed = frames[frames.length - 1].at - frames[0].at;
    const fps = (frames.length - 1) / (elapsed / 1000);

    // Frames are serial, the first is a keyframe, the timing is consistent.
    frames.forEach(({ frame }, i) => {
      assert.equal(frame.frameId, i);
      assert.ok(hasStartCode(frame.data), `frame ${i} is Annex-B`);
      const t = frame.timing;
      assert.ok(frame.captureTimeUs <= t.captureEndUs && t.captureEndUs <= t.encodeStartUs);
      assert.ok(t.encodeStartUs <= t.encodeEndUs);
      const decoded = decodeVideoPayload(frame.payload);
      assert.ok(decoded.ok);
      assert.equal(decoded.value.timing.encodeStartUs, t.encodeStartUs);
      assert.equal(decoded.value.accessUnit.length, frame.data.length);
    });
    assert.equal(frames[0].frame.keyframe, true, "the first frame is a keyframe");
    assert.ok(fps >= 27, `~30 fps expected, got ${fps.toFixed(1)}`);

    // The requested IDR comes within 2 frames of the last one received when asking.
    const keyAfter = frames.find(({ frame }) =>
      frame.keyframe && frame.frameId > keyframeAskedAfter!
    );
    assert.ok(keyAfter, "a keyframe followed the request");
    const delay = keyAfter.frame.frameId - keyframeAskedAfter!;
    assert.ok(delay <= 2, `keyframe came ${delay} frames after the request`);
    const keyframes = frames.filter(({ frame }) => frame.keyframe).map(({ frame }) =>
      frame.frameId
    );

    // Non-key frame sizes before and after the bitrate cut (skipping a few frames to settle).
    const deltaSizes = (from: number, to: number): number[] =>
      frames.filter(({ frame }) => !frame.keyframe && frame.frameId > from && frame.frameId < to)
        .map(({ frame }) => frame.data.length);
    const before = median(deltaSizes(keyAfter.frame.frameId + 3, bitrateChangedAfter!));
    const after = median(deltaSizes(bitrateChangedAfter! + 10, Infinity));
    assert.ok(after < before * 0.6, `frames shrank from ${before} to ${after} bytes`);
    // And the encoder keeps to the new budget itself, whatever the content gave before the cut.
    const budget = lowBitrate / 8 / 30;
    assert.ok(
      after <= 1.5 * budget,
      `P-frames of ${after} B against ${budget.toFixed(0)} B a frame`,
    );

    const encodeMs = median(frames.map(({ frame }) =>
      frame.timing.encodeEndUs - frame.timing.encodeStartUs
    )) / 1000;
    const captureToEncoded = median(frames.map(({ frame }) =>
      frame.timing.encodeEndUs - frame.captureTimeUs
    )) / 1000;
    const stamped = toEncodedFrame(frames[5].frame, frames[5].frame.timing.encodeEndUs + 100);
    const stampedTiming = decodeVideoPayload(stamped.data);
    assert.ok(stampedTiming.ok);
    assert.equal(
      stampedTiming.value.timing.handedToSessionUs,
      frames[5].frame.timing.encodeEndUs + 100,
    );
    console.log(
      `${frames.length} frames in ${elapsed.toFixed(0)} ms = ${fps.toFixed(1)} fps; ` +
        `keyframes at ${keyframes.join(",")} (asked after ${keyframeAskedAfter}); ` +
        `P-frame median ${before} B at ${highBitrate / 1e6} Mb/s -> ${after} B at ${
          lowBitrate / 1e6
        } Mb/s; ` +
        `encode p50 ${encodeMs.toFixed(2)} ms, capture->encoded p50 ${
          captureToEncoded.toFixed(2)
        } ms; ` +
        `main-thread max event-loop lag ${lagMax.toFixed(1)} ms; stats ${
          JSON.stringify(pipeline.stats)
        }`,
    );
  } finally {
    clearInterval(ticker);
    await pipeline?.stop();
    // The worker reports its own native handles: system-wide counts (ipcs, /proc/self/fd) also
    // see the capturers and X connections of test files running in parallel in this process.
    assert.equal(pipeline?.released, true, "the worker freed its capturer and encoder");
    await probe.stop();
    await xvfb.stop();
  }
});

Deno.test("media pipeline: a display that does not exist rejects start and leaves no worker", async () => {
  await assert.rejects(
    MediaPipeline.start({ display: ":987", fps: 30, bitrateBps: 1_000_000 }),
    (e) => e instanceof MediaPipelineError && e.kind === "Open" && /:987/.test(e.message),
  );
});

Deno.test("media pipeline: stop ends frames() and is idempotent", async () => {
  const xvfb = await startXvfb(640, 480);
  try {
    const pipeline = await MediaPipeline.start({
      display: xvfb.display,
      fps: 30,
      bitrateBps: 1_000_000,
      width: 320,
      height: 240,
      encoder: "libx264",
    });
    assert.equal(pipeline.width, 320);
    assert.deepEqual(pipeline.streamConfig().width, 320);
    const iterator = pipeline.frames();
    const first = await iterator.next();
    assert.equal(first.done, false);
    await Promise.all([pipeline.stop(), pipeline.stop()]);
    let rest = 0;
    for await (const _ of iterator) rest++;
    assert.ok(rest <= 2, `${rest} frames after stop`);
    pipeline.requestKeyframe(); // harmless after stop
  } finally {
    await xvfb.stop();
  }
});

Deno.test("media pipeline: a consumer that falls behind skips to a fresh keyframe", async () => {
  const xvfb = await startXvfb(640, 480);
  const probe = await XProbe.start(xvfb.display, { pattern: true, fps: 60 });
  let pipeline: MediaPipeline | undefined;
  try {
    pipeline = await MediaPipeline.start({
      display: xvfb.display,
      fps: 60,
      bitrateBps: 2_000_000,
      encoder: "libx264",
      maxQueuedFrames: 3,
    });
    await new Promise((resolve) => setTimeout(resolve, 400)); // ~24 frames, nobody reading
    const iterator = pipeline.frames();
    const seen: HostFrame[] = [];
    for (let i = 0; i < 4; i++) {
      const next = await iterator.next();
      assert.equal(next.done, false);
      seen.push(next.value);
    }
    assert.ok(pipeline.stats.framesDropped > 0, "late frames were dropped");
    assert.ok(seen.length <= 4);
    // What is queued after the overflow starts at a keyframe; ids only increase.
    assert.ok(seen.some((f) => f.keyframe && f.frameId > 0), "skipped to a fresh keyframe");
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].frameId > seen[i - 1].frameId);
  } finally {
    await pipeline?.stop();
    await probe.stop();
    await xvfb.stop();
  }
});

Deno.test("media pipeline: setHold stops encoding until released, without a keyframe, and the stream decodes", async () => {
  const pipeline = await MediaPipeline.start({
    source: { kind: "pattern", width: 320, height: 240 },
    fps: 60,
    bitrateBps: 1_000_000,
    encoder: "libx264",
  });
  const decoder = FfmpegVideoDecoder.open();
  try {
    const iterator = pipeline.frames();
    const take = async () => {
      const next = await iterator.next();
      assert.equal(next.done, false);
      return next.value;
    };
    const decode = async (f: HostFrame) => {
      const decoded = decodeVideoPayload(f.payload);
      assert.ok(decoded.ok);
      const picture = await decoder.decode(decoded.value.accessUnit);
      assert.ok(picture !== undefined, `frame ${f.frameId} decodes`);
    };
    for (let i = 0; i < 5; i++) await decode(await take());
    pipeline.setHold(true);
    assert.equal(pipeline.held, true);
    await new Promise((resolve) => setTimeout(resolve, 100)); // the hold reaches the worker
    const before = pipeline.stats.framesReceived;
    await new Promise((resolve) => setTimeout(resolve, 400)); // ~24 capture slots
    assert.equal(pipeline.stats.framesReceived, before, "nothing encoded while held");
    pipeline.setHold(false);
    // Drain what was queued before the hold, then the first frames after it.
    const after: HostFrame[] = [];
    while (after.length < 5) {
      const f = await take();
      await decode(f);
      if (f.frameId >= before) after.push(f);
    }
    assert.ok(after.every((f) => !f.keyframe), "released without a keyframe");
  } finally {
    decoder.close();
    await pipeline.stop();
  }
});
