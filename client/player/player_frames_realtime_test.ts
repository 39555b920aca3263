import assert from "node:assert/strict";
import { monotonicMicros } from "../../media/clock.ts";
import { X11Capturer } from "../../media/linux/capture_x11.ts";
import { FfmpegVideoEncoder } from "../../media/linux/video_encoder.ts";
import { pacedCapture } from "../../media/pacer.ts";
import { readPatternRow, XProbe } from "../../tools/display/xprobe.ts";
import { startXvfb } from "../../tools/display/xvfb.ts";
import { patches } from "../../tests/support/scene.ts";
import { type PlayerPaintReport, PlayerServer, wallClockMicros } from "./server.ts";
import { launchChromium, waitFor } from "./testing.ts";

const W = 1280, H = 720;

function clockOffsetUs(): number {
  // Local wall clock µs = CLOCK_MONOTONIC µs + offset; the tightest of a few samples.
  let best = { span: Infinity, offset: 0 };
  for (let i = 0; i < 10; i++) {
    const a = wallClockMicros();
    const m = monotonicMicros();
    const b = wallClockMicros();
    if (b - a < best.span) best = { span: b - a, offset: (a + b) / 2 - m };
  }
  return best.offset;
}

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

Deno.test("X11 capture -> x264 -> PlayerServer -> Chromium WebCodecs: painted, counters and colours match", async () => {
  const xvfb = await startXvfb(W, H);
  let probe: XProbe | undefined;
  let capturer: X11Capturer | undefined;
  let encoder: FfmpegVideoEncoder | undefined;
  let player: PlayerServer | undefined;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  try {
    probe = await XProbe.start(xvfb.display, { pattern: true, fps: 60 });
    capturer = X11Capturer.open({ display: xvfb.display });
    const enc = FfmpegVideoEncoder.open({
      width: W,
      height: H,
      fps: 60,
      bitrateBps: 8_000_000,
      encoder: "libx264",
      log: false,
    });
    encoder = enc;
    const server = await PlayerServer.start({ port: 0 });
    player = server;
    const paints: PlayerPaintReport[] = [];
    const keyRequests: string[] = [];
    server.onStats((s) => {
      if (s.t === "paint") paints.push(s);
    });
    server.onKeyframeRequest((reason) => {
      keyRequests.push(reason);
      enc.requestKeyframe();
    });
    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: W, height: H } });
    const consoleLines: string[] = [];
    page.on("console", (m) => consoleLines.push(m.text()));
    await page.goto(server.url);
    await waitFor(() => server.connections === 1, "the page to connect");
    server.configure({ ...enc.config, width: W, height: H });

    const offsetUs = clockOffsetUs();
    const source = new Map<number, { counter: number; captureTimeUs: number }>();
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), 3_000);
    let frameId = 0;
    const encodeMs: number[] = [];
    for await (const frame of pacedCapture(capturer, { fps: 60, signal: stop.signal })) {
      const counter = readPatternRow(frame.data, frame.stride / 4, 0);
      const au = await enc.encode(frame);
      encodeMs.push(au.convertMs + au.encodeMs);
      frameId++;
      source.set(frameId, { counter, captureTimeUs: au.captureTimeUs });
      server.sendFrame({ ...au, frameId, offsetUs });
    }
    clearTimeout(timer);
    const sent = frameId;
    await waitFor(() => paints.length >= sent, `paint reports (${paints.length}/${sent})`, 3_000)
      .catch(() => {});

    // ≥ 90 % of the frames sent were decoded and painted, in order.
    assert.ok(sent >= 100, `only ${sent} frames captured in 3 s`);
    assert.ok(
      paints.length >= 0.9 * sent,
      `painted ${paints.length} of ${sent}; key requests ${keyRequests}; console ${consoleLines}`,
    );
    // Capture and scene both run at 60 Hz, so a capture can see the same scene frame twice:
    // counters never go back, frame ids strictly increase.
    let lastCounter = -1, lastId = 0;
    for (const p of paints) {
      assert.ok(p.frameId > lastId, `frame ${p.frameId} painted after ${lastId}`);
      lastId = p.frameId;
      const src = source.get(p.frameId);
      assert.ok(src, `paint report for unknown frame ${p.frameId}`);
      assert.equal(p.counter, src.counter, `frame ${p.frameId}: counter read back from the canvas`);
      assert.ok(p.counter! >= lastCounter, `counter ${p.counter} after ${lastCounter}`);
      lastCounter = p.counter!;
      assert.equal(p.captureTimeUs, src.captureTimeUs);
      assert.ok(
        p.latencyUs !== null && p.latencyUs > 0 && p.latencyUs < 1_000_000,
        `frame ${p.frameId}: capture -> canvas ${p.latencyUs} µs`,
      );
      assert.ok(p.drawnToPresentUs !== null && p.drawnToPresentUs >= p.latencyUs! - 20_000);
    }

    // A colour patch of the last painted picture (the orange square and the bars).
    const shown = paints[paints.length - 1];
    const points = patches(shown.counter!, W, H);
    const got = await page.evaluate<number[][]>(`(() => {
      const ctx = document.getElementById("video").getContext("2d");
      return ${JSON.stringify(points.map(({ x, y }) => [x, y]))}
        .map(([x, y]) => Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3)));
    })()`);
    let worst = 0;
    points.forEach((p, i) => {
      const diff = Math.max(...p.rgb.map((v, c) => Math.abs(v - got[i][c])));
      worst = Math.max(worst, diff);
      assert.ok(
        diff <= 24,
        `pixel (${p.x},${p.y}) of frame ${shown.counter}: ${got[i]} vs ${p.rgb}`,
      );
    });

    // Figures after the first 30 frames (decoder start-up).
    const steady = paints.slice(30);
    const decode = steady.map((p) => p.decodeMs);
    const paint = steady.map((p) => p.paintMs);
    const readback = steady.map((p) => p.readbackMs ?? 0);
    const latency = steady.map((p) => p.latencyUs! / 1000);
    const g2g = steady.map((p) => p.drawnToPresentUs! / 1000);
    const ws = steady.map((p) => p.wsUs / 1000);
    const f = (v: number[]) =>
      `p50 ${pct(v, 0.5).toFixed(2)} p95 ${pct(v, 0.95).toFixed(2)} max ${pct(v, 1).toFixed(2)}`;
    console.log(
      `player: ${paints.length}/${sent} painted, ${keyRequests.length} key requests, ` +
        `${points.length} colour patches (worst channel diff ${worst})\n` +
        `  after the first 30 frames:\n  encode ms   ${f(encodeMs.slice(30))}\n  ws ms       ${
          f(ws)
        }\n  decode ms   ${f(decode)}\n` +
        `  paint ms    ${f(paint)}\n  readback ms ${f(readback)}\n` +
        `  capture->canvas ms ${f(latency)}\n  drawn->canvas ms   ${f(g2g)}`,
    );
  } finally {
    await browser?.close();
    await player?.close();
    encoder?.close();
    capturer?.close();
    await probe?.stop();
    await xvfb.stop();
  }
});
