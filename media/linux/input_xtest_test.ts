/**
 * XTest injection against a real Xvfb, observed by the wavry-xprobe client:
 * each test starts its own display and probe and stops them in `finally`.
 */
import assert from "node:assert/strict";
import { NativeError } from "../../ffi/errors.ts";
import { LineProcess } from "../../tools/process/line_process.ts";
import { type ProbeEvent, XProbe } from "../../tools/display/xprobe.ts";
import { startXvfb, type VirtualDisplay } from "../../tools/display/xvfb.ts";
import { XTestInputInjector } from "./input_xtest.ts";

type KeyEvent = Extract<ProbeEvent, { type: "key" }>;
type ButtonEvent = Extract<ProbeEvent, { type: "button" }>;

async function withDesktop(
  run: (x: VirtualDisplay, probe: XProbe, input: XTestInputInjector) => Promise<void> | void,
): Promise<void> {
  const x = await startXvfb(640, 480);
  let probe: XProbe | undefined;
  let input: XTestInputInjector | undefined;
  try {
    probe = await XProbe.start(x.display);
    input = XTestInputInjector.open({ display: x.display });
    await run(x, probe, input);
  } finally {
    input?.close();
    await probe?.stop();
    await x.stop();
  }
}

function keys(probe: XProbe): string[] {
  return probe.events()
    .filter((e): e is KeyEvent => e.type === "key")
    .map((e) => `${e.press ? "+" : "-"}${e.name}`);
}

Deno.test("keys: KeyA, Shift+Digit1, Enter, ArrowUp, F5 arrive in order", async () => {
  await withDesktop(async (_x, probe, input) => {
    const tap = (code: string): void => {
      input.key(code, true);
      input.key(code, false);
    };
    tap("KeyA");
    input.key("ShiftLeft", true);
    tap("Digit1");
    input.key("ShiftLeft", false);
    tap("Enter");
    tap("ArrowUp");
    tap("F5");
    await probe.waitForEvent((e) => e.type === "key" && e.name === "F5" && !e.press);
    assert.deepEqual(keys(probe), [
      "+a",
      "-a",
      "+Shift_L",
      "+1",
      "-1",
      "-Shift_L",
      "+Return",
      "-Return",
      "+Up",
      "-Up",
      "+F5",
      "-F5",
    ]);
    const one = probe.events().find((e): e is KeyEvent => e.type === "key" && e.name === "1");
    assert.ok(one && (one.state & 1) === 1, "Digit1 is pressed with Shift held (ShiftMask)");
  });
});

Deno.test("keys: a keysym missing from the map is typed through a spare keycode", async () => {
  await withDesktop(async (_x, probe, input) => {
    // The default evdev map gives the F13 key XF86Tools, so no keycode has F13.
    assert.equal(input.keycodeFor("F13"), 0);
    input.key("F13", true);
    input.key("F13", false);
    input.key("KeyB", true);
    input.key("KeyB", false);
    await probe.waitForEvent((e) => e.type === "key" && e.name === "b" && !e.press);
    assert.deepEqual(keys(probe), ["+F13", "-F13", "+b", "-b"]);
  });
});

Deno.test("keys: close() releases keys still held down", async () => {
  await withDesktop(async (x, probe, input) => {
    input.key("ControlLeft", true);
    await probe.waitForEvent((e) => e.type === "key" && e.name === "Control_L" && e.press);
    input.close();
    await probe.waitForEvent((e) => e.type === "key" && e.name === "Control_L" && !e.press);
    // A fresh injector still finds the map intact.
    const again = XTestInputInjector.open({ display: x.display });
    try {
      assert.ok(again.keycodeFor("ControlLeft") > 0);
    } finally {
      again.close();
    }
  });
});

Deno.test("mouse: absolute and relative motion, buttons, wheel", async () => {
  await withDesktop(async (x, probe, input) => {
    assert.deepEqual(input.screenSize(), { width: x.width, height: x.height });
    input.moveAbsolute(100, 200);
    await probe.waitForEvent((e) => e.type === "motion" && e.x === 100 && e.y === 200);
    input.moveRelative(30, -20);
    await probe.waitForEvent((e) => e.type === "motion" && e.x === 130 && e.y === 180);
    input.moveRelative(-5, 7);
    await probe.waitForEvent((e) => e.type === "motion" && e.x === 125 && e.y === 187);

    for (const button of [0, 1, 2, 3, 4] as const) {
      input.button(button, true);
      input.button(button, false);
    }
    input.wheel(0, -1); // up: 4
    input.wheel(0, 2); // down: 5, twice
    input.wheel(-1, 0); // left: 6
    input.wheel(0.5, 0); // half a notch: nothing yet
    input.wheel(0.5, 0); // the other half: right, 7
    await probe.waitForEvent((e) => e.type === "button" && e.button === 7 && !e.press);
    const buttons = probe.events()
      .filter((e): e is ButtonEvent => e.type === "button")
      .map((e) => `${e.press ? "+" : "-"}${e.button}@${e.x},${e.y}`);
    const at = "@125,187";
    assert.deepEqual(
      buttons,
      ["+1", "-1", "+2", "-2", "+3", "-3", "+8", "-8", "+9", "-9"]
        .concat(["+4", "-4", "+5", "-5", "+5", "-5", "+6", "-6", "+7", "-7"])
        .map((b) => b + at),
    );
  });
});

