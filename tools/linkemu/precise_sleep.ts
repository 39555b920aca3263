/**
 * A sleep with sub-millisecond precision that keeps the event loop free.
 *
 * Deno's timers fire 1 to 2 ms late here (measured: `setTimeout(f, 1)` runs
 * after 2.1 ms at the median), too coarse for an emulator that must add less
 * than 1 ms of jitter. libc's `usleep` called as a *nonblocking* FFI symbol
 * sleeps on one of Deno's blocking-pool threads and resolves a promise when it
 * wakes (about 0.14 ms late at the median), while the worker's event loop goes
 * on receiving datagrams. The last stretch before a deadline is covered by
 * `spinUntil`, which yields to the event loop through a MessageChannel (a
 * macrotask with no timer clamping, ~5 µs) so I/O keeps flowing while it spins.
 *
 * @module
 */

/** Which mechanism `sleepMs` uses. */
export type SleepMechanism = "libc-usleep" | "setTimeout";

/** A precise sleeper; `close()` releases the native library. */
export interface PreciseSleeper {
  /** Resolves after about `ms` milliseconds (never early). */
  sleepMs(ms: number): Promise<void>;
  /** Yields to the event loop (I/O, messages) and resumes as soon as possible. */
  yieldNow(): Promise<void>;
  /** The mechanism in use: the libc one, or timers when libc cannot be loaded. */
  readonly mechanism: SleepMechanism;
  /** Releases resources once the sleeps in progress have ended (at most 50 ms). */
  close(): Promise<void>;
}

/** Opens a sleeper: libc `usleep` through FFI when available, timers otherwise. */
export function openPreciseSleeper(): PreciseSleeper {
  let lib:
    | Deno.DynamicLibrary<{
      usleep: { parameters: ["u32"]; result: "i32"; nonblocking: true };
    }>
    | undefined;
  if (Deno.build.os === "linux") {
    try {
      lib = Deno.dlopen("libc.so.6", {
        usleep: { parameters: ["u32"], result: "i32", nonblocking: true },
      });
    } catch {
      lib = undefined; // not glibc: fall back to timers
    }
  }
  const pending = new Set<Promise<number>>();
  const channel = new MessageChannel();
  const waiting: (() => void)[] = [];
  channel.port1.onmessage = () => waiting.shift()?.();
  return {
    mechanism: lib ? "libc-usleep" : "setTimeout",
    async sleepMs(ms: number): Promise<void> {
      if (!(ms > 0)) return;
      if (lib) {
        // Steps of at most 50 ms, so close() never waits long for a sleeping thread.
        let left = Math.ceil(ms * 1000);
        while (left > 0) {
          const step = Math.min(left, 50_000);
          const p = lib.symbols.usleep(step);
          pending.add(p);
          try {
            await p;
          } finally {
            pending.delete(p);
          }
          left -= step;
        }
      } else {
        await new Promise((r) => setTimeout(r, ms));
      }
    },
    yieldNow(): Promise<void> {
      return new Promise<void>((resolve) => {
        waiting.push(resolve);
        channel.port2.postMessage(0);
      });
    },
    async close(): Promise<void> {
      channel.port1.close();
      channel.port2.close();
      // Unloading the library under a thread still inside usleep would be unsafe.
      await Promise.allSettled([...pending]);
      lib?.close();
      lib = undefined;
    },
  };
}
