/**
 * Capture at a steady frame rate: the display's refresh rate, or one asked for.
 *
 * Frame k is due at start + k / fps. A capture that finishes late does not
 * cause a burst of catch-up frames: missed slots are skipped and counted, and
 * the schedule continues from the next slot, so frames stay evenly spaced.
 *
 * @module
 */
import type { CapturedFrame, Capturer } from "./types.ts";

/** Frame rate used when neither the caller nor the display says. */
export const DEFAULT_CAPTURE_FPS = 60;

/** How a paced capture is run. */
export interface PacedCaptureOptions {
  /** Frames per second (default: the display's refresh rate, else 60). */
  fps?: number;
  /** Stops the loop. */
  signal?: AbortSignal;
  /** Clock in ms (default performance.now); injectable for tests. */
  now?: () => number;
  /** Waits `ms` (default setTimeout); injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
  /** Called with the number of slots skipped because a capture ran late. */
  onSkipped?: (slots: number) => void;
}

/** The rate a paced capture of `capturer` runs at, given `requested` (may be undefined). */
export function captureRate(capturer: Capturer, requested?: number): number {
  if (requested !== undefined) {
    if (!(requested > 0 && requested <= 1000)) {
      throw new RangeError(`capture rate ${requested} fps is not in (0, 1000]`);
    }
    return requested;
  }
  return capturer.refreshRate?.() ?? DEFAULT_CAPTURE_FPS;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Yields frames from `capturer` at a steady rate until `signal` aborts. */
export async function* pacedCapture(
  capturer: Capturer,
  options: PacedCaptureOptions = {},
): AsyncGenerator<CapturedFrame, void, void> {
  const fps = captureRate(capturer, options.fps);
  const interval = 1000 / fps;
  const now = options.now ?? (() => performance.now());
  const sleep = options.sleep ?? defaultSleep;
  const start = now();
  let slot = 0;
  while (!options.signal?.aborted) {
    const due = start + slot * interval;
    const wait = due - now();
    if (wait > 0) await sleep(wait);
    if (options.signal?.aborted) return;
    yield await capturer.capture();
    // The first slot not yet past: never a burst to catch up.
    const next = Math.max(slot + 1, Math.ceil((now() - start) / interval));
    if (next > slot + 1) options.onSkipped?.(next - slot - 1);
    slot = next;
  }
}
