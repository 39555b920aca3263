/**
 * End-to-end benchmark: the live stream (Xvfb + xprobe moving scene + WavryHost
 * + WavryClient on loopback + headless Chromium), glass to glass, split per
 * stage and per frame.
 *
 *   deno run -A bench/e2e.ts [--seconds 20] [--warmup 2] [--sizes 1280x720,1920x1080]
 *                            [--fps 60] [--bitrate 8000000] [--key-interval 250]
 *
 * It builds the same stack as `runDemo` (demo/demo.ts) but keeps the handles,
 * so every figure is matched BY FRAME ID within one run:
 *
 * - host side, per frame (from the RIFT video payload the client receives,
 *   recorded at the moment the client hands that frame id to the player):
 *   capture = encode_start − capture_time (XShmGetImage + cursor query + copy),
 *   encode = encode_end − encode_start (BGRA→YUV + libx264),
 *   host_handoff = handed_to_session − encode_end (worker → main thread),
 *   network = client receive − handed_to_session (RIFT over loopback UDP);
 * - page side, per frame (the player's paint report for that frame id):
 *   ws = page receive − player server send, decode = decode() → output
 *   callback, paint = drawImage, and the scene's frame time read back from
 *   the painted canvas (pattern row 1, CLOCK_MONOTONIC ms).
 *
 * Per frame:
 *   glass_to_glass     = present − scene_drawn                  (page report)
 *   scene_to_capture   = capture_time − scene_drawn             (host clock; the
 *                        scene stamps whole ms, so this is +0..1 ms biased)
 *   capture_to_canvas  = present − capture_time = glass_to_glass − scene_to_capture
 *   codec              = encode + decode
 *   transport_overhead = glass_to_glass − scene_to_capture − capture − encode − decode − paint
 *                      = capture_to_canvas − capture − encode − decode − paint
 *                      ≈ host_handoff + network + client_relay + ws (+ residual)
 *
 * Input: every --key-interval ms the page gets a KeyA press; page keydown →
 * the scene's X client receiving the key (k-th press against k-th event),
 * split into page → client (WebSocket), client → host applied (RIFT + XTest)
 * and applied → X client (X server delivery).
 *
 * It also records what can bound those: capture slots the host skipped, the
 * Deno main thread's event-loop lateness (5 ms probe), the PING/PONG clock
 * offset error (one machine: the true offset is known through CLOCK_MONOTONIC),
 * the Deno ↔ Chromium wall-clock skew, and CPU per process over the window.
 *
 * Last line: 720p60 figures.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { generateIdentity } from "../crypto/identity.ts";
import { WavryClient } from "../client/client.ts";
import { launchChromium } from "../client/player/testing.ts";
import type { PlayerInput, PlayerPaintReport } from "../client/player/protocol.ts";
import { WavryHost } from "../host/host.ts";
import { startXvfb } from "../tools/display/xvfb.ts";
import { XProbe } from "../tools/display/xprobe.ts";
import type { Stage } from "../edge/metrics.ts";
import { decodeClockExtension } from "../core/clock_extension.ts";
import { monotonicMicros } from "../media/clock.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "20" },
    warmup: { type: "string", default: "2" },
    sizes: { type: "string", default: "1280x720,1920x1080" },
    fps: { type: "string", default: "60" },
    bitrate: { type: "string", default: "8000000" },
    "key-interval": { type: "string", default: "250" },
  },
});
const SECONDS = Number(args.seconds);
const WARMUP = Number(args.warmup);
const FPS = Number(args.fps);
const BITRATE = Number(args.bitrate);
const KEY_INTERVAL = Number(args["key-interval"]);
const SIZES = args.sizes.split(",").map((s) => {
  const m = /^(\d+)x(\d+)$/.exec(s.trim());
  if (!m) throw new Error(`--sizes: ${s} is not WIDTHxHEIGHT`);
  return { width: Number(m[1]), height: Number(m[2]) };
});

const wallUs = () => (performance.timeOrigin + performance.now()) * 1000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}
const f2 = (v: number): string => Number.isFinite(v) ? v.toFixed(2) : "-";

/** What the client saw of one frame (host timings from the RIFT payload). */
interface HostSide {
  captureTimeUs: number;
  captureMs: number;
  encodeMs: number;
  handoffMs: number;
  networkMs: number;
  /** Deno wall clock when the client handed it to the player server. */
  relayedUs: number;
}

