/**
 * Low-latency H.264 encoding through libavcodec (`ffi/native/video_codec.c`):
 * libx264 (ultrafast, zerolatency, no B-frames, no lookahead, sliced threads),
 * or VA-API / NVENC when the machine has them. One captured frame in, one
 * Annex-B access unit out, on a worker thread (nonblocking FFI call).
 *
 * @module
 */
import { ErrorBuffer, NativeError, NativeStatus } from "../../ffi/errors.ts";
import { CallChain, NativeHandle, pointerFromOut } from "../../ffi/handles.ts";
import { lazyNative } from "../../ffi/library.ts";
import { codecConfigFromAnnexB } from "../h264.ts";
import type {
  CapturedFrame,
  CodecConfig,
  EncodedAccessUnit,
  EncoderOptions,
  VideoEncoder,
} from "../types.ts";

/** Flags of `wavry_encoder_open` (mirrors `WV_ENC_*` in video_codec.c). */
export const EncoderFlags = {
  /** Periodic intra refresh instead of IDR frames. */
  IntraRefresh: 1,
  /** Convert to NV12 instead of yuv420p. */
  Nv12: 2,
  /** libswscale SWS_FAST_BILINEAR instead of SWS_POINT. */
  SwsFastBilinear: 4,
  /** libswscale SWS_BILINEAR. */
  SwsBilinear: 8,
  /** libswscale on one thread. */
  SwsOneThread: 16,
  /** x264 preset superfast instead of ultrafast. */
  Superfast: 32,
  /** libswscale SWS_BICUBIC (the ffmpeg command line's default). */
  SwsBicubic: 64,
  /** Full-resolution chroma: libx264 High 4:4:4 Predictive. */
  Yuv444: 128,
  /** libswscale for 4:2:0 as well, instead of the shim's own converter (for comparison). */
  Swscale: 256,
} as const;

