/**
 * Small signal tools for audio tests and diagnostics: sine tone generation,
 * frequency estimation (zero crossings refined with the Goertzel algorithm)
 * and RMS level in dBFS. Pure functions over interleaved 16-bit samples.
 *
 * Levels follow AES17: a full-scale sine (peak 32767) is 0 dBFS, so a sine
 * generated at −12 dBFS also measures −12 dBFS with {@linkcode rmsDbfs}.
 *
 * @module
 */
import { AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE } from "./types.ts";

const FULL_SCALE = 32767;

/** Converts a level in dBFS (sine-referenced) to a peak amplitude in 16-bit units. */
export function dbfsToAmplitude(dbfs: number): number {
  return FULL_SCALE * 10 ** (dbfs / 20);
}

/** Generates a continuous sine wave frame by frame, keeping phase across frames. */
export class ToneGenerator {
  /** Tone frequency in Hz. */
  readonly frequencyHz: number;
  /** Tone level in dBFS (0 = full-scale sine). */
  readonly levelDbfs: number;
  /** Channels; every channel carries the same tone. */
  readonly channels: number;
  /** Sample rate in Hz. */
  readonly sampleRate: number;
  #phase = 0;

  /** A tone of `frequencyHz` at `levelDbfs`, 48 kHz mono unless told otherwise. */
  constructor(
    frequencyHz: number,
    levelDbfs: number,
    channels = 1,
    sampleRate: number = AUDIO_SAMPLE_RATE,
  ) {
    if (!(frequencyHz > 0 && frequencyHz < sampleRate / 2)) {
      throw new RangeError(`tone frequency must be in (0, ${sampleRate / 2}) Hz`);
    }
    if (!Number.isInteger(channels) || channels < 1) {
      throw new RangeError("channels must be a positive integer");
    }
    this.frequencyHz = frequencyHz;
    this.levelDbfs = levelDbfs;
    this.channels = channels;
    this.sampleRate = sampleRate;
  }

