/**
 * The I/O edge of RIFT: drives the sans-IO {@linkcode Session} of `core/`
 * over real UDP sockets, timers and a monotonic clock.
 *
 * - {@linkcode SessionDriver.connect}: the initiator, on its own ephemeral socket.
 * - {@linkcode SessionListener.listen}: the responder, one socket for many peers,
 *   demultiplexed by source address and connection id.
 *
 * The mapping is mechanical: every datagram read goes to `handleDatagram(bytes, now)`;
 * after every input (datagram, timer, API call) the driver drains `pollTransmit`
 * into the socket, hands `pollEvent` results to {@linkcode SessionDriver.events},
 * and re-arms one `setTimeout` to `pollTimeout()`. `now` is `performance.now()`.
 *
 * @module
 */

import type { IdentityKeyPair } from "../crypto/identity.ts";
import { CloseCode, KeyframeReason } from "../core/frames.ts";
import type { MediaArrival, MediaLaneState } from "../core/media_lane.ts";
import type { EncodedFrame } from "../core/fragment.ts";
import type { RttSnapshot } from "../core/rtt.ts";
import {
  DEFAULT_SESSION_CONFIG,
  type DropKind,
  Session,
  type SessionConfig,
  type SessionEvent,
  type SessionStats,
} from "../core/session.ts";
import {
  decodeHeader,
  DEFAULT_MAX_DATAGRAM,
  PacketType,
  SUPPORTED_VERSIONS,
  versionNegotiationResponse,
} from "../core/wire.ts";
import { clearImmediate, setImmediate } from "node:timers";
import { AsyncQueue } from "./queue.ts";
import {
  addressKey,
  assertUdpAvailable,
  type DatagramHandler,
  formatAddress,
  type PeerAddress,
  type SocketCounters,
  UdpSocket,
} from "./udp_socket.ts";

export type { PeerAddress, SocketCounters } from "./udp_socket.ts";

/** Below this wait the pacer yields with setImmediate rather than a (coarse) timer. */
const TIMER_GRANULARITY_MS = 2;

/**
 * Send pacing of one session. A burst of at most `burstDatagrams` full
 * datagrams goes out at once, then the driver refills at `rateMbps`: a 200 KB
 * keyframe written in one go would otherwise overflow the receiver's socket
 * buffer (about 90 datagrams by Linux default). Input, control, audio,
 * keyframe requests and CLOSE never wait for the pacer: each such call sends
 * at least one datagram at once (and input is packed first in it).
 */
export interface PacingOptions {
  /** Refill rate of the pacer, in megabits per second. */
  rateMbps: number;
  /** Bucket size, in datagrams of `maxDatagram` bytes. */
  burstDatagrams: number;
}

/**
 * Pacing defaults. A Deno receiver reads one datagram per `receive()` call, about
 * 30 µs each, so with the session's work it drains roughly 150-190 Mbit/s of
 * 1200-byte datagrams; past that the kernel's default receive buffer (~90
 * datagrams) overflows. 100 Mbit/s in bursts of 32 stays clear of both and
 * paces a 200 KB keyframe out in about 17 ms. Congestion control should set the
 * rate per path with {@linkcode SessionDriver.setPacing}.
 */
export const DEFAULT_PACING: PacingOptions = { rateMbps: 100, burstDatagrams: 32 };

/** Events buffered for {@linkcode SessionDriver.events} before the oldest are discarded. */
export const DEFAULT_MAX_QUEUED_EVENTS = 4096;

/** Peers a {@linkcode SessionListener} serves at once by default (handshaking ones included). */
export const DEFAULT_MAX_PEERS = 64;

/** How a session ended: the `closed` event's fields. */
export interface CloseInfo {
  /** CLOSE code (see `CloseCode`: 0 normal, 1 idle timeout, 3 peer not allowed, ...). */
  code: number;
  /** Human-readable reason. */
  reason: string;
  /** Whether the peer closed (it sent CLOSE) rather than this side. */
  byPeer: boolean;
}

/** I/O counters of one driven session. */
export interface DriverIoCounters {
  /** Datagrams routed to this session. */
  datagramsReceived: number;
  /** Bytes routed to this session. */
  bytesReceived: number;
  /** Datagrams this session wrote to the socket. */
  datagramsSent: number;
  /** Bytes this session wrote to the socket. */
  bytesSent: number;
  /** Sends the socket refused. */
  sendErrors: number;
  /** Exceptions thrown by the session while handling input (caught; the datagram counts as dropped). */
  exceptions: number;
  /** Times the pacer held datagrams back. */
  pacingWaits: number;
  /** Initiator: STUN / relay-control datagrams handed to `onForeign`. */
  foreignReceived: number;
  /** Datagrams sent with {@linkcode SessionDriver.sendRaw} (or a `prepare` link). */
  rawSent: number;
}

/** What {@linkcode SessionDriver.stats} returns: the session's own counters plus the edge's. */
export interface DriverStats extends SessionStats {
  /** Socket-side counters of this session. */
  io: DriverIoCounters;
  /** Events discarded because nobody consumed {@linkcode SessionDriver.events} in time. */
  eventsDiscarded: number;
  /** Round-trip estimate from PING/PONG. */
  rtt: RttSnapshot;
}