const symbols = {
  wavry_encoder_open: {
    parameters: ["i32", "i32", "i32", "i32", "i32", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  wavry_encoder_name: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  wavry_encoder_notes: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  wavry_encoder_config: {
    parameters: ["pointer", "buffer", "i32", "buffer", "buffer", "i32"],
    result: "i32",
  },
  wavry_encoder_encode_bgra: {
    parameters: [
      "pointer",
      "buffer",
      "i32",
      "i32",
      "buffer",
      "i32",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "i32",
    ],
    result: "i32",
    nonblocking: true,
  },
  wavry_encoder_set_bitrate: { parameters: ["pointer", "i32", "buffer", "i32"], result: "i32" },
  wavry_encoder_close: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

const native = lazyNative(symbols);

function readCString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(bytes.subarray(0, end < 0 ? bytes.length : end));
}

/** Options of {@linkcode FfmpegVideoEncoder.open}. */
export interface FfmpegEncoderOptions extends EncoderOptions {
  /** libx264 preset (default "ultrafast"; "superfast" costs more CPU for better quality). */
  preset?: "ultrafast" | "superfast";
  /** Pixel format the BGRA input is converted to (default "yuv420p"). */
  pixelFormat?: "yuv420p" | "nv12";
  /**
   * Chroma resolution: "420" (default; every H.264 decoder, WebCodecs
   * included, takes it) or "444" (libx264 High 4:4:4 Predictive: sharp
   * coloured edges, e.g. text, survive; few hardware decoders take it).
   */
  chroma?: "420" | "444";
  /**
   * Who converts BGRA to 4:2:0: "wavry" (the shim's vectorised converter with 2x2 mean chroma,
   * the default: faster than libswscale here, docs/MEDIA.md) or "swscale". NV12 and 4:4:4
   * always use libswscale.
   */
  converter?: "wavry" | "swscale";
  /** libswscale algorithm (implies `converter: "swscale"`; default "point"). */
  scaler?: "fast_bilinear" | "point" | "bilinear" | "bicubic";
  /** Conversion threads: "auto" (one per CPU, the default) or 1. */
  scalerThreads?: "auto" | 1;
  /** Log the chosen encoder to stderr (default true). */
  log?: boolean;
}

function flagsOf(options: FfmpegEncoderOptions): number {
  let flags = 0;
  if (options.intraRefresh) flags |= EncoderFlags.IntraRefresh;
  if (options.pixelFormat === "nv12") flags |= EncoderFlags.Nv12;
  if (options.chroma === "444") flags |= EncoderFlags.Yuv444;
  if (options.scaler === "fast_bilinear") flags |= EncoderFlags.SwsFastBilinear;
  if (options.scaler === "bilinear") flags |= EncoderFlags.SwsBilinear;
  if (options.scaler === "bicubic") flags |= EncoderFlags.SwsBicubic;
  if (options.scalerThreads === 1) flags |= EncoderFlags.SwsOneThread;
  if (options.converter === "swscale" || options.scaler === "point") flags |= EncoderFlags.Swscale;
  if (options.preset === "superfast") flags |= EncoderFlags.Superfast;
  return flags;
}

function invalid(operation: string, message: string): NativeError {
  return new NativeError(operation, NativeStatus.InvalidArgument, message);
}

/** H.264 encoder on libavcodec. */
export class FfmpegVideoEncoder implements VideoEncoder {
  /** The encoder actually running: "libx264", "h264_vaapi" or "h264_nvenc". */
  readonly name: string;
  /** Why "auto" did not pick the hardware encoders (empty otherwise). */
  readonly fallbackReason: string;
  /** Frame width. */
  readonly width: number;
  /** Frame height. */
  readonly height: number;
  readonly #handle: NativeHandle;
  readonly #error = new ErrorBuffer();
  readonly #out: Uint8Array<ArrayBuffer>;
  readonly #outLen = new Int32Array(1);
  readonly #isKey = new Int32Array(1);
  readonly #convertNs = new BigInt64Array(1);
  readonly #encodeNs = new BigInt64Array(1);
  readonly #keyframeInterval: number;
  #config: CodecConfig;
  #inBand = false;
  #forceKeyframe = false;
  #framesSinceKey = 0;
  #bitrate: number;
  readonly #calls: CallChain;

  private constructor(
    handle: NativeHandle,
    name: string,
    notes: string,
    config: CodecConfig,
    options: FfmpegEncoderOptions,
  ) {
    this.#handle = handle;
    this.#calls = new CallChain(handle);
    this.name = name;
    this.fallbackReason = notes;
    this.#config = config;
    this.width = options.width;
    this.height = options.height;
    this.#bitrate = options.bitrateBps;
    this.#keyframeInterval = options.keyframeInterval ?? 0;
    this.#out = new Uint8Array(options.width * options.height * 2 + 65_536);
  }
  /** Whether the native encoder has been freed (after `close()` and any encode in flight). */
  get closed(): boolean {
    return this.#handle.closed;
  }

  /**
   * Opens an encoder. With `encoder: "auto"` (the default) it tries VA-API,
   * then NVENC, then libx264, and logs one line to stderr saying which runs
   * and why the others did not. Throws a {@linkcode NativeError}: Codec when
   * the requested encoder cannot open, InvalidArgument for bad sizes or rates.
   */
  static open(options: FfmpegEncoderOptions): FfmpegVideoEncoder {
    const { width, height, fps, bitrateBps } = options;
    for (const [key, value] of Object.entries({ width, height, fps, bitrateBps })) {
      if (!Number.isInteger(value) || value < 0 || value > 0x7fffffff) {
        throw invalid("encoder.open", `${key} ${value} is not a non-negative 32-bit integer`);
      }
    }
    const keyframeInterval = options.keyframeInterval ?? 0;
    if (!Number.isInteger(keyframeInterval) || keyframeInterval < 0) {
      throw invalid("encoder.open", `keyframeInterval ${keyframeInterval} is invalid`);
    }
    const lib = native();
    const error = new ErrorBuffer();
    const out = new BigUint64Array(1);
    const which = options.encoder ?? "auto";
    error.check(
      "encoder.open",
      lib.wavry_encoder_open(
        width,
        height,
        fps,
        bitrateBps,
        flagsOf(options),
        new TextEncoder().encode(which + "\0"),
        out,
        error.reset(),
        error.bytes.length,
      ),
    );
    const handle = new NativeHandle("encoder", pointerFromOut(out), (p) => {
      native().wavry_encoder_close(p);
    });
    try {
      const text = new Uint8Array(512);
      error.check("encoder.name", lib.wavry_encoder_name(handle.pointer, text, text.length));
      const name = readCString(text);
      text.fill(0);
      error.check("encoder.notes", lib.wavry_encoder_notes(handle.pointer, text, text.length));
      const notes = readCString(text);
      const configBytes = new Uint8Array(4096);
      const configLen = new Int32Array(1);
      error.check(
        "encoder.config",
        lib.wavry_encoder_config(
          handle.pointer,
          configBytes,
          configBytes.length,
          configLen,
          error.reset(),
          error.bytes.length,
        ),
      );
      const config = codecConfigFromAnnexB(configBytes.subarray(0, configLen[0])) ?? {
        codec: "avc1.42e01f",
        sps: new Uint8Array(0),
        pps: new Uint8Array(0),
        avcc: new Uint8Array(0),
      };
      if (options.log ?? true) {
        console.error(
          `wavry: video encoder ${name} (${width}x${height}@${fps})` +
            (notes ? `; not using the others: ${notes}` : ""),
        );
      }
      return new FfmpegVideoEncoder(handle, name, notes, config, options);
    } catch (e) {
      handle.close();
      throw e;
    }
  }

  /**
   * Codec configuration: from the encoder's out-of-band headers at open,
   * then from the SPS/PPS of the first keyframe it produced.
   */
  get config(): CodecConfig {
    return this.#config;
  }

  /** The current target bitrate. */
  get bitrateBps(): number {
    return this.#bitrate;
  }

  /** Encodes one frame (same size as the encoder). Calls are serialised. */
  encode(frame: CapturedFrame): Promise<EncodedAccessUnit> {
    return this.#calls.run("encoder.encode", () => this.#encode(frame));
  }

  async #encode(frame: CapturedFrame): Promise<EncodedAccessUnit> {
    if (frame.width !== this.width || frame.height !== this.height) {
      throw invalid(
        "encoder.encode",
        `frame is ${frame.width}x${frame.height}, the encoder was opened for ${this.width}x${this.height}`,
      );
    }
    const stride = frame.stride;
    const need = stride * (frame.height - 1) + frame.width * 4;
    if (!Number.isInteger(stride) || stride < frame.width * 4 || frame.data.length < need) {
      throw invalid(
        "encoder.encode",
        `buffer of ${frame.data.length} bytes (stride ${stride}) is too small for ` +
          `${frame.width}x${frame.height} BGRA (${need} bytes)`,
      );
    }
    let force = this.#forceKeyframe;
    if (this.#keyframeInterval > 0 && this.#framesSinceKey + 1 >= this.#keyframeInterval) {
      force = true;
    }
    const pointer = this.#handle.pointer;
    const status = await native().wavry_encoder_encode_bgra(
      pointer,
      frame.data as Uint8Array<ArrayBuffer>,
      stride,
      force ? 1 : 0,
      this.#out,
      this.#out.length,
      this.#outLen,
      this.#isKey,
      this.#convertNs,
      this.#encodeNs,
      this.#error.reset(),
      this.#error.bytes.length,
    );
    this.#error.check("encoder.encode", status);
    if (force) this.#forceKeyframe = false;
    const data = this.#out.slice(0, this.#outLen[0]);
    const keyframe = this.#isKey[0] === 1;
    this.#framesSinceKey = keyframe ? 0 : this.#framesSinceKey + 1;
    if (keyframe && !this.#inBand) {
      const inBand = codecConfigFromAnnexB(data);
      if (inBand) {
        this.#config = inBand;
        this.#inBand = true;
      }
    }
    return {
      data,
      keyframe,
      captureTimeUs: frame.captureTimeUs,
      convertMs: Number(this.#convertNs[0]) / 1e6,
      encodeMs: Number(this.#encodeNs[0]) / 1e6,
    };
  }

  /** New target bitrate from the next frame on, without a keyframe. */
  setBitrate(bitrateBps: number): void {
    if (!Number.isInteger(bitrateBps) || bitrateBps < 0 || bitrateBps > 0x7fffffff) {
      throw invalid("encoder.setBitrate", `bitrate ${bitrateBps} is not a 32-bit integer`);
    }
    this.#error.check(
      "encoder.setBitrate",
      native().wavry_encoder_set_bitrate(
        this.#handle.pointer,
        bitrateBps,
        this.#error.reset(),
        this.#error.bytes.length,
      ),
    );
    this.#bitrate = bitrateBps;
  }

  /** Makes the next encoded frame an IDR frame (with SPS/PPS in front). */
  requestKeyframe(): void {
    if (this.#handle.closed) {
      throw new NativeError(
        "encoder.requestKeyframe",
        NativeStatus.Closed,
        "the encoder is closed",
      );
    }
    this.#forceKeyframe = true;
  }

  /** Frees the encoder (after an encode in flight finishes). */
  close(): void {
    this.#calls.close();
  }
}
