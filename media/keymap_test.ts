/**
 * The code → keysym table, checked against Xvfb's default keyboard map
 * (xkeyboard-config evdev rules, pc105, us layout) through the native side.
 */
import assert from "node:assert/strict";
import { XProbe } from "../tools/display/xprobe.ts";
import { startXvfb } from "../tools/display/xvfb.ts";
import { keyboardCodes, keysymForCode, KEYSYMS } from "./keymap.ts";
import { XTestInputInjector } from "./linux/input_xtest.ts";

/**
 * Codes whose keysym the default us map gives no key, and why. They are still
 * typed: the injector binds a spare keycode to the keysym (test below).
 */
const NOT_ON_DEFAULT_MAP: Record<string, string> = {
  IntlRo: "kana_RO: a Japanese-layout keysym; the us layout leaves <AB11> empty",
  IntlYen: "yen: a Japanese-layout keysym; the us layout leaves <AE13> empty",
  Lang5: "Zenkaku_Hankaku: Japanese layouts only",
  NumpadClear: "Clear: evdev maps the keypad's 5 to KP_Begin, and nothing to Clear",
  NumpadComma: "KP_Separator: the us layout gives <KPCOMMA> no keysym",
  Select: "Select: the evdev map has no Select key",
  ...Object.fromEntries(
    Array.from({ length: 12 }, (_, i) => [
      `F${13 + i}`,
      `F${13 + i}: evdev gives the F13-F24 positions XF86Tools, XF86Launch5... instead`,
    ]),
  ),
};

Deno.test("keymap: lookups", () => {
  assert.equal(keysymForCode("KeyA"), 0x61);
  assert.equal(keysymForCode("Digit1"), 0x31);
  assert.equal(keysymForCode("Enter"), 0xff0d);
  assert.equal(keysymForCode("ShiftLeft"), 0xffe1);
  assert.equal(keysymForCode("ArrowUp"), 0xff52);
  assert.equal(keysymForCode("F5"), 0xffc2);
  assert.equal(keysymForCode("F24"), 0xffd5);
  assert.equal(keysymForCode("Numpad7"), 0xffb7);
  assert.equal(keysymForCode("AudioVolumeUp"), 0x1008ff13);
  assert.equal(keysymForCode("NoSuchKey"), undefined);
  assert.equal(keysymForCode("toString"), undefined, "no inherited properties");
  assert.equal(keysymForCode("keya"), undefined, "codes are case-sensitive");
  for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZ") assert.ok(keysymForCode(`Key${c}`));
  for (let d = 0; d <= 9; d++) {
    assert.ok(keysymForCode(`Digit${d}`));
    assert.ok(keysymForCode(`Numpad${d}`));
  }
  for (let f = 1; f <= 24; f++) assert.ok(keysymForCode(`F${f}`));
  for (const [code, keysym] of Object.entries(KEYSYMS)) {
    assert.ok(Number.isInteger(keysym) && keysym > 0 && keysym <= 0x1fffffff, code);
  }
});

Deno.test("keymap: every code has a keycode on Xvfb's default map, except the listed ones", async () => {
  const x = await startXvfb(320, 240);
  let input: XTestInputInjector | undefined;
  try {
    input = XTestInputInjector.open({ display: x.display });
    const injector = input;
    const missing = keyboardCodes().filter((code) => injector.keycodeFor(code) === 0);
    if (missing.length > 0) {
      console.log(
        `codes without a keycode on the default map (typed via spare keycodes):\n` +
          missing.map((c) => `  ${c}: ${NOT_ON_DEFAULT_MAP[c] ?? "UNEXPECTED"}`).join("\n"),
      );
    }
    assert.deepEqual(missing.sort(), Object.keys(NOT_ON_DEFAULT_MAP).sort());
  } finally {
    input?.close();
    await x.stop();
  }
});

Deno.test("keymap: the codes missing from the map still arrive with their keysym", async () => {
  const x = await startXvfb(320, 240);
  let probe: XProbe | undefined;
  let input: XTestInputInjector | undefined;
  try {
    const started = await XProbe.start(x.display);
    probe = started;
    input = XTestInputInjector.open({ display: x.display });
    // More codes than the injector keeps spare keycodes (16), so spares get rebound.
    for (const code of Object.keys(NOT_ON_DEFAULT_MAP)) {
      const keysym = keysymForCode(code);
      input.key(code, true);
      input.key(code, false);
      await started.waitForEvent((e) => e.type === "key" && !e.press && e.keysym === keysym);
    }
  } finally {
    input?.close();
    await probe?.stop();
    await x.stop();
  }
});
