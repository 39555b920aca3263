/**
 * Synthetic I420 video (the race's picture, bench/rfc8867.ts, and the host's
 * `pattern` source, media/synthetic_capture.ts): a picture whose cost to encode grows
 * with the bitrate it is given, and a time code drawn in big luma blocks that
 * survives lossy compression and scaling, so the receive side can tell each
 * decoded frame's send time.
 *
 * Pure: no clocks; the caller passes the time to stamp.
 *
 * @module
 */

/** Bits carried by the time code: 24-bit frame number, 32-bit send time, 8-bit CRC. */
export const TIMECODE_BITS = 64;
/** The code is drawn as 2 rows of 32 blocks across the top of the picture. */
export const TIMECODE_COLUMNS = 32;
/** Rows of code blocks. */
export const TIMECODE_ROWS = 2;

/** Luma of a 0 bit and of a 1 bit: far apart so that a coarse quantizer keeps them apart. */
const LUMA_ZERO = 24;
const LUMA_ONE = 232;

/** One decoded time code. */
export interface TimeCode {
  /** Frame number modulo 2^24. */
  readonly seq: number;
  /** Send time in ms modulo 2^32 (on the caller's clock). */
  readonly sendMs: number;
}

/** CRC-8 (polynomial 0x07) over 7 bytes: rejects codes garbled by the decoder. */
function crc8(bytes: Uint8Array): number {
  let c = 0;
  for (const b of bytes) {
    c ^= b;
    for (let i = 0; i < 8; i++) c = (c & 0x80) ? ((c << 1) ^ 0x07) & 0xff : (c << 1) & 0xff;
  }
  return c;
}

function codeBytes(seq: number, sendMs: number): Uint8Array {
  const b = new Uint8Array(8);
  const s = seq & 0xffffff;
  const t = Math.floor(sendMs) >>> 0;
  b[0] = s >>> 16;
  b[1] = (s >>> 8) & 0xff;
  b[2] = s & 0xff;
  b[3] = t >>> 24;
  b[4] = (t >>> 16) & 0xff;
  b[5] = (t >>> 8) & 0xff;
  b[6] = t & 0xff;
  b[7] = crc8(b.subarray(0, 7));
  return b;
}

/** Block geometry for a picture of `width` x `height`: the code fills the top band. */
function blockSize(width: number, height: number): { bw: number; bh: number } {
  const bw = Math.floor(width / TIMECODE_COLUMNS);
  // Square blocks, but never taller than a sixth of the picture.
  const bh = Math.min(bw, Math.floor(height / (TIMECODE_ROWS * 3)));
  return { bw, bh };
}

/**
 * Draws the time code into the luma plane (the first `width*height` bytes of
 * an I420 buffer).
 *
 * @throws RangeError when the picture is too small to carry it (under 64x24)
 */
export function writeTimeCode(
  i420: Uint8Array,
  width: number,
  height: number,
  seq: number,
  sendMs: number,
): void {
  const { bw, bh } = blockSize(width, height);
  if (bw < 2 || bh < 2) throw new RangeError(`writeTimeCode: ${width}x${height} is too small`);
  const bytes = codeBytes(seq, sendMs);
  for (let bit = 0; bit < TIMECODE_BITS; bit++) {
    const on = (bytes[bit >>> 3] >>> (7 - (bit & 7))) & 1;
    const v = on ? LUMA_ONE : LUMA_ZERO;
    const col = bit % TIMECODE_COLUMNS;
    const row = Math.floor(bit / TIMECODE_COLUMNS);
    for (let y = row * bh; y < (row + 1) * bh; y++) {
      i420.fill(v, y * width + col * bw, y * width + (col + 1) * bw);
    }
  }
}

/**
 * Reads the time code back from a decoded picture of any size (the sender's
 * picture may have been scaled down on the way). Each bit is the mean luma
 * of the inner half of its block, so ringing at block edges does not matter.
 * Returns undefined if the CRC does not match.
 */
export function readTimeCode(
  i420: Uint8Array,
  width: number,
  height: number,
): TimeCode | undefined {
  const { bw, bh } = blockSize(width, height);
  if (bw < 2 || bh < 2 || i420.length < width * height) return undefined;
  const bytes = new Uint8Array(8);
  const threshold = (LUMA_ZERO + LUMA_ONE) / 2;
  for (let bit = 0; bit < TIMECODE_BITS; bit++) {
    const col = bit % TIMECODE_COLUMNS;
    const row = Math.floor(bit / TIMECODE_COLUMNS);
    const x0 = col * bw + Math.floor(bw / 4), x1 = col * bw + Math.ceil((3 * bw) / 4);
    const y0 = row * bh + Math.floor(bh / 4), y1 = row * bh + Math.ceil((3 * bh) / 4);
    let sum = 0, n = 0;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        sum += i420[y * width + x];
        n++;
      }
    }
    if (sum / n > threshold) bytes[bit >>> 3] |= 1 << (7 - (bit & 7));
  }
  if (crc8(bytes.subarray(0, 7)) !== bytes[7]) return undefined;
  return {
    seq: (bytes[0] << 16) | (bytes[1] << 8) | bytes[2],
    sendMs: ((bytes[3] << 24) >>> 0) + ((bytes[4] << 16) | (bytes[5] << 8) | bytes[6]),
  };
}

