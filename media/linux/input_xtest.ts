/**
 * Input injection into an X11 desktop through the XTest extension
 * (`ffi/native/input_xtest.c`).
 *
 * Calls are synchronous FFI calls: each sends one request and flushes it,
 * which costs a few microseconds, far less than a nonblocking call's thread
 * hop, and keeps events in the order they were given.
 *
 * @module
 */
import { ErrorBuffer, NativeError, NativeStatus } from "../../ffi/errors.ts";
import { NativeHandle, pointerFromOut } from "../../ffi/handles.ts";
import { lazyNative } from "../../ffi/library.ts";
import { keysymForCode } from "../keymap.ts";
import type { InputInjector, MouseButton } from "../types.ts";

const symbols = {
  wavry_input_open: { parameters: ["buffer", "buffer", "buffer", "i32"], result: "i32" },
  wavry_input_key: { parameters: ["pointer", "u32", "i32", "buffer", "i32"], result: "i32" },
  wavry_input_keycode: {
    parameters: ["pointer", "u32", "buffer", "buffer", "i32"],
    result: "i32",
  },
  wavry_input_move_absolute: {
    parameters: ["pointer", "i32", "i32", "buffer", "i32"],
    result: "i32",
  },
  wavry_input_move_relative: {
    parameters: ["pointer", "i32", "i32", "buffer", "i32"],
    result: "i32",
  },
  wavry_input_button: { parameters: ["pointer", "i32", "i32", "buffer", "i32"], result: "i32" },
  wavry_input_release_all: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  wavry_input_screen_size: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  wavry_input_close: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

const native = lazyNative(symbols);

/** X button numbers for web `MouseEvent.button` values: left, middle, right, back, forward. */
export const X_BUTTON_FOR_MOUSE_BUTTON: readonly number[] = Object.freeze([1, 2, 3, 8, 9]);

/** The most wheel notches one `wheel()` call may send per axis. */
export const MAX_WHEEL_NOTCHES = 100;

/** Options for {@linkcode XTestInputInjector.open}. */
export interface XTestInputOptions {
  /** X display, e.g. ":0" (default: $DISPLAY). */
  display?: string;
}

function nulTerminated(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text + "\0");
}

function invalid(operation: string, message: string): NativeError {
  return new NativeError(operation, NativeStatus.InvalidArgument, message);
}

function integer(operation: string, name: string, value: number): number {
  if (!Number.isFinite(value)) throw invalid(operation, `${name} must be a finite number`);
  return Math.round(value);
}

/** Injects keys, pointer motion, buttons and wheel into an X display via XTest. */
export class XTestInputInjector implements InputInjector {
  readonly #handle: NativeHandle;
  readonly #error = new ErrorBuffer();
  readonly #size = new Int32Array(2);
  readonly #wheel = { x: 0, y: 0 };

  private constructor(handle: NativeHandle) {
    this.#handle = handle;
  }

  /** Connects to the display and checks it has the XTEST extension. */
  static open(options: XTestInputOptions = {}): XTestInputInjector {
    const error = new ErrorBuffer();
    const out = new BigUint64Array(1);
    const display = options.display ? nulTerminated(options.display) : null;
    const status = native().wavry_input_open(display, out, error.reset(), error.bytes.length);
    error.check("input.open", status);
    const handle = new NativeHandle("input injector", pointerFromOut(out), (pointer) => {
      native().wavry_input_close(pointer);
    });
    return new XTestInputInjector(handle);
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#handle.closed;
  }

  /**
   * Presses or releases the key `code` names (`KeyboardEvent.code`). A keysym
   * the host's map lacks is bound to a spare keycode for as long as needed.
   */
  key(code: string, down: boolean): void {
    const keysym = keysymForCode(code);
    if (keysym === undefined) {
      throw invalid("input.key", `unknown KeyboardEvent.code ${JSON.stringify(code)}`);
    }
    this.keysym(keysym, down);
  }

  /** Presses or releases the key for an X keysym directly. */
  keysym(keysym: number, down: boolean): void {
    const pointer = this.#handle.pointer;
    const status = native().wavry_input_key(
      pointer,
      keysym >>> 0,
      down ? 1 : 0,
      this.#error.reset(),
      this.#error.bytes.length,
    );
    if (status < 0) this.#error.check("input.key", status);
  }