/**
 * Called with a datagram that is not RIFT but another protocol sharing the
 * port (see {@linkcode isForeignDatagram}); `at` is the arrival time
 * (`performance.now()`). An exception it throws is counted as the socket's
 * `handlerExceptions`.
 */
export type ForeignHandler = (datagram: Uint8Array, from: PeerAddress, at: number) => void;

/**
 * Whether a datagram belongs to a protocol that shares RIFT's socket, by its
 * first byte (RFC 7983's demultiplexing): 0–3 is STUN, 0x40–0x4F is relay
 * control (BIND_ACK / BIND_ERROR of relay/wire.ts). RIFT itself starts at 0xC0.
 */
export function isForeignDatagram(datagram: Uint8Array): boolean {
  if (datagram.length === 0) return false;
  const first = datagram[0];
  return first <= 3 || (first >= 0x40 && first <= 0x4f);
}

/** Sends raw datagrams on a session's socket, outside the session (relay binding, STUN). */
export interface RawDatagramLink {
  /** The socket's local address. */
  readonly local: PeerAddress;
  /**
   * Sends `datagram` to `to` as is (unpaced, unencrypted). Returns false,
   * sending nothing, when the socket is closed or the datagram is empty.
   */
  sendRaw(datagram: Uint8Array, to: PeerAddress): boolean;
}

/** Options shared by both sides. */
export interface DriverOptions {
  /** This side's long-term Ed25519 identity. */
  identity: IdentityKeyPair;
  /** Whether the peer's Ed25519 identity is acceptable (default: any). */
  acceptPeer?: (peerIdentity: Uint8Array) => boolean;
  /** Overrides of the session defaults (timers, datagram size). */
  config?: Partial<SessionConfig>;
  /** Opaque bytes for the peer, carried encrypted in the handshake. */
  extension?: Uint8Array;
  /** Send pacing (see {@linkcode PacingOptions}). */
  pacing?: Partial<PacingOptions>;
  /** Events buffered per session while nobody reads them (default {@linkcode DEFAULT_MAX_QUEUED_EVENTS}). */
  maxQueuedEvents?: number;
}

/**
 * A socket another component owns and reads, shared with a session: ICE
 * (`edge/ice_connect.ts`) keeps answering STUN on it and routes every other
 * datagram from the session's peer to the handler given to `attach`.
 */
export interface AttachedSocket {
  /** The shared socket (the session sends on it). */
  readonly socket: UdpSocket;
  /** Routes the peer's non-STUN datagrams to `handler`; returns the function that stops it. */
  attach(handler: DatagramHandler): () => void;
}

/** Options of {@linkcode SessionDriver.connect}. */
export interface ConnectOptions extends DriverOptions {
  /** The host to connect to. */
  remote: PeerAddress;
  /** Local address to bind (default: the wildcard of the remote's address family). */
  localHostname?: string;
  /** Local port to bind (default 0: ephemeral). */
  localPort?: number;
  /** Aborts the handshake (connect then rejects and releases the socket). */
  signal?: AbortSignal;
  /**
   * Use this (unstarted) socket instead of binding one (e.g. a native socket,
   * or the one ICE checks ran on); the driver owns and closes it.
   */
  socket?: UdpSocket;
  /**
   * Sees every datagram before the session; returning true takes it away
   * (e.g. media-lane datagrams handed to a media receive worker once the lane
   * is detached). `at` is the arrival time (`performance.now()`).
   */
  divert?: (datagram: Uint8Array, at: number) => boolean;
  /**
   * Run on this shared socket (the one ICE selected a pair on) instead of
   * binding one; `localHostname`/`localPort` are then ignored, and releasing
   * the session detaches from the socket without closing it.
   */
  attached?: AttachedSocket;
  /**
   * Receives the socket's STUN and relay-control datagrams
   * ({@linkcode isForeignDatagram}) instead of the session, which would drop
   * them as not RIFT. They are counted in `stats.io.foreignReceived`.
   */
  onForeign?: ForeignHandler;
  /**
   * Runs on the bound, receiving socket BEFORE the handshake starts, e.g. to
   * open a relay binding from the very port RIFT will use (answers come to
   * `onForeign`). The handshake (and its timeout) starts when the promise
   * resolves; if it rejects, or `signal` aborts meanwhile, connect rejects
   * with that reason and releases the socket. Datagrams other than foreign
   * ones that arrive meanwhile are dropped.
   */
  prepare?: (link: RawDatagramLink) => Promise<void>;
}