/** One frame matched by id: host side and the page's paint report. */
interface Frame extends HostSide {
  frameId: number;
  paint: PlayerPaintReport;
}

/** CPU ticks of every process (utime + stime) and the whole machine. */
async function cpuSnapshot(): Promise<{ total: number; procs: Map<string, number> }> {
  const stat = await Deno.readTextFile("/proc/stat");
  const total = stat.split("\n")[0].split(/\s+/).slice(1).reduce((a, v) => a + Number(v || 0), 0);
  const procs = new Map<string, number>();
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const s = await Deno.readTextFile(`/proc/${e.name}/stat`);
      const close = s.lastIndexOf(")");
      const comm = s.slice(s.indexOf("(") + 1, close);
      const fields = s.slice(close + 2).split(" ");
      procs.set(`${e.name} ${comm}`, Number(fields[11]) + Number(fields[12]));
    } catch {
      // Gone meanwhile.
    }
  }
  return { total, procs };
}

interface Cpu {
  /** Busy share of all cores (0..1). */
  busy: number;
  /** Top processes: name and % of ONE core. */
  top: { name: string; pct: number }[];
}

async function cpuSince(
  a: { total: number; procs: Map<string, number> },
  idleA: number,
): Promise<Cpu> {
  const b = await cpuSnapshot();
  const idleB = await idleTicks();
  const cores = navigator.hardwareConcurrency;
  const totalTicks = b.total - a.total;
  const byName = new Map<string, number>();
  const count = new Map<string, number>();
  for (const [key, ticks] of b.procs) {
    const d = ticks - (a.procs.get(key) ?? 0);
    const name = key.split(" ").slice(1).join(" ");
    byName.set(name, (byName.get(name) ?? 0) + d);
    if (d > 0) count.set(name, (count.get(name) ?? 0) + 1);
  }
  const top = [...byName].filter(([, d]) => d > 0).sort((x, y) => y[1] - x[1]).slice(0, 6)
    .map(([name, d]) => ({
      name: `${name}×${count.get(name)}`,
      pct: 100 * cores * d / totalTicks,
    }));
  return { busy: 1 - (idleB - idleA) / totalTicks, top };
}

async function idleTicks(): Promise<number> {
  const f = (await Deno.readTextFile("/proc/stat")).split("\n")[0].split(/\s+/);
  return Number(f[4]) + Number(f[5]); // idle + iowait
}

/** Event-loop lateness of this (the host's and client's) thread, sampled by a 5 ms timer. */
function lagProbe(): { stop: () => number[] } {
  const lags: number[] = [];
  let expected = performance.now() + 5;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = () => {
    const now = performance.now();
    lags.push(Math.max(0, now - expected));
    expected = now + 5;
    timer = setTimeout(tick, 5);
  };
  timer = setTimeout(tick, 5);
  return {
    stop: () => {
      clearTimeout(timer);
      return lags;
    },
  };
}

interface RunResult {
  size: string;
  width: number;
  height: number;
  encoder: string;
  framesSent: number;
  framesReceived: number;
  framesDecoded: number;
  framesPainted: number;
  skippedSlots: number;
  pipelineDropped: number;
  frames: Frame[];
  input: { total: number; toClient: number; toApplied: number; toProbe: number }[];
  keysPressed: number;
  lags: number[];
  pingOffsetUs: number[];
  pageSkewUs: number;
  pageSkewRttUs: number;
  cpu: Cpu;
}

