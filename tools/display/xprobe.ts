/**
 * The wavry-xprobe X client (ffi/tools/xprobe.c): draws the moving test scene
 * and reports the input events it receives as JSON lines.
 *
 * @module
 */
import { LineProcess } from "../process/line_process.ts";

/** One input event as the X client saw it. */
export type ProbeEvent =
  | {
    type: "key";
    press: boolean;
    keycode: number;
    keysym: number;
    name: string;
    state: number;
    t_us: number;
    /** The X server's event time, ms (CLOCK_MONOTONIC in Xorg and Xvfb, 32 bits). */
    server_ms: number;
  }
  | { type: "button"; press: boolean; button: number; x: number; y: number; t_us: number }
  | { type: "motion"; x: number; y: number; t_us: number };

/** Where the built probe is. */
export function xprobePath(): string {
  return new URL("../../ffi/build/wavry-xprobe", import.meta.url).pathname;
}

/** A running probe window on a display. */
export class XProbe {
  readonly #process: LineProcess;

  private constructor(process: LineProcess) {
    this.#process = process;
  }

  /** Starts the probe on `display`; with `pattern`, it draws the moving scene at `fps`. */
  static async start(
    display: string,
    options: { pattern?: boolean; scene?: boolean; fps?: number } = {},
  ): Promise<XProbe> {
    const args = ["--stdin-exit"];
    if (options.scene) args.push("--scene", "--fps", String(options.fps ?? 60));
    else if (options.pattern) args.push("--pattern", "--fps", String(options.fps ?? 60));
    const process = new LineProcess("wavry-xprobe", xprobePath(), args, { DISPLAY: display });
    await process.waitForLine((l) => l.includes('"ready":true'));
    return new XProbe(process);
  }

  /** The probe's process id. */
  get pid(): number {
    return this.#process.pid;
  }

  /** Input events received so far. */
  events(): ProbeEvent[] {
    return this.#process.lines
      .filter((l) => l.startsWith('{"type"'))
      .map((l) => JSON.parse(l) as ProbeEvent);
  }

  /** Waits until an event satisfies `predicate`. */
  async waitForEvent(
    predicate: (e: ProbeEvent) => boolean,
    timeoutMs = 5_000,
  ): Promise<ProbeEvent> {
    const line = await this.#process.waitForLine((l) => {
      if (!l.startsWith('{"type"')) return false;
      return predicate(JSON.parse(l) as ProbeEvent);
    }, timeoutMs);
    return JSON.parse(line) as ProbeEvent;
  }

  /** Stops the probe. */
  stop(): Promise<void> {
    return this.#process.stop();
  }
}

/** Reads the 32-bit value the scene draws in cell row `row` (0: frame counter, 1: time in ms) from a BGRA image. */
export function readPatternRow(bgra: Uint8Array, width: number, row: number): number {
  const CELL = 16;
  let value = 0;
  for (let bit = 0; bit < 32; bit++) {
    const x = bit * CELL + CELL / 2;
    const y = row * CELL + CELL / 2;
    const i = (y * width + x) * 4;
    const luma = (bgra[i] + bgra[i + 1] + bgra[i + 2]) / 3;
    value = value * 2 + (luma > 127 ? 1 : 0);
  }
  return value >>> 0;
}