/** Options of {@linkcode SessionListener.listen}. */
export interface ListenOptions extends DriverOptions {
  /** Address to bind (default "0.0.0.0"). */
  hostname?: string;
  /** Port to bind; 0 picks an ephemeral one (see {@linkcode SessionListener.addr}). */
  port: number;
  /** Sessions served at once, handshaking ones included (default {@linkcode DEFAULT_MAX_PEERS}). */
  maxPeers?: number;
  /** Serve on this (unstarted) socket instead of binding one; `hostname`/`port` are then ignored. */
  socket?: UdpSocket;
  /**
   * Serve on this shared socket (ICE's) instead of binding one; closing the
   * listener then detaches without closing the socket.
   */
  attached?: AttachedSocket;
  /**
   * Receives the socket's STUN and relay-control datagrams
   * ({@linkcode isForeignDatagram}) instead of counting them as dropped
   * `NotRift`; they are counted in `stats.foreignReceived`.
   */
  onForeign?: ForeignHandler;
}

/** How a driver reaches its socket. */
interface DriverTransport {
  send(datagram: Uint8Array, onError: () => void): void;
  sendRaw(datagram: Uint8Array, to: PeerAddress): boolean;
  release(): Promise<void>;
}

type ReadyCallback = (failure?: { error: Error; info: CloseInfo }) => void;

interface DriverSettings {
  pacing: PacingOptions;
  maxDatagram: number;
  maxQueuedEvents: number;
  handshakeTimeoutMs: number;
  /** Initiator only: give up when no SEALED packet confirmed the handshake by then. */
  confirmDeadline?: number;
}

function driverSettings(options: DriverOptions): DriverSettings {
  const config = { ...DEFAULT_SESSION_CONFIG, ...options.config };
  return {
    pacing: { ...DEFAULT_PACING, ...options.pacing },
    maxDatagram: config.maxDatagram,
    maxQueuedEvents: options.maxQueuedEvents ?? DEFAULT_MAX_QUEUED_EVENTS,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
  };
}

// Module-private access to SessionDriver internals, for SessionListener and connect.
let createDriver: (
  session: Session,
  remote: PeerAddress,
  local: PeerAddress,
  transport: DriverTransport,
  settings: DriverSettings,
  onReady: ReadyCallback,
) => SessionDriver;
let deliverTo: (driver: SessionDriver, datagram: Uint8Array, now: number) => void;
let countFirstDatagram: (driver: SessionDriver, datagram: Uint8Array) => void;
let flushNow: (driver: SessionDriver, now: number) => void;
let releasedOf: (driver: SessionDriver) => Promise<void>;

/**
 * One RIFT session over UDP: the sans-IO {@linkcode Session} plus its socket,
 * timer, pacer and event queue. Obtain one from {@linkcode SessionDriver.connect}
 * (initiator) or {@linkcode SessionListener.accept} (responder); both sides have
 * the same API.
 */
export class SessionDriver {
  /** The state machine being driven (read its `state`, `rtt`, `clockOffsetUs`). */
  readonly session: Session;
  /** The peer's UDP address. */
  readonly remote: PeerAddress;
  /** The local UDP address this session sends from (the listener's, on the responder side). */
  readonly local: PeerAddress;
  /** Resolves once, when the session has closed (by either side, or by a timeout). */
  readonly closed: Promise<CloseInfo>;