async function runOnce(width: number, height: number): Promise<RunResult> {
  const cleanup: (() => Promise<void> | void)[] = [];
  try {
    const xvfb = await startXvfb(width, height);
    cleanup.push(() => xvfb.stop());
    const probe = await XProbe.start(xvfb.display, { pattern: true, fps: FPS });
    cleanup.push(() => probe.stop());
    const hostIdentity = generateIdentity();
    const host = await WavryHost.start({
      listen: { hostname: "127.0.0.1", port: 0 },
      display: xvfb.display,
      fps: FPS,
      bitrateBps: BITRATE,
      identity: hostIdentity,
    });
    cleanup.push(() => host.stop());
    const client = await WavryClient.start({
      host: host.addr,
      identity: generateIdentity(),
      expectHost: hostIdentity.publicKey,
    });
    cleanup.push(() => client.stop());

    // Per-frame host timings: the client records its stages for a frame, synchronously,
    // right before it hands that frame to the player; catch them there by frame id.
    const hostSide = new Map<number, HostSide>();
    let current: Partial<Record<Stage, number>> = {};
    const inputStage: number[] = [];
    let measuring = false;
    let counting = false; // inside the measured window (without the drain after it)
    const origStage = client.metrics.stage.bind(client.metrics);
    client.metrics.stage = (stage: Stage, ms: number) => {
      current[stage] = ms;
      if (stage === "input" && measuring) inputStage.push(ms);
      origStage(stage, ms);
    };
    const origSend = client.player.sendFrame.bind(client.player);
    let lastReceivedId = -1;
    let framesReceived = 0;
    client.player.sendFrame = (au) => {
      lastReceivedId = au.frameId;
      if (counting) framesReceived++;
      hostSide.set(au.frameId, {
        captureTimeUs: au.captureTimeUs,
        captureMs: current.capture ?? NaN,
        encodeMs: au.encodeMs ?? current.encode ?? NaN,
        handoffMs: current.send_queue ?? NaN,
        networkMs: current.network ?? NaN,
        relayedUs: wallUs(),
      });
      current = {};
      origSend(au);
    };

    const paints = new Map<number, PlayerPaintReport>();
    let pageDecoded = 0, pagePainted = 0;
    client.player.onStats((s) => {
      if (s.t === "paint") paints.set(s.frameId, s);
      else {
        pageDecoded = Math.max(pageDecoded, s.framesDecoded);
        pagePainted = Math.max(pagePainted, s.framesPainted);
      }
    });
    const keyDowns: { ts: number; arrivedUs: number }[] = [];
    let inputsForwarded = 0;
    const keyDownOrdinal: number[] = []; // index among forwarded inputs of each KeyA down
    client.player.onInput((input: PlayerInput) => {
      if (!measuring) return;
      if (input.t === "key" && input.down && input.code === "KeyA") {
        keyDowns.push({ ts: input.ts, arrivedUs: wallUs() });
        keyDownOrdinal.push(inputsForwarded);
      }
      inputsForwarded++;
    });

    const browser = await launchChromium();
    cleanup.push(() => browser.close());
    const page = await browser.newPage({ viewport: { width, height } });
    await page.goto(client.player.url);
    const deadline = performance.now() + 20_000;
    while (paints.size === 0) {
      if (performance.now() > deadline) throw new Error("no frame painted within 20 s");
      await sleep(20);
    }
    await sleep(WARMUP * 1000);

    // Deno ↔ Chromium wall-clock skew: the round trip with the smallest RTT of 20.
    let pageSkewUs = NaN, pageSkewRttUs = Infinity;
    for (let i = 0; i < 20; i++) {
      const a = wallUs();
      const p = await page.evaluate(() => (performance.timeOrigin + performance.now()) * 1000);
      const b = wallUs();
      if (b - a < pageSkewRttUs) {
        pageSkewRttUs = b - a;
        pageSkewUs = p - (a + b) / 2;
      }
    }

    // ---- the measured window ----
    const cpu0 = await cpuSnapshot();
    const idle0 = await idleTicks();
    const sent0 = host.framesSent;
    const stats0 = host.pipeline?.stats;
    const firstId = lastReceivedId + 1;
    const probeKeys0 = probe.events().filter((e) => e.type === "key" && e.press).length;
    const lag = lagProbe();
    const pingOffsetUs: number[] = [];
    // One process, but the host's session runs in its input worker, whose performance.now() has
    // its own origin: the true offset is known exactly through CLOCK_MONOTONIC (the host's
    // mono − perf travels in the handshake extension).
    const hostMonoMinusPerfUs = decodeClockExtension(client.connection.peerExtension) ?? 0;
    const offsetTimer = setInterval(() => {
      const o = client.connection.clockOffsetUs;
      const trueOffsetUs = (monotonicMicros() - performance.now() * 1000) - hostMonoMinusPerfUs;
      if (o !== undefined) pingOffsetUs.push(o - trueOffsetUs);
    }, 100);
    const decoded0 = pageDecoded;
    measuring = true;
    counting = true;
    let keysPressed = 0;
    const keyTimer = setInterval(() => {
      keysPressed++;
      page.keyboard.press("KeyA").catch(() => {});
    }, KEY_INTERVAL);
    cleanup.push(() => clearInterval(keyTimer));
    await sleep(SECONDS * 1000);
    clearInterval(keyTimer);
    counting = false;
    const sent1 = host.framesSent;
    const decoded1 = pageDecoded;
    const stats1 = host.pipeline?.stats;
    const lastId = lastReceivedId;
    const lags = lag.stop();
    clearInterval(offsetTimer);
    const cpu = await cpuSince(cpu0, idle0);
    // Let frames and key events in flight arrive.
    await sleep(500);
    measuring = false;

    const frames: Frame[] = [];
    let painted = 0;
    for (let id = firstId; id <= lastId; id++) {
      const p = paints.get(id);
      if (p === undefined) continue;
      painted++;
      const h = hostSide.get(id);
      if (h !== undefined) frames.push({ frameId: id, ...h, paint: p });
    }

    // Input: k-th KeyA down in the page against the k-th key press at the scene's X client.
    const seen = probe.events().filter((e) => e.type === "key" && e.press).slice(probeKeys0);
    const input: RunResult["input"] = [];
    for (let k = 0; k < Math.min(seen.length, keyDowns.length); k++) {
      const at = client.hostMonoToWallUs(seen[k].t_us);
      if (at === undefined) continue;
      const total = (at - keyDowns[k].ts) / 1000;
      const toApplied = inputStage[keyDownOrdinal[k]] ?? NaN; // page ts → host applied
      input.push({
        total,
        toClient: (keyDowns[k].arrivedUs - keyDowns[k].ts) / 1000,
        toApplied,
        toProbe: total - toApplied,
      });
    }

    return {
      size: `${width}x${height}@${FPS}`,
      width,
      height,
      encoder: host.pipeline?.encoderName ?? "?",
      framesSent: sent1 - sent0,
      framesReceived,
      framesDecoded: decoded1 - decoded0,
      framesPainted: painted,
      skippedSlots: (stats1?.skippedSlots ?? 0) - (stats0?.skippedSlots ?? 0),
      pipelineDropped: (stats1?.framesDropped ?? 0) - (stats0?.framesDropped ?? 0),
      frames,
      input,
      keysPressed,
      lags,
      pingOffsetUs,
      pageSkewUs,
      pageSkewRttUs,
      cpu,
    };
  } finally {
    for (const step of cleanup.reverse()) {
      try {
        await step();
      } catch {
        // Keep stopping the rest.
      }
    }
  }
}

