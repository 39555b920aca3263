import assert from "node:assert/strict";
import type { Page } from "npm:playwright-core@1.65.1";
import { FfmpegVideoEncoder } from "../../media/linux/video_encoder.ts";
import type { CapturedFrame } from "../../media/types.ts";
import type { PlayerInput, PlayerPaintReport } from "./protocol.ts";
import { PlayerServer, wallClockMicros } from "./server.ts";
import { launchChromium, waitFor } from "./testing.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A 640x360 BGRA picture with the xprobe-style counter rows and a moving block. */
function syntheticFrame(counter: number): CapturedFrame {
  const width = 640, height = 360, cell = 16;
  const data = new Uint8Array(width * height * 4).fill(60);
  const fill = (x0: number, y0: number, w: number, h: number, v: number) => {
    for (let y = y0; y < y0 + h; y++) data.fill(v, (y * width + x0) * 4, (y * width + x0 + w) * 4);
  };
  const ms = Math.floor(performance.now());
  for (let bit = 0; bit < 32; bit++) {
    fill(bit * cell, 0, cell, cell, (counter >>> (31 - bit)) & 1 ? 255 : 0);
    fill(bit * cell, cell, cell, cell, (ms >>> (31 - bit)) & 1 ? 255 : 0);
  }
  fill((counter * 8) % (width - 64), 100, 64, 64, 230);
  return { width, height, stride: width * 4, data, captureTimeUs: Math.round(ms * 1000) };
}

async function text(page: Page, selector: string): Promise<string> {
  return (await page.textContent(selector)) ?? "";
}

