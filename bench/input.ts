/**
 * Input latency with video idle and with video saturating the link and the
 * CPU, measured side by side in one run, split into stages.
 *
 * A real host (WavryHost on an Xvfb display, XTest injection) and a real
 * client connection (its session and media receive workers) on loopback.
 * The bench sends key presses through the client's input channel stamped
 * with CLOCK_MONOTONIC, and an X client on the host display (the xprobe
 * window) stamps each key event it receives with the same clock: latency =
 * X event seen − key sent, no clock estimation involved (one machine).
 *
 * - idle: the display is still, so video is a trickle of empty P-frames;
 * - loaded: the xprobe scene moves at 60 fps at 1920x1080, the host streams at
 *   a fixed 40 Mbit/s (no congestion control to back it off), and one extra
 *   worker spins to take the second core;
 * - loaded, display at FIFO (`--display-fifo`, default on): the same, with the
 *   Xvfb server and the xprobe X client raised to SCHED_FIFO 30 by the bench.
 *   The host cannot do that to a real X server and the application reading
 *   the keys, so the headline figure is the plain loaded phase; this phase
 *   shows how much of the loaded tail is the display stack's scheduling.
 *
 * Every event's path is stamped (CLOCK_MONOTONIC µs): generated (the bench)
 * → the client's session worker took it → sent (sendto returned) → the
 * host's kernel received it (SO_TIMESTAMPNS) → the host's input thread woke
 * with it → opened by the session → injected (XTest request flushed) → the X
 * server stamped the key event (its ms clock, CLOCK_MONOTONIC on Xvfb) → the
 * X client read it.
 *
 *   deno run -A bench/input.ts [--events=300] [--interval-ms=10] [--display-fifo=0]
 *                              [--encoder-nice=N]   (default: the host's DEFAULT_ENCODER_NICE)
 *
 * Last line: `input_p99_idle_ms=N input_p99_loaded_ms=N` (target: loaded within 1 ms of idle).
 *
 * @module
 */
import { generateIdentity } from "../crypto/identity.ts";
import { encodeInput } from "../core/stream.ts";
import { ClientConnection, type ClientInputTrace } from "../client/connection.ts";
import { WavryHost } from "../host/host.ts";
import type { HostInputTrace } from "../host/input_worker_handle.ts";
import { monotonicMicros } from "../media/clock.ts";
import { setThreadRealtime } from "../edge/thread_priority.ts";
import { startXvfb } from "../tools/display/xvfb.ts";
import { XProbe } from "../tools/display/xprobe.ts";

const arg = (name: string, fallback: number) =>
  Number(Deno.args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const EVENTS = arg("events", 300);
const INTERVAL_MS = arg("interval-ms", 10);
const DISPLAY_FIFO = arg("display-fifo", 1) !== 0;
/** The host's encoder nice value (default: the host's own default). */
const ENCODER_NICE = Deno.args.some((a) => a.startsWith("--encoder-nice="))
  ? arg("encoder-nice", 0)
  : undefined;

// Spins until the shared flag is set: terminate() alone does not always stop a busy loop, and a
// burner left running kept the process (and the bench lock) alive after the last line.
const BURNER = `
self.onmessage = (e) => { const stop = new Int32Array(e.data); let x = 0;
  while (Atomics.load(stop, 0) === 0) { for (let i = 0; i < 1e5; i++) x += i; } };
`;

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(p * (s.length - 1)))];
}

/** Stage names, in path order: each is the time from the previous stamp to its own. */
const STAGES = [
  "client_queue", // generated → the client's session worker took it
  "client_send", // → sendto returned
  "loopback", // → the host kernel's receive timestamp
  "host_wake", // → the host input thread had the batch
  "host_open", // → the session opened it and the serve loop took it
  "inject", // → XTest request flushed
  "x_server", // → the X server's event time (ms resolution: −1..+1 ms error per sample)
  "x_client", // → the X client read it
] as const;

interface PhaseResult {
  name: string;
  total: number[];
  toInjected: number[];
  stages: Record<string, number[]>;
}

type Load = "idle" | "loaded" | "loaded-fifo";

