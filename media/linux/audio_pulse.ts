/**
 * Audio capture and playback through PulseAudio (or PipeWire's PulseAudio
 * server), via the native shim (`ffi/native/audio_pulse.c`): 48 kHz, signed
 * 16-bit, interleaved, 10 ms frames.
 *
 * Reads and writes wait for the server, so they run as nonblocking FFI calls
 * on Deno's blocking-thread pool. Each object has at most one such call in
 * flight (calls queue behind each other). `close()` never frees the native
 * handle under a running call: it marks the object closed, wakes the call,
 * and the handle is freed when that call returns (within a few ms).
 *
 * @module
 */
import {
  ErrorBuffer,
  lazyNative,
  NativeError,
  NativeHandle,
  NativeStatus,
  pointerFromOut,
} from "../../ffi/mod.ts";
import {
  AUDIO_FRAME_SAMPLES,
  type AudioFrame,
  type AudioSink,
  type AudioSource,
} from "../types.ts";

const symbols = {
  wavry_audio_in_open: {
    parameters: ["buffer", "buffer", "i32", "buffer", "buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  wavry_audio_in_read: {
    parameters: ["pointer", "buffer", "i32", "buffer", "buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  wavry_audio_in_close: { parameters: ["pointer"], result: "void" },
  wavry_audio_interrupt: { parameters: ["pointer"], result: "void" },
  wavry_audio_out_open: {
    parameters: ["buffer", "buffer", "i32", "i32", "buffer", "buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  wavry_audio_out_write: {
    parameters: ["pointer", "buffer", "i32", "buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  wavry_audio_out_latency_us: {
    parameters: ["pointer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  wavry_audio_out_close: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

const native = lazyNative(symbols);

/** PulseAudio's name for the monitor of the default sink: what the desktop is playing. */
export const DEFAULT_MONITOR = "@DEFAULT_MONITOR@";

/** The monitor source of `sink` (records what is played to it); the default sink's when omitted. */
export function monitorOf(sink?: string): string {
  return sink === undefined ? DEFAULT_MONITOR : `${sink}.monitor`;
}

function cString(value: string | undefined): Uint8Array<ArrayBuffer> | null {
  if (value === undefined || value === "") return null;
  if (value.includes("\0")) throw new TypeError("a PulseAudio name cannot contain NUL");
  return new TextEncoder().encode(value + "\0");
}

function checkChannels(operation: string, channels: number): void {
  if (channels !== 1 && channels !== 2) {
    throw new NativeError(
      operation,
      NativeStatus.InvalidArgument,
      `channels must be 1 or 2, got ${channels}`,
    );
  }
}

/**
 * One native stream plus the bookkeeping that keeps close() from freeing it
 * under a call in flight.
 */
class StreamHandle {
  readonly #handle: NativeHandle;
  readonly #kind: string;
  #queue: Promise<unknown> = Promise.resolve();
  #inFlight = 0;
  #closed = false;

  constructor(handle: NativeHandle, kind: string) {
    this.#handle = handle;
    this.#kind = kind;
  }

  get closed(): boolean {
    return this.#closed || this.#handle.closed;
  }

  closedError(operation: string): NativeError {
    return new NativeError(operation, NativeStatus.Closed, `the ${this.#kind} is closed`);
  }

  /** The pointer for a synchronous call. */
  pointer(operation: string): Deno.PointerObject {
    if (this.closed) throw this.closedError(operation);
    return this.#handle.pointer;
  }

  /** Runs `call` after the previous one finished; the handle stays alive until it returns. */
  run<T>(operation: string, call: (pointer: Deno.PointerObject) => Promise<T>): Promise<T> {
    const next = this.#queue.then(async () => {
      if (this.closed) throw this.closedError(operation);
      this.#inFlight++;
      try {
        return await call(this.#handle.pointer);
      } finally {
        this.#inFlight--;
        if (this.#closed && this.#inFlight === 0) this.#handle.close();
      }
    });
    this.#queue = next.catch(() => {});
    return next;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#handle.closed) return;
    if (this.#inFlight === 0) {
      this.#handle.close();
    } else {
      // Wake the running call; its completion frees the handle.
      native().wavry_audio_interrupt(this.#handle.pointer);
    }
  }
}

/** Where to record from. */
export interface PulseSourceOptions {
  /** PulseAudio server, e.g. "unix:/run/user/1000/pulse/native" (default: the usual one). */
  server?: string;
  /**
   * Source name (default: the default source, usually a microphone). Use
   * {@linkcode monitorOf} for what a sink plays, e.g. the desktop's audio.
   */
  source?: string;
  /** 1 or 2 (default 2). */
  channels?: number;
}

/** Records 10 ms frames from a PulseAudio source. */
export class PulseAudioSource implements AudioSource {
  /** Channel count. */
  readonly channels: number;
  /** The source recorded ("" = default). */
  readonly source: string;
  readonly #stream: StreamHandle;
  readonly #err = new ErrorBuffer();
  readonly #captureUs = new BigInt64Array(1);

  private constructor(pointer: Deno.PointerObject, channels: number, source: string) {
    const fn = native();
    this.#stream = new StreamHandle(
      new NativeHandle("audio capture", pointer, (p) => fn.wavry_audio_in_close(p)),
      "audio capture",
    );
    this.channels = channels;
    this.source = source;
  }

  /** Connects to the server and starts recording; rejects with a NativeError. */
  static async open(options: PulseSourceOptions = {}): Promise<PulseAudioSource> {
    const channels = options.channels ?? 2;
    checkChannels("audio_in.open", channels);
    const fn = native();
    const err = new ErrorBuffer();
    const out = new BigUint64Array(1);
    const status = await fn.wavry_audio_in_open(
      cString(options.server),
      cString(options.source),
      channels,
      out,
      err.reset(),
      err.bytes.length,
    );
    err.check("audio_in.open", status);
    return new PulseAudioSource(pointerFromOut(out), channels, options.source ?? "");
  }

  /**
   * Reads the next 10 ms frame, waiting for it. `captureTimeUs` is the
   * estimated CLOCK_MONOTONIC time of the frame's first sample (read time
   * minus server and queue latency), strictly increasing. Rejects with a
   * Closed NativeError once `close()` is called.
   */
  read(): Promise<AudioFrame> {
    return this.#stream.run("audio_in.read", async (pointer) => {
      const samples = new Int16Array(AUDIO_FRAME_SAMPLES * this.channels);
      for (;;) {
        const status = await native().wavry_audio_in_read(
          pointer,
          samples,
          AUDIO_FRAME_SAMPLES,
          this.#captureUs,
          this.#err.reset(),
          this.#err.bytes.length,
        );
        // WV_EAGAIN: no audio yet (bounded native wait); try again unless closed meanwhile.
        if (status === NativeStatus.Again && !this.#stream.closed) continue;
        if (status === NativeStatus.Again) throw this.#stream.closedError("audio_in.read");
        this.#err.check("audio_in.read", status);
        return { samples, channels: this.channels, captureTimeUs: Number(this.#captureUs[0]) };
      }
    });
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#stream.closed;
  }

  /** Stops recording. A pending `read()` rejects; the stream is freed once it returned. */
  close(): void {
    this.#stream.close();
  }
}

/** Records what the default sink plays (the desktop's audio), via {@linkcode DEFAULT_MONITOR}. */
export function openDesktopAudio(
  options: Omit<PulseSourceOptions, "source"> = {},
): Promise<PulseAudioSource> {
  return PulseAudioSource.open({ ...options, source: DEFAULT_MONITOR });
}

/** Where and how to play. */
export interface PulseSinkOptions {
  /** PulseAudio server (default: the usual one). */
  server?: string;
  /** Sink name (default: the default sink). */
  sink?: string;
  /** 1 or 2 (default 2). */
  channels?: number;
  /** Audio kept queued at the server, in ms (1..1000, default 30): lower is sooner, riskier. */
  targetLatencyMs?: number;
}

/** Plays interleaved 16-bit frames on a PulseAudio sink. */
export class PulseAudioSink implements AudioSink {
  /** Channel count. */
  readonly channels: number;
  /** The sink played to ("" = default). */
  readonly sink: string;
  readonly #stream: StreamHandle;
  readonly #err = new ErrorBuffer();
  readonly #latencyErr = new ErrorBuffer();
  readonly #latency = new BigInt64Array(1);

  private constructor(pointer: Deno.PointerObject, channels: number, sink: string) {
    const fn = native();
    this.#stream = new StreamHandle(
      new NativeHandle("audio playback", pointer, (p) => fn.wavry_audio_out_close(p)),
      "audio playback",
    );
    this.channels = channels;
    this.sink = sink;
  }

  /** Connects to the server and opens a playback stream; rejects with a NativeError. */
  static async open(options: PulseSinkOptions = {}): Promise<PulseAudioSink> {
    const channels = options.channels ?? 2;
    checkChannels("audio_out.open", channels);
    const fn = native();
    const err = new ErrorBuffer();
    const out = new BigUint64Array(1);
    const status = await fn.wavry_audio_out_open(
      cString(options.server),
      cString(options.sink),
      channels,
      Math.round(options.targetLatencyMs ?? 30),
      out,
      err.reset(),
      err.bytes.length,
    );
    err.check("audio_out.open", status);
    return new PulseAudioSink(pointerFromOut(out), channels, options.sink ?? "");
  }

  /**
   * Queues interleaved samples (normally one 10 ms frame; any whole number of
   * sample frames up to 1 s), waiting while the server's buffer is full.
   */
  write(samples: Int16Array): Promise<void> {
    if (samples.length === 0 || samples.length % this.channels !== 0) {
      return Promise.reject(
        new NativeError(
          "audio_out.write",
          NativeStatus.InvalidArgument,
          `expected a non-empty whole number of ${this.channels}-channel sample frames, got ${samples.length} samples`,
        ),
      );
    }
    return this.#stream.run("audio_out.write", async (pointer) => {
      const status = await native().wavry_audio_out_write(
        pointer,
        samples,
        samples.length / this.channels,
        this.#err.reset(),
        this.#err.bytes.length,
      );
      this.#err.check("audio_out.write", status);
    });
  }

  /**
   * How long until a sample written now is heard, in µs (queued audio plus the
   * sink's latency); undefined until the server's first timing update.
   */
  latencyUs(): number | undefined {
    const status = native().wavry_audio_out_latency_us(
      this.#stream.pointer("audio_out.latency"),
      this.#latency,
      this.#latencyErr.reset(),
      this.#latencyErr.bytes.length,
    );
    if (status === NativeStatus.Again) return undefined;
    this.#latencyErr.check("audio_out.latency", status);
    return Number(this.#latency[0]);
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#stream.closed;
  }

  /** Stops playback (queued audio is dropped); the stream is freed once a pending write returned. */
  close(): void {
    this.#stream.close();
  }
}
