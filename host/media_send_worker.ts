/**
 * The host's media send worker: the media lane of every client session
 * (fragment, FEC, seal, pace, send) on its own thread, writing to the same
 * UDP socket as the session lane (shared by file descriptor, see
 * edge/native_udp.ts). A keyframe being sealed and paced here never delays
 * the input worker, which reads that socket and injects input.
 *
 * Started by {@linkcode MediaSendWorker} (`host/media_send.ts`); importing
 * this module installs the worker's message handler. Errors are posted as
 * values, never thrown across the worker boundary.
 *
 * @module
 */
import { type MediaLaneState, MediaSender, type SentPacket } from "../core/media_lane.ts";
import { writeVideoTiming } from "../core/stream.ts";
import type { VideoFecConfig } from "../core/fec/video.ts";
import { NativeUdpSocket } from "../edge/native_udp.ts";
import type { PeerAddress } from "../edge/udp_socket.ts";
import { monotonicMicros } from "../media/clock.ts";
import { clearImmediate, setImmediate } from "node:timers";

/** Pacing of one session's media: a token bucket. */
export interface MediaPacing {
  /** Sustained rate, Mbit/s. */
  rateMbps: number;
  /** Datagrams that may leave back to back. */
  burstDatagrams: number;
}

/** Messages the parent sends. */
export type MediaSendCommand =
  | { type: "start"; fd: number; pacing: MediaPacing }
  | { type: "add"; id: number; lane: MediaLaneState; to: PeerAddress; recordSent: boolean }
  | { type: "remove"; id: number }
  | {
    type: "frame";
    frameId: number;
    captureTimeUs: number;
    keyframe: boolean;
    encodeStartUs: number;
    encodeEndUs: number;
    /** Timing header + access unit (docs/STREAM.md), transferred. */
    payload: Uint8Array;
  }
  | { type: "audio"; sequence: number; captureTimeUs: number; data: Uint8Array }
  | { type: "pacing"; id: number; pacing: Partial<MediaPacing> }
  | { type: "fec"; id: number; fec: VideoFecConfig }
  | { type: "stop" };

/** Per-session counters the worker reports. */
export interface MediaSendSessionStats {
  /** Media datagrams written to the socket. */
  datagramsSent: number;
  /** Their bytes. */
  bytesSent: number;
  /** Sends the kernel refused. */
  sendErrors: number;
  /** Times the pacer held datagrams back. */
  pacingWaits: number;
  /** Datagrams waiting for the pacer right now. */
  queuedDatagrams: number;
}

/** Messages the worker sends. */
export type MediaSendEvent =
  | { type: "started" }
  | {
    type: "frame-sent";
    frameId: number;
    /** When the worker took the frame (host CLOCK_MONOTONIC µs). */
    handedUs: number;
  }
  | { type: "sent"; id: number; packets: SentPacket[] }
  | { type: "stats"; sessions: Record<number, MediaSendSessionStats> }
  | { type: "error"; message: string }
  | { type: "stopped" };

interface Lane {
  readonly sender: MediaSender;
  readonly to: PeerAddress;
  readonly recordSent: boolean;
  pacing: MediaPacing;
  tokens: number;
  tokensAt: number;
  waiting: boolean;
  readonly stats: MediaSendSessionStats;
}

const MAX_DATAGRAM = 1200;
/** Deno timers tick in 1–2 ms steps; shorter pacing waits yield with setImmediate instead. */
const TIMER_GRANULARITY_MS = 2;

