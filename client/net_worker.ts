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
import { IceConnection, type IceOffer } from "../edge/ice_connect.ts";
import type { IceTiming } from "../core/ice/mod.ts";
import { driveRelayBinding, type PathKind, pathOfPair } from "../edge/connect_signaling.ts";
import { PeerBinding } from "../relay/peer_binding.ts";

/** ICE on the session socket (connecting through the gateway, docs/CONNECT.md). */
export interface NetWorkerIce {
  /** STUN server (IP literal) for the server-reflexive candidate. */
  stunServer?: PeerAddress;
  /** Host candidate addresses (default: the IPv4 interfaces, loopback excluded). */
  hostAddresses?: string[];
  /** Include loopback in the default host candidates. */
  includeLoopback?: boolean;
  /** ICE timer overrides. */
  timing?: Partial<IceTiming>;
}

/** How to connect. */
export interface NetWorkerOptions {
  /**
   * The host's address. With `ice`, unused: the worker gathers, posts
   * `ice-offer`, and connects to where the checks (or the relay) lead.
   */
  remote: PeerAddress;
  /** Connect with ICE, the host's offer coming in as `ice-remote` (and a lease as `relay`). */
  ice?: NetWorkerIce;
  /** This client's identity. */
  identity: IdentityKeyPair;
  /** Accept only this host identity (undefined: any). */
  expectHost?: Uint8Array;
  /** Session timers. */
  config?: Partial<SessionConfig>;
  /** Post an `input-sent` event with stage times for every input sent (benchmarks). */
  traceInput?: boolean;
}

/** Client-side stage times of one input message, CLOCK_MONOTONIC µs. */
export interface ClientInputTrace {
  /** This worker took the message from its queue (the main thread's postMessage arrived). */
  handledUs: number;
  /** The datagram carrying it was handed to the kernel. */
  sentUs: number;
}

/** Parent → worker. */
export type NetWorkerCommand =
  | { type: "connect"; options: NetWorkerOptions; media: MessagePort }
  | { type: "input"; data: Uint8Array }
  | { type: "keyframe" }
  | { type: "ice-remote"; offer: IceOffer }
  | { type: "relay"; lease: string; relay: PeerAddress }
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
    remote: PeerAddress;
    /** Which path the session runs on (`direct-address` without ICE). */
    path: PathKind;
    snapshot: SessionSnapshot;
    /** Whether this thread (which sends input) got SCHED_FIFO. */
    inputRealtime: boolean;
  }
  | { type: "ice-offer"; offer: IceOffer }
  | {
    type: "ice-outcome";
    ok: boolean;
    path?: PathKind;
    remote?: PeerAddress;
    reason?: string;
    elapsedMs: number;
  }
  | { type: "relay-state"; state: string }
  | { type: "connect-failed"; message: string }
  | { type: "control"; data: Uint8Array }
  | { type: "snapshot"; snapshot: SessionSnapshot }
  | ({ type: "input-sent" } & ClientInputTrace)
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
let ice: IceConnection | undefined;
let closing = false;
let traceInput = false;
// The host's offer and the relay lease, from the parent (the gateway link on the main thread).
const remoteOffer = Promise.withResolvers<IceOffer>();
const relayLease = Promise.withResolvers<{ lease: string; relay: PeerAddress }>();

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

function acceptHost(options: NetWorkerOptions) {
  const expect = options.expectHost;
  return expect === undefined
    ? undefined
    : (peer: Uint8Array) => peer.length === expect.length && peer.every((b, i) => b === expect[i]);
}

/** Plain mode: a native socket straight to `options.remote`. */
async function connectDirect(options: NetWorkerOptions): Promise<SessionDriver> {
  const native = NativeUdpSocket.open({
    hostname: options.remote.hostname.includes(":") ? "::" : "0.0.0.0",
    port: 0,
  });
  return await SessionDriver.connect({
    remote: options.remote,
    identity: options.identity,
    acceptPeer: acceptHost(options),
    config: withNativeAead(options.config),
    socket: UdpSocket.native(native),
    divert,
  });
}

/**
 * Through the gateway: ICE on the session's native socket, the offers passed
 * through the parent; RIFT on the selected pair, or, when no direct pair works
 * within the bound, on a fresh socket bound to the relay with the lease.
 */
