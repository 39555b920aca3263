/**
 * A virtual gamepad on Linux through /dev/uinput
 * (`ffi/native/gamepad_uinput.c`): an Xbox 360-like device fed with the web
 * Gamepad API's standard mapping.
 *
 * @module
 */
import { ErrorBuffer, NativeError, NativeStatus } from "../../ffi/errors.ts";
import { NativeHandle, pointerFromOut } from "../../ffi/handles.ts";
import { lazyNative } from "../../ffi/library.ts";
import type { GamepadInjector } from "../types.ts";

const symbols = {
  wavry_gamepad_open: { parameters: ["buffer", "buffer", "buffer", "i32"], result: "i32" },
  wavry_gamepad_update: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  wavry_gamepad_close: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

const native = lazyNative(symbols);

/** Buttons in the web Gamepad API's standard mapping. */
export const GAMEPAD_BUTTONS = 17;
/** Axes in the web Gamepad API's standard mapping. */
export const GAMEPAD_AXES = 4;

/** Options for {@linkcode UinputGamepad.open}. */
export interface UinputGamepadOptions {
  /** Device name shown to games and in /proc/bus/input/devices. */
  name?: string;
}

/**
 * Copies a standard-mapping snapshot into the native layout: the first 17
 * buttons and 4 axes (a missing one counts as released or centred; extra
 * ones, like a DualShock's touchpad button, are ignored). A value that is not
 * a finite number is an InvalidArgument error naming it.
 */
export function packGamepadState(
  buttons: readonly number[],
  axes: readonly number[],
  into: { buttons: Float32Array; axes: Float32Array } = {
    buttons: new Float32Array(GAMEPAD_BUTTONS),
    axes: new Float32Array(GAMEPAD_AXES),
  },
): { buttons: Float32Array; axes: Float32Array } {
  const pack = (values: readonly number[], out: Float32Array, what: string): void => {
    for (let i = 0; i < out.length; i++) {
      const value = i < values.length ? values[i] : 0;
      if (typeof value !== "number" || !Number.isFinite(value)) {
        throw new NativeError(
          "gamepad.update",
          NativeStatus.InvalidArgument,
          `${what} ${i} is ${String(value)}, not a finite number`,
        );
      }
      out[i] = value;
    }
  };
  pack(buttons, into.buttons, "button");
  pack(axes, into.axes, "axis");
  return into;
}

/** A uinput virtual gamepad; `close()` removes the device. */
export class UinputGamepad implements GamepadInjector {
  readonly #handle: NativeHandle;
  readonly #error = new ErrorBuffer();
  readonly #state = {
    buttons: new Float32Array(GAMEPAD_BUTTONS),
    axes: new Float32Array(GAMEPAD_AXES),
  };

  private constructor(handle: NativeHandle) {
    this.#handle = handle;
  }

  /**
   * Creates the device. Fails with a NoDevice error when the machine has no
   * /dev/uinput, and an Io error when the host may not open it.
   */
  static open(options: UinputGamepadOptions = {}): UinputGamepad {
    const error = new ErrorBuffer();
    const out = new BigUint64Array(1);
    const name = new TextEncoder().encode((options.name ?? "Wavry virtual gamepad") + "\0");
    const status = native().wavry_gamepad_open(name, out, error.reset(), error.bytes.length);
    error.check("gamepad.open", status);
    const handle = new NativeHandle("gamepad", pointerFromOut(out), (pointer) => {
      native().wavry_gamepad_close(pointer);
    });
    return new UinputGamepad(handle);
  }

  /** Applies one snapshot: buttons 0..1 (as `Gamepad.buttons[i].value`), axes -1..1. */
  update(buttons: readonly number[], axes: readonly number[]): void {
    const pointer = this.#handle.pointer;
    packGamepadState(buttons, axes, this.#state);
    const status = native().wavry_gamepad_update(
      pointer,
      this.#state.buttons,
      this.#state.axes,
      this.#error.reset(),
      this.#error.bytes.length,
    );
    this.#error.check("gamepad.update", status);
  }

  /** Removes the device. */
  close(): void {
    this.#handle.close();
  }
}