Deno.test("input from the page arrives via onInput: keys, mouse, wheel, gamepad", async () => {
  let player: PlayerServer | undefined;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  try {
    const server = await PlayerServer.start({ port: 0 });
    player = server;
    const events: PlayerInput[] = [];
    server.onInput((e) => events.push(e));
    browser = await launchChromium();
    // 1000x720 window for a 1280x720 video: letterboxed, 1000x562.5 at y = 78.75.
    const page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
    await page.addInitScript(`
      globalThis.__pad = { index: 0, id: "Test pad (STANDARD GAMEPAD)", connected: true,
        mapping: "standard", timestamp: 0, axes: [0, 0, 0, 0],
        buttons: Array.from({ length: 17 }, () => ({ pressed: false, touched: false, value: 0 })) };
      navigator.getGamepads = () => [globalThis.__pad, null, null, null];
    `);
    await page.goto(server.url + "?lock=0");
    await waitFor(() => server.connections === 1, "the page to connect");
    server.configure({
      codec: "avc1.42c01f",
      sps: new Uint8Array(0),
      pps: new Uint8Array(0),
      avcc: new Uint8Array(0),
      width: 1280,
      height: 720,
    });
    await page.waitForFunction(`document.getElementById("video").width === 1280`);
    // The gamepad's first snapshot is sent when it is first seen.
    await waitFor(() => events.some((e) => e.t === "gamepad"), "the gamepad snapshot");

    const t0 = wallClockMicros();
    await page.keyboard.press("KeyA");
    await page.keyboard.press("Enter");
    await page.keyboard.down("ShiftLeft");
    await page.keyboard.press("Digit1");
    await page.keyboard.up("ShiftLeft");
    await page.keyboard.down("ArrowDown");
    await page.keyboard.down("ArrowDown"); // auto-repeat: not forwarded
    await page.keyboard.up("ArrowDown");
    await page.keyboard.press("F2"); // the overlay toggle: not forwarded
    await page.keyboard.press("F2");
    await page.mouse.move(500, 360);
    await page.mouse.move(100, 78.75 + 562.5 * 0.1);
    await page.mouse.click(750, 500, { button: "right" });
    await page.mouse.click(250, 219.375);
    await page.mouse.click(500, 700, { button: "middle" }); // in the letterbox: clamped to 1
    await page.mouse.move(500, 360);
    await page.mouse.wheel(0, 200);
    await page.evaluate(`__pad.buttons[0] = { pressed: true, touched: true, value: 1 };
      __pad.axes[1] = -0.5;`);
    await waitFor(() => events.filter((e) => e.t === "wheel").length === 1, "the wheel event");
    await waitFor(
      () => events.some((e) => e.t === "gamepad" && e.buttons[0] === 1),
      "the gamepad button",
    );
    const t1 = wallClockMicros();

    const keys = events.flatMap((e) => e.t === "key" ? [`${e.code}${e.down ? "+" : "-"}`] : []);
    assert.deepEqual(keys, [
      "KeyA+",
      "KeyA-",
      "Enter+",
      "Enter-",
      "ShiftLeft+",
      "Digit1+",
      "Digit1-",
      "ShiftLeft-",
      "ArrowDown+",
      "ArrowDown-",
    ]);
    const near = (a: number, b: number) => Math.abs(a - b) < 0.002;
    const moves = events.flatMap((e) => e.t === "move" ? [[e.x, e.y]] : []);
    assert.ok(moves.length >= 5, `moves ${JSON.stringify(moves)}`);
    assert.ok(near(moves[0][0], 0.5) && near(moves[0][1], 0.5), `first move ${moves[0]}`);
    assert.ok(near(moves[1][0], 0.1) && near(moves[1][1], 0.1), `second move ${moves[1]}`);
    const buttons = events.flatMap((e) =>
      e.t === "button" ? [{ b: e.button, down: e.down, x: e.x, y: e.y }] : []
    );
    assert.deepEqual(buttons.map((b) => `${b.b}${b.down ? "+" : "-"}`), [
      "2+",
      "2-",
      "0+",
      "0-",
      "1+",
      "1-",
    ]);
    assert.ok(near(buttons[0].x, 0.75) && near(buttons[0].y, (500 - 78.75) / 562.5));
    assert.ok(near(buttons[2].x, 0.25) && near(buttons[2].y, 0.25));
    assert.ok(near(buttons[4].x, 0.5) && buttons[4].y === 1, "letterbox clicks clamp to 0..1");
    const wheel = events.find((e) => e.t === "wheel")!;
    assert.ok(wheel.t === "wheel" && wheel.dx === 0 && wheel.dy === 2, JSON.stringify(wheel));
    const pad = events.findLast((e) => e.t === "gamepad")!;
    assert.ok(pad.t === "gamepad" && pad.connected && pad.index === 0);
    assert.equal(pad.buttons.length, 17);
    assert.equal(pad.axes[1], -0.5);
    for (const e of events.filter((e) => e.t !== "gamepad")) {
      assert.ok(e.ts >= t0 - 5_000 && e.ts <= t1 + 5_000, `timestamp ${e.ts} in [${t0}, ${t1}]`);
    }
    // Key timestamps are in order.
    const keyTs = events.filter((e) => e.t === "key").map((e) => e.ts);
    assert.deepEqual(keyTs, [...keyTs].sort((a, b) => a - b));
  } finally {
    await browser?.close();
    await player?.close();
  }
});

Deno.test("the overlay appears on F2 and shows the pushed numbers", async () => {
  let player: PlayerServer | undefined;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  try {
    const server = await PlayerServer.start({ port: 0 });
    player = server;
    // Pushed before the page connects: it gets the latest values on connect.
    server.pushOverlay({ "fps": 59.9, "RTT ms": 12.5, "FEC recoveries": 3 });
    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 800, height: 450 } });
    await page.goto(server.url);
    await waitFor(() => server.connections === 1, "the page to connect");
    assert.equal(await page.isVisible("#overlay"), false);
    await page.keyboard.press("F2");
    await page.waitForSelector("#overlay", { state: "visible" });
    await page.waitForFunction(`document.getElementById("overlay").textContent.includes("RTT")`);
    let shown = await text(page, "#overlay");
    assert.match(shown, /RTT ms: 12\.5/);
    assert.match(shown, /FEC recoveries: 3/);
    assert.match(shown, /— page —/); // the page's own figures
    assert.match(shown, /decode ms: /);
    server.pushOverlay({ "fps": 60, "RTT ms": 7.25, "loss %": "0.4" });
    await page.waitForFunction(`document.getElementById("overlay").textContent.includes("7.25")`);
    shown = await text(page, "#overlay");
    assert.match(shown, /loss %: 0\.4/);
    assert.doesNotMatch(shown, /FEC recoveries/);
    await page.keyboard.press("F2");
    await page.waitForSelector("#overlay", { state: "hidden" });
    await page.keyboard.press("Control+Shift+KeyS");
    await page.waitForSelector("#overlay", { state: "visible" });
  } finally {
    await browser?.close();
    await player?.close();
  }
});

