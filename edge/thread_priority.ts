/**
 * Real-time scheduling for the calling thread (Linux SCHED_FIFO through libc).
 *
 * On a loaded machine the kernel's fair scheduler may leave a woken thread
 * waiting for several milliseconds (measured here: the release lateness p99
 * went from 32-45 ms to 0.1-1 ms when the emulator ran under `chrt -f`). A
 * SCHED_FIFO thread preempts ordinary ones as soon as it wakes, and lower
 * real-time ones: libwebrtc runs its encoder queue at FIFO 49, and with a
 * libwebrtc process busy beside it a FIFO-10 emulator still saw 5-20 ms p99
 * lateness, a FIFO-50 one 0.1-0.9 ms; a probe receiving at FIFO 45 saw 5 ms
 * p99 wake-up delays, at FIFO 60 0.2-0.3 ms. The emulator
 * thread sleeps between releases, so it takes little CPU; the kernel's RT
 * throttling (95% per second by default) bounds the rest.
 *
 * Wavry uses it for the link emulator's worker and for the threads that carry
 * input (the host's input worker, the client's session worker): they sleep
 * almost always and use little CPU, and a key press must not wait for a
 * busy encoder's time slice (bench/input.ts measures the difference).
 *
 * Needs root or CAP_SYS_NICE; without them, or off Linux, it reports false and
 * changes nothing. Threads created afterwards by this thread inherit the policy
 * (so the blocking-pool threads that run the worker's sleeps do too).
 *
 * @module
 */

const SCHED_OTHER = 0;
const SCHED_FIFO = 1;
const PRIO_PROCESS = 0;

const LIBC_SYMBOLS = {
  sched_setscheduler: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  setpriority: { parameters: ["i32", "u32", "i32"], result: "i32" },
} as const;

function withLibc<T>(f: (lib: Deno.DynamicLibrary<typeof LIBC_SYMBOLS>) => T): T | undefined {
  if (Deno.build.os !== "linux") return undefined;
  let lib;
  try {
    lib = Deno.dlopen("libc.so.6", LIBC_SYMBOLS);
  } catch {
    return undefined;
  }
  try {
    return f(lib);
  } finally {
    lib.close();
  }
}

/**
 * Puts the calling thread (or thread/process `tid`, e.g. a benchmark's X
 * server) under SCHED_FIFO at `priority` (1..99).
 * @returns whether it worked
 */
export function setThreadRealtime(priority: number, tid = 0): boolean {
  if (!(Number.isInteger(priority) && priority >= 1 && priority <= 99)) {
    throw new RangeError(`realtime priority must be an integer in 1..99, got ${priority}`);
  }
  return withLibc((lib) =>
    lib.symbols.sched_setscheduler(tid, SCHED_FIFO, new Int32Array([priority])) === 0
  ) ?? false;
}

/**
 * Sets the nice value (-20..19) of the calling thread only (Linux applies
 * `setpriority(PRIO_PROCESS, 0)` to the calling task); threads it creates
 * afterwards inherit it. Raising it (lower priority) needs no privilege;
 * lowering it below the current value needs CAP_SYS_NICE.
 *
 * Wavry raises it for the capture/encode worker, so that on a saturated
 * machine the display server and the application reading the injected input
 * win every wake-up against the encoder (bench/input.ts measures it).
 * @returns whether it worked (false off Linux)
 */
export function setThreadNice(nice: number): boolean {
  if (!(Number.isInteger(nice) && nice >= -20 && nice <= 19)) {
    throw new RangeError(`nice must be an integer in -20..19, got ${nice}`);
  }
  return withLibc((lib) => lib.symbols.setpriority(PRIO_PROCESS, 0, nice) === 0) ?? false;
}

/** Returns the calling thread to the ordinary scheduler. @returns whether it worked */
export function setThreadNormal(): boolean {
  return withLibc((lib) =>
    lib.symbols.sched_setscheduler(0, SCHED_OTHER, new Int32Array([0])) === 0
  ) ?? false;
}
