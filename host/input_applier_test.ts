/**
 * The input applier against a real Xvfb, observed by wavry-xprobe: decoded
 * INPUT messages become X events, INPUT_APPLIED carries the sequence and
 * times, duplicates are dropped, and releaseAll lifts what is held.
 */
import assert from "node:assert/strict";
import { decodeControl, encodeInput, type InputEvent, type InputMessage } from "../core/stream.ts";
import { XTestInputInjector } from "../media/linux/input_xtest.ts";
import type { InputInjector, MouseButton } from "../media/types.ts";
import { type ProbeEvent, XProbe } from "../tools/display/xprobe.ts";
import { startXvfb, type VirtualDisplay } from "../tools/display/xvfb.ts";
import { InputApplier } from "./input_applier.ts";
import { monotonicMicros as hostClockUs } from "../media/clock.ts";

async function withDesktop(
  run: (x: VirtualDisplay, probe: XProbe, injector: XTestInputInjector) => Promise<void>,
): Promise<void> {
  const x = await startXvfb(640, 480);
  let probe: XProbe | undefined;
  let injector: XTestInputInjector | undefined;
  try {
    probe = await XProbe.start(x.display);
    injector = XTestInputInjector.open({ display: x.display });
    await run(x, probe, injector);
  } finally {
    injector?.close();
    await probe?.stop();
    await x.stop();
  }
}

function message(sequence: number, event: InputEvent): Uint8Array {
  return encodeInput({ sequence, clientTimeUs: 1_000_000 + sequence, event });
}

function keyLog(probe: XProbe): string[] {
  return probe.events()
    .filter((e): e is Extract<ProbeEvent, { type: "key" }> => e.type === "key")
    .map((e) => `${e.press ? "+" : "-"}${e.name}`);
}

Deno.test("input applier: KEY, BUTTON and MOUSE_ABS become X events; INPUT_APPLIED echoes them", async () => {
  await withDesktop(async (x, probe, injector) => {
    const applier = new InputApplier(injector, {
      area: { x: 0, y: 0, width: x.width, height: x.height },
    });
    const before = hostClockUs();
    const results = [
      message(1, { type: "mouse-abs", x: 32768, y: 16384 }),
      message(2, { type: "button", button: 0, down: true }),
      message(3, { type: "button", button: 0, down: false }),
      message(4, { type: "key", code: "KeyA", down: true }),
      message(5, { type: "key", code: "KeyA", down: false }),
      message(6, { type: "mouse-abs", x: 65535, y: 0 }),
    ].map((bytes) => applier.apply(bytes));
    const after = hostClockUs();

    // 32768/65535 of 639 → 320; 16384/65535 of 479 → 120; 65535 is the last pixel.
    await probe.waitForEvent((e) => e.type === "motion" && e.x === 320 && e.y === 120);
    await probe.waitForEvent((e) => e.type === "button" && e.button === 1 && !e.press);
    await probe.waitForEvent((e) => e.type === "key" && e.name === "a" && !e.press);
    await probe.waitForEvent((e) => e.type === "motion" && e.x === 639 && e.y === 0);
    const press = probe.events().find((e) => e.type === "button" && e.press);
    assert.deepEqual({ ...press, t_us: undefined }, {
      type: "button",
      press: true,
      button: 1,
      x: 320,
      y: 120,
      t_us: undefined,
    });
    assert.deepEqual(keyLog(probe), ["+a", "-a"]);

    let previous = before;
    results.forEach((r, i) => {
      assert.ok(r.ok, r.ok ? "" : r.error.detail);
      const { reply, replyBytes, applyUs } = r.value;
      assert.equal(reply.sequence, i + 1);
      assert.equal(reply.clientTimeUs, 1_000_000 + i + 1);
      assert.ok(reply.hostAppliedUs >= previous && reply.hostAppliedUs <= after);
      previous = reply.hostAppliedUs;
      assert.ok(applyUs >= 0 && applyUs < 50_000);
      const decoded = decodeControl(replyBytes);
      assert.ok(decoded.ok);
      assert.deepEqual(decoded.value, reply);
    });
    const stats = applier.stats;
    assert.equal(stats.applied, 6);
    // The probe stamps each event with CLOCK_MONOTONIC on arrival: the same clock as hostAppliedUs.
    const seen = probe.events().map((e) => (e as { t_us: number }).t_us);
    // hostAppliedUs is stamped after the injection call returns, so under load an event can reach
    // the probe first; what must hold is that nothing arrives before injection began, and that
    // everything arrives within a second of it.
    assert.ok(
      seen.every((t) => t >= before && t - before < 1_000_000),
      `events seen at ${seen.map((t) => t - before)} µs after injection began`,
    );
    // Steady state: 200 pointer moves.
    const moves = new InputApplier(injector, {
      area: { x: 0, y: 0, width: x.width, height: x.height },
    });
    for (let i = 0; i < 200; i++) {
      assert.ok(moves.apply(message(i, { type: "mouse-abs", x: i * 300, y: i * 200 })).ok);
    }
    await probe.waitForEvent((e) => e.type === "motion" && e.x === 582 && e.y === 291);
    const steady = moves.stats;
    console.log(
      `apply cost, 200 MOUSE_ABS: p50 ${steady.applyP50Us.toFixed(1)} µs, max ${
        steady.applyMaxUs.toFixed(1)
      } µs; ` +
        `apply cost over ${stats.applied} XTest events: p50 ${stats.applyP50Us.toFixed(1)} µs, ` +
        `max ${stats.applyMaxUs.toFixed(1)} µs; injection began -> X client saw it: ${
          seen.map((t) => t - before).join(", ")
        } µs`,
    );
  });
});

