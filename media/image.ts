/**
 * Image comparison for tests and benchmarks: mean squared error and PSNR
 * over the B, G and R channels of BGRA images (the X/alpha byte is ignored).
 *
 * @module
 */

/** A BGRA image: `stride` bytes per row (default width × 4). */
export interface BgraImage {
  /** Pixel width. */
  readonly width: number;
  /** Pixel height. */
  readonly height: number;
  /** Pixels, B, G, R, X. */
  readonly data: Uint8Array;
  /** Bytes per row; width × 4 when undefined. */
  readonly stride?: number;
}

function rowBytes(image: BgraImage): number {
  const stride = image.stride ?? image.width * 4;
  if (stride < image.width * 4) throw new RangeError(`stride ${stride} < width × 4`);
  if (image.data.length < stride * (image.height - 1) + image.width * 4) {
    throw new RangeError(
      `${image.width}x${image.height} image needs more than its ${image.data.length} bytes`,
    );
  }
  return stride;
}

/** Mean squared error over the B, G, R channels of two images of the same size. */
export function meanSquaredError(a: BgraImage, b: BgraImage): number {
  if (a.width !== b.width || a.height !== b.height) {
    throw new RangeError(`images differ in size: ${a.width}x${a.height} vs ${b.width}x${b.height}`);
  }
  const sa = rowBytes(a);
  const sb = rowBytes(b);
  let sum = 0;
  for (let y = 0; y < a.height; y++) {
    let ia = y * sa;
    let ib = y * sb;
    let row = 0;
    for (let x = 0; x < a.width; x++, ia += 4, ib += 4) {
      const d0 = a.data[ia] - b.data[ib];
      const d1 = a.data[ia + 1] - b.data[ib + 1];
      const d2 = a.data[ia + 2] - b.data[ib + 2];
      row += d0 * d0 + d1 * d1 + d2 * d2;
    }
    sum += row;
  }
  return sum / (a.width * a.height * 3);
}

/** PSNR in dB over B, G, R (peak 255); Infinity for identical images. */
export function psnr(a: BgraImage, b: BgraImage): number {
  const mse = meanSquaredError(a, b);
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

/** Copies an image into a tightly packed buffer (stride = width × 4). */
export function packBgra(image: BgraImage): Uint8Array {
  const stride = rowBytes(image);
  const rowLen = image.width * 4;
  if (stride === rowLen) return image.data.slice(0, rowLen * image.height);
  const out = new Uint8Array(rowLen * image.height);
  for (let y = 0; y < image.height; y++) {
    out.set(image.data.subarray(y * stride, y * stride + rowLen), y * rowLen);
  }
  return out;
}
