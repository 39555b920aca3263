/**
 * Raises the kernel's default socket buffer sizes for the length of a run.
 *
 * The emulator's sockets come from `Deno.listenDatagram`, which offers no
 * SO_RCVBUF: they get `net.core.rmem_default` (208 KiB here). At a few
 * thousand datagrams per second a scheduling hiccup of the emulator's worker
 * overflows that, and the loss happens outside the emulated link. A root run
 * can raise the default before it opens its sockets and put it back after.
 *
 * @module
 */

const KNOBS = ["/proc/sys/net/core/rmem_default", "/proc/sys/net/core/wmem_default"] as const;

/** What {@linkcode raiseDefaultSocketBuffers} did, and how to undo it. */
export interface RaisedBuffers {
  /** Knobs actually raised, with their previous values. */
  readonly raised: readonly { path: string; previous: number }[];
  /** Why nothing was raised (not root, no /proc), when nothing was. */
  readonly reason?: string;
  /** Puts every raised knob back (idempotent). */
  restore(): void;
}

/**
 * Sets each default socket buffer to at least `bytes` (never lowers one).
 * Sockets opened afterwards get the new default; the caller must call
 * `restore()` when its sockets are closed.
 */
export function raiseDefaultSocketBuffers(bytes: number): RaisedBuffers {
  if (!(Number.isInteger(bytes) && bytes > 0)) throw new RangeError("bytes: a positive integer");
  const raised: { path: string; previous: number }[] = [];
  let reason: string | undefined;
  for (const path of KNOBS) {
    try {
      const previous = Number(Deno.readTextFileSync(path).trim());
      if (!Number.isFinite(previous) || previous >= bytes) continue;
      Deno.writeTextFileSync(path, `${bytes}\n`);
      raised.push({ path, previous });
    } catch (e) {
      reason = `${path}: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  let restored = false;
  return {
    raised,
    reason: raised.length === 0 ? reason : undefined,
    restore() {
      if (restored) return;
      restored = true;
      for (const r of raised) {
        try {
          Deno.writeTextFileSync(r.path, `${r.previous}\n`);
        } catch { /* the run is ending; nothing better to do than leave it raised */ }
      }
    },
  };
}