Deno.test("input applier: duplicates and old sequences are dropped, bad bytes are values", async () => {
  await withDesktop(async (_x, probe, injector) => {
    const applier = new InputApplier(injector, { area: { x: 0, y: 0, width: 640, height: 480 } });
    const tap = (sequence: number, down: boolean): Uint8Array =>
      message(sequence, { type: "key", code: "KeyB", down });
    assert.ok(applier.apply(tap(10, true)).ok);
    const again = applier.apply(tap(10, true));
    assert.equal(!again.ok && again.error.kind, "Duplicate");
    const older = applier.apply(tap(9, false));
    assert.equal(!older.ok && older.error.kind, "Duplicate");
    assert.ok(applier.apply(tap(11, false)).ok);
    const malformed = applier.apply(new Uint8Array([1, 2, 3]));
    assert.equal(!malformed.ok && malformed.error.kind, "Malformed");
    const unknownKey = applier.apply(message(12, { type: "key", code: "NoSuchKey", down: true }));
    assert.equal(!unknownKey.ok && unknownKey.error.kind, "Unsupported");
    const button9 = applier.apply(message(13, { type: "button", button: 9, down: true }));
    assert.equal(!button9.ok && button9.error.kind, "Unsupported");
    const pad = applier.apply(message(14, {
      type: "gamepad",
      index: 0,
      buttons: new Array(17).fill(0),
      axes: [0, 0, 0, 0],
    }));
    assert.equal(!pad.ok && pad.error.kind, "Unsupported");
    await probe.waitForEvent((e) => e.type === "key" && e.name === "b" && !e.press);
    assert.deepEqual(keyLog(probe), ["+b", "-b"], "each press applied once");
    assert.deepEqual(applier.stats.rejected, { Duplicate: 2, Malformed: 1, Unsupported: 3 });
  });
});

Deno.test("input applier: releaseAll on disconnect releases a held key and button", async () => {
  await withDesktop(async (_x, probe, injector) => {
    const applier = new InputApplier(injector, { area: { x: 0, y: 0, width: 640, height: 480 } });
    assert.ok(applier.apply(message(1, { type: "key", code: "ShiftLeft", down: true })).ok);
    assert.ok(applier.apply(message(2, { type: "button", button: 2, down: true })).ok);
    await probe.waitForEvent((e) => e.type === "button" && e.button === 3 && e.press);
    assert.deepEqual(applier.held, { keys: ["ShiftLeft"], buttons: [2] });
    applier.releaseAll(); // the client went away
    await probe.waitForEvent((e) => e.type === "key" && e.name === "Shift_L" && !e.press);
    await probe.waitForEvent((e) => e.type === "button" && e.button === 3 && !e.press);
    assert.deepEqual(applier.held, { keys: [], buttons: [] });
    assert.deepEqual(keyLog(probe), ["+Shift_L", "-Shift_L"]);
  });
});

/** Records calls, for the parts that need no X server. */
class RecordingInjector implements InputInjector {
  readonly calls: string[] = [];
  key(code: string, down: boolean): void {
    this.calls.push(`key ${code} ${down}`);
  }
  moveAbsolute(x: number, y: number): void {
    this.calls.push(`abs ${x} ${y}`);
  }
  moveRelative(dx: number, dy: number): void {
    this.calls.push(`rel ${dx} ${dy}`);
  }
  button(button: MouseButton, down: boolean): void {
    this.calls.push(`button ${button} ${down}`);
  }
  wheel(dx: number, dy: number): void {
    this.calls.push(`wheel ${dx} ${dy}`);
  }
  close(): void {}
}

Deno.test("input applier: area offset, wheel units and chunks, gamepad scaling, sequence wrap", () => {
  const injector = new RecordingInjector();
  const updates: [number[], number[]][] = [];
  const applier = new InputApplier(injector, {
    area: () => ({ x: 1920, y: 0, width: 1280, height: 720 }),
    gamepad: (index) =>
      index === 0 ? { update: (b, a) => updates.push([[...b], [...a]]), close() {} } : undefined,
    clockUs: () => 42,
  });
  const send = (sequence: number, event: InputEvent) =>
    applier.applyMessage({ sequence, clientTimeUs: 7, event } satisfies InputMessage);
  assert.ok(send(0xfffffffe, { type: "mouse-abs", x: 0, y: 65535 }).ok);
  assert.ok(send(0xffffffff, { type: "wheel", dx: 0, dy: -240 }).ok);
  const wrapped = send(0, { type: "wheel", dx: 32767, dy: 0 }); // 273 notches: 100 + 100 + 73.0…
  assert.ok(wrapped.ok);
  assert.equal(wrapped.value.reply.hostAppliedUs, 42);
  assert.ok(send(1, { type: "mouse-rel", dx: -5, dy: 3 }).ok);
  const buttons = new Array(17).fill(0);
  buttons[0] = 255;
  assert.ok(send(2, { type: "gamepad", index: 0, buttons, axes: [-32768, 32767, 0, 16384] }).ok);
  assert.deepEqual(injector.calls.slice(0, 3), ["abs 1920 719", "wheel 0 -2", "wheel 100 0"]);
  assert.equal(injector.calls.filter((c) => c.startsWith("wheel") && !c.endsWith("-2")).length, 3);
  assert.equal(injector.calls.at(-1), "rel -5 3");
  assert.equal(updates[0][0][0], 1);
  assert.deepEqual(updates[0][1].map((a) => Math.round(a * 1000) / 1000), [-1, 1, 0, 0.5]);
  applier.releaseAll();
  assert.deepEqual(
    updates[1],
    [new Array(17).fill(0), [0, 0, 0, 0]],
    "a touched gamepad is centred",
  );
});
