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
import { type MediaLaneState, MediaSender } from "../core/media_lane.ts";
import { VIDEO_TIMING_LENGTH, writeVideoTiming } from "../core/stream.ts";
import type { VideoFecConfig } from "../core/fec/video.ts";
import { DeltaController, type DeltaReportedState } from "../core/delta/controller.ts";
import { EncoderBudget } from "../core/delta/budget.ts";
import type { FeedbackReport } from "../core/session.ts";
import { NativeUdpSocket } from "../edge/native_udp.ts";
import { sendMediaBatch } from "./media_send_path.ts";
import type { PeerAddress } from "../edge/udp_socket.ts";
import { monotonicMicros } from "../media/clock.ts";
import { useNativeAead } from "../edge/native_aead.ts";
import { useNativeFec } from "../edge/native_fec.ts";

// Lanes sealed with transport.backend "native" need it registered in this thread; the C parity
// loop makes FEC about five times cheaper than the TypeScript one.
useNativeAead();
useNativeFec();
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
  | {
    type: "add";
    id: number;
    lane: MediaLaneState;
    to: PeerAddress;
    /** Run DELTA congestion control for this client (else: fixed pacing and FEC). */
    congestion?: CongestionSettings;
  }
  | { type: "feedback"; id: number; report: FeedbackReport; rttMs: number }
  | { type: "retransmit"; id: number; frameId: number; indexes: number[] }
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

/** How DELTA starts for one client. */
export interface CongestionSettings {
  /** Bitrate before any feedback. */
  initialBitrateBps: number;
  /** Most the encoder may be asked for. */
  maxBitrateBps: number;
  /** Picture size and source rate (for the frame-rate policy). */
  width: number;
  height: number;
  maxFps: number;
}

/** What DELTA decided for one client. */
export interface CongestionDecision {
  /**
   * What the encoder should produce, bit/s: the target over the measured wire bytes per encoded
   * byte (FEC parity, headers, retransmissions; core/delta/budget.ts), so the wire carries the target.
   */
  mediaBitrateBps: number;
  /** DELTA's send budget (everything on the wire), bit/s. */
  targetBitrateBps: number;
  /** Pacing rate, bit/s. */
  pacingRateBps: number;
  /** FEC parity per data packet. */
  fecRatio: number;
  /** Frame rate the link can carry. */
  fps: number;
  /** Controller state as users see it ("competing" beside a loss-based flow). */
  state: DeltaReportedState;
  /** Current queuing-delay estimate, ms. */
  queuingDelayMs: number;
  /**
   * DELTA's window gate is closed: one more frame would put more in flight than the link carried
   * within an RTT (the link stalled, or reports stopped). The encoder should encode nothing until
   * it opens again; frames already encoded are still sent.
   */
  hold: boolean;
}

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
  | { type: "decision"; id: number; decision: CongestionDecision }
  | { type: "stats"; sessions: Record<number, MediaSendSessionStats> }
  | { type: "error"; message: string }
  | { type: "stopped" };

interface Lane {
  readonly sender: MediaSender;
  readonly to: PeerAddress;
  readonly delta: DeltaController | undefined;
  /** The encoder's share of DELTA's target (with DELTA only). */
  readonly budget: EncoderBudget | undefined;
  /** lane.stats.bytesSent when the previous frame was handed (for the budget). */
  bytesAtLastFrame: number;
  lastDecision: CongestionDecision | undefined;
  /** When the last feedback arrived (performance.now() ms). */
  lastFeedbackMs: number;
  pacing: MediaPacing;
  tokens: number;
  tokensAt: number;
  waiting: boolean;
  readonly stats: MediaSendSessionStats;
}

const MAX_DATAGRAM = 1200;
/** Datagrams per sendmmsg call. */
const SEND_BATCH = 64;
/** Feedback this late (two of DELTA's 20 ms report intervals) means the path may have stalled. */
const FEEDBACK_LATE_MS = 40;
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
let tickTimer: ReturnType<typeof setInterval> | undefined;

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
  // Everything the pacer allows now is sealed with one AEAD call and leaves in one sendmmsg.
  if (lane.tokens > 0) {
    const r = sendMediaBatch(lane.sender, socket, lane.to, now, SEND_BATCH, lane.tokens);
    lane.tokens -= r.bytes;
    lane.stats.bytesSent += r.sentBytes;
    lane.stats.datagramsSent += r.sent;
    lane.stats.sendErrors += r.datagrams - r.sent;
  }
  if (lane.delta !== undefined) {
    const sent = lane.sender.takeSent();
    for (const p of sent) lane.delta.onPacketSent(p.packetNumber, p.sizeBytes, p.sendTimeUs);
    // Feedback late (an outage brings none): the window gate is checked as packets leave too,
    // or the encoder would run on into a dead link until the feedback timeout (≥ 400 ms). While
    // reports flow it is checked when each arrives, as before: a keyframe larger than a LAN's
    // window is not held against for the few ms until its first report.
    if (
      sent.length > 0 && lane.lastDecision?.hold === false &&
      now - lane.lastFeedbackMs > FEEDBACK_LATE_MS && gateClosed(lane.delta)
    ) decide(id, lane);
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
    // What the lane sent since the previous frame: that frame's datagrams, parity, retransmissions.
    lane.budget?.onFrame(
      command.payload.length - VIDEO_TIMING_LENGTH,
      lane.stats.bytesSent - lane.bytesAtLastFrame,
    );
    lane.bytesAtLastFrame = lane.stats.bytesSent;
    lane.sender.sendVideoFrame(frame);
    if (!lane.waiting) flush(id, lane);
  }
  post({ type: "frame-sent", frameId: command.frameId, handedUs });
}

