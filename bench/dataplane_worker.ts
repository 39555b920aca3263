/**
 * One side of bench/dataplane.ts, in its own worker: the media lane's full
 * send path (fragment + FEC + seal + send, through host/media_send_path.ts,
 * the step the host's media send worker runs) or receive path (receive +
 * open + FEC + reassemble, through `MediaReceiver.handleBatch` as the
 * client's media receive worker calls it), or the same workers moving raw
 * datagrams (the baseline).
 *
 * @module
 */
import { type MediaLaneState, MediaReceiver, MediaSender } from "../core/media_lane.ts";
import { NativeUdpSocket } from "../edge/native_udp.ts";
import { useNativeAead } from "../edge/native_aead.ts";
import { useNativeFec } from "../edge/native_fec.ts";
import { sendMediaBatch } from "../host/media_send_path.ts";

// The same native kernels the media send worker uses.
useNativeAead();
useNativeFec();

/** What the parent asks one worker to do. */
export interface DataplaneJob {
  role: "send" | "receive";
  /** Full RIFT media path, or raw datagrams. */
  mode: "rift" | "raw";
  lane: MediaLaneState;
  /** Receiver's port (send) — the receiver opens its own socket and reports it. */
  port: number;
  /** Shared counters: [0] datagrams the receiver handled, [1] stop flag. */
  shared: SharedArrayBuffer;
  ms: number;
  /** Video frame size in bytes (a 1080p60 frame at 20 Mbit/s is ~42 KB). */
  frameBytes: number;
  fecRatio: number;
}

interface Scope {
  onmessage: ((e: MessageEvent<DataplaneJob>) => void) | null;
  postMessage(m: unknown): void;
  close(): void;
}
const scope = globalThis as unknown as Scope;
/** The sender stays at most this many datagrams ahead of the receiver (UDP drops the rest). */
const WINDOW = 1024;
/** Datagrams per sendmmsg, as host/media_send_worker.ts. */
const SEND_BATCH = 64;

async function send(job: DataplaneJob): Promise<void> {
  const counters = new Int32Array(job.shared);
  const socket = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  const to = { hostname: "127.0.0.1", port: job.port };
  const sender = new MediaSender(
    { ...job.lane, fec: { ...job.lane.fec, parityRatio: job.fecRatio } },
    performance.now(),
  );
  const frame = new Uint8Array(job.frameBytes).map((_, i) => i * 7);
  const raw = new Uint8Array(1200);
  let sent = 0;
  let frameId = 0;
  let waits = 0;
  let busyMs = 0;
  const start = performance.now();
  const end = start + job.ms;
  while (performance.now() < end) {
    if (sent - Atomics.load(counters, 0) > WINDOW) {
      // Let the receiver catch up; a tight spin would steal its CPU on a 2-core machine.
      waits++;
      await new Promise((r) => setTimeout(r, 0));
      continue;
    }
    if (job.mode === "raw") {
      for (let i = 0; i < 32; i++) if (socket.send(raw, to)) sent++;
      continue;
    }
    const t0 = performance.now();
    if (!sender.pending) {
      sender.sendVideoFrame({ frameId: frameId++, captureTimeUs: 0, keyframe: false, data: frame });
    }
    // The host's media send worker's own send step: one AEAD call, one sendmmsg, no copy.
    sent += sendMediaBatch(sender, socket, to, performance.now(), SEND_BATCH, Infinity).sent;
    busyMs += performance.now() - t0;
  }
  const seconds = (performance.now() - start) / 1000;
  Atomics.store(counters, 1, 1);
  await socket.close();
  scope.postMessage({ pps: sent / seconds, datagrams: sent, frames: frameId, waits, busyMs });
}

async function receive(job: DataplaneJob): Promise<void> {
  const counters = new Int32Array(job.shared);
  const socket = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  scope.postMessage({ port: socket.localAddr.port });
  const receiver = new MediaReceiver(job.lane, performance.now());
  let handled = 0;
  let frames = 0;
  let first = 0;
  let last = 0;
  let reuse: ArrayBuffer | undefined;
  const offsets = new Int32Array(64), lengths = new Int32Array(64), times = new Float64Array(64);
  while (Atomics.load(counters, 1) === 0) {
    const batch = await socket.receiveBatch(64, 20, { reuse });
    const now = performance.now();
    if (batch.count > 0 && first === 0) first = now;
    if (job.mode === "rift") {
      // As the client's media receive worker: the whole batch in one call.
      for (let i = 0; i < batch.count; i++) {
        offsets[i] = batch.offsetOf(i);
        lengths[i] = batch.storedLength(i);
        times[i] = now;
      }
      handled += receiver.handleBatch(
        new Uint8Array(batch.buffer),
        offsets,
        lengths,
        batch.count,
        times,
      );
      for (let e; (e = receiver.pollEvent()) !== undefined;) {
        if (e.type === "video-frame") frames++;
      }
    } else {
      handled += batch.count;
    }
    if (batch.count > 0) last = performance.now();
    Atomics.store(counters, 0, handled);
    reuse = batch.buffer;
  }
  await socket.close();
  scope.postMessage({
    pps: handled / Math.max(1e-9, (last - first) / 1000),
    datagrams: handled,
    frames,
  });
}

scope.onmessage = (event) => {
  const job = event.data;
  (job.role === "send" ? send(job) : receive(job)).finally(() => scope.close());
};
