/**
 * Opus through the native shim (`ffi/native/audio_opus.c`): 48 kHz, 10 ms
 * frames, OPUS_APPLICATION_RESTRICTED_LOWDELAY (CELT only, 2.5 ms of
 * algorithmic delay). Calls are synchronous: one frame costs well under a
 * millisecond, less than a trip to a worker thread.
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
} from "../ffi/mod.ts";
import { AUDIO_FRAME_SAMPLES, type AudioDecoder, type AudioEncoder } from "./types.ts";

const symbols = {
  wavry_opus_encoder_open: {
    parameters: ["i32", "i32", "buffer", "buffer", "i32"],
    result: "i32",
  },
  wavry_opus_encode: {
    parameters: ["pointer", "buffer", "i32", "buffer", "i32", "buffer", "buffer", "i32"],
    result: "i32",
  },
  wavry_opus_set_bitrate: { parameters: ["pointer", "i32", "buffer", "i32"], result: "i32" },
  wavry_opus_encoder_lookahead: {
    parameters: ["pointer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  wavry_opus_encoder_close: { parameters: ["pointer"], result: "void" },
  wavry_opus_decoder_open: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  wavry_opus_decode: {
    parameters: ["pointer", "buffer", "i32", "buffer", "i32", "buffer", "buffer", "i32"],
    result: "i32",
  },
  wavry_opus_decoder_close: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

const native = lazyNative(symbols);

/** Largest Opus packet for one frame (RFC 6716 §3.4: 1275 bytes) — the default output cap. */
export const OPUS_MAX_PACKET_BYTES = 1275;

/** Default bitrate: 64 kbit/s per channel. */
export function defaultOpusBitrate(channels: number): number {
  return 64_000 * channels;
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

/** Encoder settings. */
export interface OpusEncoderOptions {
  /** 1 or 2 (default 2). */
  channels?: number;
  /** Target bitrate in bit/s, 6000..510000 (default 64 kbit/s per channel). */
  bitrateBps?: number;
}

/** An Opus encoder: one 10 ms frame of interleaved 16-bit samples in, one packet out. */
export class OpusEncoder implements AudioEncoder {
  /** Channel count. */
  readonly channels: number;
  /** Algorithmic delay in samples per channel (decoded audio lags the input by this much). */
  readonly lookahead: number;
  readonly #handle: NativeHandle;
  readonly #err = new ErrorBuffer();
  readonly #out = new Uint8Array(OPUS_MAX_PACKET_BYTES);
  readonly #len = new Int32Array(1);
  #bitrate: number;

  /** Opens an encoder; throws a NativeError on bad options. */
  constructor(options: OpusEncoderOptions = {}) {
    const channels = options.channels ?? 2;
    checkChannels("opus.encoder_open", channels);
    const bitrate = options.bitrateBps ?? defaultOpusBitrate(channels);
    const fn = native();
    const out = new BigUint64Array(1);
    this.#err.check(
      "opus.encoder_open",
      fn.wavry_opus_encoder_open(
        channels,
        bitrate | 0,
        out,
        this.#err.reset(),
        this.#err.bytes.length,
      ),
    );
    this.#handle = new NativeHandle(
      "Opus encoder",
      pointerFromOut(out),
      (p) => fn.wavry_opus_encoder_close(p),
    );
    this.channels = channels;
    this.#bitrate = bitrate;
    const look = new Int32Array(1);
    this.#err.check(
      "opus.lookahead",
      fn.wavry_opus_encoder_lookahead(
        this.#handle.pointer,
        look,
        this.#err.reset(),
        this.#err.bytes.length,
      ),
    );
    this.lookahead = look[0];
  }

  /** The current target bitrate in bit/s. */
  get bitrateBps(): number {
    return this.#bitrate;
  }

  /** Encodes one 10 ms frame (480 × channels samples) and returns a copy of the packet. */
  encode(samples: Int16Array): Uint8Array {
    const n = this.encodeInto(samples, this.#out);
    return this.#out.slice(0, n);
  }

  /**
   * Encodes one 10 ms frame into `out` and returns the packet length. `out.length` caps the
   * packet size (at least 3 bytes); no allocation, for the hot path.
   */
  encodeInto(samples: Int16Array, out: Uint8Array): number {
    const pointer = this.#handle.pointer;
    if (samples.length !== AUDIO_FRAME_SAMPLES * this.channels) {
      throw new NativeError(
        "opus.encode",
        NativeStatus.InvalidArgument,
        `a frame is ${AUDIO_FRAME_SAMPLES} samples per channel (${
          AUDIO_FRAME_SAMPLES * this.channels
        } interleaved), got ${samples.length}`,
      );
    }
    this.#err.check(
      "opus.encode",
      native().wavry_opus_encode(
        pointer,
        samples,
        AUDIO_FRAME_SAMPLES,
        out,
        out.length,
        this.#len,
        this.#err.reset(),
        this.#err.bytes.length,
      ),
    );
    return this.#len[0];
  }

  /** Changes the target bitrate (6000..510000 bit/s) from the next frame on. */
  setBitrate(bitrateBps: number): void {
    this.#err.check(
      "opus.set_bitrate",
      native().wavry_opus_set_bitrate(
        this.#handle.pointer,
        Number.isFinite(bitrateBps) ? Math.round(bitrateBps) | 0 : -1,
        this.#err.reset(),
        this.#err.bytes.length,
      ),
    );
    this.#bitrate = Math.round(bitrateBps);
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#handle.closed;
  }

  /** Frees the encoder; later calls throw a Closed NativeError. */
  close(): void {
    this.#handle.close();
  }
}