Deno.test("bad input: clear errors, no crash", async () => {
  assert.throws(
    () => XTestInputInjector.open({ display: ":987" }),
    (e: unknown) =>
      e instanceof NativeError && e.codeName === "Display" && /cannot open X display :987/.test(
        e.message,
      ),
  );
  await withDesktop((x, _probe, input) => {
    assert.throws(
      () => input.key("NotAKey", true),
      (e: unknown) =>
        e instanceof NativeError && e.codeName === "InvalidArgument" &&
        e.message.includes('unknown KeyboardEvent.code "NotAKey"'),
    );
    assert.throws(
      () => input.moveAbsolute(x.width, 10),
      /position \(640, 10\) is outside the 640x480 screen \(InvalidArgument\)/,
    );
    assert.throws(() => input.moveAbsolute(-1, 0), /outside the 640x480 screen/);
    assert.throws(() => input.moveAbsolute(Number.NaN, 0), /x must be a finite number/);
    assert.throws(() => input.moveRelative(40_000, 0), /exceeds 16 bits/);
    assert.throws(() => input.button(7 as 0, true), /mouse button 7 is not one of 0..4/);
    assert.throws(() => input.wheel(0, Infinity), /finite/);
    assert.throws(() => input.wheel(0, 1000), /at most 100 notches/);
    assert.throws(() => input.keysym(0, true), /0x0 is not a keysym/);
    input.key("KeyZ", false); // releasing a key that is not down is harmless
    input.close();
    input.close(); // twice is fine
    for (
      const call of [
        () => input.key("KeyA", true),
        () => input.moveAbsolute(1, 1),
        () => input.button(0, true),
        () => input.wheel(0, 0.25),
        () => input.screenSize(),
      ]
    ) {
      assert.throws(call, (e: unknown) => e instanceof NativeError && e.codeName === "Closed");
    }
  });
});

Deno.test("bad input: a display without XTEST is refused on open", async () => {
  const xvfb = new LineProcess("Xvfb", "Xvfb", [
    "-displayfd",
    "1",
    "-screen",
    "0",
    "320x240x24",
    "-nolisten",
    "tcp",
    "-extension",
    "XTEST",
  ]);
  try {
    const display = `:${(await xvfb.waitForLine((l) => /^\d+$/.test(l.trim()), 15_000)).trim()}`;
    assert.throws(
      () => XTestInputInjector.open({ display }),
      (e: unknown) =>
        e instanceof NativeError && e.codeName === "Display" &&
        e.message.includes(`X display ${display} has no XTEST extension`),
    );
  } finally {
    await xvfb.stop();
  }
});

Deno.test("bad input: the X server going away is an error, not an exit", async () => {
  const x = await startXvfb(320, 240);
  let input: XTestInputInjector | undefined;
  try {
    input = XTestInputInjector.open({ display: x.display });
    input.moveAbsolute(10, 10);
    await x.stop();
    const live = input;
    assert.throws(
      () => {
        for (let i = 0; i < 100; i++) live.moveAbsolute(10 + (i % 50), 10);
      },
      (e: unknown) => e instanceof NativeError && e.codeName === "Display",
    );
  } finally {
    input?.close();
    await x.stop();
  }
});

Deno.test("per-event cost of synchronous injection", async () => {
  await withDesktop(async (_x, probe, input) => {
    const n = 2_000;
    let t = performance.now();
    for (let i = 0; i < n; i++) input.moveAbsolute(i % 600, (i * 7) % 400);
    const motionUs = (performance.now() - t) * 1000 / n;
    t = performance.now();
    for (let i = 0; i < n / 2; i++) {
      input.key("KeyQ", true);
      input.key("KeyQ", false);
    }
    const keyUs = (performance.now() - t) * 1000 / n;
    t = performance.now();
    for (let i = 0; i < n / 2; i++) {
      input.button(0, true);
      input.button(0, false);
    }
    const buttonUs = (performance.now() - t) * 1000 / n;
    console.log(
      `per event: motion ${motionUs.toFixed(1)} µs, key ${keyUs.toFixed(1)} µs, ` +
        `button ${buttonUs.toFixed(1)} µs`,
    );
    await probe.waitForEvent((e) => e.type === "button" && !e.press, 10_000);
    // Generous bound: a regression to a round trip per event (or worse) fails it.
    assert.ok(Math.max(motionUs, keyUs, buttonUs) < 500, "injection stays in microseconds");
  });
});
