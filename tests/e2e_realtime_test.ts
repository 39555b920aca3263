/**
 * End to end, the way a user sees it: the moving xprobe scene on a 720p
 * display, WavryHost streaming it at 60 fps, WavryClient on loopback, and
 * headless Chromium playing it. Real time: this file runs alone, after the
 * parallel suite.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { generateIdentity } from "../crypto/identity.ts";
import { WavryClient } from "../client/client.ts";
import type { PlayerPaintReport, PlayerSummaryStats } from "../client/player/protocol.ts";
import { launchChromium, waitFor } from "../client/player/testing.ts";
import { WavryHost } from "../host/host.ts";
import { browserPids, childrenOnDisplay, Cleanup, ProcessTracker } from "./support/leftovers.ts";
import { colourDistance, patches, type Rgb } from "./support/scene.ts";
import { XProbe } from "../tools/display/xprobe.ts";
import { startXvfb } from "../tools/display/xvfb.ts";

const W = 1280, H = 720, FPS = 60;
const RUN_MS = 10_000;
/** Largest per-channel difference allowed between the canvas and the scene (H.264 at 8 Mbit/s). */
const COLOUR_TOLERANCE = 32;
/** Latency stages the client measures (the overlay and its /metrics show them). */
const CLIENT_STAGES = [
  "capture",
  "encode",
  "send_queue",
  "network",
  "decode",
  "present",
  "glass_to_glass",
  "input",
];
/** Stages the host measures itself. */
const HOST_STAGES = ["capture", "encode", "send_queue"];

function pct(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

/** Stage labels with at least one sample in Prometheus text's `wavry_stage_latency_ms_count`. */
function promStages(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (
    const m of text.matchAll(/^wavry_stage_latency_ms_count\{[^}]*stage="([^"]+)"[^}]*\} (\S+)$/gm)
  ) {
    out.set(m[1], Number(m[2]));
  }
  return out;
}

/**
 * Reads the canvas once (a copy, so the picture cannot change between the two
 * reads): the frame counter from pattern row 0, then the colours at the points
 * where the scene at that counter has flat patches.
 */
async function sampleCanvas(
  page: Page,
): Promise<{ counter: number; checked: number; worst: number; bad: string[] }> {
  const counter = await page.evaluate(`(() => {
    const canvas = document.getElementById("video");
    const image = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
    globalThis.__wavrySnapshot = image;
    let value = 0;
    for (let bit = 0; bit < 32; bit++) {
      const i = (8 * image.width + bit * 16 + 8) * 4;
      value = value * 2 + ((image.data[i] + image.data[i + 1] + image.data[i + 2]) / 3 > 127 ? 1 : 0);
    }
    return value >>> 0;
  })()`) as number;
  const points = patches(counter, W, H);
  const got = await page.evaluate(`(() => {
    const image = globalThis.__wavrySnapshot;
    delete globalThis.__wavrySnapshot;
    return ${JSON.stringify(points.map(({ x, y }) => [x, y]))}.map(([x, y]) => {
      const i = (y * image.width + x) * 4;
      return [image.data[i], image.data[i + 1], image.data[i + 2]];
    });
  })()`) as Rgb[];
  let worst = 0;
  const bad: string[] = [];
  points.forEach((p, i) => {
    const d = colourDistance(p.rgb, got[i]);
    worst = Math.max(worst, d);
    if (d > COLOUR_TOLERANCE) bad.push(`${p.what} at (${p.x},${p.y}): ${got[i]} vs ${p.rgb}`);
  });
  return { counter, checked: points.length, worst, bad };
}