  readonly #transport: DriverTransport;
  readonly #settings: DriverSettings;
  readonly #events: AsyncQueue<SessionEvent>;
  readonly #onReady: ReadyCallback;
  readonly #io: DriverIoCounters = {
    datagramsReceived: 0,
    bytesReceived: 0,
    datagramsSent: 0,
    bytesSent: 0,
    sendErrors: 0,
    exceptions: 0,
    pacingWaits: 0,
    foreignReceived: 0,
    rawSent: 0,
  };
  #resolveClosed!: (info: CloseInfo) => void;
  #peerIdentity: Uint8Array | undefined;
  #peerExtension: Uint8Array = new Uint8Array(0);
  #confirmed = false;
  #settled = false;
  #failure: Error | undefined;
  #finished = false;
  #released: Promise<void> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = 0;
  #flushQueued = false;
  #flushForced = false;
  // Pacer: a token bucket in bytes.
  #tokens: number;
  #tokensAt: number;
  #pacedUntil: number | undefined;
  #immediate: ReturnType<typeof setImmediate> | undefined;

  static {
    createDriver = (session, remote, local, transport, settings, onReady) =>
      new SessionDriver(session, remote, local, transport, settings, onReady);
    deliverTo = (driver, datagram, now) => driver.#deliver(datagram, now);
    countFirstDatagram = (driver, datagram) => {
      driver.#io.datagramsReceived++;
      driver.#io.bytesReceived += datagram.length;
    };
    flushNow = (driver, now) => driver.#flush(now, true);
    releasedOf = (driver) => driver.#released ?? Promise.resolve();
  }

  private constructor(
    session: Session,
    remote: PeerAddress,
    local: PeerAddress,
    transport: DriverTransport,
    settings: DriverSettings,
    onReady: ReadyCallback,
  ) {
    this.session = session;
    this.remote = { hostname: remote.hostname, port: remote.port };
    this.local = { hostname: local.hostname, port: local.port };
    this.#transport = transport;
    this.#settings = settings;
    this.#onReady = onReady;
    this.#events = new AsyncQueue(settings.maxQueuedEvents);
    this.#tokens = this.#burstBytes;
    this.#tokensAt = performance.now();
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
  }

  /**
   * Initiator: binds a UDP socket (an ephemeral port unless `localPort`), runs
   * the handshake with `remote`, and resolves once the session is established
   * and the host has confirmed it (its first authenticated packet arrived).
   *
   * Rejects, after releasing the socket, with an Error whose message names the
   * reason: `handshake timed out after N ms — is the host running at HOST:PORT?`,
   * `peer identity not allowed: ...` (this side refused the host's identity, or
   * the host never confirmed, which is how a host refusing ours looks),
   * `version mismatch ...`, or the abort reason of `signal`.
   */
  static connect(options: ConnectOptions): Promise<SessionDriver> {
    return new Promise<SessionDriver>((resolve, reject) => {
      try {
        assertUdpAvailable();
        options.signal?.throwIfAborted();
      } catch (error) {
        reject(error);
        return;
      }
      const remote = { hostname: options.remote.hostname, port: options.remote.port };
      const attached = options.attached;
      const socket = attached?.socket ?? options.socket ?? UdpSocket.bind(
        options.localHostname ?? (remote.hostname.includes(":") ? "::" : "0.0.0.0"),
        options.localPort ?? 0,
      );
      let detach: (() => void) | undefined;
      const release = (): Promise<void> => {
        if (!attached) return socket.close();
        detach?.();
        return Promise.resolve();
      };
      let driver: SessionDriver | undefined;
      // Foreign datagrams and raw sends before the driver exists (during `prepare`).
      let earlyForeign = 0;
      let earlyRaw = 0;
      const sendRaw = (datagram: Uint8Array, to: PeerAddress): boolean => {
        if (socket.closed || datagram.length === 0) return false;
        socket.send(datagram, to);
        return true;
      };
      const { divert, onForeign } = options;
      const handler: DatagramHandler = (datagram, from, at) => {
        if (onForeign !== undefined && isForeignDatagram(datagram)) {
          if (driver !== undefined) driver.#io.foreignReceived++;
          else earlyForeign++;
          onForeign(datagram, from, at);
          return;
        }
        if (driver === undefined) return; // still preparing: no session to give it to
        if (divert !== undefined && divert(datagram, at)) return;
        driver.#deliver(datagram, at);
      };
      try {
        if (attached) detach = attached.attach(handler);
        else socket.start(handler);
      } catch (error) {
        release().then(() => reject(error));
        return;
      }
      const begin = (): void => {
        const now = performance.now();
        let session: Session;
        try {
          session = Session.connect({
            identity: options.identity,
            acceptPeer: options.acceptPeer,
            extension: options.extension,
            config: options.config,
          }, now);
        } catch (error) {
          release().then(() => reject(error));
          return;
        }
        const settings = driverSettings(options);
        settings.confirmDeadline = now + settings.handshakeTimeoutMs;
        const onAbort = (): void => created.#abort(options.signal?.reason);
        const created = new SessionDriver(
          session,
          remote,
          socket.addr,
          {
            send: (datagram, onError) => socket.send(datagram, remote, onError),
            sendRaw,
            release,
          },
          settings,
          (failure) => {
            options.signal?.removeEventListener("abort", onAbort);
            if (failure === undefined) resolve(created);
            else releasedOf(created).then(() => reject(failure.error));
          },
        );
        created.#io.foreignReceived = earlyForeign;
        created.#io.rawSent = earlyRaw;
        driver = created;
        if (options.signal?.aborted) {
          created.#abort(options.signal.reason);
          return;
        }
        options.signal?.addEventListener("abort", onAbort, { once: true });
        created.#flush(now, true);
      };
      const prepare = options.prepare;
      if (prepare === undefined) {
        begin();
        return;
      }
      let onPrepareAbort: (() => void) | undefined;
      const aborted = new Promise<never>((_, fail) => {
        onPrepareAbort = () => fail(options.signal?.reason);
        options.signal?.addEventListener("abort", onPrepareAbort, { once: true });
      });
      let prepared: Promise<void>;
      try {
        prepared = Promise.resolve(prepare({
          local: socket.addr,
          sendRaw: (datagram, to) => {
            const sent = sendRaw(datagram, to);
            if (sent) earlyRaw++;
            return sent;
          },
        }));
      } catch (error) {
        prepared = Promise.reject(error);
      }
      Promise.race([prepared, aborted]).then(
        () => {
          options.signal?.removeEventListener("abort", onPrepareAbort!);
          begin();
        },
        (error) => {
          options.signal?.removeEventListener("abort", onPrepareAbort!);
          release().then(() => reject(error));
        },
      );
    });
  }

  /**
   * Sends `datagram` to `to` as is on this session's socket (the listener's,
   * on the responder side), outside the session: unpaced, unencrypted, not
   * counted as session traffic. For protocols that share the port, e.g. a
   * relay BIND_REQUEST or a STUN Binding request. Returns false, sending
   * nothing, once the session has finished or for an empty datagram.
   */
  sendRaw(datagram: Uint8Array, to: PeerAddress): boolean {
    if (this.#finished || datagram.length === 0) return false;
    const sent = this.#transport.sendRaw(datagram, to);
    if (sent) this.#io.rawSent++;
    return sent;
  }

  /** The peer's verified Ed25519 public key (empty before the handshake completes). */
  get peerIdentity(): Uint8Array {
    return this.#peerIdentity ?? new Uint8Array(0);
  }

  /** The opaque extension bytes the peer sent in its handshake. */
  get peerExtension(): Uint8Array {
    return this.#peerExtension;
  }

  /**
   * Every {@linkcode SessionEvent} after "established", in order, ending after
   * "closed". One consumer at a time; events arriving while nobody reads are
   * buffered (up to `maxQueuedEvents`, then the oldest are discarded and counted
   * in `stats.eventsDiscarded`). Leaving a `for await` loop keeps the rest for the
   * next call.
   */
  events(): AsyncIterableIterator<SessionEvent> {
    return this.#events.iterate();
  }

  /** Queues an encoded video frame (fragmented, paced). */
  sendVideoFrame(frame: EncodedFrame): void {
    this.session.sendVideoFrame(frame);
    this.#scheduleFlush(false);
  }

  /** Queues one audio packet (unreliable; goes out at once). */
  sendAudio(sequence: number, captureTimeUs: number, data: Uint8Array): void {
    this.session.sendAudio(sequence, captureTimeUs, data);
    this.#scheduleFlush(true);
  }

  /**
   * Queues an input event on the reliable input channel, ahead of everything
   * else. Returns false when the session is closed or the channel is exhausted.
   * @throws {RangeError} if `data` does not fit one datagram.
   */
  sendInput(data: Uint8Array): boolean {
    const queued = this.session.sendInput(data);
    this.#scheduleFlush(true);
    return queued;
  }

  /**
   * Queues a message on the reliable control channel. Returns false when the
   * session is closed or the channel is exhausted.
   * @throws {RangeError} if `data` does not fit one datagram.
   */
  sendControl(data: Uint8Array): boolean {
    const queued = this.session.sendControl(data);
    this.#scheduleFlush(true);
    return queued;
  }

  /**
   * Asks the peer for a keyframe. A media receiver running in another thread
   * passes the last frame it completed.
   */
  requestKeyframe(lastCompleteFrameId?: number): void {
    this.session.requestKeyframe(KeyframeReason.Loss, lastCompleteFrameId);
    this.#scheduleFlush(true);
  }

  /**
   * Hands the media lane to other threads (see `Session.detachMedia`): the
   * returned state rebuilds a `MediaSender` / `MediaReceiver` in a worker,
   * which then uses this session's peer address on the same socket.
   */
  detachMedia(): MediaLaneState {
    return this.session.detachMedia();
  }

  /** Asks the peer to send fragments of a video frame again (from a media receive worker). */
  sendNack(frameId: number, indexes: readonly number[]): void {
    this.session.sendNack(frameId, indexes);
    this.#scheduleFlush(true);
  }

  /** Receive times from a media receiver running in another thread, for FEEDBACK. */
  reportMediaArrivals(arrivals: readonly MediaArrival[], lostTotal: number): void {
    this.session.reportMediaArrivals(arrivals, lostTotal, performance.now());
    this.#scheduleFlush(false);
  }

  /** Changes the send pacing (e.g. from congestion control); unset fields keep their value. */
  setPacing(pacing: Partial<PacingOptions>): void {
    this.#settings.pacing = { ...this.#settings.pacing, ...pacing };
    this.#tokens = Math.min(this.#tokens, this.#burstBytes);
  }

  /** The current send pacing. */
  get pacing(): PacingOptions {
    return { ...this.#settings.pacing };
  }

  /** The session's counters, the edge's I/O counters and the RTT estimate (a snapshot). */
  get stats(): DriverStats {
    return {
      ...this.session.stats,
      io: { ...this.#io },
      eventsDiscarded: this.#events.discarded,
      rtt: this.session.rtt,
    };
  }

  /**
   * Closes the session: sends CLOSE (when keys exist), stops the timers,
   * releases the socket (or leaves the listener), and resolves once done.
   * Closing twice is harmless.
   */
  async close(code: number = CloseCode.Normal, reason: string = ""): Promise<void> {
    if (!this.#finished) {
      const now = performance.now();
      try {
        this.session.close(code, reason, now);
      } catch {
        this.#io.exceptions++;
      }
      this.#flush(now, true);
      // The session always reports "closed"; this only guards against it not doing so.
      if (!this.#finished) this.#onClosed({ code, reason, byPeer: false });
    }
    await this.#released;
  }

  // ------------------------------------------------------------------ the loop

  #deliver(datagram: Uint8Array, now: number): void {
    if (this.#finished) return;
    this.#io.datagramsReceived++;
    this.#io.bytesReceived += datagram.length;
    let drop: DropKind | undefined;
    try {
      drop = this.session.handleDatagram(datagram, now);
    } catch {
      this.#io.exceptions++;
      return;
    }
    // The initiator's handshake is confirmed by the responder's first authenticated packet.
    if (
      drop === undefined && !this.#confirmed && datagram[1] === PacketType.Sealed &&
      this.session.state === "established"
    ) {
      this.#confirmed = true;
    }
    // A datagram may have produced an ACK or PONG: send at once, pacer or not.
    this.#flush(now, true);
  }

  #scheduleFlush(force: boolean): void {
    if (this.#finished) return;
    this.#flushForced ||= force;
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      const forced = this.#flushForced;
      this.#flushForced = false;
      this.#flush(performance.now(), forced);
    });
  }

  get #burstBytes(): number {
    return this.#settings.pacing.burstDatagrams * this.#settings.maxDatagram;
  }

  /** Sends what the session has (pacer permitting), hands out events, re-arms the timer. */
  #flush(now: number, force: boolean): void {
    if (this.#finished) return;
    try {
      // A closing session sends its CLOSE whatever the pacer says.
      force ||= this.session.state === "closed";
      const rate = this.#settings.pacing.rateMbps * 125; // bytes per ms
      // `now` may predate the last refill (a caller's timestamp): never refill backwards.
      const elapsed = Math.max(0, now - this.#tokensAt);
      this.#tokens = Math.min(this.#burstBytes, this.#tokens + elapsed * rate);
      this.#tokensAt += elapsed;
      this.#pacedUntil = undefined;
      for (;;) {
        if (this.#tokens <= 0 && !force) {
          this.#pace(now, (this.#settings.maxDatagram - this.#tokens) / rate);
          break;
        }
        const datagram = this.session.pollTransmit(now);
        if (datagram === undefined) break;
        force = false;
        this.#tokens -= datagram.length;
        this.#send(datagram);
      }
    } catch {
      this.#io.exceptions++;
    }
    this.#drainEvents();
    this.#arm();
  }

  /**
   * Holds the rest back for `waitMs`. Deno's timers tick in steps of one to two
   * milliseconds, too coarse for a pacer: a short wait yields with setImmediate
   * instead (a macrotask, so receives run meanwhile) until the tokens are back.
   */
  #pace(now: number, waitMs: number): void {
    this.#io.pacingWaits++;
    this.#pacedUntil = now + waitMs;
    if (waitMs < TIMER_GRANULARITY_MS && this.#immediate === undefined) {
      this.#immediate = setImmediate(this.#onImmediate);
    }
  }

  readonly #onImmediate = (): void => {
    this.#immediate = undefined;
    if (this.#finished || this.#pacedUntil === undefined) return;
    this.#flush(performance.now(), false);
  };

  #send(datagram: Uint8Array): void {
    this.#io.datagramsSent++;
    this.#io.bytesSent += datagram.length;
    this.#transport.send(datagram, () => this.#io.sendErrors++);
  }

  #drainEvents(): void {
    for (let event; !this.#finished && (event = this.session.pollEvent()) !== undefined;) {
      switch (event.type) {
        case "established":
          this.#peerIdentity = event.peerIdentity;
          this.#peerExtension = event.peerExtension;
          // A responder is established by the initiator's last message: nothing left to confirm.
          if (this.session.role === "responder") this.#confirmed = true;
          break;
        case "closed":
          this.#events.push(event);
          this.#onClosed(event);
          break;
        default:
          this.#events.push(event);
      }
    }
    if (!this.#settled && this.#confirmed && this.session.state === "established") {
      this.#settled = true;
      this.#onReady();
    }
  }

  #onClosed(info: CloseInfo): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    this.#immediate = undefined;
    this.#events.end();
    const closeInfo = { code: info.code, reason: info.reason, byPeer: info.byPeer };
    this.#released = this.#transport.release();
    this.#resolveClosed(closeInfo);
    if (!this.#settled) {
      this.#settled = true;
      this.#onReady({ error: this.#failure ?? this.#handshakeError(closeInfo), info: closeInfo });
    }
  }

  #handshakeError(info: CloseInfo): Error {
    const where = formatAddress(this.remote);
    switch (info.code) {
      case CloseCode.HandshakeTimeout:
        return new Error(
          `handshake timed out after ${this.#settings.handshakeTimeoutMs} ms — is the host running at ${where}?`,
        );
      case CloseCode.PeerNotAllowed:
        return new Error(
          `peer identity not allowed: the host at ${where} presented an identity this side does not accept (${info.reason})`,
        );
      case CloseCode.VersionMismatch:
        return new Error(`version mismatch with the host at ${where}: ${info.reason}`);
      default:
        return new Error(
          `handshake with ${where} failed: ${info.reason || "closed"} (code ${info.code})`,
        );
    }
  }

  #abort(reason: unknown): void {
    if (this.#settled) return;
    this.#failure = reason instanceof Error
      ? reason
      : new Error(`connect to ${formatAddress(this.remote)} aborted`, { cause: reason });
    void this.close(CloseCode.Normal, "aborted");
  }

  #arm(): void {
    if (this.#finished) return;
    let at = this.session.pollTimeout();
    const extra = [
      this.#confirmed ? undefined : this.#settings.confirmDeadline,
      // A pending setImmediate already wakes the pacer.
      this.#immediate === undefined ? this.#pacedUntil : undefined,
    ];
    for (const t of extra) if (t !== undefined && (at === undefined || t < at)) at = t;
    // A timer armed for an earlier time stays: it wakes early, finds nothing due and re-arms.
    // Deadlines mostly move later (every packet pushes the idle timeout), so this saves a
    // clearTimeout/setTimeout pair per datagram.
    if (at === undefined) return;
    if (this.#timer !== undefined) {
      if (this.#timerAt <= at) return;
      clearTimeout(this.#timer);
    }
    this.#timerAt = at;
    this.#timer = setTimeout(this.#onTimer, Math.max(0, Math.ceil(at - performance.now())));
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    if (this.#finished) return;
    const now = performance.now();
    try {
      const deadline = this.#settings.confirmDeadline;
      if (
        !this.#confirmed && deadline !== undefined && now >= deadline &&
        this.session.state === "established"
      ) {
        // Established on our side, but the host never sent an authenticated packet: it refused
        // the handshake, and a responder that refuses has no keys to say so with.
        const ms = this.#settings.handshakeTimeoutMs;
        this.#failure = new Error(
          `peer identity not allowed? the host at ${
            formatAddress(this.remote)
          } answered but never confirmed the handshake within ${ms} ms; ` +
            "it most likely does not accept this client's identity",
        );
        this.session.close(CloseCode.HandshakeTimeout, "handshake not confirmed", now);
      } else {
        this.session.handleTimeout(now);
      }
    } catch {
      this.#io.exceptions++;
    }
    this.#flush(now, false);
  };
}

/** Counters of a {@linkcode SessionListener}. */
export interface ListenerStats {
  /** The socket's counters (all peers together). */
  socket: SocketCounters;
  /**
   * Datagrams dropped before reaching a session, by reason: a wire error kind
   * (`NotRift`, `Truncated`, `UnknownVersion`, ...) for unreadable datagrams,
   * `NoSession` for a readable one that matches no session, `TooManyPeers`,
   * or the session's drop kind for an INIT that could not start one.
   */
  dropped: Record<string, number>;
  /** Sessions created by a HANDSHAKE_INIT. */
  sessionsStarted: number;
  /** Sessions that completed their handshake. */
  sessionsEstablished: number;
  /** Handshakes that did not complete in time (removed). */
  handshakesTimedOut: number;
  /** Handshakes refused by `acceptPeer` (removed). */
  handshakesRejected: number;
  /** Handshakes that ended otherwise (listener closing, ...). */
  handshakesFailed: number;
  /** Established sessions that have closed since. */
  sessionsClosed: number;
  /** Sessions alive now (handshaking or established). */
  activeSessions: number;
  /** Version Negotiation packets sent to INITs of unknown versions. */
  versionNegotiationsSent: number;
  /** STUN / relay-control datagrams handed to `onForeign` (with no `onForeign`: dropped as NotRift). */
  foreignReceived: number;
  /** Datagrams sent with `sendRaw` (the listener's, or its sessions'). */
  rawSent: number;
}

/**
 * The responder side on one UDP socket. A HANDSHAKE_INIT from an address with
 * no handshake in progress starts a `Session.accept` for it; every other
 * datagram goes to the session of its source address whose connection id it
 * carries; sessions are removed once closed. Failed handshakes are counted,
 * never fatal.
 */
export class SessionListener {
  /** The bound address (with the real port when `port` was 0). */
  readonly addr: PeerAddress;

  readonly #socket: UdpSocket;
  #detach: (() => void) | undefined;
  readonly #options: ListenOptions;
  readonly #maxDatagram: number;
  readonly #maxPeers: number;
  readonly #peers = new Map<string, SessionDriver[]>();
  readonly #accepted = new AsyncQueue<SessionDriver>();
  readonly #counters: Omit<ListenerStats, "socket" | "activeSessions"> = {
    dropped: {},
    sessionsStarted: 0,
    sessionsEstablished: 0,
    handshakesTimedOut: 0,
    handshakesRejected: 0,
    handshakesFailed: 0,
    sessionsClosed: 0,
    versionNegotiationsSent: 0,
    foreignReceived: 0,
    rawSent: 0,
  };
  #active = 0;
  #closing: Promise<void> | undefined;

  private constructor(socket: UdpSocket, options: ListenOptions) {
    this.#socket = socket;
    this.#options = options;
    this.addr = socket.addr;
    this.#maxDatagram = options.config?.maxDatagram ?? DEFAULT_MAX_DATAGRAM;
    this.#maxPeers = options.maxPeers ?? DEFAULT_MAX_PEERS;
  }

  /**
   * Binds `hostname:port` (default hostname "0.0.0.0") and starts serving;
   * or serves on `options.socket` (e.g. a native socket shared with a media
   * worker), which the listener then owns and closes.
   */
  static listen(options: ListenOptions): SessionListener {
    const socket = options.attached?.socket ?? options.socket ??
      UdpSocket.bind(options.hostname ?? "0.0.0.0", options.port);
    const listener = new SessionListener(socket, options);
    const handler: DatagramHandler = (datagram, from, now) =>
      listener.#onDatagram(datagram, from, now);
    if (options.attached) listener.#detach = options.attached.attach(handler);
    else socket.start(handler);
    return listener;
  }

  /**
   * Established sessions, as drivers, in the order they completed their
   * handshake. Ends when the listener closes. One consumer at a time.
   */
  accept(): AsyncIterableIterator<SessionDriver> {
    return this.#accepted.iterate();
  }

  /** Counters (a snapshot). */
  get stats(): ListenerStats {
    return {
      ...structuredClone(this.#counters),
      socket: { ...this.#socket.counters },
      activeSessions: this.#active,
    };
  }

  /**
   * Sends `datagram` to `to` as is on the listener's socket, outside any
   * session (e.g. a relay BIND_REQUEST, a STUN request). Returns false,
   * sending nothing, once the listener is closing or for an empty datagram.
   */
  sendRaw(datagram: Uint8Array, to: PeerAddress): boolean {
    if (this.#closing !== undefined || datagram.length === 0) return false;
    this.#socket.send(datagram, to);
    this.#counters.rawSent++;
    return true;
  }

  /** Closes every session (CLOSE code 0), then the socket; ends {@linkcode SessionListener.accept}. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const drivers = [...this.#peers.values()].flat();
      await Promise.all(drivers.map((d) => d.close(CloseCode.Normal, "listener closed")));
      this.#accepted.end();
      if (this.#detach) this.#detach();
      else await this.#socket.close();
    })();
    return this.#closing;
  }

  #drop(kind: string): void {
    this.#counters.dropped[kind] = (this.#counters.dropped[kind] ?? 0) + 1;
  }

  #onDatagram(datagram: Uint8Array, from: PeerAddress, now: number): void {
    if (this.#closing !== undefined) return;
    const onForeign = this.#options.onForeign;
    if (onForeign !== undefined && isForeignDatagram(datagram)) {
      this.#counters.foreignReceived++;
      onForeign(datagram, from, now);
      return;
    }
    const decoded = decodeHeader(datagram, this.#maxDatagram);
    if (!decoded.ok) {
      this.#drop(decoded.error.kind);
      if (decoded.error.kind === "UnknownVersion") {
        // Stateless: tell an initiator of another version what we speak, never more bytes than it sent.
        const answer = versionNegotiationResponse(datagram, SUPPORTED_VERSIONS, this.#maxDatagram);
        if (answer !== undefined) {
          this.#counters.versionNegotiationsSent++;
          this.#socket.send(answer, from);
        }
      }
      return;
    }
    const header = decoded.value;
    const key = addressKey(from);
    const drivers = this.#peers.get(key);
    if (header.type === PacketType.HandshakeInit) {
      // A repeated INIT belongs to the handshake in progress from that address.
      const pending = drivers?.find((d) => d.session.state === "handshaking");
      if (pending !== undefined) deliverTo(pending, datagram, now);
      else this.#start(datagram, from, key, now);
      return;
    }
    const driver = drivers?.find((d) => d.session.localConnectionId === header.connectionId);
    if (driver === undefined) {
      this.#drop("NoSession");
      return;
    }
    deliverTo(driver, datagram, now);
  }

  #start(init: Uint8Array, from: PeerAddress, key: string, now: number): void {
    if (this.#active >= this.#maxPeers) {
      this.#drop("TooManyPeers");
      return;
    }
    const options = this.#options;
    const session = Session.accept({
      identity: options.identity,
      acceptPeer: options.acceptPeer,
      extension: options.extension,
      config: options.config,
    }, now);
    // A session is only kept for an INIT it accepts: garbage costs no state.
    let drop: string | undefined;
    try {
      drop = session.handleDatagram(init, now);
    } catch {
      drop = "Exception";
    }
    if (drop !== undefined) {
      this.#drop(drop);
      return;
    }
    const socket = this.#socket;
    let established = false;
    const driver: SessionDriver = createDriver(
      session,
      from,
      this.addr,
      {
        send: (datagram, onError) => socket.send(datagram, from, onError),
        sendRaw: (datagram, to) => this.sendRaw(datagram, to),
        release: () => {
          const list = this.#peers.get(key)?.filter((d) => d !== driver) ?? [];
          if (list.length > 0) this.#peers.set(key, list);
          else this.#peers.delete(key);
          this.#active--;
          if (established) this.#counters.sessionsClosed++;
          return Promise.resolve();
        },
      },
      driverSettings(options),
      (failure) => {
        if (failure === undefined) {
          established = true;
          this.#counters.sessionsEstablished++;
          this.#accepted.push(driver);
        } else if (failure.info.code === CloseCode.HandshakeTimeout) {
          this.#counters.handshakesTimedOut++;
        } else if (failure.info.code === CloseCode.PeerNotAllowed) {
          this.#counters.handshakesRejected++;
        } else {
          this.#counters.handshakesFailed++;
        }
      },
    );
    countFirstDatagram(driver, init);
    this.#peers.set(key, [...(this.#peers.get(key) ?? []), driver]);
    this.#active++;
    this.#counters.sessionsStarted++;
    flushNow(driver, now);
  }
}
