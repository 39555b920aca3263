/**
 * Input latency with video idle and with video saturating the link and the
 * CPU, measured side by side in one run.
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
 *   worker spins to take the second core.
 *
 *   deno run -A bench/input.ts [--events=300] [--interval-ms=10]
 *
 * Last line: `input_p99_idle_ms=N input_p99_loaded_ms=N` (target: loaded within 1 ms of idle).
 *
 * @module
 */
import { generateIdentity } from "../crypto/identity.ts";
import { decodeControl, encodeInput } from "../core/stream.ts";
import { ClientConnection } from "../client/connection.ts";
import { WavryHost } from "../host/host.ts";
import { monotonicMicros } from "../media/clock.ts";
import { startXvfb } from "../tests/support/xvfb.ts";
import { XProbe } from "../tests/support/xprobe.ts";

const arg = (name: string, fallback: number) =>
  Number(Deno.args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const EVENTS = arg("events", 300);
const INTERVAL_MS = arg("interval-ms", 10);

const BURNER = `
self.onmessage = () => { const end = performance.now() + 1e9; let x = 0;
  while (performance.now() < end) { for (let i = 0; i < 1e6; i++) x += i; } };
`;

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(p * (s.length - 1)))];
}

async function phase(loaded: boolean): Promise<number[]> {
  const xvfb = await startXvfb(1920, 1080);
  let probe: XProbe | undefined;
  let host: WavryHost | undefined;
  let connection: ClientConnection | undefined;
  let burner: Worker | undefined;
  try {
    probe = await XProbe.start(xvfb.display, loaded ? { scene: true, fps: 60 } : {});
    const hostIdentity = generateIdentity();
    host = await WavryHost.start({
      listen: { hostname: "127.0.0.1", port: 0 },
      display: xvfb.display,
      fps: 60,
      bitrateBps: loaded ? 40_000_000 : 8_000_000,
      congestionControl: false,
      identity: hostIdentity,
    });
    connection = await ClientConnection.connect({
      remote: host.addr,
      identity: generateIdentity(),
      expectHost: hostIdentity.publicKey,
    });
    // Drain the stream as a client would (frames are dropped here: no player).
    // INPUT_APPLIED tells when the host injected each event (its CLOCK_MONOTONIC, this machine's):
    // the split between the RIFT path and the X server's delivery to the X client.
    const appliedUs = new Map<number, number>();
    const frames = (async () => {
      let n = 0;
      for await (const e of connection!.events()) {
        if (e.type === "video-frame") n++;
        else if (e.type === "control") {
          const m = decodeControl(e.data);
          if (m.ok && m.value.type === "input-applied") {
            appliedUs.set(m.value.sequence, m.value.hostAppliedUs);
          }
        }
      }
      return n;
    })();
    if (loaded) {
      burner = new Worker(
        URL.createObjectURL(new Blob([BURNER], { type: "text/javascript" })),
        { type: "module" },
      );
      burner.postMessage(null);
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
    const seen = probe.events().filter((e) => e.type === "key");
    const latencies: number[] = [];
    const toApplied: number[] = [];
    for (let i = 0; i < Math.min(seen.length, sentUs.length); i++) {
      latencies.push((seen[i].t_us - sentUs[i]) / 1000);
      const applied = appliedUs.get(i + 1);
      if (applied !== undefined) toApplied.push((applied - sentUs[i]) / 1000);
    }
    await connection.close();
    const received = await frames;
    console.log(
      `${loaded ? "loaded" : "idle"}: ${seen.length}/${EVENTS} key events seen, ` +
        `${received} frames received, host sent ${host.framesSent}; ` +
        `p50 ${percentile(latencies, 0.5).toFixed(2)} ms, p99 ${
          percentile(latencies, 0.99).toFixed(2)
        } ms, max ${Math.max(...latencies).toFixed(2)} ms; of which sent → injected (RIFT + ` +
        `XTest) p50 ${percentile(toApplied, 0.5).toFixed(2)} ms, p99 ${
          percentile(toApplied, 0.99).toFixed(2)
        } ms`,
    );
    if (seen.length < sentUs.length) {
      throw new Error(`only ${seen.length} of ${sentUs.length} key events reached the display`);
    }
    return latencies;
  } finally {
    burner?.terminate();
    await connection?.close();
    await host?.stop();
    await probe?.stop();
    await xvfb.stop();
  }
}

const idle = await phase(false);
const loaded = await phase(true);
console.log(`command: deno run -A bench/input.ts --events=${EVENTS} --interval-ms=${INTERVAL_MS}`);
console.log(
  `input_p50_idle_ms=${percentile(idle, 0.5).toFixed(2)} ` +
    `input_p50_loaded_ms=${percentile(loaded, 0.5).toFixed(2)}`,
);
console.log(
  `input_p99_idle_ms=${percentile(idle, 0.99).toFixed(2)} ` +
    `input_p99_loaded_ms=${percentile(loaded, 0.99).toFixed(2)}`,
);
