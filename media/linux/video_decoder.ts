/**
 * H.264 decoding through libavcodec (`ffi/native/video_codec.c`): low-delay,
 * one access unit in, its picture out as BGRA, on a worker thread.
 *
 * @module
 */
import { ErrorBuffer, NativeError, NativeStatus } from "../../ffi/errors.ts";
import { CallChain, NativeHandle, pointerFromOut } from "../../ffi/handles.ts";
import { lazyNative } from "../../ffi/library.ts";
import type { DecodedFrame, VideoDecoder } from "../types.ts";

const symbols = {
  wavry_decoder_open: { parameters: ["buffer", "buffer", "i32"], result: "i32" },
  wavry_decoder_decode: {
    parameters: [
      "pointer",
      "buffer",
      "i32",
      "buffer",
      "i32",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "i32",
    ],
    result: "i32",
    nonblocking: true,
  },
  wavry_decoder_timing: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  wavry_decoder_close: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

const native = lazyNative(symbols);

/** H.264 decoder on libavcodec. */
export class FfmpegVideoDecoder implements VideoDecoder {
  readonly #handle: NativeHandle;
  readonly #error = new ErrorBuffer();
  readonly #width = new Int32Array(1);
  readonly #height = new Int32Array(1);
  readonly #got = new Int32Array(1);
  readonly #decodeNs = new BigInt64Array(1);
  readonly #convertNs = new BigInt64Array(1);
  #frameBytes = 0;
  readonly #calls: CallChain;

  private constructor(handle: NativeHandle) {
    this.#handle = handle;
    this.#calls = new CallChain(handle);
  }

  /** Opens a decoder; throws a {@linkcode NativeError} (Codec) when FFmpeg has none. */
  static open(): FfmpegVideoDecoder {
    const error = new ErrorBuffer();
    const out = new BigUint64Array(1);
    error.check(
      "decoder.open",
      native().wavry_decoder_open(out, error.reset(), error.bytes.length),
    );
    return new FfmpegVideoDecoder(
      new NativeHandle("decoder", pointerFromOut(out), (p) => native().wavry_decoder_close(p)),
    );
  }

  /**
   * Decodes one Annex-B access unit. Resolves to the picture (a new buffer
   * owned by the caller) or undefined when the unit produced none. Calls are
   * serialised; corrupt input rejects with a NativeError (Codec).
   */
  decode(accessUnit: Uint8Array): Promise<DecodedFrame | undefined> {
    return this.#calls.run("decoder.decode", () => this.#decode(accessUnit));
  }

  async #decode(accessUnit: Uint8Array): Promise<DecodedFrame | undefined> {
    if (accessUnit.length === 0) {
      throw new NativeError("decoder.decode", NativeStatus.InvalidArgument, "empty access unit");
    }
    const lib = native();
    const pointer = this.#handle.pointer;
    // A fresh buffer per picture: the caller owns it. Sized as the last picture.
    let out = new Uint8Array(this.#frameBytes);
    let status = await lib.wavry_decoder_decode(
      pointer,
      accessUnit as Uint8Array<ArrayBuffer>,
      accessUnit.length,
      out,
      out.length,
      this.#width,
      this.#height,
      this.#got,
      this.#error.reset(),
      this.#error.bytes.length,
    );
    const needed = this.#width[0] * this.#height[0] * 4;
    if (status === NativeStatus.InvalidArgument && needed > out.length) {
      // The picture is bigger than the last one: fetch it with a buffer that fits.
      this.#frameBytes = needed;
      out = new Uint8Array(needed);
      status = await lib.wavry_decoder_decode(
        pointer,
        null,
        0,
        out,
        out.length,
        this.#width,
        this.#height,
        this.#got,
        this.#error.reset(),
        this.#error.bytes.length,
      );
    }
    this.#error.check("decoder.decode", status);
    if (this.#got[0] !== 1) return undefined;
    lib.wavry_decoder_timing(pointer, this.#decodeNs, this.#convertNs);
    const width = this.#width[0], height = this.#height[0];
    return {
      width,
      height,
      data: needed === out.length ? out : out.subarray(0, needed),
      decodeMs: Number(this.#decodeNs[0] + this.#convertNs[0]) / 1e6,
    };
  }

  /** Frees the decoder (after a decode in flight finishes). */
  close(): void {
    this.#calls.close();
  }
}
