/**
 * A private Xvfb display for the demo, a test or a bench: Xvfb picks a free
 * display number itself (-displayfd), so displays started in parallel never
 * collide.
 *
 * @module
 */
import { LineProcess } from "../process/line_process.ts";

/** A running virtual X display. */
export interface VirtualDisplay {
  /** The DISPLAY value, e.g. ":12". */
  readonly display: string;
  /** Screen size. */
  readonly width: number;
  /** Screen size. */
  readonly height: number;
  /** The server's process id. */
  readonly pid: number;
  /** Stops the server. */
  stop(): Promise<void>;
}

/** Starts Xvfb with one screen of `width`x`height` at 24-bit depth. */
export async function startXvfb(width = 1280, height = 720): Promise<VirtualDisplay> {
  const xvfb = new LineProcess("Xvfb", "Xvfb", [
    "-displayfd",
    "1",
    "-screen",
    "0",
    `${width}x${height}x24`,
    "-nolisten",
    "tcp",
    "-noreset",
  ]);
  const line = await xvfb.waitForLine((l) => /^\d+$/.test(l.trim()), 15_000);
  return { display: `:${line.trim()}`, width, height, pid: xvfb.pid, stop: () => xvfb.stop() };
}
