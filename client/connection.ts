/**
 * The client's RIFT connection, split across two workers: the session worker
 * (client/net_worker.ts: socket, handshake, input, control) and the media
 * receive worker (client/media_receive_worker.ts: open, FEC, reassembly),
 * joined by a MessagePort. The main thread sees frames, audio packets,
 * control messages and a session snapshot every 250 ms — never a packet.
 *
 * @module
 */
import type { IdentityKeyPair } from "../crypto/identity.ts";
import type { EncodedFrame } from "../core/fragment.ts";
import type { RttSnapshot } from "../core/rtt.ts";
import type { SessionConfig, SessionStats } from "../core/session.ts";
import { CloseCode } from "../core/frames.ts";
import { AsyncQueue } from "../edge/queue.ts";
import type { PeerAddress } from "../edge/udp_socket.ts";
import { monotonicMicros } from "../media/clock.ts";
import type {
  ClientInputTrace,
  NetWorkerCommand,
  NetWorkerEvent,
  NetWorkerIce,
  SessionSnapshot,
} from "./net_worker.ts";
import type { IceOffer } from "../edge/ice_connect.ts";
import type { PathKind } from "../edge/connect_signaling.ts";
import type {
  MediaReceiveCommand,
  MediaReceiveEvent,
  MediaReceiveStats,
} from "./media_receive_worker.ts";

export type { ClientInputTrace } from "./net_worker.ts";

/** The gateway side of connecting with ICE (client/gateway_connect.ts implements it). */
export interface ConnectSignaling {
  /** Sends our offer to the host; resolves with the host's answer. */
  exchange(offer: IceOffer): Promise<IceOffer>;
  /**
   * How the checks ended. On failure resolves with a relay lease (the
   * gateway's answer to `relay_request`); rejects when there is none.
   */
  outcome(outcome: {
    ok: boolean;
    path?: PathKind;
    reason?: string;
    elapsedMs: number;
  }): Promise<{ lease: string; relay: PeerAddress } | undefined>;
  /** The relay binding ended ("ready", "failed: KIND"). */
  relayState?(state: string): void;
}

/** How to connect. */
export interface ConnectionOptions {
  /** The host's address (unused with `ice`). */
  remote: PeerAddress;
  /** Connect with ICE through the gateway (both or neither with `signaling`). */
  ice?: NetWorkerIce;
  /** Carries offers and the lease (with `ice`). */
  signaling?: ConnectSignaling;
  /** This client's identity. */
  identity: IdentityKeyPair;
  /** Accept only this host identity (undefined: any). */
  expectHost?: Uint8Array;
  /** Session timers. */
  config?: Partial<SessionConfig>;
  /** Called, in send order, with the session worker's stage times of every input sent (benchmarks). */
  onInputSent?: (trace: ClientInputTrace) => void;
}

/** How a connection ended. */
export interface ConnectionClosed {
  code: number;
  reason: string;
  byPeer: boolean;
}

/** What the main thread hears. */
export type ConnectionEvent =
  | { type: "control"; data: Uint8Array }
  /** `arrivedAt`: when the frame's last datagram arrived, in this thread's performance.now(). */
  | { type: "video-frame"; frame: EncodedFrame; arrivedAt: number }
  | { type: "video-frame-lost"; frameId: number }
  | { type: "audio"; sequence: number; captureTimeUs: number; data: Uint8Array }
  | ({ type: "closed" } & ConnectionClosed);

const EMPTY_MEDIA_STATS: MediaReceiveStats = {
  packetsReceived: 0,
  packetsLost: 0,
  framesCompleted: 0,
  framesLost: 0,
  fecRecoveries: 0,
  datagramsDropped: 0,
  nacksSent: 0,
  retransmitRecoveries: 0,
};

function monoMinusPerfUs(): number {
  return monotonicMicros() - performance.now() * 1000;
}

