/**
 * Native handles: an opaque pointer plus the function that frees it. Every
 * handle is freed on `close()`, and whatever is still open when the process
 * unloads is freed then, so no native resource outlives its owner.
 *
 * @module
 */
import { NativeError, NativeStatus } from "./errors.ts";

const open = new Set<NativeHandle>();
let unloadHooked = false;

function closeAllOnUnload(): void {
  if (unloadHooked) return;
  unloadHooked = true;
  globalThis.addEventListener("unload", () => {
    for (const handle of [...open]) handle.close();
  });
}

/** One native object owned by TypeScript. */
export class NativeHandle {
  /** What the handle is, for error messages ("capture", "encoder", ...). */
  readonly kind: string;
  #pointer: Deno.PointerValue;
  readonly #free: (pointer: Deno.PointerObject) => void;

  /** Wraps `pointer`, which `free` releases exactly once. */
  constructor(
    kind: string,
    pointer: Deno.PointerObject,
    free: (pointer: Deno.PointerObject) => void,
  ) {
    this.kind = kind;
    this.#pointer = pointer;
    this.#free = free;
    open.add(this);
    closeAllOnUnload();
  }

  /** The pointer, for a native call; throws a Closed error after `close()`. */
  get pointer(): Deno.PointerObject {
    if (this.#pointer === null) {
      throw new NativeError(`${this.kind}`, NativeStatus.Closed, `the ${this.kind} is closed`);
    }
    return this.#pointer;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#pointer === null;
  }

  /** Frees the native object; later calls do nothing. */
  close(): void {
    const pointer = this.#pointer;
    if (pointer === null) return;
    this.#pointer = null;
    open.delete(this);
    this.#free(pointer);
  }
}

/** Reads the pointer a native `open` call wrote into an 8-byte out-parameter. */
export function pointerFromOut(out: BigUint64Array): Deno.PointerObject {
  const pointer = Deno.UnsafePointer.create(out[0]);
  if (pointer === null) throw new Error("native open reported success but returned no handle");
  return pointer;
}

/**
 * Runs a handle's nonblocking native calls one at a time (the native side
 * must never see two calls on one handle at once) and frees the handle only
 * after the call in flight settles, so `close()` never pulls memory from
 * under a worker thread.
 */
export class CallChain {
  readonly #handle: NativeHandle;
  #pending: Promise<unknown> | undefined;
  #closing = false;

  /** Serialises calls on `handle`. */
  constructor(handle: NativeHandle) {
    this.#handle = handle;
  }

  /** Runs `call` after the previous one settled; once `close()` was asked for, rejects with Closed. */
  run<T>(operation: string, call: () => Promise<T>): Promise<T> {
    const run = (this.#pending ?? Promise.resolve()).catch(() => {}).then(() => {
      if (this.#closing) {
        throw new NativeError(operation, NativeStatus.Closed, `the ${this.#handle.kind} is closed`);
      }
      return call();
    });
    this.#pending = run;
    return run;
  }

  /** Whether `close()` was asked for. */
  get closing(): boolean {
    return this.#closing;
  }

  /** Frees the handle once the call in flight (if any) settles; later calls are refused. */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    const pending = this.#pending;
    if (pending === undefined) this.#handle.close();
    else pending.catch(() => {}).finally(() => this.#handle.close());
  }
}
