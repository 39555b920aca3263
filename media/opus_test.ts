/** Opus through the native shim: fidelity, concealment, bitrate control and bad input. */
import assert from "node:assert/strict";
import { NativeError, NativeStatus } from "../ffi/mod.ts";
import { concatSamples, estimateFrequency, rmsDbfs, ToneGenerator } from "./audio_analysis.ts";
import { OpusDecoder, OpusEncoder } from "./opus.ts";
import { AUDIO_FRAME_SAMPLES } from "./types.ts";

const FRAMES = 60; // 600 ms
const SETTLE_FRAMES = 5; // skip the codec delay and its start-up transient

function roundTrip(
  frequency: number,
  level: number,
  channels: number,
): { frequency: number; level: number; lookahead: number; meanPacket: number } {
  const encoder = new OpusEncoder({ channels });
  const decoder = new OpusDecoder({ channels });
  try {
    const tone = new ToneGenerator(frequency, level, channels);
    const decoded: Int16Array[] = [];
    let bytes = 0;
    for (let i = 0; i < FRAMES; i++) {
      const packet = encoder.encode(tone.next());
      bytes += packet.length;
      const pcm = decoder.decode(packet);
      assert.equal(pcm.length, AUDIO_FRAME_SAMPLES * channels);
      if (i >= SETTLE_FRAMES) decoded.push(pcm);
    }
    const all = concatSamples(decoded);
    return {
      frequency: estimateFrequency(all, { channels }),
      level: rmsDbfs(all, { channels }),
      lookahead: encoder.lookahead,
      meanPacket: bytes / FRAMES,
    };
  } finally {
    encoder.close();
    decoder.close();
  }
}

for (const channels of [1, 2]) {
  for (const frequency of [440, 1000]) {
    Deno.test(`Opus keeps a ${frequency} Hz sine at -12 dBFS (${channels} ch)`, () => {
      const r = roundTrip(frequency, -12, channels);
      console.log(
        `  ${frequency} Hz ${channels} ch: measured ${r.frequency.toFixed(2)} Hz, ` +
          `${r.level.toFixed(2)} dBFS, lookahead ${r.lookahead} samples, ` +
          `${r.meanPacket.toFixed(0)} B/packet`,
      );
      assert.ok(Math.abs(r.frequency - frequency) / frequency < 0.02, `${r.frequency} Hz`);
      assert.ok(Math.abs(r.level - -12) < 1, `${r.level} dBFS`);
      assert.equal(r.lookahead, 120); // 2.5 ms in restricted low-delay mode
    });
  }
}

Deno.test("a lost packet is concealed with a full frame", () => {
  const encoder = new OpusEncoder({ channels: 2 });
  const decoder = new OpusDecoder({ channels: 2 });
  try {
    const tone = new ToneGenerator(440, -12, 2);
    for (let i = 0; i < 10; i++) decoder.decode(encoder.encode(tone.next()));
    encoder.encode(tone.next()); // this packet is "lost"
    const concealed = decoder.decode(undefined);
    assert.equal(concealed.length, AUDIO_FRAME_SAMPLES * 2);
    // Concealment continues the tone rather than dropping to silence.
    const level = rmsDbfs(concealed, { channels: 2 });
    console.log(`  concealed frame: ${level.toFixed(1)} dBFS`);
    assert.ok(level > -30, `concealed frame at ${level} dBFS`);
    const empty = decoder.decode(new Uint8Array(0)); // an empty packet is a loss too
    assert.equal(empty.length, AUDIO_FRAME_SAMPLES * 2);
    // Decoding resumes normally afterwards.
    const next = decoder.decode(encoder.encode(tone.next()));
    assert.equal(next.length, AUDIO_FRAME_SAMPLES * 2);
  } finally {
    encoder.close();
    decoder.close();
  }
});