async function connectIce(
  options: NetWorkerOptions,
  ic: NetWorkerIce,
): Promise<{ driver: SessionDriver; path: PathKind }> {
  const native = NativeUdpSocket.open({ hostname: "0.0.0.0", port: 0 });
  ice = await IceConnection.gather({
    socket: UdpSocket.native(native),
    role: "controlling",
    stunServer: ic.stunServer,
    hostAddresses: ic.hostAddresses,
    includeLoopback: ic.includeLoopback,
    timing: ic.timing,
  });
  scope.postMessage({ type: "ice-offer", offer: ice.offer() });
  const set = ice.setRemote(await remoteOffer.promise);
  if (!set.ok) throw new Error(`the host's offer is bad: ${set.error.detail}`);
  const outcome = await ice.connected();
  if (outcome.ok) {
    const path = pathOfPair(outcome.pair);
    scope.postMessage({
      type: "ice-outcome",
      ok: true,
      path,
      remote: outcome.remote,
      elapsedMs: outcome.elapsedMs,
    });
    const driver = await SessionDriver.connect({
      remote: outcome.remote,
      identity: options.identity,
      acceptPeer: acceptHost(options),
      config: withNativeAead(options.config),
      attached: ice,
      divert,
    });
    return { driver, path };
  }
  scope.postMessage({
    type: "ice-outcome",
    ok: false,
    reason: outcome.reason,
    elapsedMs: outcome.elapsedMs,
  });
  await ice.close();
  ice = undefined;
  if (closing) throw new Error("closed");
  const { lease, relay } = await relayLease.promise;
  const binding = new PeerBinding({ lease, identity: options.identity, retryMs: 250 });
  const fromRelay = (from: PeerAddress) =>
    from.port === relay.port && from.hostname === relay.hostname;
  const driver = await SessionDriver.connect({
    remote: relay,
    identity: options.identity,
    acceptPeer: acceptHost(options),
    config: withNativeAead(options.config),
    socket: UdpSocket.native(NativeUdpSocket.open({ hostname: "0.0.0.0", port: 0 })),
    divert,
    onForeign: (datagram, from) => {
      if (fromRelay(from)) binding.handle(datagram);
    },
    prepare: async (link) => {
      const status = await driveRelayBinding(binding, (d) => link.sendRaw(d, relay));
      const text = status.state === "failed"
        ? `failed: ${(status as { kind: string }).kind}`
        : status.state;
      scope.postMessage({ type: "relay-state", state: text });
      if (status.state !== "ready") throw new Error(`relay binding ${text}`);
    },
  });
  return { driver, path: "relay" };
}

async function connect(options: NetWorkerOptions, mediaPort: MessagePort): Promise<void> {
  port = mediaPort;
  traceInput = options.traceInput === true;
  // Input leaves from this thread: it must not wait for the decoder's or the player's time slice.
  const inputRealtime = setThreadRealtime(SESSION_THREAD_PRIORITY);
  let connected: SessionDriver;
  let path: PathKind = "direct-address";
  try {
    if (options.ice === undefined) connected = await connectDirect(options);
    else ({ driver: connected, path } = await connectIce(options, options.ice));
  } catch (error) {
    await ice?.close();
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
    remote: { ...connected.remote },
    path,
    snapshot: snapshot(connected),
    inputRealtime,
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
      // ICE owns the socket a direct session ran on (consent checks ran beside RIFT).
      await ice?.close();
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
    case "input": {
      const handledUs = traceInput ? monotonicMicros() : 0;
      try {
        driver?.sendInput(command.data);
      } catch {
        // A message too large for one datagram: dropped (the encoder never makes one).
      }
      // The session flushes in a microtask queued by sendInput: this one runs after the send.
      if (traceInput) {
        queueMicrotask(() =>
          scope.postMessage({ type: "input-sent", handledUs, sentUs: monotonicMicros() })
        );
      }
      break;
    }
    case "keyframe":
      driver?.requestKeyframe();
      break;
    case "ice-remote":
      remoteOffer.resolve(command.offer);
      break;
    case "relay":
      relayLease.resolve({ lease: command.lease, relay: command.relay });
      break;
    case "close":
      closing = true;
      remoteOffer.reject(new Error("closed"));
      relayLease.reject(new Error("closed"));
      remoteOffer.promise.catch(() => {});
      relayLease.promise.catch(() => {});
      clearInterval(snapshotTimer);
      (driver?.close(command.code, command.reason) ?? Promise.resolve()).finally(() =>
        scope.close()
      );
      break;
  }
};