Deno.test("end to end: 720p60 for 10 s in headless Chromium — frames, pixels, input, overlay, metrics", async () => {
  const cleanup = new Cleanup();
  const processes = new ProcessTracker();
  try {
    const xvfb = await startXvfb(W, H);
    cleanup.defer("Xvfb", () => xvfb.stop());
    processes.add(`Xvfb ${xvfb.display}`, xvfb.pid);
    const probe = await XProbe.start(xvfb.display, { pattern: true, fps: FPS });
    cleanup.defer("xprobe", () => probe.stop());
    processes.add("wavry-xprobe", ...childrenOnDisplay("wavry-xprobe", xvfb.display));

    const hostIdentity = generateIdentity();
    const hostLog: string[] = [];
    const host = await WavryHost.start({
      listen: { hostname: "127.0.0.1", port: 0 },
      display: xvfb.display,
      fps: FPS,
      bitrateBps: 8_000_000,
      identity: hostIdentity,
      log: (line) => hostLog.push(line),
    });
    cleanup.defer("host", () => host.stop());
    const client = await WavryClient.start({
      host: host.addr,
      identity: generateIdentity(),
      expectHost: hostIdentity.publicKey,
      connectTimeoutMs: 10_000,
    });
    cleanup.defer("client", () => client.stop());

    const paints: PlayerPaintReport[] = [];
    let summary: PlayerSummaryStats | undefined;
    client.player.onStats((s) => {
      if (s.t === "paint") paints.push(s);
      else summary = s;
    });
    const keyDowns: { code: string; ts: number }[] = [];
    client.player.onInput((e) => {
      if (e.t === "key" && e.down) keyDowns.push({ code: e.code, ts: e.ts });
    });

    const browser = await launchChromium();
    cleanup.defer("Chromium", () => browser.close());
    processes.add("Chromium", ...await browserPids(browser));
    assert.ok(processes.size >= 3, `tracking only ${processes.size} processes`);
    const page = await browser.newPage({ viewport: { width: W, height: H } });
    const consoleLines: string[] = [];
    page.on("console", (m) => consoleLines.push(m.text()));
    await page.goto(client.player.url);
    await waitFor(() => paints.length > 0, "the page's first painted frame", 20_000);

    // The run: 10 s from the first painted frame. Host frame ids count from 0 with the
    // pipeline (one frame, one id), so the frames sent since the first paint are ids
    // (first.frameId, host.framesSent - 1].
    const first = paints[0];
    const started = performance.now();
    const samples: Awaited<ReturnType<typeof sampleCanvas>>[] = [];
    while (performance.now() - started < RUN_MS) {
      await new Promise((r) => setTimeout(r, 1_000)); // pacing of the samples, not synchronisation
      samples.push(await sampleCanvas(page));
    }
    const lastSentId = host.framesSent - 1;
    const elapsedS = (performance.now() - started) / 1000;
    // Frames in flight at the end get a bounded moment to be painted.
    await waitFor(
      () => paints.some((p) => p.frameId >= lastSentId),
      `frame ${lastSentId} to be painted`,
      2_000,
    ).catch(() => {});

    // ≥ 90 % of the frames the host sent were decoded and painted.
    const sentInRun = lastSentId - first.frameId;
    const paintedIds = new Set(
      paints.filter((p) => p.frameId > first.frameId && p.frameId <= lastSentId).map((p) =>
        p.frameId
      ),
    );
    assert.ok(sentInRun >= 0.5 * FPS * RUN_MS / 1000, `the host sent only ${sentInRun} frames`);
    assert.ok(
      paintedIds.size >= 0.9 * sentInRun,
      `painted ${paintedIds.size} of the ${sentInRun} frames sent (page: ${
        JSON.stringify(summary)
      }; console: ${consoleLines.slice(-5).join(" | ")})`,
    );
    assert.ok(summary !== undefined, "no summary from the page");
    assert.ok(
      summary.framesDecoded >= summary.framesPainted && summary.decodeErrors === 0,
      `page: ${JSON.stringify(summary)}`,
    );

    // The counter read back after each paint never goes backwards and moves on over the run.
    let regressions = 0;
    for (let i = 1; i < paints.length; i++) {
      if (paints[i].counter! < paints[i - 1].counter!) regressions++;
    }
    assert.equal(regressions, 0, "the frame counter read back from the canvas went backwards");
    const counterAdvance = paints[paints.length - 1].counter! - first.counter!;
    assert.ok(
      counterAdvance >= 0.5 * FPS * RUN_MS / 1000,
      `the scene's counter moved on by only ${counterAdvance} over the run`,
    );
    // The sampled pictures: counters increase, colours match the scene at that counter.
    for (let i = 1; i < samples.length; i++) {
      assert.ok(
        samples[i].counter > samples[i - 1].counter,
        `canvas counter ${samples[i].counter} after ${samples[i - 1].counter}`,
      );
    }
    for (const s of samples) {
      assert.ok(s.checked >= 10, `only ${s.checked} patches at counter ${s.counter}`);
      assert.deepEqual(s.bad, [], `canvas vs scene at counter ${s.counter}`);
    }

    // A key pressed in the page reaches the scene's X client through the host.
    const pressedAt = keyDowns.length;
    await page.keyboard.press("KeyQ");
    const seen = await probe.waitForEvent(
      (e) => e.type === "key" && e.press && e.name === "q",
      5_000,
    );
    await probe.waitForEvent((e) => e.type === "key" && !e.press && e.name === "q", 5_000);
    const down = keyDowns.slice(pressedAt).find((k) => k.code === "KeyQ");
    assert.ok(down, "the page sent no KeyQ press");
    const seenWall = client.hostMonoToWallUs(seen.t_us);
    const inputMs = seenWall === undefined ? NaN : (seenWall - down.ts) / 1000;

    // F2 shows the overlay with the latency stages.
    await page.keyboard.press("F2");
    await page.waitForFunction(
      `(() => {
        const el = document.getElementById("overlay");
        return !el.hidden && ${
        JSON.stringify(CLIENT_STAGES)
      }.every((s) => el.textContent.includes(s + ": "));
      })()`,
      undefined,
      { timeout: 5_000 },
    ).catch(async () => {
      const text = await page.evaluate(`document.getElementById("overlay").textContent`);
      throw new Error(`the overlay does not show every stage ${CLIENT_STAGES}: ${text}`);
    });
    const overlay = await page.evaluate(`document.getElementById("overlay").textContent`) as string;

    // Prometheus: the host's registry, and the client's over HTTP.
    const hostStages = promStages(await host.metrics.prometheus());
    for (const stage of HOST_STAGES) {
      assert.ok((hostStages.get(stage) ?? 0) > 0, `host wavry_stage_latency_ms{stage="${stage}"}`);
    }
    const response = await fetch(`${client.player.url}metrics`);
    const body = await response.text();
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
    const clientStages = promStages(body);
    for (const stage of CLIENT_STAGES) {
      assert.ok(
        (clientStages.get(stage) ?? 0) > 0,
        `client /metrics wavry_stage_latency_ms{stage="${stage}"}: ${[...clientStages.keys()]}`,
      );
    }

    const g2g = paints.slice(30).flatMap((p) =>
      p.drawnToPresentUs === null ? [] : [p.drawnToPresentUs / 1000]
    );
    const decode = paints.slice(30).map((p) => p.decodeMs);
    console.log(
      `e2e: ${paintedIds.size}/${sentInRun} frames painted (${
        (100 * paintedIds.size / sentInRun).toFixed(1)
      } %) in ${elapsedS.toFixed(1)} s = ${(paintedIds.size / elapsedS).toFixed(1)} fps; ` +
        `counter +${counterAdvance}; ${samples.length} canvas samples, ` +
        `${samples.reduce((n, s) => n + s.checked, 0)} patches, worst channel diff ${
          Math.max(...samples.map((s) => s.worst))
        }\n` +
        `  glass-to-glass ms p50 ${pct(g2g, 0.5).toFixed(1)} p99 ${pct(g2g, 0.99).toFixed(1)}; ` +
        `decode ms p50 ${pct(decode, 0.5).toFixed(1)}; key page -> X client ${
          inputMs.toFixed(1)
        } ms; ${processes.size} processes to check\n  overlay: ${overlay.split("\n").join(" | ")}`,
    );
  } finally {
    await cleanup.run();
  }
  await processes.assertGone();
});
