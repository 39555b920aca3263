/**
 * The client's media receive worker: opens media-lane datagrams, rebuilds
 * lost fragments from FEC and reassembles frames, on its own thread. The
 * session worker hands it datagrams through a MessagePort (batched,
 * transferred); it returns receive times for congestion feedback and keyframe
 * requests the same way, and gives whole frames and audio packets to the
 * main thread (transferred), which forwards them to the player.
 *
 * Its clock is CLOCK_MONOTONIC (ms), the one clock every thread shares, so
 * the arrival times the session worker stamped stay exact.
 *
 * @module
 */
import { MediaReceiver } from "../core/media_lane.ts";
import type { EncodedFrame } from "../core/fragment.ts";
import { monotonicMicros } from "../media/clock.ts";
import { useNativeAead } from "../edge/native_aead.ts";

// Lanes opened with transport.backend "native" need it registered in this thread.
useNativeAead();
import type { MediaPortMessage, SessionPortMessage } from "./net_worker.ts";

/** Parent → worker. */
export type MediaReceiveCommand = { type: "start"; port: MessagePort } | { type: "stop" };

/** Counters reported every 250 ms. */
export interface MediaReceiveStats {
  packetsReceived: number;
  packetsLost: number;
  framesCompleted: number;
  framesLost: number;
  fecRecoveries: number;
  datagramsDropped: number;
  /** Frames NACKed, and how many of those then completed in time. */
  nacksSent: number;
  retransmitRecoveries: number;
}

/** Worker → parent. */
export type MediaReceiveEvent =
  | { type: "video-frame"; frame: EncodedFrame; arrivedMonoMs: number }
  | { type: "video-frame-lost"; frameId: number }
  | { type: "audio"; sequence: number; captureTimeUs: number; data: Uint8Array }
  | { type: "stats"; stats: MediaReceiveStats }
  | { type: "ended" };

interface WorkerScope {
  onmessage: ((event: MessageEvent<MediaReceiveCommand>) => void) | null;
  postMessage(message: MediaReceiveEvent, transfer?: Transferable[]): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;
const nowMs = () => monotonicMicros() / 1000;

let receiver: MediaReceiver | undefined;
let port: MessagePort | undefined;
let deadlineTimer: ReturnType<typeof setTimeout> | undefined;
let statsTimer: ReturnType<typeof setInterval> | undefined;
/** Start of each datagram in a "datagrams" message (reused). */
let offsets = new Int32Array(256);

function drain(arrivedMonoMs: number): void {
  const r = receiver!;
  for (let event; (event = r.pollEvent()) !== undefined;) {
    switch (event.type) {
      case "video-frame": {
        // Reassembly copies into one buffer per frame: transferring it costs nothing.
        const data = event.frame.data;
        scope.postMessage({ type: "video-frame", frame: event.frame, arrivedMonoMs }, [
          data.buffer as ArrayBuffer,
        ]);
        break;
      }
      case "nack":
        port?.postMessage(
          {
            type: "nack",
            frameId: event.frameId,
            indexes: event.indexes,
          } satisfies SessionPortMessage,
        );
        break;
      case "video-frame-lost":
        scope.postMessage(event);
        // Ask at once: waiting for the next loss signal would freeze the picture longer.
        port?.postMessage(
          {
            type: "keyframe",
            lastCompleteFrameId: r.stats.lastCompleteFrameId,
          } satisfies SessionPortMessage,
        );
        break;
      case "audio":
        scope.postMessage(event);
        break;
    }
  }
  const arrivals = r.takeArrivals();
  if (arrivals.length > 0) {
    port?.postMessage(
      { type: "arrivals", arrivals, lostTotal: r.lostTotal } satisfies SessionPortMessage,
    );
  }
  armDeadline();
}

function armDeadline(): void {
  clearTimeout(deadlineTimer);
  const at = receiver?.pollTimeout();
  if (at === undefined) return;
  deadlineTimer = setTimeout(() => {
    const now = nowMs();
    receiver?.handleTimeout(now);
    drain(now);
  }, Math.max(0, at - nowMs()));
}

function onPort(event: MessageEvent<MediaPortMessage>): void {
  const m = event.data;
  switch (m.type) {
    case "lane":
      receiver = new MediaReceiver(m.lane, nowMs());
      statsTimer = setInterval(() => {
        const s = receiver!.stats;
        let dropped = 0;
        for (const n of Object.values(s.dropped)) dropped += n ?? 0;
        scope.postMessage({
          type: "stats",
          stats: {
            packetsReceived: s.packetsReceived,
            packetsLost: s.packetsLost,
            framesCompleted: s.framesCompleted,
            framesLost: s.framesLost,
            fecRecoveries: s.fecRecoveries,
            datagramsDropped: dropped,
            nacksSent: s.nacksSent,
            retransmitRecoveries: s.retransmitRecoveries,
          },
        });
      }, 250);
      break;
    case "datagrams": {
      if (receiver === undefined) return;
      const count = m.lengths.length;
      if (offsets.length < count) offsets = new Int32Array(count * 2);
      let at = 0;
      for (let i = 0; i < count; i++) {
        offsets[i] = at;
        at += m.lengths[i];
      }
      // One call for the whole batch: runs under one key are opened with one AEAD call.
      receiver.handleBatch(new Uint8Array(m.bytes), offsets, m.lengths, count, m.arrivedMonoMs);
      drain(count > 0 ? m.arrivedMonoMs[count - 1] : 0);
      break;
    }
    case "rtt":
      receiver?.setRetransmission(m.rttMs);
      break;
    case "closed":
      stop();
      break;
  }
}

function stop(): void {
  clearTimeout(deadlineTimer);
  clearInterval(statsTimer);
  port?.close();
  scope.postMessage({ type: "ended" });
  scope.close();
}

scope.onmessage = (event: MessageEvent<MediaReceiveCommand>) => {
  const command = event.data;
  if (command.type === "start") {
    port = command.port;
    port.onmessage = onPort;
  } else {
    stop();
  }
};
