import assert from "node:assert/strict";
import { NativeError, NativeStatus } from "../../ffi/errors.ts";
import { loadNative, monotonicMicros } from "../../ffi/library.ts";
import { startXvfb } from "../../tools/display/xvfb.ts";
import { readPatternRow, XProbe } from "../../tools/display/xprobe.ts";
import { X11Capturer } from "./capture_x11.ts";
import { XTestInputInjector } from "./input_xtest.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("X11Capturer captures the moving pattern with timestamps and the cursor", async () => {
  const xvfb = await startXvfb(1280, 720);
  const probe = await XProbe.start(xvfb.display, { pattern: true, fps: 60 });
  const capturer = X11Capturer.open({ display: xvfb.display });
  try {
    assert.equal(capturer.width, 1280);
    assert.equal(capturer.height, 720);
    assert.ok(capturer.stride >= 1280 * 4);
    await sleep(100);
    let lastCounter = -1;
    let lastTime = 0;
    for (let i = 0; i < 10; i++) {
      const frame = await capturer.capture();
      const now = monotonicMicros();
      const counter = readPatternRow(frame.data, frame.width, 0);
      assert.ok(counter > lastCounter, `counter ${counter} after ${lastCounter}`);
      assert.ok(frame.captureTimeUs > lastTime, "capture timestamps are monotonic");
      assert.ok(now - frame.captureTimeUs >= 0 && now - frame.captureTimeUs < 50_000);
      // Xvfb starts with the pointer in the middle of the screen.
      assert.deepEqual(frame.cursor, { x: 640, y: 360 });
      lastCounter = counter;
      lastTime = frame.captureTimeUs;
      await sleep(20);
    }
  } finally {
    capturer.close();
    await probe.stop();
    await xvfb.stop();
  }
});

Deno.test("copy mode and zero-copy mode see the same image; monitor 0 is the screen", async () => {
  const xvfb = await startXvfb(640, 480);
  const capturers: X11Capturer[] = [];
  try {
    const direct = X11Capturer.open({ display: xvfb.display });
    const copied = X11Capturer.open({ display: xvfb.display, copy: true, monitor: 0 });
    capturers.push(direct, copied);
    assert.equal(copied.copies, true);
    assert.equal(copied.width, 640);
    const a = (await direct.capture()).data.slice();
    const b = (await copied.capture()).data.slice();
    assert.deepEqual(a, b);
    // Concurrent calls are serialised, not raced.
    const frames = await Promise.all([direct.capture(), direct.capture()]);
    assert.ok(frames[1].captureTimeUs > frames[0].captureTimeUs);
  } finally {
    for (const c of capturers) c.close();
    await xvfb.stop();
  }
});

Deno.test("capture errors are NativeErrors with clear messages", async () => {
  assert.throws(
    () => X11Capturer.open({ display: ":987" }),
    (e) => e instanceof NativeError && e.code === NativeStatus.Display && /:987/.test(e.message),
  );
  const xvfb = await startXvfb(320, 240);
  try {
    assert.throws(
      () => X11Capturer.open({ display: xvfb.display, monitor: 3 }),
      (e) =>
        e instanceof NativeError && e.code === NativeStatus.InvalidArgument &&
        /monitor 3/.test(e.message),
    );
    assert.throws(
      () => X11Capturer.open({ display: xvfb.display, monitor: -2 }),
      (e) => e instanceof NativeError && e.code === NativeStatus.InvalidArgument,
    );
    const capturer = X11Capturer.open({ display: xvfb.display });
    const frame = await capturer.capture();
    capturer.close();
    await assert.rejects(
      () => capturer.capture(),
      (e) => e instanceof NativeError && e.code === NativeStatus.Closed,
    );
    // A frame kept past close() reads as black instead of crashing.
    assert.equal(frame.data[0], 0);

    // Wrong buffer size and a foreign handle, straight at the C ABI.
    const lib = loadNative(
      {
        wavry_capture_open: {
          parameters: ["buffer", "i32", "buffer", "buffer", "i32"],
          result: "i32",
        },
        wavry_capture_grab: {
          parameters: ["pointer", "buffer", "i32", "buffer", "buffer", "buffer", "buffer", "i32"],
          result: "i32",
        },
        wavry_capture_close: { parameters: ["pointer"], result: "void" },
      } as const,
    );
    const out = new BigUint64Array(1);
    const err = new Uint8Array(512);
    const name = new TextEncoder().encode(xvfb.display + "\0");
    assert.equal(lib.symbols.wavry_capture_open(name, -1, out, err, 512), 0);
    const handle = Deno.UnsafePointer.create(out[0]);
    const t = new BigInt64Array(1), x = new Int32Array(1), y = new Int32Array(1);
    const small = new Uint8Array(100);
    const rc = lib.symbols.wavry_capture_grab(handle, small, small.length, t, x, y, err, 512);
    assert.equal(rc, NativeStatus.InvalidArgument);
    assert.match(new TextDecoder().decode(err.subarray(0, err.indexOf(0))), /buffer is 100 bytes/);
    lib.symbols.wavry_capture_close(handle);
    // Memory that starts with the encoder's magic is not a capture handle.
    const foreign = new BigUint64Array([0x57564532n, 0n, 0n, 0n]);
    const rc2 = lib.symbols.wavry_capture_grab(
      Deno.UnsafePointer.of(foreign),
      null,
      0,
      t,
      x,
      y,
      err,
      512,
    );
    assert.equal(rc2, NativeStatus.Closed);
    lib.close();
  } finally {
    await xvfb.stop();
  }
});

Deno.test("the X server going away is a Display error, not an exit, for capture and input together", async () => {
  // Both modules share one X11 error policy (ffi/native/x11.c): a lost connection marks the
  // display dead instead of letting Xlib exit the process.
  const x = await startXvfb(320, 240);
  const capturer = X11Capturer.open({ display: x.display });
  const input = XTestInputInjector.open({ display: x.display });
  try {
    await capturer.capture();
    await x.stop();
    await assert.rejects(
      async () => {
        for (let i = 0; i < 20; i++) await capturer.capture();
      },
      (e: unknown) => e instanceof NativeError && e.codeName === "Display",
    );
    assert.throws(
      () => {
        for (let i = 0; i < 100; i++) input.moveAbsolute(i % 50, 10);
      },
      (e: unknown) => e instanceof NativeError && e.codeName === "Display",
    );
  } finally {
    capturer.close();
    input.close();
    await x.stop();
  }
});