interface WorkerScope {
  onmessage: ((event: MessageEvent<MediaSendCommand>) => void) | null;
  postMessage(message: MediaSendEvent, transfer?: Transferable[]): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;

let socket: NativeUdpSocket | undefined;
let defaultPacing: MediaPacing = { rateMbps: 100, burstDatagrams: 32 };
const lanes = new Map<number, Lane>();
let statsTimer: ReturnType<typeof setInterval> | undefined;

function post(event: MediaSendEvent, transfer: Transferable[] = []): void {
  scope.postMessage(event, transfer);
}

function burstBytes(lane: Lane): number {
  return lane.pacing.burstDatagrams * MAX_DATAGRAM;
}

/** Sends what the lane has, as the pacer permits; schedules itself for the rest. */
function flush(id: number, lane: Lane): void {
  if (socket === undefined || lanes.get(id) !== lane) return;
  const now = performance.now();
  const rate = lane.pacing.rateMbps * 125; // bytes per ms
  const elapsed = Math.max(0, now - lane.tokensAt);
  lane.tokens = Math.min(burstBytes(lane), lane.tokens + elapsed * rate);
  lane.tokensAt = now;
  lane.waiting = false;
  while (lane.tokens > 0) {
    const datagram = lane.sender.pollTransmit(now);
    if (datagram === undefined) break;
    lane.tokens -= datagram.length;
    if (socket.send(datagram, lane.to)) {
      lane.stats.datagramsSent++;
      lane.stats.bytesSent += datagram.length;
    } else {
      lane.stats.sendErrors++;
    }
  }
  if (lane.recordSent) {
    const packets = lane.sender.takeSent();
    if (packets.length > 0) post({ type: "sent", id, packets });
  }
  if (lane.sender.pending) {
    lane.waiting = true;
    lane.stats.pacingWaits++;
    const waitMs = (MAX_DATAGRAM - lane.tokens) / rate;
    if (waitMs < TIMER_GRANULARITY_MS) {
      const immediate = setImmediate(() => {
        clearImmediate(immediate);
        flush(id, lane);
      });
    } else {
      setTimeout(() => flush(id, lane), waitMs);
    }
  }
}

function onFrame(command: Extract<MediaSendCommand, { type: "frame" }>): void {
  const handedUs = monotonicMicros();
  writeVideoTiming(command.payload, {
    encodeStartUs: command.encodeStartUs,
    encodeEndUs: command.encodeEndUs,
    handedToSessionUs: handedUs,
  });
  const frame = {
    frameId: command.frameId,
    captureTimeUs: command.captureTimeUs,
    keyframe: command.keyframe,
    data: command.payload,
  };
  for (const [id, lane] of lanes) {
    lane.sender.sendVideoFrame(frame);
    if (!lane.waiting) flush(id, lane);
  }
  post({ type: "frame-sent", frameId: command.frameId, handedUs });
}

function reportStats(): void {
  const sessions: Record<number, MediaSendSessionStats> = {};
  for (const [id, lane] of lanes) {
    sessions[id] = { ...lane.stats, queuedDatagrams: lane.sender.pending ? 1 : 0 };
  }
  post({ type: "stats", sessions });
}

async function stop(): Promise<void> {
  clearInterval(statsTimer);
  for (const lane of lanes.values()) lane.sender.close();
  lanes.clear();
  // The input worker's socket object owns the descriptor; this one only lets go of it.
  await socket?.detach();
  socket = undefined;
  post({ type: "stopped" });
  scope.close();
}

function handle(command: MediaSendCommand): void {
  switch (command.type) {
    case "start":
      socket = NativeUdpSocket.attach(command.fd);
      defaultPacing = command.pacing;
      statsTimer = setInterval(reportStats, 1000);
      post({ type: "started" });
      break;
    case "add": {
      const now = performance.now();
      const lane: Lane = {
        sender: new MediaSender(command.lane, now),
        to: command.to,
        recordSent: command.recordSent,
        pacing: { ...defaultPacing },
        tokens: defaultPacing.burstDatagrams * MAX_DATAGRAM,
        tokensAt: now,
        waiting: false,
        stats: {
          datagramsSent: 0,
          bytesSent: 0,
          sendErrors: 0,
          pacingWaits: 0,
          queuedDatagrams: 0,
        },
      };
      if (command.recordSent) lane.sender.recordSentPackets();
      lanes.set(command.id, lane);
      break;
    }
    case "remove":
      lanes.get(command.id)?.sender.close();
      lanes.delete(command.id);
      break;
    case "frame":
      onFrame(command);
      break;
    case "audio":
      for (const [id, lane] of lanes) {
        lane.sender.sendAudio(command.sequence, command.captureTimeUs, command.data);
        if (!lane.waiting) flush(id, lane);
      }
      break;
    case "pacing": {
      const lane = lanes.get(command.id);
      if (lane !== undefined) lane.pacing = { ...lane.pacing, ...command.pacing };
      break;
    }
    case "fec":
      lanes.get(command.id)?.sender.setFec(command.fec);
      break;
    case "stop":
      stop();
      break;
  }
}

scope.onmessage = (event: MessageEvent<MediaSendCommand>) => {
  try {
    handle(event.data);
  } catch (error) {
    post({ type: "error", message: (error as Error).message });
  }
};
