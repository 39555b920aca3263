/**
 * A {@linkcode Capturer} that needs no display: it renders the synthetic
 * picture of media/pattern.ts (the one the race feeds libwebrtc) as BGRA,
 * grey (B = G = R = the pattern's luma; its chroma is neutral), each frame
 * stamped with a time code: frame number and capture time (CLOCK_MONOTONIC
 * ms, modulo 2^32). A receiver that decodes the picture can read both back
 * with {@linkcode readTimeCode} from any one colour channel.
 *
 * The host streams it with `source: { kind: "pattern", ... }`
 * (host/media_worker.ts); benchmarks and tests use it to drive the real
 * encoder, FEC, pacing and DELTA without an X server.
 *
 * @module
 */
import { monotonicMicros } from "./clock.ts";
import { PatternGenerator, type PatternOptions } from "./pattern.ts";
import type { CapturedFrame, Capturer } from "./types.ts";

/** What {@linkcode SyntheticCapturer} renders: the pattern's size and difficulty. */
export type SyntheticCaptureOptions = PatternOptions;

/** Little-endian BGRX word of grey level `y`: bytes B, G, R = y, X = 255. */
function greyWord(y: number): number {
  return ((0xff << 24) | (y << 16) | (y << 8) | y) >>> 0;
}

/** Renders the race's synthetic picture as BGRA frames. */
export class SyntheticCapturer implements Capturer {
  readonly width: number;
  readonly height: number;
  readonly #pattern: PatternGenerator;
  readonly #data: Uint8Array;
  readonly #words: Uint32Array;
  readonly #lut = new Uint32Array(256);
  readonly #clockUs: () => number;
  #n = 0;
  #closed = false;

  /**
   * @param clockUs capture clock, µs (default CLOCK_MONOTONIC, the clock of every capture time)
   * @throws RangeError on sizes the pattern refuses (odd, non-positive, too small for the code)
   */
  constructor(options: SyntheticCaptureOptions, clockUs: () => number = monotonicMicros) {
    this.#pattern = new PatternGenerator(options);
    this.width = options.width;
    this.height = options.height;
    // Checked once here so that capture() cannot fail on the time code's size later.
    this.#pattern.frame(0, 0, 0);
    this.#data = new Uint8Array(this.width * this.height * 4);
    this.#words = new Uint32Array(this.#data.buffer);
    for (let y = 0; y < 256; y++) this.#lut[y] = greyWord(y);
    this.#clockUs = clockUs;
  }

  /** Frames rendered so far (the next frame's number). */
  get framesCaptured(): number {
    return this.#n;
  }

  /** Whether {@linkcode close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Renders the next frame, stamped with its number and the capture time.
   * The buffer is reused by the next call, as a screen capturer's is.
   */
  capture(): Promise<CapturedFrame> {
    if (this.#closed) return Promise.reject(new Error("SyntheticCapturer: closed"));
    const captureTimeUs = this.#clockUs();
    const n = this.#n++;
    const luma = this.#pattern.frame(n, n, captureTimeUs / 1000);
    const words = this.#words, lut = this.#lut;
    const pixels = this.width * this.height;
    for (let i = 0; i < pixels; i++) words[i] = lut[luma[i]];
    return Promise.resolve({
      width: this.width,
      height: this.height,
      stride: this.width * 4,
      data: this.#data,
      captureTimeUs,
    });
  }

  /** Nothing native to free; later captures reject. */
  close(): void {
    this.#closed = true;
  }
}
