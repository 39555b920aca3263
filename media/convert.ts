/**
 * The shim's BGRA -> I420 converter (BT.709, limited range, 2x2 mean
 * chroma), exposed for tests and benchmarks; the encoder calls it natively.
 *
 * @module
 */
import { ErrorBuffer } from "../ffi/errors.ts";
import { lazyNative } from "../ffi/library.ts";

const symbols = {
  wavry_convert_bgra_to_i420: {
    parameters: [
      "buffer",
      "i32",
      "i32",
      "i32",
      "buffer",
      "buffer",
      "buffer",
      "i32",
      "buffer",
      "i32",
    ],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

const native = lazyNative(symbols);

/** Planar 4:2:0 picture: Y is width×height, U and V are (width/2)×(height/2). */
export interface I420Picture {
  /** Luma plane. */
  readonly y: Uint8Array;
  /** Cb plane. */
  readonly u: Uint8Array;
  /** Cr plane. */
  readonly v: Uint8Array;
}

/** Converts a BGRA image (even width and height) to I420 with the shim's converter. */
export function bgraToI420(
  bgra: Uint8Array<ArrayBuffer>,
  width: number,
  height: number,
  stride: number = width * 4,
  threads = 1,
): I420Picture {
  if (bgra.length < stride * height) {
    throw new RangeError(`BGRA buffer of ${bgra.length} bytes is smaller than ${stride}x${height}`);
  }
  const y = new Uint8Array(width * height);
  const u = new Uint8Array((width / 2) * (height / 2));
  const v = new Uint8Array(u.length);
  const err = new ErrorBuffer();
  err.check(
    "convert.bgraToI420",
    native().wavry_convert_bgra_to_i420(
      bgra,
      stride,
      width,
      height,
      y,
      u,
      v,
      threads,
      err.reset(),
      err.bytes.length,
    ),
  );
  return { y, u, v };
}