/** How hard the synthetic picture is to encode. */
export interface PatternOptions {
  /** Picture width in pixels (even). */
  readonly width: number;
  /** Picture height in pixels (even). */
  readonly height: number;
  /**
   * Share of 16-row bands that show unrelated content every frame (0..1):
   * the part motion compensation cannot predict. Default 0.1.
   */
  readonly freshShare?: number;
  /**
   * Amplitude of the fine-grained noise over the smooth picture (luma steps):
   * a coarse quantizer erases it, a fine one pays for it, so the encoder can
   * spend any bitrate it is given. Default 12.
   */
  readonly noiseAmplitude?: number;
  /** Seed of the texture; the same seed gives the same video. Default 1. */
  readonly seed?: number;
}

/** Small deterministic PRNG (mulberry32): the texture must not depend on Math.random. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Makes frames of a moving picture: a large texture (smooth gradients plus
 * fine noise) that scrolls diagonally, with a share of its bands replaced
 * each frame by rows taken from a random place in the texture. Each frame is
 * only row copies (memcpy), so 1280x720 at 60 fps costs little CPU.
 */
export class PatternGenerator {
  readonly width: number;
  readonly height: number;
  readonly #tex: Uint8Array;
  readonly #texW: number;
  readonly #texH: number;
  readonly #fresh: number;
  readonly #rng: () => number;
  readonly #frame: Uint8Array;

  /** @throws RangeError on odd or non-positive sizes or shares outside 0..1 */
  constructor(opts: PatternOptions) {
    const { width, height } = opts;
    if (!(width > 0 && height > 0 && width % 2 === 0 && height % 2 === 0)) {
      throw new RangeError(
        `PatternGenerator: size must be positive and even, got ${width}x${height}`,
      );
    }
    const fresh = opts.freshShare ?? 0.1;
    if (!(fresh >= 0 && fresh <= 1)) throw new RangeError(`freshShare ${fresh} not in 0..1`);
    const amp = opts.noiseAmplitude ?? 12;
    this.width = width;
    this.height = height;
    this.#fresh = fresh;
    this.#rng = mulberry32((opts.seed ?? 1) * 7919);
    this.#texW = width * 2;
    this.#texH = height * 2;
    const rng = mulberry32(opts.seed ?? 1);
    const tex = new Uint8Array(this.#texW * this.#texH);
    const fx = 2 * Math.PI / 317, fy = 2 * Math.PI / 211;
    for (let y = 0; y < this.#texH; y++) {
      for (let x = 0; x < this.#texW; x++) {
        const smooth = 128 + 60 * Math.sin(x * fx + 0.7 * Math.sin(y * fy)) +
          30 * Math.cos(y * fy * 1.7 + x * fx * 0.3);
        const v = smooth + (rng() - 0.5) * 2 * amp;
        tex[y * this.#texW + x] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
    this.#tex = tex;
    this.#frame = new Uint8Array(width * height * 3 / 2);
    // Neutral chroma: the race is about luma bits, and a grey picture keeps it simple.
    this.#frame.fill(128, width * height);
  }

  /**
   * Frame `n`, stamped with `seq` and `sendMs`. The returned buffer is reused
   * by the next call (the video source copies it).
   */
  frame(n: number, seq: number, sendMs: number): Uint8Array {
    const { width, height } = this;
    const f = this.#frame;
    const ox = (n * 3) % (this.#texW - width);
    const oy = (n * 2) % (this.#texH - height);
    for (let band = 0; band * 16 < height; band++) {
      const fresh = this.#rng() < this.#fresh;
      const sx = fresh ? Math.floor(this.#rng() * (this.#texW - width)) : ox;
      const sy = fresh ? Math.floor(this.#rng() * (this.#texH - height)) : oy;
      for (let y = band * 16; y < Math.min(height, band * 16 + 16); y++) {
        const src = (y + sy) * this.#texW + sx;
        f.set(this.#tex.subarray(src, src + width), y * width);
      }
    }
    writeTimeCode(f, width, height, seq, sendMs);
    return f;
  }
}
