/**
 * The uinput gamepad. Where /dev/uinput is missing (as on the CI machine)
 * opening must fail with a message that says so; where it exists and may be
 * opened, the device must appear in /proc/bus/input/devices and go away on
 * close.
 */
import assert from "node:assert/strict";
import { NativeError } from "../../ffi/errors.ts";
import {
  GAMEPAD_AXES,
  GAMEPAD_BUTTONS,
  packGamepadState,
  UinputGamepad,
} from "./gamepad_uinput.ts";

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function inputDevices(): Promise<string> {
  return await Deno.readTextFile("/proc/bus/input/devices").catch(() => "");
}

Deno.test("gamepad: opens a uinput device, or says clearly that /dev/uinput is missing", async () => {
  if (!(await exists("/dev/uinput"))) {
    assert.throws(
      () => UinputGamepad.open(),
      (e: unknown) =>
        e instanceof NativeError && e.codeName === "NoDevice" &&
        e.message.includes("virtual gamepads need /dev/uinput, which this machine does not have") &&
        e.message.includes("modprobe uinput"),
    );
    return;
  }
  const name = `Wavry test pad ${Deno.pid}`;
  let pad: UinputGamepad;
  try {
    pad = UinputGamepad.open({ name });
  } catch (error) {
    // /dev/uinput exists but this user may not write it: that must be said too.
    assert.ok(error instanceof NativeError && error.codeName === "Io", String(error));
    assert.match(error.message, /\/dev\/uinput/);
    return;
  }
  try {
    assert.ok((await inputDevices()).includes(`N: Name="${name}"`), "device listed");
    const buttons = new Array(GAMEPAD_BUTTONS).fill(0);
    buttons[0] = 1; // A
    buttons[7] = 0.5; // right trigger half way
    buttons[12] = 1; // d-pad up
    pad.update(buttons, [0.25, -1, 0, 1]);
    pad.update(new Array(GAMEPAD_BUTTONS).fill(0), [0, 0, 0, 0]);
  } finally {
    pad.close();
  }
  assert.ok(!(await inputDevices()).includes(`N: Name="${name}"`), "device removed on close");
  assert.throws(
    () => pad.update([], []),
    (e: unknown) => e instanceof NativeError && e.codeName === "Closed",
  );
});

Deno.test("gamepad: snapshots are packed to 17 buttons and 4 axes; junk is refused", () => {
  const packed = packGamepadState([1, 0.5], [0.25, -1, 0, 1, 0.7]);
  assert.equal(packed.buttons.length, GAMEPAD_BUTTONS);
  assert.equal(packed.axes.length, GAMEPAD_AXES);
  assert.deepEqual([...packed.buttons.slice(0, 3)], [1, 0.5, 0]);
  assert.deepEqual([...packed.axes], [0.25, -1, 0, 1]);
  assert.deepEqual([...packGamepadState(new Array(18).fill(1), []).buttons], new Array(17).fill(1));
  assert.throws(
    () => packGamepadState([0, Number.NaN], []),
    /button 1 is NaN, not a finite number \(InvalidArgument\)/,
  );
  assert.throws(
    () => packGamepadState([], [0, 0, Infinity]),
    /axis 2 is Infinity, not a finite number/,
  );
});
