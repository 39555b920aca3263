/**
 * PulseAudio capture and playback against a private pulseaudio with a null
 * sink: what is played comes back from the sink's monitor, through Opus.
 */
import assert from "node:assert/strict";
import { monotonicMicros, NativeError, NativeStatus } from "../../ffi/mod.ts";
import { startPulse } from "../../tests/support/pulse.ts";
import { concatSamples, estimateFrequency, rmsDbfs, ToneGenerator } from "../audio_analysis.ts";
import { OpusDecoder, OpusEncoder } from "../opus.ts";
import { AUDIO_FRAME_SAMPLES, type AudioFrame } from "../types.ts";
import { DEFAULT_MONITOR, monitorOf, PulseAudioSink, PulseAudioSource } from "./audio_pulse.ts";

/** Rejects when `promise` takes longer than `ms`: no test may hang. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function rejectsWith(
  promise: Promise<unknown>,
  code: number,
  pattern: RegExp,
  ms = 8_000,
): Promise<NativeError> {
  let error: unknown;
  try {
    await within(ms, `expected ${pattern}`, promise);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof NativeError, `expected a NativeError, got ${error}`);
  assert.equal(error.code, code, error.message);
  assert.match(error.message, pattern);
  return error;
}

Deno.test("monitor names", () => {
  assert.equal(monitorOf("speakers"), "speakers.monitor");
  assert.equal(monitorOf(), DEFAULT_MONITOR);
});

/**
 * A module-null-sink with no stream attached renders in blocks of its maximum
 * latency (2 s), and the first stream waits for the block in progress. A
 * recording of the monitor kept open for the whole test keeps the sink at a
 * low latency; this reads it until frames arrive in real time.
 */
async function warmUp(keepalive: PulseAudioSource): Promise<number> {
  const t0 = performance.now();
  let last = performance.now();
  for (let streak = 0; streak < 20;) {
    await within(5_000, "warm-up read", keepalive.read());
    const now = performance.now();
    streak = now - last < 30 ? streak + 1 : 0;
    last = now;
    if (now - t0 > 6_000) throw new Error("the null sink never ran in real time");
  }
  return performance.now() - t0;
}

/** Reads `keepalive` in the background (so its buffer never matters) until stopped. */
function drain(keepalive: PulseAudioSource): { stop(): Promise<void> } {
  let running = true;
  const loop = (async () => {
    while (running) await keepalive.read();
  })();
  return {
    stop: async () => {
      running = false;
      await within(3_000, "keepalive", loop);
    },
  };
}

