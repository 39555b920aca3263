/** The analysis tools measure what the generator makes. */
import assert from "node:assert/strict";
import {
  concatSamples,
  estimateFrequency,
  rmsDbfs,
  ToneGenerator,
  zeroCrossingFrequency,
} from "./audio_analysis.ts";

Deno.test("a generated tone measures at its frequency and level", () => {
  for (const [freq, level] of [[440, -12], [1000, -12], [97.5, -3], [5000, -30]]) {
    const tone = new ToneGenerator(freq, level, 2);
    const samples = concatSamples(Array.from({ length: 50 }, () => tone.next()));
    assert.equal(samples.length, 50 * 480 * 2);
    const f = estimateFrequency(samples, { channels: 2 });
    assert.ok(Math.abs(f - freq) / freq < 0.001, `${freq} Hz measured as ${f}`);
    const zc = zeroCrossingFrequency(samples, { channels: 2, channel: 1 });
    assert.ok(Math.abs(zc - freq) / freq < 0.01, `${freq} Hz zero crossings give ${zc}`);
    const db = rmsDbfs(samples, { channels: 2 });
    assert.ok(Math.abs(db - level) < 0.05, `${level} dBFS measured as ${db}`);
  }
});

Deno.test("frames continue the phase", () => {
  const tone = new ToneGenerator(440, -6);
  const a = tone.next(480);
  const b = tone.next(480);
  const whole = new ToneGenerator(440, -6).next(960);
  assert.deepEqual(concatSamples([a, b]), whole);
});

Deno.test("silence and noise have no level or frequency", () => {
  const silence = new Int16Array(4800);
  assert.equal(rmsDbfs(silence), -Infinity);
  assert.ok(Number.isNaN(estimateFrequency(silence)));
  assert.equal(rmsDbfs(new Int16Array(0)), -Infinity);
});

Deno.test("bad arguments throw", () => {
  assert.throws(() => new ToneGenerator(30_000, -12), RangeError);
  assert.throws(() => new ToneGenerator(440, -12, 0), RangeError);
  assert.throws(() => rmsDbfs(new Int16Array(4), { channels: 2, channel: 2 }), RangeError);
});