/** Decoder settings. */
export interface OpusDecoderOptions {
  /** 1 or 2 (default 2); need not match the encoder's, Opus converts. */
  channels?: number;
}

/** An Opus decoder: one packet in, one 10 ms frame out; a lost packet is concealed. */
export class OpusDecoder implements AudioDecoder {
  /** Channel count of the output. */
  readonly channels: number;
  readonly #handle: NativeHandle;
  readonly #err = new ErrorBuffer();
  readonly #count = new Int32Array(1);

  /** Opens a decoder; throws a NativeError on bad options. */
  constructor(options: OpusDecoderOptions = {}) {
    const channels = options.channels ?? 2;
    checkChannels("opus.decoder_open", channels);
    const fn = native();
    const out = new BigUint64Array(1);
    this.#err.check(
      "opus.decoder_open",
      fn.wavry_opus_decoder_open(channels, out, this.#err.reset(), this.#err.bytes.length),
    );
    this.#handle = new NativeHandle(
      "Opus decoder",
      pointerFromOut(out),
      (p) => fn.wavry_opus_decoder_close(p),
    );
    this.channels = channels;
  }

  /**
   * Decodes one packet to a new 10 ms frame (480 × channels samples); with
   * `undefined` (the packet was lost) it conceals one frame instead.
   */
  decode(packet: Uint8Array | undefined): Int16Array {
    const pcm = new Int16Array(AUDIO_FRAME_SAMPLES * this.channels);
    const n = this.decodeInto(packet, pcm);
    return n * this.channels === pcm.length ? pcm : pcm.slice(0, n * this.channels);
  }

  /**
   * Decodes into `pcm` (room for `pcm.length / channels` samples per channel) and returns the
   * samples per channel written. A lost packet conceals a whole multiple of 2.5 ms, up to
   * `pcm`'s size.
   */
  decodeInto(packet: Uint8Array | undefined, pcm: Int16Array): number {
    const pointer = this.#handle.pointer;
    const lost = packet === undefined || packet.length === 0;
    const perChannel = Math.floor(pcm.length / this.channels);
    this.#err.check(
      "opus.decode",
      native().wavry_opus_decode(
        pointer,
        lost ? null : packet,
        lost ? 0 : packet.length,
        pcm,
        perChannel,
        this.#count,
        this.#err.reset(),
        this.#err.bytes.length,
      ),
    );
    return this.#count[0];
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#handle.closed;
  }

  /** Frees the decoder; later calls throw a Closed NativeError. */
  close(): void {
    this.#handle.close();
  }
}