const tailBlame = new Map<RunResult, { over: number; blame: Record<string, number> }>();

/** Per-frame stage series of a run. */
function series(r: RunResult): Record<string, number[]> {
  const s: Record<string, number[]> = {
    scene_to_capture: [],
    capture: [],
    encode: [],
    host_handoff: [],
    network: [],
    client_relay: [],
    ws: [],
    ws_page_busy: [],
    decode: [],
    paint: [],
    readback: [],
    codec: [],
    transport_overhead: [],
    transport_residual: [],
    transport_excl_page_busy: [],
    capture_to_canvas: [],
    glass_to_glass: [],
  };
  const tails: { transport: number; parts: Record<string, number> }[] = [];
  let prev: PlayerPaintReport | undefined;
  for (const f of r.frames) {
    const p = f.paint;
    const before = prev;
    prev = p;
    if (p.latencyUs === null || p.drawnMs === null || p.drawnToPresentUs === null) continue;
    if (!(p.decodeMs >= 0)) continue;
    const g2g = p.drawnToPresentUs / 1000;
    const sceneToCapture = f.captureTimeUs / 1000 - p.drawnMs;
    const toCanvas = p.latencyUs / 1000;
    const transport = g2g - sceneToCapture - f.captureMs - f.encodeMs - p.decodeMs - p.paintMs;
    const serverSendUs = p.recvUs - p.wsUs;
    const relay = (serverSendUs - f.relayedUs) / 1000;
    s.scene_to_capture.push(sceneToCapture);
    s.capture.push(f.captureMs);
    s.encode.push(f.encodeMs);
    s.host_handoff.push(f.handoffMs);
    s.network.push(f.networkMs);
    s.client_relay.push(relay);
    s.ws.push(p.wsUs / 1000);
    // The part of ws during which the page's main thread was still painting and reading back
    // the previous frame (the message cannot be dispatched before that ends).
    const busyEndUs = before === undefined
      ? -Infinity
      : before.presentUs + (before.readbackMs ?? 0) * 1000;
    s.ws_page_busy.push(Math.max(0, Math.min(p.wsUs, busyEndUs - serverSendUs)) / 1000);
    s.readback.push(p.readbackMs ?? NaN);
    tails.push({
      transport: 0,
      parts: {
        host_handoff: f.handoffMs,
        network: f.networkMs,
        ws_page_busy: s.ws_page_busy[s.ws_page_busy.length - 1],
        ws_other: p.wsUs / 1000 - s.ws_page_busy[s.ws_page_busy.length - 1],
      },
    });
    s.decode.push(p.decodeMs);
    s.paint.push(p.paintMs);
    s.codec.push(f.encodeMs + p.decodeMs);
    s.transport_overhead.push(transport);
    tails[tails.length - 1].transport = transport;
    s.transport_excl_page_busy.push(transport - s.ws_page_busy[s.ws_page_busy.length - 1]);
    s.transport_residual.push(
      transport - f.handoffMs - f.networkMs - relay - p.wsUs / 1000,
    );
    s.capture_to_canvas.push(toCanvas);
    s.glass_to_glass.push(g2g);
  }
  // Frames over the 2 ms transport target: which part of the transport was largest.
  const blame: Record<string, number> = {};
  let over = 0;
  for (const t of tails) {
    if (!(t.transport > 2)) continue;
    over++;
    const worst = Object.entries(t.parts).sort((x, y) => y[1] - x[1])[0][0];
    blame[worst] = (blame[worst] ?? 0) + 1;
  }
  tailBlame.set(r, { over, blame });
  return s;
}

