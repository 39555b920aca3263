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