Deno.test("bitrate changes take effect on the next frames", () => {
  const encoder = new OpusEncoder({ channels: 2, bitrateBps: 24_000 });
  try {
    const tone = new ToneGenerator(1000, -12, 2);
    const mean = (n: number) => {
      let bytes = 0;
      for (let i = 0; i < n; i++) bytes += encoder.encode(tone.next()).length;
      return bytes / n;
    };
    const low = mean(30);
    encoder.setBitrate(256_000);
    assert.equal(encoder.bitrateBps, 256_000);
    const high = mean(30);
    console.log(`  24 kbit/s: ${low.toFixed(0)} B/packet; 256 kbit/s: ${high.toFixed(0)} B/packet`);
    // 10 ms frames: 24 kbit/s ≈ 30 B, 256 kbit/s ≈ 320 B.
    assert.ok(low < 45, `low ${low}`);
    assert.ok(high > 200, `high ${high}`);
    assert.throws(
      () => encoder.setBitrate(1_000),
      (e) => e instanceof NativeError && e.code === NativeStatus.InvalidArgument,
    );
    assert.throws(
      () => encoder.setBitrate(Number.NaN),
      (e) => e instanceof NativeError && e.code === NativeStatus.InvalidArgument,
    );
  } finally {
    encoder.close();
  }
});

function isNativeError(code: number, pattern?: RegExp): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof NativeError, `not a NativeError: ${e}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

Deno.test("bad input gives clear NativeErrors", () => {
  const invalid = NativeStatus.InvalidArgument;
  assert.throws(() => new OpusEncoder({ channels: 3 }), isNativeError(invalid, /channels/));
  assert.throws(() => new OpusDecoder({ channels: 0 }), isNativeError(invalid, /channels/));
  assert.throws(
    () => new OpusEncoder({ channels: 1, bitrateBps: 1_000_000 }),
    isNativeError(invalid, /bitrate must be/),
  );

  const encoder = new OpusEncoder({ channels: 2 });
  const decoder = new OpusDecoder({ channels: 2 });
  const monoDecoder = new OpusDecoder({ channels: 1 });
  try {
    // Wrong frame sizes.
    assert.throws(() => encoder.encode(new Int16Array(479 * 2)), isNativeError(invalid, /480/));
    assert.throws(() => encoder.encode(new Int16Array(480)), isNativeError(invalid, /960/));
    // Too-small output buffers.
    const frame = new ToneGenerator(440, -12, 2).next();
    assert.throws(
      () => encoder.encodeInto(frame, new Uint8Array(2)),
      isNativeError(invalid, /too small/),
    );
    const packet = encoder.encode(frame);
    assert.throws(
      () => decoder.decodeInto(packet, new Int16Array(240 * 2)),
      isNativeError(invalid, /480 samples per channel.*room for 240/),
    );
    assert.throws(
      () => decoder.decodeInto(undefined, new Int16Array(100 * 2)),
      isNativeError(invalid, /multiple of 120/),
    );
    // A small buffer is fine when the packet fits: 2.5 ms concealment.
    assert.equal(decoder.decodeInto(undefined, new Int16Array(120 * 2)), 120);
    // Garbage is a codec error, not a crash. (TOC code 3 with a zero frame count is invalid.)
    assert.throws(
      () => decoder.decode(new Uint8Array([0xfb, 0x00])),
      isNativeError(NativeStatus.Codec, /not an Opus packet|corrupted/),
    );
    // A stereo packet decodes on a mono decoder (Opus downmixes).
    assert.equal(monoDecoder.decode(packet).length, 480);
  } finally {
    encoder.close();
    decoder.close();
    monoDecoder.close();
  }
  // Closed handles.
  assert.throws(() => encoder.encode(new Int16Array(960)), isNativeError(NativeStatus.Closed));
  assert.throws(() => encoder.setBitrate(64_000), isNativeError(NativeStatus.Closed));
  assert.throws(() => decoder.decode(undefined), isNativeError(NativeStatus.Closed));
  encoder.close(); // twice is fine
  assert.ok(encoder.closed && decoder.closed);
});

Deno.test("encoding a frame takes well under a millisecond", () => {
  const encoder = new OpusEncoder({ channels: 2 });
  const decoder = new OpusDecoder({ channels: 2 });
  try {
    const tone = new ToneGenerator(440, -12, 2);
    const frames = Array.from({ length: 200 }, () => tone.next());
    const out = new Uint8Array(1275);
    const pcm = new Int16Array(960);
    const t0 = performance.now();
    for (const f of frames) {
      const n = encoder.encodeInto(f, out);
      decoder.decodeInto(out.subarray(0, n), pcm);
    }
    const perFrame = (performance.now() - t0) / frames.length;
    console.log(`  encode+decode: ${(perFrame * 1000).toFixed(0)} µs per 10 ms stereo frame`);
    assert.ok(perFrame < 2, `${perFrame} ms per frame`);
  } finally {
    encoder.close();
    decoder.close();
  }
});
