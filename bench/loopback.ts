/**
 * Loopback measurements of the UDP edge, host and client in two processes
 * (as deployed) or in one:
 *
 * - round-trip time of a CONTROL message (client → host → client), the floor
 *   of input latency: p50/p99 over `--pings` (default 1000);
 * - delivery of `--frames` video frames of `--size` bytes (default 20 × 200 KB).
 *
 * `deno run -A bench/loopback.ts [--in-process] [--pings N] [--frames N] [--size BYTES]
 *  [--rate MBPS] [--burst DATAGRAMS]` (pacing of the host side)
 *
 * @module
 */

import { generateIdentity } from "../crypto/identity.ts";
import { DEFAULT_PACING, SessionDriver, SessionListener } from "../edge/udp_session.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Results of one run. */
export interface LoopbackResult {
  /** Control-message round trips, sorted, in ms. */
  rttMs: number[];
  /** Frames delivered intact. */
  framesDelivered: number;
  /** Frames given up by the reassembler. */
  framesLost: number;
  /** Time from the request to the complete frame, per delivered frame, sorted, in ms. */
  frameMs: number[];
}

/** The p-th percentile (0..100) of sorted values (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

/**
 * Serves echo and frame requests on `listener` until it closes: a control
 * message `ping ...` comes back unchanged; `frame ID SIZE` sends one keyframe.
 */
export async function serveEcho(listener: SessionListener): Promise<void> {
  const sessions: Promise<void>[] = [];
  for await (const driver of listener.accept()) {
    sessions.push((async () => {
      for await (const event of driver.events()) {
        if (event.type !== "control") continue;
        const text = decoder.decode(event.data);
        if (text.startsWith("frame ")) {
          const [, id, size] = text.split(" ");
          const data = new Uint8Array(Number(size)).fill(Number(id) & 0xff);
          driver.sendVideoFrame({
            frameId: Number(id),
            captureTimeUs: Math.round(performance.now() * 1000),
            keyframe: true,
            data,
          });
        } else {
          driver.sendControl(event.data);
        }
      }
    })());
  }
  await Promise.all(sessions);
}

/** Runs the pings and the frame requests against a connected client. */
export async function measure(
  client: SessionDriver,
  pings: number,
  frames: number,
  size: number,
): Promise<LoopbackResult> {
  const events = client.events();
  const next = async (accept: (type: string) => boolean) => {
    for (;;) {
      const { value, done } = await events.next();
      if (done) throw new Error("session closed during the measurement");
      if (accept(value.type)) return value;
    }
  };
  const rttMs: number[] = [];
  for (let i = 0; i < pings; i++) {
    const t0 = performance.now();
    client.sendControl(encoder.encode(`ping ${i}`));
    await next((t) => t === "control");
    rttMs.push(performance.now() - t0);
  }
  const frameMs: number[] = [];
  let framesLost = 0;
  for (let id = 0; id < frames; id++) {
    const t0 = performance.now();
    client.sendControl(encoder.encode(`frame ${id} ${size}`));
    const event = await next((t) => t === "video-frame" || t === "video-frame-lost");
    if (event.type === "video-frame") frameMs.push(performance.now() - t0);
    else {
      framesLost++;
      if (Deno.env.get("BENCH_DEBUG")) console.error("lost frame", id);
    }
  }
  await events.return?.();
  rttMs.sort((a, b) => a - b);
  frameMs.sort((a, b) => a - b);
  return { rttMs, framesDelivered: frameMs.length, framesLost, frameMs };
}

function flag(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
}

async function main(args: string[]): Promise<void> {
  const pacing = {
    rateMbps: flag(args, "--rate", DEFAULT_PACING.rateMbps),
    burstDatagrams: flag(args, "--burst", DEFAULT_PACING.burstDatagrams),
  };
  if (args.includes("--serve")) {
    const listener = SessionListener.listen({
      hostname: "127.0.0.1",
      port: 0,
      identity: generateIdentity(),
      pacing,
    });
    console.log(listener.addr.port);
    const serving = serveEcho(listener);
    // Serve until the parent closes our stdin.
    for await (const _ of Deno.stdin.readable) { /* wait */ }
    await listener.close();
    await serving;
    return;
  }
  const pings = flag(args, "--pings", 1000);
  const frames = flag(args, "--frames", 20);
  const size = flag(args, "--size", 200 * 1024);
  const inProcess = args.includes("--in-process");
  let port: number;
  let stop: () => Promise<void>;
  if (inProcess) {
    const listener = SessionListener.listen({
      hostname: "127.0.0.1",
      port: 0,
      identity: generateIdentity(),
      pacing,
    });
    const serving = serveEcho(listener);
    port = listener.addr.port;
    stop = async () => {
      await listener.close();
      await serving;
    };
  } else {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL(import.meta.url).pathname,
        "--serve",
        "--rate",
        `${pacing.rateMbps}`,
        "--burst",
        `${pacing.burstDatagrams}`,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("host process exited");
      text += value;
    }
    port = Number(text.trim());
    stop = async () => {
      await child.stdin.close();
      await reader.cancel();
      await child.status;
    };
  }
  const client = await SessionDriver.connect({
    remote: { hostname: "127.0.0.1", port },
    identity: generateIdentity(),
  });
  try {
    const r = await measure(client, pings, frames, size);
    const f = (x: number) => x.toFixed(3);
    console.log(
      `${inProcess ? "one process" : "two processes"}, pacing ${JSON.stringify(pacing)}\n` +
        `control RTT over ${pings} pings: ` +
        `p50 ${f(percentile(r.rttMs, 50))} ms, p99 ${f(percentile(r.rttMs, 99))} ms, ` +
        `min ${f(r.rttMs[0])} ms, max ${f(r.rttMs.at(-1)!)} ms`,
    );
    console.log(
      `${frames} frames of ${size} bytes: ${r.framesDelivered} delivered, ${r.framesLost} lost; ` +
        `request→frame p50 ${f(percentile(r.frameMs, 50))} ms, p99 ${
          f(percentile(r.frameMs, 99))
        } ms`,
    );
    console.log("client stats:", JSON.stringify(client.stats.io));
  } finally {
    await client.close();
    await stop();
  }
}

if (import.meta.main) await main(Deno.args);