const commandLine = `deno run -A bench/e2e.ts --seconds ${SECONDS} --warmup ${WARMUP} ` +
  `--sizes ${args.sizes} --fps ${FPS} --bitrate ${BITRATE} --key-interval ${KEY_INTERVAL}`;

const results: { r: RunResult; s: Record<string, number[]> }[] = [];
for (const { width, height } of SIZES) {
  console.log(`running ${width}x${height}@${FPS} for ${SECONDS} s (+${WARMUP} s warm-up)...`);
  const r = await runOnce(width, height);
  results.push({ r, s: series(r) });
}

for (const { r, s } of results) {
  console.log("");
  console.log(`## ${r.size} (${r.encoder}, ${BITRATE / 1e6} Mbit/s, ${SECONDS} s window)`);
  console.log("");
  console.log("| stage (per frame, matched by frame id) | p50 ms | p99 ms | max ms | n |");
  console.log("|---|---|---|---|---|");
  const order: [string, string][] = [
    ["scene_to_capture", "scene_to_capture (scene drew → capture slot)"],
    ["capture", "capture (XShmGetImage + copy)"],
    ["encode", "encode (convert + libx264)"],
    ["host_handoff", "host_handoff (worker → session)"],
    ["network", "network (RIFT, loopback UDP)"],
    ["client_relay", "client_relay (client → player server send)"],
    ["ws", "ws (player server → page)"],
    ["ws_page_busy", "  of which page busy with previous frame"],
    ["decode", "decode (WebCodecs)"],
    ["paint", "paint (drawImage)"],
    ["readback", "readback (getImageData, after present; not in g2g)"],
    ["codec", "codec = encode + decode"],
    ["transport_overhead", "transport_overhead"],
    ["transport_residual", "transport residual (unattributed)"],
    ["transport_excl_page_busy", "transport_overhead − page-busy wait"],
    ["capture_to_canvas", "capture_to_canvas"],
    ["glass_to_glass", "glass_to_glass"],
  ];
  for (const [key, label] of order) {
    const v = s[key];
    console.log(
      `| ${label} | ${f2(percentile(v, 0.5))} | ${f2(percentile(v, 0.99))} | ` +
        `${f2(Math.max(...v))} | ${v.length} |`,
    );
  }
  const inputRows: [string, number[]][] = [
    ["input (page keydown → X client)", r.input.map((i) => i.total)],
    ["  page → client (WebSocket)", r.input.map((i) => i.toClient)],
    ["  page → host applied (+ RIFT, XTest)", r.input.map((i) => i.toApplied)],
    ["  applied → X client (X server)", r.input.map((i) => i.toProbe)],
  ];
  for (const [label, v] of inputRows) {
    console.log(
      `| ${label} | ${f2(percentile(v, 0.5))} | ${f2(percentile(v, 0.99))} | ` +
        `${f2(Math.max(...v))} | ${v.length} |`,
    );
  }
  console.log(
    `| event-loop lateness, host+client thread (5 ms probe) | ${f2(percentile(r.lags, 0.5))} | ` +
      `${f2(percentile(r.lags, 0.99))} | ${f2(Math.max(...r.lags))} | ${r.lags.length} |`,
  );
  console.log("");
  const pct = 100 * r.framesPainted / Math.max(1, r.framesSent);
  console.log(
    `frames: sent ${r.framesSent}, received ${r.framesReceived}, decoded ${r.framesDecoded} ` +
      `(page total), painted ${r.framesPainted} (${pct.toFixed(1)} % of sent, ` +
      `${(100 * r.framesPainted / (SECONDS * FPS)).toFixed(1)} % of ${SECONDS * FPS} slots); ` +
      `capture slots skipped ${r.skippedSlots} (of ${Math.round(SECONDS * FPS)}), ` +
      `host queue drops ${r.pipelineDropped}; keys ${r.keysPressed} pressed, ${r.input.length} matched`,
  );
  const tb = tailBlame.get(r)!;
  console.log(
    `transport > 2 ms: ${tb.over} of ${s.transport_overhead.length} frames; largest part: ` +
      Object.entries(tb.blame).map(([k, v]) => `${k} ${v}`).join(", "),
  );
  const offs = r.pingOffsetUs.map(Math.abs);
  console.log(
    `clocks: PING/PONG offset error |p50| ${f2(percentile(offs, 0.5) / 1000)} ms ` +
      `(true offset known through CLOCK_MONOTONIC: one machine); Chromium − Deno wall clock ${
        f2(r.pageSkewUs / 1000)
      } ms ` +
      `(±${f2(r.pageSkewRttUs / 2000)} ms)`,
  );
  console.log(
    `cpu: ${(100 * r.cpu.busy).toFixed(0)} % of ${navigator.hardwareConcurrency} cores busy; ` +
      r.cpu.top.map((t) => `${t.name} ${t.pct.toFixed(0)}%`).join(", ") + " (% of one core)",
  );
}

console.log("");
console.log(`command: ${commandLine}`);
console.log(
  "# transport_overhead = glass_to_glass − scene_to_capture − capture − encode − decode − paint, " +
    "per frame; last line: the 1280x720@60 run",
);
const main = results.find((x) => x.r.width === 1280 && x.r.height === 720) ?? results[0];
const pick = (k: string, p: number) => f2(percentile(main.s[k], p));
console.log(
  `g2g_ms_p50=${pick("glass_to_glass", 0.5)} g2g_ms_p99=${pick("glass_to_glass", 0.99)} ` +
    `codec_ms_p50=${pick("codec", 0.5)} ` +
    `transport_overhead_ms_p99=${pick("transport_overhead", 0.99)} ` +
    `input_ms_p99=${f2(percentile(main.r.input.map((i) => i.total), 0.99))}`,
);
Deno.exit(0);