Deno.test("through a private pulseaudio with a null sink", async (t) => {
  const pulse = await startPulse("wavry_tone");
  let keepalive: PulseAudioSource | undefined;
  let drainer: { stop(): Promise<void> } | undefined;
  try {
    keepalive = await within(
      8_000,
      "keepalive open",
      PulseAudioSource.open({ server: pulse.server, source: pulse.monitor, channels: 1 }),
    );
    const warmMs = await warmUp(keepalive);
    console.log(`  null sink warm-up: ${warmMs.toFixed(0)} ms`);
    drainer = drain(keepalive);

    await t.step("a tone played to the sink comes back from its monitor through Opus", async () => {
      const CHANNELS = 2;
      const FREQUENCY = 440;
      const LEVEL = -12;
      const PLAY_FRAMES = 100; // 1 s
      let source: PulseAudioSource | undefined;
      let sink: PulseAudioSink | undefined;
      const encoder = new OpusEncoder({ channels: CHANNELS });
      const decoder = new OpusDecoder({ channels: CHANNELS });
      try {
        source = await within(
          8_000,
          "source open",
          PulseAudioSource.open({
            server: pulse.server,
            source: pulse.monitor,
            channels: CHANNELS,
          }),
        );
        sink = await within(
          8_000,
          "sink open",
          PulseAudioSink.open({
            server: pulse.server,
            sink: pulse.sink,
            channels: CHANNELS,
            targetLatencyMs: 30,
          }),
        );

        // Record on one side while playing on the other.
        const recorded: AudioFrame[] = [];
        let playing = true;
        const recording = (async () => {
          let after = 0;
          while (playing || after++ < 15) recorded.push(await source!.read());
        })();

        // Some silence first, so the tone starts on a running stream.
        for (let i = 0; i < 10; i++) await within(3_000, "write", sink.write(new Int16Array(960)));
        const tone = new ToneGenerator(FREQUENCY, LEVEL, CHANNELS);
        const played = [];
        const latencies: number[] = [];
        const writeMs: number[] = [];
        let toneWrittenUs = 0;
        for (let i = 0; i < PLAY_FRAMES; i++) {
          const frame = tone.next();
          played.push(frame);
          if (i === 0) toneWrittenUs = monotonicMicros();
          const t0 = performance.now();
          await within(3_000, "write", sink.write(frame));
          writeMs.push(performance.now() - t0);
          const latency = sink.latencyUs();
          if (latency !== undefined) latencies.push(latency);
        }
        playing = false;
        await within(10_000, "recording", recording);

        // Capture timestamps increase; while the tone plays they advance at the sample clock.
        const times = recorded.map((f) => f.captureTimeUs);
        for (let i = 1; i < times.length; i++) {
          assert.ok(times[i] > times[i - 1], `timestamp ${i} not increasing`);
        }
        for (const f of recorded) {
          assert.equal(f.channels, CHANNELS);
          assert.equal(f.samples.length, AUDIO_FRAME_SAMPLES * CHANNELS);
        }

        // Opus encode -> decode what was recorded; look at the frames carrying the tone.
        const far: Int16Array[] = [];
        for (const f of recorded) far.push(decoder.decode(encoder.encode(f.samples)));
        const loud = far.map((f) => rmsDbfs(f, { channels: CHANNELS }) > LEVEL - 10);
        const first = loud.indexOf(true);
        const last = loud.lastIndexOf(true);
        assert.ok(first >= 0, "the tone never came back from the monitor");
        const steady = concatSamples(far.slice(first + 3, last - 2));
        const frequency = estimateFrequency(steady, { channels: CHANNELS });
        const level = rmsDbfs(steady, { channels: CHANNELS });
        const playedLevel = rmsDbfs(concatSamples(played), { channels: CHANNELS });
        const step = (times[last] - times[first]) / (last - first);

        // When did the tone's first sample reach the monitor? (raw capture, before Opus)
        const onsetFrame = recorded.findIndex((f) => f.samples.some((s) => Math.abs(s) > 1000));
        const onsetSample = recorded[onsetFrame].samples.findIndex((s) => Math.abs(s) > 1000);
        const onsetUs = recorded[onsetFrame].captureTimeUs +
          (Math.floor(onsetSample / CHANNELS) * 1e6) / 48_000;
        const sorted = [...latencies].sort((a, b) => a - b);
        const writes = [...writeMs].sort((a, b) => a - b);
        console.log(
          `  recorded ${recorded.length} frames, ${last - first + 1} carrying the tone\n` +
            `  far side (after Opus): ${frequency.toFixed(2)} Hz, ${level.toFixed(2)} dBFS ` +
            `(played ${playedLevel.toFixed(2)} dBFS)\n` +
            `  capture timestamps during the tone: mean step ${(step / 1000).toFixed(3)} ms\n` +
            `  write() -> monitor capture of the first tone sample: ` +
            `${((onsetUs - toneWrittenUs) / 1000).toFixed(1)} ms\n` +
            `  playback latency (latencyUs): median ${
              (sorted[sorted.length >> 1] / 1000).toFixed(1)
            } ` +
            `ms, max ${(sorted[sorted.length - 1] / 1000).toFixed(1)} ms; ` +
            `write() median ${writes[writes.length >> 1].toFixed(1)} ms, ` +
            `max ${writes[writes.length - 1].toFixed(1)} ms`,
        );
        assert.ok(last - first + 1 >= PLAY_FRAMES - 5, `only ${last - first + 1} tone frames`);
        assert.ok(Math.abs(frequency - FREQUENCY) / FREQUENCY < 0.02, `${frequency} Hz`);
        assert.ok(Math.abs(level - playedLevel) < 3, `${level} dBFS vs ${playedLevel}`);
        assert.ok(step > 9_000 && step < 11_000, `mean timestamp step ${step} µs`);
        assert.ok(onsetUs - toneWrittenUs < 200_000, `${onsetUs - toneWrittenUs} µs`);
      } finally {
        sink?.close();
        source?.close();
        encoder.close();
        decoder.close();
      }
    });

    await t.step("mono capture and playback work too", async () => {
      let source: PulseAudioSource | undefined;
      let sink: PulseAudioSink | undefined;
      try {
        source = await within(
          8_000,
          "open",
          PulseAudioSource.open({ server: pulse.server, source: pulse.monitor, channels: 1 }),
        );
        sink = await within(
          8_000,
          "open",
          PulseAudioSink.open({ server: pulse.server, sink: pulse.sink, channels: 1 }),
        );
        const tone = new ToneGenerator(1000, -12, 1);
        const frames: Int16Array[] = [];
        let playing = true;
        const reading = (async () => {
          let after = 0;
          while (playing || after++ < 10) frames.push((await source!.read()).samples);
        })();
        for (let i = 0; i < 40; i++) await within(3_000, "write", sink.write(tone.next()));
        playing = false;
        await within(5_000, "read", reading);
        const loud = frames.filter((f) => rmsDbfs(f) > -20);
        assert.ok(loud.length >= 30, `${loud.length} tone frames`);
        const f = estimateFrequency(concatSamples(loud.slice(2, -2)));
        const db = rmsDbfs(concatSamples(loud.slice(2, -2)));
        console.log(`  mono: ${f.toFixed(2)} Hz, ${db.toFixed(2)} dBFS`);
        assert.ok(Math.abs(f - 1000) < 20, `${f} Hz`);
        assert.ok(Math.abs(db - -12) < 3, `${db} dBFS`);
      } finally {
        sink?.close();
        source?.close();
      }
    });

    await t.step(
      "close during pending calls rejects them promptly and frees the stream",
      async () => {
        const source = await within(
          8_000,
          "open",
          PulseAudioSource.open({ server: pulse.server, source: pulse.monitor, channels: 2 }),
        );
        await within(2_000, "first read", source.read());
        const reads = [source.read(), source.read(), source.read()];
        source.close();
        source.close(); // twice is fine
        const results = await within(2_000, "reads after close", Promise.allSettled(reads));
        for (const r of results) {
          if (r.status === "rejected") {
            assert.ok(r.reason instanceof NativeError, String(r.reason));
            assert.equal(r.reason.code, NativeStatus.Closed);
          }
        }
        assert.equal(results.at(-1)!.status, "rejected");
        await rejectsWith(source.read(), NativeStatus.Closed, /closed/);

        const sink = await within(
          8_000,
          "open",
          PulseAudioSink.open({ server: pulse.server, sink: pulse.sink, channels: 2 }),
        );
        const writes = Array.from({ length: 20 }, () => sink.write(new Int16Array(960)));
        sink.close();
        const settled = await within(3_000, "writes after close", Promise.allSettled(writes));
        assert.equal(settled.at(-1)!.status, "rejected");
        await rejectsWith(sink.write(new Int16Array(960)), NativeStatus.Closed, /closed/);
        assert.throws(
          () => sink.latencyUs(),
          (e) => e instanceof NativeError && e.code === NativeStatus.Closed,
        );
      },
    );
  } finally {
    keepalive?.close();
    await drainer?.stop().catch(() => {});
    await pulse.stop();
  }
});