async function phase(load: Load): Promise<PhaseResult> {
  const loaded = load !== "idle";
  const xvfb = await startXvfb(1920, 1080);
  let probe: XProbe | undefined;
  let host: WavryHost | undefined;
  let connection: ClientConnection | undefined;
  let burner: Worker | undefined;
  const stop = new Int32Array(new SharedArrayBuffer(4));
  try {
    probe = await XProbe.start(xvfb.display, loaded ? { scene: true, fps: 60 } : {});
    if (load === "loaded-fifo") {
      const ok = setThreadRealtime(30, xvfb.pid) && setThreadRealtime(30, probe.pid);
      if (!ok) throw new Error("cannot raise Xvfb and xprobe to SCHED_FIFO (needs root)");
    }
    const hostIdentity = generateIdentity();
    const hostTraces = new Map<number, HostInputTrace>();
    host = await WavryHost.start({
      listen: { hostname: "127.0.0.1", port: 0 },
      display: xvfb.display,
      fps: 60,
      bitrateBps: loaded ? 40_000_000 : 8_000_000,
      congestionControl: false,
      identity: hostIdentity,
      encoderNice: ENCODER_NICE,
      onInputApplied: (trace) => hostTraces.set(trace.sequence, trace),
      log: (line) => {
        if (/priority|SCHED|nice/.test(line)) console.log(`  host: ${line}`);
      },
    });
    const clientTraces: ClientInputTrace[] = [];
    connection = await ClientConnection.connect({
      remote: host.addr,
      identity: generateIdentity(),
      expectHost: hostIdentity.publicKey,
      onInputSent: (trace) => clientTraces.push(trace),
    });
    // Drain the stream as a client would (frames are dropped here: no player).
    const frames = (async () => {
      let n = 0;
      for await (const e of connection!.events()) if (e.type === "video-frame") n++;
      return n;
    })();
    if (loaded) {
      burner = new Worker(
        URL.createObjectURL(new Blob([BURNER], { type: "text/javascript" })),
        { type: "module" },
      );
      burner.postMessage(stop.buffer);
    }
    // Let the stream reach steady state (first keyframe, encoder warm).
    await new Promise((r) => setTimeout(r, 2_000));
    const sentUs: number[] = [];
    for (let i = 0; i < EVENTS; i++) {
      const t = monotonicMicros();
      sentUs.push(t);
      connection.sendInput(encodeInput({
        sequence: i + 1,
        clientTimeUs: Math.round(t),
        event: { type: "key", code: "KeyQ", down: i % 2 === 0 },
      }));
      await new Promise((r) => setTimeout(r, INTERVAL_MS));
    }
    await new Promise((r) => setTimeout(r, 1_000));
    const seen = probe.events().flatMap((e) => e.type === "key" ? [e] : []);
    const result: PhaseResult = { name: load, total: [], toInjected: [], stages: {} };
    for (const s of STAGES) result.stages[s] = [];
    for (let i = 0; i < Math.min(seen.length, sentUs.length); i++) {
      const x = seen[i];
      result.total.push((x.t_us - sentUs[i]) / 1000);
      const c = clientTraces[i];
      const h = hostTraces.get(i + 1);
      if (c === undefined || h === undefined) continue;
      result.toInjected.push((h.injectedUs - sentUs[i]) / 1000);
      // The server's 32-bit ms clock, unwrapped near the injection time.
      const wrap = 2 ** 32;
      const serverMs = x.server_ms + Math.round((h.injectedUs / 1000 - x.server_ms) / wrap) * wrap;
      const stamps = [
        sentUs[i],
        c.handledUs,
        c.sentUs,
        h.receivedUs,
        h.wokeUs,
        h.openedUs,
        h.injectedUs,
        serverMs * 1000 + 500, // mid-millisecond: the server's clock is truncated to whole ms
        x.t_us,
      ];
      STAGES.forEach((s, k) => result.stages[s].push((stamps[k + 1] - stamps[k]) / 1000));
    }
    await connection.close();
    const received = await frames;
    const f = (v: number[], p: number) => percentile(v, p).toFixed(2);
    console.log(
      `${load}: ${seen.length}/${EVENTS} key events seen, ${received} frames received, ` +
        `host sent ${host.framesSent}; p50 ${f(result.total, 0.5)} ms, p99 ${
          f(result.total, 0.99)
        } ms, max ${Math.max(...result.total).toFixed(2)} ms; sent → injected p50 ${
          f(result.toInjected, 0.5)
        }, p99 ${f(result.toInjected, 0.99)} ms`,
    );
    console.log(
      `  stages p50/p99/max ms: ` +
        STAGES.map((s) => {
          const v = result.stages[s];
          return `${s} ${f(v, 0.5)}/${f(v, 0.99)}/${Math.max(...v).toFixed(2)}`;
        }).join(", "),
    );
    if (seen.length < sentUs.length) {
      throw new Error(`only ${seen.length} of ${sentUs.length} key events reached the display`);
    }
    return result;
  } finally {
    Atomics.store(stop, 0, 1);
    burner?.terminate();
    await connection?.close();
    await host?.stop();
    await probe?.stop();
    await xvfb.stop();
  }
}

const idle = await phase("idle");
const loaded = await phase("loaded");
const fifo = DISPLAY_FIFO ? await phase("loaded-fifo") : undefined;
const p = (r: PhaseResult, q: number, v = r.total) => percentile(v, q).toFixed(2);
console.log(
  `command: deno run -A bench/input.ts --events=${EVENTS} --interval-ms=${INTERVAL_MS} ` +
    `--display-fifo=${DISPLAY_FIFO ? 1 : 0}` +
    (ENCODER_NICE === undefined ? "" : ` --encoder-nice=${ENCODER_NICE}`),
);
if (fifo !== undefined) {
  console.log(
    `input_p99_loaded_display_fifo_ms=${p(fifo, 0.99)} ` +
      `injected_p99_loaded_display_fifo_ms=${p(fifo, 0.99, fifo.toInjected)}`,
  );
}
console.log(
  `injected_p99_idle_ms=${p(idle, 0.99, idle.toInjected)} ` +
    `injected_p99_loaded_ms=${p(loaded, 0.99, loaded.toInjected)}`,
);
console.log(`input_p50_idle_ms=${p(idle, 0.5)} input_p50_loaded_ms=${p(loaded, 0.5)}`);
console.log(`input_p99_idle_ms=${p(idle, 0.99)} input_p99_loaded_ms=${p(loaded, 0.99)}`);