  /**
   * The keycode the host's current keyboard map gives `code`, or 0 when it
   * has none (such a key is still typed, through a spare keycode).
   */
  keycodeFor(code: string): number {
    const keysym = keysymForCode(code);
    if (keysym === undefined) {
      throw invalid("input.keycode", `unknown KeyboardEvent.code ${JSON.stringify(code)}`);
    }
    const pointer = this.#handle.pointer;
    const out = new Int32Array(1);
    const status = native().wavry_input_keycode(
      pointer,
      keysym,
      out,
      this.#error.reset(),
      this.#error.bytes.length,
    );
    this.#error.check("input.keycode", status);
    return out[0];
  }

  /** Moves the pointer to (x, y) on the screen; outside the screen is an error. */
  moveAbsolute(x: number, y: number): void {
    const pointer = this.#handle.pointer;
    const status = native().wavry_input_move_absolute(
      pointer,
      integer("input.moveAbsolute", "x", x),
      integer("input.moveAbsolute", "y", y),
      this.#error.reset(),
      this.#error.bytes.length,
    );
    if (status < 0) this.#error.check("input.moveAbsolute", status);
  }

  /** Moves the pointer by (dx, dy); the server stops it at the screen edge. */
  moveRelative(dx: number, dy: number): void {
    const pointer = this.#handle.pointer;
    const status = native().wavry_input_move_relative(
      pointer,
      integer("input.moveRelative", "dx", dx),
      integer("input.moveRelative", "dy", dy),
      this.#error.reset(),
      this.#error.bytes.length,
    );
    if (status < 0) this.#error.check("input.moveRelative", status);
  }

  /** Presses or releases a mouse button (web numbering: 0 left, 1 middle, 2 right, 3 back, 4 forward). */
  button(button: MouseButton, down: boolean): void {
    const x11 = X_BUTTON_FOR_MOUSE_BUTTON[button];
    if (x11 === undefined || !Number.isInteger(button)) {
      throw invalid("input.button", `mouse button ${button} is not one of 0..4`);
    }
    this.#x11Button("input.button", x11, down);
  }

  #x11Button(operation: string, x11: number, down: boolean): void {
    const pointer = this.#handle.pointer;
    const status = native().wavry_input_button(
      pointer,
      x11,
      down ? 1 : 0,
      this.#error.reset(),
      this.#error.bytes.length,
    );
    if (status < 0) this.#error.check(operation, status);
  }

  /**
   * Scrolls by wheel notches: positive dy down (X button 5), negative up (4),
   * positive dx right (7), negative left (6), one press and release per
   * notch. Fractions add up across calls, so smooth-scroll deltas are kept.
   */
  wheel(dx: number, dy: number): void {
    if (!Number.isFinite(dx) || !Number.isFinite(dy)) {
      throw invalid("input.wheel", "wheel deltas must be finite numbers");
    }
    if (Math.abs(dx) > MAX_WHEEL_NOTCHES || Math.abs(dy) > MAX_WHEEL_NOTCHES) {
      throw invalid("input.wheel", `at most ${MAX_WHEEL_NOTCHES} notches per call (${dx}, ${dy})`);
    }
    this.#handle.pointer; // a closed injector throws even for a sub-notch delta
    this.#wheel.y += dy;
    this.#wheel.x += dx;
    const notchesY = Math.trunc(this.#wheel.y);
    const notchesX = Math.trunc(this.#wheel.x);
    this.#wheel.y -= notchesY;
    this.#wheel.x -= notchesX;
    for (let i = 0; i < Math.abs(notchesY); i++) {
      const x11 = notchesY > 0 ? 5 : 4;
      this.#x11Button("input.wheel", x11, true);
      this.#x11Button("input.wheel", x11, false);
    }
    for (let i = 0; i < Math.abs(notchesX); i++) {
      const x11 = notchesX > 0 ? 7 : 6;
      this.#x11Button("input.wheel", x11, true);
      this.#x11Button("input.wheel", x11, false);
    }
  }

  /** Releases every key and button this injector holds down (e.g. when a client drops). */
  releaseAll(): void {
    const pointer = this.#handle.pointer;
    const status = native().wavry_input_release_all(
      pointer,
      this.#error.reset(),
      this.#error.bytes.length,
    );
    this.#error.check("input.releaseAll", status);
  }

  /** The screen size now (re-read from the server, so a RandR resize shows). */
  screenSize(): { width: number; height: number } {
    const pointer = this.#handle.pointer;
    const width = this.#size.subarray(0, 1);
    const height = this.#size.subarray(1, 2);
    const status = native().wavry_input_screen_size(
      pointer,
      width,
      height,
      this.#error.reset(),
      this.#error.bytes.length,
    );
    this.#error.check("input.screenSize", status);
    return { width: this.#size[0], height: this.#size[1] };
  }

  /** Releases held keys and buttons, gives back spare keycodes and disconnects. */
  close(): void {
    this.#handle.close();
  }
}