Deno.test("bad input: clear NativeErrors, no crash, no hang", async () => {
  const pulse = await startPulse("wavry_bad");
  try {
    const missingServer = `unix:${await Deno.makeTempDir()}/no-such-socket`;
    await rejectsWith(
      PulseAudioSource.open({ server: missingServer, source: pulse.monitor }),
      NativeStatus.Io,
      /cannot connect to PulseAudio server unix:.*no-such-socket/,
    );
    await rejectsWith(
      PulseAudioSink.open({ server: missingServer }),
      NativeStatus.Io,
      /cannot connect/,
    );
    await rejectsWith(
      PulseAudioSource.open({ server: pulse.server, source: "no_such_source" }),
      NativeStatus.NoDevice,
      /source no_such_source: no such device/,
    );
    await rejectsWith(
      PulseAudioSink.open({ server: pulse.server, sink: "no_such_sink" }),
      NativeStatus.NoDevice,
      /sink no_such_sink: no such device/,
    );
    await rejectsWith(
      PulseAudioSource.open({ server: pulse.server, channels: 6 }),
      NativeStatus.InvalidArgument,
      /channels must be 1 or 2/,
    );
    await rejectsWith(
      PulseAudioSink.open({ server: pulse.server, sink: pulse.sink, targetLatencyMs: 0 }),
      NativeStatus.InvalidArgument,
      /target latency/,
    );

    const sink = await within(
      8_000,
      "open",
      PulseAudioSink.open({ server: pulse.server, sink: pulse.sink, channels: 2 }),
    );
    try {
      await rejectsWith(sink.write(new Int16Array(0)), NativeStatus.InvalidArgument, /non-empty/);
      await rejectsWith(sink.write(new Int16Array(961)), NativeStatus.InvalidArgument, /961/);
      await rejectsWith(
        sink.write(new Int16Array(2 * 48_001)),
        NativeStatus.InvalidArgument,
        /samples per channel must be/,
      );
      await within(3_000, "write", sink.write(new Int16Array(960))); // still usable
    } finally {
      sink.close();
    }
  } finally {
    await pulse.stop();
  }
});

Deno.test("a server that goes away fails reads instead of hanging them", async () => {
  const pulse = await startPulse("wavry_gone");
  let source: PulseAudioSource | undefined;
  try {
    source = await within(
      8_000,
      "open",
      PulseAudioSource.open({ server: pulse.server, source: pulse.monitor, channels: 2 }),
    );
    await pulse.stop();
    let error: unknown;
    for (let i = 0; i < 1000 && error === undefined; i++) {
      try {
        await within(3_000, "read after server stop", source.read());
      } catch (e) {
        error = e;
      }
    }
    assert.ok(error instanceof NativeError, String(error));
    assert.equal(error.code, NativeStatus.Io);
    assert.match(error.message, /connection lost|stream ended/);
  } finally {
    source?.close();
    await pulse.stop();
  }
});