Deno.test("a reload and a server restart reconnect; a keyframe is requested and decoding resumes", async () => {
  let player: PlayerServer | undefined;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  const encoder = FfmpegVideoEncoder.open({
    width: 640,
    height: 360,
    fps: 30,
    bitrateBps: 2_000_000,
    encoder: "libx264",
    log: false,
  });
  let streaming = true;
  let loop: Promise<void> | undefined;
  try {
    const paints: (PlayerPaintReport & { page: string })[] = [];
    const keyRequests: string[] = [];
    const keyframes = new Set<number>();
    let serverNo = 0;
    const wire = (server: PlayerServer) => {
      const no = ++serverNo;
      server.onStats((s, page) => {
        if (s.t === "paint") paints.push({ ...s, page: `${no}.${page}` });
      });
      server.onKeyframeRequest((reason) => {
        keyRequests.push(reason);
        encoder.requestKeyframe();
      });
    };
    let server = await PlayerServer.start({ port: 0 });
    player = server;
    wire(server);
    const config = () => ({ ...encoder.config, width: 640, height: 360 });
    server.configure(config());
    let frameId = 0;
    loop = (async () => {
      while (streaming) {
        frameId++;
        const au = await encoder.encode(syntheticFrame(frameId));
        if (au.keyframe) keyframes.add(frameId);
        player?.sendFrame({ ...au, frameId });
        await sleep(33);
      }
    })();
    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 640, height: 360 } });
    await page.goto(server.url);
    // The page joined mid-stream: it asks for a keyframe and starts from it.
    await waitFor(() => paints.length >= 10, "paints before the reload");
    assert.ok(keyRequests.includes("start"), `key requests ${keyRequests}`);
    assert.ok(keyframes.has(paints[0].frameId), "the first painted frame is a keyframe");
    for (const p of paints) assert.equal(p.counter, p.frameId);

    const requestsBefore = keyRequests.length;
    assert.ok(paints.every((p) => p.page === "1.1"));
    await page.reload();
    await waitFor(() => paints.filter((p) => p.page === "1.2").length >= 5, "paints after reload");
    assert.ok(keyRequests.length > requestsBefore, "the reloaded page asked for a keyframe");
    const firstAfter = paints.find((p) => p.page === "1.2")!;
    assert.ok(keyframes.has(firstAfter.frameId), `frame ${firstAfter.frameId} is a keyframe`);
    await page.waitForSelector("#message", { state: "hidden" });

    // The client program restarts its player on the same port: the page shows that it is
    // disconnected, reconnects by itself and decoding resumes.
    const port = server.port;
    player = undefined;
    await server.close();
    await page.waitForFunction(
      `document.getElementById("message").textContent.includes("Disconnected")`,
    );
    assert.equal(await page.isVisible("#message"), true);
    server = await PlayerServer.start({ port });
    wire(server);
    server.configure(config());
    player = server;
    await waitFor(
      () => paints.filter((p) => p.page === "2.1").length >= 5,
      "paints after the server restart",
    );
    const firstRestarted = paints.find((p) => p.page === "2.1")!;
    assert.ok(keyframes.has(firstRestarted.frameId));
    await page.waitForSelector("#message", { state: "hidden" });
    const summary = await page.evaluate<{ decodeErrors: number }>(`wavryPlayer.summary`);
    assert.equal(summary.decodeErrors, 0);
  } finally {
    streaming = false;
    await loop?.catch(() => {});
    await browser?.close();
    await player?.close();
    encoder.close();
  }
});