/** Whether DELTA's window has no room for one more frame's share of the target (controller.ts canSend). */
function gateClosed(delta: DeltaController): boolean {
  return !delta.canSend(delta.targetBitrateBps / delta.fps / 8);
}

/** Applies DELTA's current outputs to the lane and tells the parent when they changed. */
function decide(id: number, lane: Lane): void {
  const delta = lane.delta!;
  const decision: CongestionDecision = {
    mediaBitrateBps: Math.round(
      lane.budget!.encoderBitrateBps(delta.targetBitrateBps, delta.fecRatio),
    ),
    targetBitrateBps: Math.round(delta.targetBitrateBps),
    pacingRateBps: Math.round(delta.pacingRateBps),
    fecRatio: delta.fecRatio,
    fps: delta.fps,
    state: delta.reportedState,
    queuingDelayMs: delta.queuingDelayUs / 1000,
    hold: gateClosed(delta),
  };
  lane.pacing = { ...lane.pacing, rateMbps: decision.pacingRateBps / 1e6 };
  if (decision.fecRatio !== lane.sender.fec.parityRatio) {
    lane.sender.setFec({ ...lane.sender.fec, parityRatio: decision.fecRatio });
  }
  const last = lane.lastDecision;
  // The encoder follows the next frame; tell the parent about real changes only (≥ 3 % or a
  // different state, frame rate or FEC), not every 20 ms feedback.
  if (
    last === undefined || last.state !== decision.state || last.fps !== decision.fps ||
    last.fecRatio !== decision.fecRatio || last.hold !== decision.hold ||
    Math.abs(last.mediaBitrateBps - decision.mediaBitrateBps) > 0.03 * last.mediaBitrateBps
  ) {
    lane.lastDecision = decision;
    post({ type: "decision", id, decision });
  }
}

function onFeedback(command: Extract<MediaSendCommand, { type: "feedback" }>): void {
  const lane = lanes.get(command.id);
  if (lane?.delta === undefined) return;
  lane.lastFeedbackMs = performance.now();
  const nowUs = Math.round(lane.lastFeedbackMs * 1000);
  if (command.rttMs > 0) lane.delta.onRttSample(command.rttMs * 1000);
  lane.delta.onFeedback(command.report.arrivals, nowUs);
  decide(command.id, lane);
}

/** DELTA's own timers (feedback timeout) and the window gate: checked every 10 ms. */
function tick(): void {
  const nowUs = Math.round(performance.now() * 1000);
  for (const [id, lane] of lanes) {
    if (lane.delta === undefined) continue;
    const due = lane.delta.pollTimeout();
    if (due !== undefined && due <= nowUs) {
      lane.delta.onTick(nowUs);
      decide(id, lane);
    } else if (lane.lastDecision?.hold) {
      decide(id, lane); // sent packets may have left the window since (they count when sent)
    }
  }
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
  clearInterval(tickTimer);
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
      tickTimer = setInterval(tick, 10);
      post({ type: "started" });
      break;
    case "add": {
      const now = performance.now();
      const c = command.congestion;
      const delta = c === undefined ? undefined : new DeltaController({
        initialBitrateBps: c.initialBitrateBps,
        maxBitrateBps: c.maxBitrateBps,
        width: c.width,
        height: c.height,
        maxFps: c.maxFps,
      });
      const sender = new MediaSender(command.lane, now);
      const lane: Lane = {
        sender,
        to: command.to,
        delta,
        budget: delta === undefined ? undefined : new EncoderBudget({
          datagramBytes: command.lane.maxDatagram,
          payloadBytes: sender.maxVideoPayload,
        }),
        bytesAtLastFrame: 0,
        lastDecision: undefined,
        lastFeedbackMs: now,
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
      lanes.set(command.id, lane);
      if (delta !== undefined) {
        lane.sender.recordSentPackets();
        decide(command.id, lane);
      }
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
    case "feedback":
      onFeedback(command);
      break;
    case "retransmit": {
      const lane = lanes.get(command.id);
      if (lane === undefined) break;
      if (lane.sender.retransmit(command.frameId, command.indexes) > 0 && !lane.waiting) {
        flush(command.id, lane);
      }
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
