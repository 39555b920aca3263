/**
 * Backend selection: the Linux implementations on an X11 machine (a real
 * Xvfb and PulseAudio, started here), and UnsupportedPlatformError naming the
 * component and platform everywhere else (faked platform descriptions).
 */
import assert from "node:assert/strict";
import { NativeError } from "../ffi/errors.ts";
import { startPulse } from "../tests/support/pulse.ts";
import { startXvfb } from "../tools/display/xvfb.ts";
import { PulseAudioSink, PulseAudioSource } from "./linux/audio_pulse.ts";
import { X11Capturer } from "./linux/capture_x11.ts";
import { XTestInputInjector } from "./linux/input_xtest.ts";
import { FfmpegVideoDecoder } from "./linux/video_decoder.ts";
import { FfmpegVideoEncoder } from "./linux/video_encoder.ts";
import { OpusDecoder, OpusEncoder } from "./opus.ts";
import {
  backendName,
  detectPlatform,
  type MediaBackend,
  mediaBackend,
  openInputInjector,
} from "./platform.ts";
import { UnsupportedPlatformError } from "./types.ts";

function isUnsupported(component: string, platform: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof UnsupportedPlatformError, `expected UnsupportedPlatformError: ${e}`);
    assert.equal(e.component, component);
    assert.equal(e.platform, platform);
    assert.match(
      e.message,
      new RegExp(`^${component} is not supported on this platform yet \\(${platform}\\): .+`),
    );
    return true;
  };
}

Deno.test("platform: detection reads the OS and the display session", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assert.deepEqual(detectPlatform(env({ DISPLAY: ":3" }), "linux"), {
    os: "linux",
    display: ":3",
    waylandDisplay: undefined,
  });
  assert.equal(backendName(detectPlatform(env({ DISPLAY: ":0" }), "linux")), "linux-x11");
  assert.equal(
    backendName(detectPlatform(env({ DISPLAY: ":0", WAYLAND_DISPLAY: "wayland-0" }), "linux")),
    "linux-x11",
  );
  assert.equal(
    backendName(detectPlatform(env({ WAYLAND_DISPLAY: "wayland-0" }), "linux")),
    "linux-wayland",
  );
  assert.equal(backendName(detectPlatform(env({ DISPLAY: "" }), "linux")), "linux-headless");
  assert.equal(backendName(detectPlatform(env({ DISPLAY: ":0" }), "windows")), "windows");
  assert.equal(backendName(detectPlatform(env({}), "darwin")), "darwin");
  assert.equal(backendName(detectPlatform(env({}), "freebsd")), "unsupported-freebsd");
  assert.equal(detectPlatform().os, Deno.build.os);
  const xwayland = mediaBackend({ os: "linux", display: ":0", waylandDisplay: "wayland-0" });
  assert.match(xwayland.notes.join(), /XWayland/);
});

async function assertAllUnsupported(backend: MediaBackend, platform: string): Promise<void> {
  const sync: [string, () => unknown][] = [
    ["screen capture", () => backend.openCapturer()],
    [
      "video encoding",
      () => backend.openVideoEncoder({ width: 64, height: 64, fps: 30, bitrateBps: 1e6 }),
    ],
    ["video decoding", () => backend.openVideoDecoder()],
    ["audio encoding", () => backend.openAudioEncoder()],
    ["audio decoding", () => backend.openAudioDecoder()],
    ["input injection", () => backend.openInputInjector()],
    ["virtual gamepads", () => backend.openGamepad()],
  ];
  for (const [component, open] of sync) assert.throws(open, isUnsupported(component, platform));
  await assert.rejects(backend.openAudioSource(), isUnsupported("audio capture", platform));
  await assert.rejects(backend.openAudioSink(), isUnsupported("audio playback", platform));
}

Deno.test("platform: Windows and macOS are refused component by component", async () => {
  const windows = mediaBackend({ os: "windows" });
  assert.equal(windows.name, "windows");
  await assertAllUnsupported(windows, "windows");
  assert.throws(() => windows.openCapturer(), /Windows\.Graphics\.Capture or DXGI/);
  const mac = mediaBackend({ os: "darwin", display: ":0" });
  await assertAllUnsupported(mac, "macos");
  assert.throws(() => mac.openCapturer(), /ScreenCaptureKit/);
  await assertAllUnsupported(mediaBackend({ os: "freebsd" }), "freebsd");
});

Deno.test("platform: Wayland-only and display-less Linux refuse capture and input only", () => {
  const wayland = mediaBackend({ os: "linux", waylandDisplay: "wayland-0" });
  assert.equal(wayland.name, "linux-wayland");
  assert.throws(() => wayland.openCapturer(), isUnsupported("screen capture", "linux-wayland"));
  assert.throws(() => wayland.openCapturer(), /ScreenCast and RemoteDesktop portals/);
  assert.throws(
    () => wayland.openInputInjector(),
    isUnsupported("input injection", "linux-wayland"),
  );
  const headless = mediaBackend({ os: "linux" });
  assert.throws(() => headless.openCapturer(), isUnsupported("screen capture", "linux-headless"));
  assert.throws(() => headless.openInputInjector(), /set DISPLAY/);
  // Codecs do not care about the display server.
  const decoder = wayland.openVideoDecoder();
  assert.ok(decoder instanceof FfmpegVideoDecoder);
  decoder.close();
  // Nor does a uinput gamepad: it is the Linux implementation, whatever the machine allows.
  try {
    wayland.openGamepad().close();
  } catch (error) {
    assert.ok(error instanceof NativeError && /uinput/.test(error.message), String(error));
  }
});

Deno.test("platform: on Linux with X11 the factories open the Linux implementations", async () => {
  const x = await startXvfb(320, 240);
  const pulse = await startPulse();
  const opened: { close(): void }[] = [];
  const savedDisplay = Deno.env.get("DISPLAY");
  try {
    const backend = mediaBackend(
      detectPlatform((name) => (name === "DISPLAY" ? x.display : undefined), "linux"),
    );
    assert.equal(backend.name, "linux-x11");
    const open = <T extends { close(): void }>(value: T): T => {
      opened.push(value);
      return value;
    };
    assert.ok(open(backend.openCapturer()) instanceof X11Capturer);
    assert.ok(open(backend.openInputInjector()) instanceof XTestInputInjector);
    assert.ok(
      open(
        backend.openVideoEncoder({
          width: 64,
          height: 64,
          fps: 30,
          bitrateBps: 500_000,
          log: false,
        }),
      ) instanceof
        FfmpegVideoEncoder,
    );
    assert.ok(open(backend.openVideoDecoder()) instanceof FfmpegVideoDecoder);
    assert.ok(open(backend.openAudioEncoder()) instanceof OpusEncoder);
    assert.ok(open(backend.openAudioDecoder()) instanceof OpusDecoder);
    assert.ok(
      open(
        await backend.openAudioSource({ server: pulse.server, source: pulse.monitor }),
      ) instanceof PulseAudioSource,
    );
    assert.ok(
      open(await backend.openAudioSink({ server: pulse.server, sink: pulse.sink })) instanceof
        PulseAudioSink,
    );
    // The module-level factories read this machine's environment.
    Deno.env.set("DISPLAY", x.display);
    assert.ok(open(openInputInjector()) instanceof XTestInputInjector);
  } finally {
    for (const item of opened.reverse()) item.close();
    if (savedDisplay === undefined) Deno.env.delete("DISPLAY");
    else Deno.env.set("DISPLAY", savedDisplay);
    await pulse.stop();
    await x.stop();
  }
});