Deno.test("avc mode (description + length-prefixed chunks) decodes; a decoder error asks for a keyframe", async () => {
  let player: PlayerServer | undefined;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  const encoder = FfmpegVideoEncoder.open({
    width: 640,
    height: 360,
    fps: 30,
    bitrateBps: 2_000_000,
    encoder: "libx264",
    log: false,
  });
  try {
    const server = await PlayerServer.start({ port: 0, format: "avc" });
    player = server;
    const paints: PlayerPaintReport[] = [];
    const keyRequests: string[] = [];
    server.onStats((s) => {
      if (s.t === "paint") paints.push(s);
    });
    server.onKeyframeRequest((reason) => {
      keyRequests.push(reason);
      encoder.requestKeyframe();
    });
    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 640, height: 360 } });
    await page.goto(server.url);
    await waitFor(() => server.connections === 1, "the page to connect");
    let frameId = 0;
    const send = async (n: number) => {
      for (let i = 0; i < n; i++) {
        frameId++;
        server.sendFrame({ ...(await encoder.encode(syntheticFrame(frameId))), frameId });
        await sleep(20);
      }
    };
    await send(1); // the first access unit carries SPS/PPS: the config comes from it
    server.configure({ ...encoder.config, width: 640, height: 360 });
    await send(20);
    await waitFor(() => paints.length >= 15, "paints in avc mode");
    for (const p of paints) assert.equal(p.counter, p.frameId);

    // A broken access unit: the decoder fails, the page starts a new one and asks for a key.
    const garbage = new Uint8Array(4000);
    crypto.getRandomValues(garbage);
    garbage.set([0, 0, 0, 1, 0x65], 0); // an "IDR slice" of noise
    frameId++;
    server.sendFrame({
      data: garbage,
      keyframe: true,
      captureTimeUs: 0,
      convertMs: 0,
      encodeMs: 0,
      frameId,
    });
    const before = paints.length;
    await send(30);
    await waitFor(() => paints.length > before + 5, "paints after the broken frame");
    const summary = await page.evaluate<{ decodeErrors: number }>(`wavryPlayer.summary`);
    assert.ok(summary.decodeErrors >= 1, "Chromium rejects the noise");
    assert.ok(keyRequests.includes("error"), `key requests ${keyRequests}`);
  } finally {
    await browser?.close();
    await player?.close();
    encoder.close();
  }
});

Deno.test("a click locks the pointer; locked motion arrives as relative moves", async () => {
  let player: PlayerServer | undefined;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  try {
    const server = await PlayerServer.start({ port: 0 });
    player = server;
    const events: PlayerInput[] = [];
    server.onInput((e) => events.push(e));
    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 800, height: 450 } });
    await page.goto(server.url);
    await waitFor(() => server.connections === 1, "the page to connect");
    await page.mouse.move(100, 100);
    await page.mouse.click(100, 100);
    await page.waitForFunction(`document.pointerLockElement?.id === "video"`);
    await page.mouse.move(150, 80);
    await waitFor(() => events.some((e) => e.t === "moverel"), "a relative move");
    const rel = events.filter((e) => e.t === "moverel");
    const dx = rel.reduce((s, e) => s + (e.t === "moverel" ? e.dx : 0), 0);
    const dy = rel.reduce((s, e) => s + (e.t === "moverel" ? e.dy : 0), 0);
    assert.deepEqual([dx, dy], [50, -20]);
    // Ctrl+Shift+L turns click-to-lock off and leaves the lock: absolute moves again.
    await page.keyboard.press("Control+Shift+KeyL");
    await page.waitForFunction(`document.pointerLockElement === null`);
    await page.mouse.move(400, 225);
    await waitFor(() => events.at(-1)?.t === "move", "an absolute move");
    const last = events.at(-1)!;
    assert.ok(last.t === "move" && last.x === 0.5 && last.y === 0.5, JSON.stringify(last));
    assert.ok(!events.some((e) => e.t === "key" && e.code === "KeyL"), "the toggle is not sent");
  } finally {
    await browser?.close();
    await player?.close();
  }
});
