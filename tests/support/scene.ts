/**
 * The geometry of the xprobe test scene (ffi/tools/xprobe.c, `--pattern`):
 * where the orange square and the colour bars are at a given frame counter,
 * so a test can check a picture's pixels against what the host's screen
 * showed at that counter.
 *
 * @module
 */

/** Cell size of the machine-readable rows (row 0: frame counter, row 1: time in ms). */
export const CELL = 16;

/** An 8-bit RGB colour. */
export type Rgb = readonly [number, number, number];

/** The bars' colours, left to right at counter 0. */
export const BARS: readonly Rgb[] = [
  [235, 235, 235],
  [235, 235, 16],
  [16, 235, 235],
  [16, 235, 16],
  [235, 16, 235],
  [235, 16, 16],
  [16, 16, 235],
  [40, 40, 40],
];

/** The bouncing square's colour. */
export const ORANGE: Rgb = [255, 128, 0];

/** The square for frame `counter` on a `width`x`height` scene. */
export function square(
  counter: number,
  width: number,
  height: number,
): { x: number; y: number; size: number } {
  const size = (height / 6) & ~1;
  const spanX = (width - size) & ~1, spanY = (height - 2 * CELL - size) & ~1;
  let px = (counter * 8) % (2 * spanX), py = (counter * 6) % (2 * spanY);
  if (px > spanX) px = 2 * spanX - px;
  if (py > spanY) py = 2 * spanY - py;
  return { x: px, y: 2 * CELL + py, size };
}

/** A point of the scene and the colour the scene has there. */
export interface Patch {
  readonly what: string;
  readonly x: number;
  readonly y: number;
  readonly rgb: Rgb;
}

/**
 * Points well inside flat areas of the scene at `counter`: the square's
 * centre, and the middle of each bar at three heights, away from the square.
 * The square moves 8 px and the bars 4 px a frame, so every point keeps its
 * colour one frame either side (a capture racing the scene's drawing).
 */
export function patches(counter: number, width: number, height: number): Patch[] {
  const sq = square(counter, width, height);
  const out: Patch[] = [{
    what: "orange square centre",
    x: sq.x + sq.size / 2,
    y: sq.y + sq.size / 2,
    rgb: ORANGE,
  }];
  const barW = (width / 8 + 2) & ~1;
  const offset = (counter * 4) % barW;
  for (let i = -1; i < 8; i++) {
    const x = i * barW + offset + barW / 2;
    if (x < 20 || x > width - 20) continue;
    for (const y of [Math.round(height * 0.11), Math.round(height * 0.55), height - 30]) {
      const margin = 30;
      if (
        x > sq.x - margin && x < sq.x + sq.size + margin && y > sq.y - margin &&
        y < sq.y + sq.size + margin
      ) continue;
      out.push({ what: `bar ${(i + 8) % 8}`, x, y, rgb: BARS[(i + 8) % 8] });
    }
  }
  return out;
}

/** Largest per-channel difference between two colours. */
export function colourDistance(a: Rgb, b: Rgb): number {
  return Math.max(Math.abs(a[0] - b[0]), Math.abs(a[1] - b[1]), Math.abs(a[2] - b[2]));
}