/** A connected client session running in its workers. */
export class ClientConnection {
  /** The host's verified Ed25519 public key. */
  readonly peerIdentity: Uint8Array;
  /** The host's handshake extension. */
  readonly peerExtension: Uint8Array;
  /** The local UDP address. */
  readonly local: PeerAddress;
  /** Where the session's datagrams go (the host, its NAT's mapping, or the relay). */
  readonly remote: PeerAddress;
  /** The path in use: `host`/`srflx`/`prflx` (direct, by the host's candidate type), `relay`, or `direct-address` (no ICE). */
  readonly path: PathKind;
  /**
   * Whether the session worker, which sends input, runs at SCHED_FIFO. False
   * without root or CAP_SYS_NICE: input then competes with decoding for the CPU.
   */
  readonly inputThreadRealtime: boolean;
  /** Resolves once, when the session has closed. */
  readonly closed: Promise<ConnectionClosed>;

  readonly #net: Worker;
  readonly #media: Worker;
  readonly #events = new AsyncQueue<ConnectionEvent>(4096);
  #snapshot: SessionSnapshot;
  #mediaStats: MediaReceiveStats = EMPTY_MEDIA_STATS;
  #resolveClosed!: (info: ConnectionClosed) => void;
  #ended = false;
  #closing: Promise<void> | undefined;
  #onInputSent: ((trace: ClientInputTrace) => void) | undefined;

  private constructor(
    net: Worker,
    media: Worker,
    connected: Extract<NetWorkerEvent, { type: "connected" }>,
    onInputSent: ((trace: ClientInputTrace) => void) | undefined,
  ) {
    this.#onInputSent = onInputSent;
    this.#net = net;
    this.#media = media;
    this.peerIdentity = connected.peerIdentity;
    this.peerExtension = connected.peerExtension;
    this.local = connected.local;
    this.remote = connected.remote;
    this.path = connected.path;
    this.inputThreadRealtime = connected.inputRealtime;
    this.#snapshot = connected.snapshot;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
  }