  /** The next `samplesPerChannel` samples (default one 10 ms frame), interleaved. */
  next(samplesPerChannel: number = AUDIO_FRAME_SAMPLES): Int16Array<ArrayBuffer> {
    const out = new Int16Array(samplesPerChannel * this.channels);
    const amplitude = dbfsToAmplitude(this.levelDbfs);
    const step = (2 * Math.PI * this.frequencyHz) / this.sampleRate;
    for (let i = 0; i < samplesPerChannel; i++) {
      const value = Math.round(amplitude * Math.sin(this.#phase));
      const clamped = Math.max(-32768, Math.min(32767, value));
      for (let c = 0; c < this.channels; c++) out[i * this.channels + c] = clamped;
      this.#phase += step;
      if (this.#phase >= 2 * Math.PI) this.#phase -= 2 * Math.PI;
    }
    return out;
  }
}

/** Options shared by the analysis functions. */
export interface AnalysisOptions {
  /** Interleaved channel count (default 1). */
  channels?: number;
  /** Which channel to analyse; all channels averaged when undefined. */
  channel?: number;
  /** Sample rate in Hz (default 48000). */
  sampleRate?: number;
}

/** One channel (or the average of all) of interleaved samples, as floats in [-1, 1). */
export function toMono(samples: Int16Array, channels = 1, channel?: number): Float64Array {
  if (!Number.isInteger(channels) || channels < 1) {
    throw new RangeError("channels must be a positive integer");
  }
  if (channel !== undefined && (channel < 0 || channel >= channels)) {
    throw new RangeError(`channel ${channel} is out of range for ${channels} channels`);
  }
  const frames = Math.floor(samples.length / channels);
  const out = new Float64Array(frames);
  for (let i = 0; i < frames; i++) {
    if (channel !== undefined) {
      out[i] = samples[i * channels + channel] / 32768;
    } else {
      let sum = 0;
      for (let c = 0; c < channels; c++) sum += samples[i * channels + c];
      out[i] = sum / channels / 32768;
    }
  }
  return out;
}

/**
 * RMS level in dBFS, sine-referenced (AES17): 20·log10(√2 · rms / full scale).
 * −Infinity for digital silence or an empty buffer.
 */
export function rmsDbfs(samples: Int16Array, options: AnalysisOptions = {}): number {
  const mono = toMono(samples, options.channels ?? 1, options.channel);
  if (mono.length === 0) return -Infinity;
  let sum = 0;
  for (const x of mono) sum += x * x;
  const rms = Math.sqrt(sum / mono.length) * (32768 / FULL_SCALE);
  return rms === 0 ? -Infinity : 20 * Math.log10(Math.SQRT2 * rms);
}

/**
 * Frequency from zero crossings: the time between the first and last upward
 * crossing (interpolated between samples) over the number of periods in
 * between. NaN when fewer than two upward crossings exist.
 */
export function zeroCrossingFrequency(samples: Int16Array, options: AnalysisOptions = {}): number {
  const x = toMono(samples, options.channels ?? 1, options.channel);
  const rate = options.sampleRate ?? AUDIO_SAMPLE_RATE;
  let first = NaN;
  let last = NaN;
  let crossings = 0;
  for (let i = 1; i < x.length; i++) {
    if (x[i - 1] < 0 && x[i] >= 0) {
      const t = i - 1 + -x[i - 1] / (x[i] - x[i - 1]);
      if (crossings === 0) first = t;
      last = t;
      crossings++;
    }
  }
  if (crossings < 2) return NaN;
  return ((crossings - 1) * rate) / (last - first);
}

/** Goertzel power of `x` at `frequencyHz` (any frequency, not only DFT bins), normalised by length². */
export function goertzelPower(
  x: Float64Array,
  frequencyHz: number,
  sampleRate: number = AUDIO_SAMPLE_RATE,
): number {
  const w = (2 * Math.PI * frequencyHz) / sampleRate;
  const coeff = 2 * Math.cos(w);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < x.length; i++) {
    const s0 = x[i] + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  return power / (x.length * x.length);
}

/**
 * Estimates the frequency of the dominant tone: a zero-crossing estimate,
 * then the peak of the Goertzel power on a fine grid ±10% around it, refined
 * by parabolic interpolation. Use at least ~20 periods of signal. NaN when
 * the signal has no periodic content.
 */
export function estimateFrequency(samples: Int16Array, options: AnalysisOptions = {}): number {
  const rate = options.sampleRate ?? AUDIO_SAMPLE_RATE;
  const coarse = zeroCrossingFrequency(samples, options);
  if (!Number.isFinite(coarse) || coarse <= 0) return NaN;
  const x = toMono(samples, options.channels ?? 1, options.channel);
  // Remove DC so it cannot leak into the search near low frequencies.
  let mean = 0;
  for (const v of x) mean += v;
  mean /= x.length;
  for (let i = 0; i < x.length; i++) x[i] -= mean;
  const step = rate / x.length / 8; // an eighth of a DFT bin
  const low = Math.max(step, coarse * 0.9);
  const high = Math.min(rate / 2 - step, coarse * 1.1);
  let best = low;
  let bestPower = -1;
  for (let f = low; f <= high; f += step) {
    const p = goertzelPower(x, f, rate);
    if (p > bestPower) {
      bestPower = p;
      best = f;
    }
  }
  const pl = goertzelPower(x, best - step, rate);
  const pr = goertzelPower(x, best + step, rate);
  const denominator = pl - 2 * bestPower + pr;
  const offset = denominator < 0 ? (0.5 * (pl - pr)) / denominator : 0;
  return best + Math.max(-1, Math.min(1, offset)) * step;
}

/** Concatenates frames of interleaved samples into one buffer. */
export function concatSamples(frames: readonly Int16Array[]): Int16Array<ArrayBuffer> {
  let length = 0;
  for (const f of frames) length += f.length;
  const out = new Int16Array(length);
  let at = 0;
  for (const f of frames) {
    out.set(f, at);
    at += f.length;
  }
  return out;
}
