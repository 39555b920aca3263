/**
 * The client's session worker: owns the UDP socket (native, so the kernel's
 * receive path is batched), runs the session lane (handshake, input, control,
 * acks, pings, feedback) and sends input the moment the main thread hands it
 * over. Media-lane datagrams are not opened here: they go, batched and
 * transferred, to the media receive worker through a MessagePort, so a
 * keyframe being reassembled never delays a key press.
 *
 * Started by {@linkcode ClientConnection} (`client/connection.ts`); importing
 * this module installs the worker's message handler. Errors are posted as
 * values, never thrown across the worker boundary.
 *
 * @module
 */
import type { IdentityKeyPair } from "../crypto/identity.ts";
import type { MediaArrival, MediaLaneState } from "../core/media_lane.ts";
import type { SessionConfig, SessionStats } from "../core/session.ts";
import type { RttSnapshot } from "../core/rtt.ts";
import { isMediaLaneDatagram } from "../core/wire.ts";
import { NativeUdpSocket } from "../edge/native_udp.ts";
import { SessionDriver } from "../edge/udp_session.ts";
import { type PeerAddress, UdpSocket } from "../edge/udp_socket.ts";
import { monotonicMicros } from "../media/clock.ts";
import { withNativeAead } from "../edge/native_aead.ts";
import { setThreadRealtime } from "../edge/thread_priority.ts";

/** How to connect. */
export interface NetWorkerOptions {
  /** The host's address. */
  remote: PeerAddress;
  /** This client's identity. */
  identity: IdentityKeyPair;
  /** Accept only this host identity (undefined: any). */
  expectHost?: Uint8Array;
  /** Session timers. */
  config?: Partial<SessionConfig>;
}

/** Parent → worker. */
export type NetWorkerCommand =
  | { type: "connect"; options: NetWorkerOptions; media: MessagePort }
  | { type: "input"; data: Uint8Array }
  | { type: "keyframe" }
  | { type: "close"; code: number; reason: string };

/** What the session lane looks like, every 250 ms (and on connect). */
export interface SessionSnapshot {
  rtt: RttSnapshot;
  /** Host perf − local (this worker's) perf, µs, once measured. */
  clockOffsetUs: number | undefined;
  /** CLOCK_MONOTONIC − performance.now() of this worker, µs (to map the offset across threads). */
  monoMinusPerfUs: number;
  stats: SessionStats;
}

/** Worker → parent. */
export type NetWorkerEvent =
  | {
    type: "connected";
    peerIdentity: Uint8Array;
    peerExtension: Uint8Array;
    local: PeerAddress;
    snapshot: SessionSnapshot;
  }
  | { type: "connect-failed"; message: string }
  | { type: "control"; data: Uint8Array }
  | { type: "snapshot"; snapshot: SessionSnapshot }
  | { type: "closed"; code: number; reason: string; byPeer: boolean };

/** Net worker → media receive worker (over the MessagePort). */
export type MediaPortMessage =
  | { type: "lane"; lane: MediaLaneState }
  /** The session's smoothed RTT for selective retransmission (undefined: off or unmeasured). */
  | { type: "rtt"; rttMs: number | undefined }
  /** Media-lane datagrams, concatenated in `bytes`, with their lengths and arrival times (CLOCK_MONOTONIC ms). */
  | { type: "datagrams"; bytes: ArrayBuffer; lengths: number[]; arrivedMonoMs: number[] }
  | { type: "closed" };

/** Media receive worker → net worker (over the MessagePort). */
export type SessionPortMessage =
  | { type: "arrivals"; arrivals: MediaArrival[]; lostTotal: number }
  | { type: "keyframe"; lastCompleteFrameId: number }
  | { type: "nack"; frameId: number; indexes: number[] };