  /** Connects; rejects with the session worker's clear message when it cannot. */
  static connect(options: ConnectionOptions): Promise<ClientConnection> {
    const net = new Worker(new URL("./net_worker.ts", import.meta.url).href, { type: "module" });
    const media = new Worker(new URL("./media_receive_worker.ts", import.meta.url).href, {
      type: "module",
    });
    const channel = new MessageChannel();
    media.postMessage(
      { type: "start", port: channel.port1 } satisfies MediaReceiveCommand,
      [channel.port1],
    );
    const early: MediaReceiveEvent[] = [];
    let connection: ClientConnection | undefined;
    media.onmessage = (event: MessageEvent<MediaReceiveEvent>) => {
      if (connection === undefined) early.push(event.data);
      else connection.#onMedia(event.data);
    };
    return new Promise((resolve, reject) => {
      const fail = (message: string) => {
        net.terminate();
        media.terminate();
        reject(new Error(message));
      };
      net.onerror = (event) => {
        event.preventDefault();
        if (connection === undefined) fail(`session worker: ${event.message}`);
        else {connection.#finish({
            code: CloseCode.ProtocolError,
            reason: event.message,
            byPeer: false,
          });}
      };
      media.onerror = (event) => {
        event.preventDefault();
        if (connection !== undefined) {
          connection.#finish({
            code: CloseCode.ProtocolError,
            reason: event.message,
            byPeer: false,
          });
        }
      };
      net.onmessage = (event: MessageEvent<NetWorkerEvent>) => {
        const m = event.data;
        if (connection !== undefined) return connection.#onNet(m);
        const sig = options.signaling;
        if (m.type === "connect-failed") fail(m.message);
        else if (m.type === "ice-offer" && sig !== undefined) {
          sig.exchange(m.offer).then(
            (offer) => net.postMessage({ type: "ice-remote", offer } satisfies NetWorkerCommand),
            (error) => fail(`signaling: ${(error as Error).message}`),
          );
        } else if (m.type === "ice-outcome" && sig !== undefined) {
          sig.outcome(m).then(
            (relay) => {
              if (relay !== undefined) {
                net.postMessage({ type: "relay", ...relay } satisfies NetWorkerCommand);
              }
            },
            (error) =>
              fail(`no direct path (${m.reason}) and no relay: ${(error as Error).message}`),
          );
        } else if (m.type === "relay-state") sig?.relayState?.(m.state);
        else if (m.type === "connected") {
          connection = new ClientConnection(net, media, m, options.onInputSent);
          for (const e of early) connection.#onMedia(e);
          resolve(connection);
        }
      };
      net.postMessage(
        {
          type: "connect",
          options: {
            remote: options.remote,
            // Identity files keep the secret behind a getter, which structured cloning drops.
            identity: {
              publicKey: options.identity.publicKey.slice(),
              secretKey: options.identity.secretKey.slice(),
            },
            expectHost: options.expectHost,
            config: options.config,
            ice: options.ice,
            traceInput: options.onInputSent !== undefined,
          },
          media: channel.port2,
        } satisfies NetWorkerCommand,
        [channel.port2],
      );
    });
  }

  /** Smoothed RTT and friends, as of the last snapshot (≤ 250 ms old). */
  get rtt(): RttSnapshot {
    return this.#snapshot.rtt;
  }

  /**
   * Host `performance.now()` − this thread's `performance.now()`, µs, once the
   * PING/PONG exchange measured it (the session worker's offset, moved onto
   * this thread's clock through CLOCK_MONOTONIC).
   */
  get clockOffsetUs(): number | undefined {
    const s = this.#snapshot;
    if (s.clockOffsetUs === undefined) return undefined;
    return s.clockOffsetUs + monoMinusPerfUs() - s.monoMinusPerfUs;
  }

  /** Session-lane counters and the media receiver's counters. */
  get stats(): { session: SessionStats; media: MediaReceiveStats } {
    return { session: this.#snapshot.stats, media: this.#mediaStats };
  }

  /** Events in order, ending after "closed". One consumer at a time. */
  events(): AsyncIterableIterator<ConnectionEvent> {
    return this.#events.iterate();
  }

  /** Sends an encoded INPUT message on the reliable input channel, ahead of everything else. */
  sendInput(data: Uint8Array): void {
    if (!this.#ended) this.#net.postMessage({ type: "input", data } satisfies NetWorkerCommand);
  }

  /** Asks the host for a keyframe. */
  requestKeyframe(): void {
    if (!this.#ended) this.#net.postMessage({ type: "keyframe" } satisfies NetWorkerCommand);
  }

  /** Closes the session (CLOSE goes out), then both workers. Idempotent. */
  close(code: number = CloseCode.Normal, reason = ""): Promise<void> {
    this.#closing ??= (async () => {
      if (!this.#ended) {
        this.#net.postMessage({ type: "close", code, reason } satisfies NetWorkerCommand);
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          this.closed,
          new Promise((r) => timer = setTimeout(r, 2_000)),
        ]);
        clearTimeout(timer);
      }
      this.#finish({ code, reason, byPeer: false });
    })();
    return this.#closing;
  }

  #onNet(m: NetWorkerEvent): void {
    switch (m.type) {
      case "control":
        this.#events.push({ type: "control", data: m.data });
        break;
      case "snapshot":
        this.#snapshot = m.snapshot;
        break;
      case "input-sent":
        this.#onInputSent?.({ handledUs: m.handledUs, sentUs: m.sentUs });
        break;
      case "closed":
        this.#finish({ code: m.code, reason: m.reason, byPeer: m.byPeer });
        break;
    }
  }

  #onMedia(m: MediaReceiveEvent): void {
    switch (m.type) {
      case "video-frame":
        this.#events.push({
          type: "video-frame",
          frame: m.frame,
          arrivedAt: m.arrivedMonoMs - monoMinusPerfUs() / 1000,
        });
        break;
      case "video-frame-lost":
      case "audio":
        this.#events.push(m);
        break;
      case "stats":
        this.#mediaStats = m.stats;
        break;
      case "ended":
        break;
    }
  }

  #finish(info: ConnectionClosed): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#events.push({ type: "closed", ...info });
    this.#events.end();
    this.#resolveClosed(info);
    // Both workers have let go of their resources by now (or never will): end them.
    setTimeout(() => {
      this.#net.terminate();
      this.#media.terminate();
    }, 100);
  }
}