interface WorkerScope {
  onmessage: ((event: MessageEvent<NetWorkerCommand>) => void) | null;
  postMessage(message: NetWorkerEvent, transfer?: Transferable[]): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;

let driver: SessionDriver | undefined;
let port: MessagePort | undefined;
let snapshotTimer: ReturnType<typeof setInterval> | undefined;
// Media datagrams gathered during one receive batch, posted together.
let pending: Uint8Array[] = [];
let pendingTimes: number[] = [];
let flushQueued = false;
let laneSent = false;

function monoMinusPerfUs(): number {
  return monotonicMicros() - performance.now() * 1000;
}

function snapshot(d: SessionDriver): SessionSnapshot {
  return {
    rtt: d.session.rtt,
    clockOffsetUs: d.session.clockOffsetUs,
    monoMinusPerfUs: monoMinusPerfUs(),
    stats: d.session.stats,
  };
}

function flushMedia(): void {
  flushQueued = false;
  if (pending.length === 0 || port === undefined) return;
  let total = 0;
  for (const d of pending) total += d.length;
  const bytes = new Uint8Array(total);
  const lengths: number[] = [];
  let at = 0;
  for (const d of pending) {
    bytes.set(d, at);
    at += d.length;
    lengths.push(d.length);
  }
  const message: MediaPortMessage = {
    type: "datagrams",
    bytes: bytes.buffer,
    lengths,
    arrivedMonoMs: pendingTimes,
  };
  port.postMessage(message, [bytes.buffer]);
  pending = [];
  pendingTimes = [];
}

/** Takes media-lane datagrams away from the session once its lane is detached. */
function divert(datagram: Uint8Array, at: number): boolean {
  if (!laneSent || !isMediaLaneDatagram(datagram)) return false;
  pending.push(datagram);
  pendingTimes.push(at + monoMinusPerfUs() / 1000);
  if (!flushQueued) {
    flushQueued = true;
    // Everything one receive batch delivered goes out in one message.
    queueMicrotask(flushMedia);
  }
  return true;
}

/** SCHED_FIFO priority of the session (input) thread, as on the host (host/input_worker.ts). */
const SESSION_THREAD_PRIORITY = 40;

async function connect(options: NetWorkerOptions, mediaPort: MessagePort): Promise<void> {
  port = mediaPort;
  // Input leaves from this thread: it must not wait for the decoder's or the player's time slice.
  setThreadRealtime(SESSION_THREAD_PRIORITY);
  const expect = options.expectHost;
  let connected: SessionDriver;
  try {
    const native = NativeUdpSocket.open({
      hostname: options.remote.hostname.includes(":") ? "::" : "0.0.0.0",
      port: 0,
    });
    connected = await SessionDriver.connect({
      remote: options.remote,
      identity: options.identity,
      acceptPeer: expect === undefined
        ? undefined
        : (peer) => peer.length === expect.length && peer.every((b, i) => b === expect[i]),
      config: withNativeAead(options.config),
      socket: UdpSocket.native(native),
      divert,
    });
  } catch (error) {
    scope.postMessage({ type: "connect-failed", message: (error as Error).message });
    return;
  }
  driver = connected;
  const lane = connected.detachMedia();
  mediaPort.postMessage({ type: "lane", lane } satisfies MediaPortMessage);
  laneSent = true;
  mediaPort.onmessage = (event: MessageEvent<SessionPortMessage>) => {
    const m = event.data;
    if (m.type === "arrivals") connected.reportMediaArrivals(m.arrivals, m.lostTotal);
    else if (m.type === "keyframe") connected.requestKeyframe(m.lastCompleteFrameId);
    else if (m.type === "nack") connected.sendNack(m.frameId, m.indexes);
  };
  scope.postMessage({
    type: "connected",
    peerIdentity: connected.peerIdentity.slice(),
    peerExtension: connected.peerExtension.slice(),
    local: { ...connected.local },
    snapshot: snapshot(connected),
  });
  snapshotTimer = setInterval(() => {
    scope.postMessage({ type: "snapshot", snapshot: snapshot(connected) });
    mediaPort.postMessage(
      { type: "rtt", rttMs: connected.session.retransmitRttMs } satisfies MediaPortMessage,
    );
  }, 250);
  for await (const event of connected.events()) {
    if (event.type === "control") scope.postMessage({ type: "control", data: event.data });
    else if (event.type === "closed") {
      clearInterval(snapshotTimer);
      flushMedia();
      mediaPort.postMessage({ type: "closed" } satisfies MediaPortMessage);
      scope.postMessage({
        type: "closed",
        code: event.code,
        reason: event.reason,
        byPeer: event.byPeer,
      });
    }
  }
}

scope.onmessage = (event: MessageEvent<NetWorkerCommand>) => {
  const command = event.data;
  switch (command.type) {
    case "connect":
      connect(command.options, command.media);
      break;
    case "input":
      try {
        driver?.sendInput(command.data);
      } catch {
        // A message too large for one datagram: dropped (the encoder never makes one).
      }
      break;
    case "keyframe":
      driver?.requestKeyframe();
      break;
    case "close":
      clearInterval(snapshotTimer);
      (driver?.close(command.code, command.reason) ?? Promise.resolve()).finally(() =>
        scope.close()
      );
      break;
  }
};
