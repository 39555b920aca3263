/**
 * The Wavry client: connects to a host over RIFT, hands every reassembled
 * frame to the local web player, sends the page's input back, and measures
 * every stage it can see.
 *
 * Clocks: the host stamps capture and encode times with its CLOCK_MONOTONIC;
 * the page uses the wall clock. The session's PING/PONG relates the two
 * processes' `performance.now()` clocks, and each process relates its own
 * `performance.now()` to CLOCK_MONOTONIC (the host tells us its relation in
 * the handshake extension), so every stage is measured, not guessed.
 *
 * @module
 */
import type { IdentityKeyPair } from "../crypto/identity.ts";
import {
  decodeControl,
  decodeVideoPayload,
  encodeInput,
  type InputEvent,
  type StreamConfigMessage,
} from "../core/stream.ts";
import type { SessionConfig } from "../core/session.ts";
import type { PeerAddress } from "../edge/udp_socket.ts";
import { ClientConnection, type ConnectionEvent, type ConnectSignaling } from "./connection.ts";
import type { NetWorkerIce } from "./net_worker.ts";
import { StreamMetrics } from "../edge/metrics.ts";
import { monotonicMicros } from "../media/clock.ts";
import { PlayerServer } from "./player/server.ts";
import type { PlayerInput } from "./player/protocol.ts";
import { decodeClockExtension } from "../core/clock_extension.ts";

/** How to start a client. */
export interface ClientOptions {
  /** The host's RIFT address. */
  host: PeerAddress;
  /** This client's identity. */
  identity: IdentityKeyPair;
  /** Accept only this host identity (default: any, with a warning printed by the caller). */
  expectHost?: Uint8Array;
  /** Local player port (default 0: ephemeral). */
  playerPort?: number;
  /** Give up connecting after this long (ms). */
  connectTimeoutMs?: number;
  /** Session timers (tests shorten them). */
  sessionConfig?: Partial<SessionConfig>;
  /** Connect with ICE through the gateway (`host` is then unused); see client/gateway_connect.ts. */
  ice?: { options: NetWorkerIce; signaling: ConnectSignaling };
}

/** A connected client and its player. */
export class WavryClient {
  /** The RIFT connection (its session and media receive workers). */
  readonly connection: ClientConnection;
  /** The local web player. */
  readonly player: PlayerServer;
  /** Client-side figures (also at the player's /metrics). */
  readonly metrics: StreamMetrics;
  /** Resolves when the session ends. */
  readonly closed: Promise<{ code: number; reason: string; byPeer: boolean }>;
  /** The stream as the host described it, once known. */
  config: StreamConfigMessage | undefined;

  readonly #hostMonoMinusPerfUs: number;
  readonly #wallMinusMonoUs: number;
  readonly #localMonoMinusPerfUs: number;
  #inputSequence = 1;
  #framesReceived = 0;
  #overlayTimer: ReturnType<typeof setInterval> | undefined;
  #lastHostStats = "";
  #fecSeen = 0;

  private constructor(
    connection: ClientConnection,
    player: PlayerServer,
    metrics: StreamMetrics,
    hostMonoMinusPerfUs: number,
  ) {
    this.connection = connection;
    this.player = player;
    this.metrics = metrics;
    this.#hostMonoMinusPerfUs = hostMonoMinusPerfUs;
    const mono = monotonicMicros();
    const perf = performance.now() * 1000;
    this.#localMonoMinusPerfUs = mono - perf;
    this.#wallMinusMonoUs = (performance.timeOrigin * 1000 + perf) - mono;
    this.closed = connection.closed;
  }

  /** Connects to the host and starts the player; rejects with a clear message when it cannot. */
  static async start(options: ClientOptions): Promise<WavryClient> {
    const connection = await ClientConnection.connect({
      remote: options.host,
      identity: options.identity,
      expectHost: options.expectHost,
      ice: options.ice?.options,
      signaling: options.ice?.signaling,
      config: options.connectTimeoutMs === undefined
        ? options.sessionConfig
        : { ...options.sessionConfig, handshakeTimeoutMs: options.connectTimeoutMs },
    });
    const clock = decodeClockExtension(connection.peerExtension);
    const metrics = new StreamMetrics("client");
    metrics.path(connection.path);
    let player: PlayerServer;
    try {
      player = await PlayerServer.start({
        port: options.playerPort ?? 0,
        metrics: async () => ({
          contentType: metrics.contentType,
          body: await metrics.prometheus(),
        }),
      });
    } catch (error) {
      await connection.close();
      throw error;
    }
    const client = new WavryClient(connection, player, metrics, clock ?? 0);
    client.#wire();
    return client;
  }

  /** Host CLOCK_MONOTONIC µs -> this machine's wall clock µs (the page's clock), once RTT is known. */
  hostMonoToWallUs(hostMonoUs: number): number | undefined {
    const offset = this.connection.clockOffsetUs; // host perf - this thread's perf
    if (offset === undefined) return undefined;
    const hostPerf = hostMonoUs - this.#hostMonoMinusPerfUs;
    const localPerf = hostPerf - offset;
    return localPerf + this.#localMonoMinusPerfUs + this.#wallMinusMonoUs;
  }

  #wire(): void {
    this.player.onInput((input) => this.#sendInput(input));
    this.player.onKeyframeRequest(() => this.connection.requestKeyframe());
    this.player.onStats((stats) => {
      if (stats.t !== "paint") return;
      this.metrics.stage("decode", stats.decodeMs);
      this.metrics.stage("present", stats.paintMs);
      if (stats.drawnToPresentUs !== null) {
        this.metrics.stage("glass_to_glass", stats.drawnToPresentUs / 1000);
      }
    });
    this.#overlayTimer = setInterval(() => this.#pushOverlay(), 250);
    this.#pump();
  }

  async #pump(): Promise<void> {
    for await (const event of this.connection.events()) this.#onEvent(event);
    clearInterval(this.#overlayTimer);
  }

  #onEvent(event: ConnectionEvent): void {
    const now = event.type === "video-frame" ? event.arrivedAt : performance.now();
    switch (event.type) {
      case "control": {
        const message = decodeControl(event.data);
        if (!message.ok) return;
        const m = message.value;
        if (m.type === "stream-config") {
          this.config = m;
          this.player.configure({
            codec: m.codec,
            avcc: m.avcc,
            sps: new Uint8Array(0),
            pps: new Uint8Array(0),
            width: m.width,
            height: m.height,
          });
        } else if (m.type === "input-applied") {
          const applied = this.hostMonoToWallUs(m.hostAppliedUs);
          if (applied !== undefined) this.metrics.stage("input", (applied - m.clientTimeUs) / 1000);
        } else if (m.type === "stats") {
          this.#lastHostStats = `${m.encoder} @ ${(m.targetBitrateBps / 1e6).toFixed(1)} Mbit/s`;
          this.metrics.congestion({
            targetBitrateBps: m.targetBitrateBps,
            fecRatio: m.fecPermille / 1000,
            fps: m.fps,
            queuingDelayMs: m.queuingDelayUs / 1000,
            state: m.congestionState,
          });
        } else if (m.type === "error") {
          this.#lastHostStats = `error: ${m.text}`;
          this.#pushOverlay();
        }
        return;
      }
      case "video-frame": {
        const payload = decodeVideoPayload(event.frame.data);
        if (!payload.ok) {
          this.metrics.dropped();
          return;
        }
        const { timing, accessUnit } = payload.value;
        const capture = event.frame.captureTimeUs;
        this.metrics.stage("encode", (timing.encodeEndUs - timing.encodeStartUs) / 1000);
        this.metrics.stage("capture", Math.max(0, timing.encodeStartUs - capture) / 1000);
        this.metrics.stage("send_queue", (timing.handedToSessionUs - timing.encodeEndUs) / 1000);
        const handedWall = this.hostMonoToWallUs(timing.handedToSessionUs);
        const nowWall = performance.timeOrigin * 1000 + now * 1000;
        if (handedWall !== undefined) this.metrics.stage("network", (nowWall - handedWall) / 1000);
        this.metrics.frame(event.frame.data.length, now);
        this.#framesReceived++;
        const captureWall = this.hostMonoToWallUs(capture);
        this.player.sendFrame({
          data: accessUnit,
          keyframe: event.frame.keyframe,
          captureTimeUs: capture,
          convertMs: 0,
          encodeMs: (timing.encodeEndUs - timing.encodeStartUs) / 1000,
          frameId: event.frame.frameId,
          offsetUs: captureWall === undefined ? undefined : captureWall - capture,
        });
        return;
      }
      case "audio":
        this.player.sendAudio(event.sequence, 2, event.captureTimeUs, event.data);
        return;
      case "video-frame-lost":
        this.metrics.dropped();
        return;
      default:
        return;
    }
  }

  #sendInput(input: PlayerInput): void {
    const events: InputEvent[] = [];
    const u16 = (v: number) => Math.max(0, Math.min(65535, Math.round(v * 65535)));
    const i16 = (v: number) => Math.max(-32768, Math.min(32767, Math.round(v)));
    switch (input.t) {
      case "key":
        events.push({ type: "key", code: input.code, down: input.down });
        break;
      case "move":
        events.push({ type: "mouse-abs", x: u16(input.x), y: u16(input.y) });
        break;
      case "moverel":
        events.push({ type: "mouse-rel", dx: i16(input.dx), dy: i16(input.dy) });
        break;
      case "button":
        events.push({ type: "mouse-abs", x: u16(input.x), y: u16(input.y) });
        events.push({ type: "button", button: input.button, down: input.down });
        break;
      case "wheel":
        events.push({ type: "wheel", dx: i16(input.dx * 120), dy: i16(input.dy * 120) });
        break;
      case "gamepad":
        events.push({
          type: "gamepad",
          index: input.index & 0xff,
          buttons: Array.from(
            { length: 17 },
            (_, i) => input.connected ? Math.round(255 * (input.buttons[i] ?? 0)) : 0,
          ),
          axes: Array.from(
            { length: 4 },
            (_, i) => input.connected ? i16(32767 * (input.axes[i] ?? 0)) : 0,
          ),
        });
        break;
    }
    for (const event of events) {
      try {
        this.connection.sendInput(encodeInput({
          sequence: this.#inputSequence,
          clientTimeUs: Math.round(input.ts),
          event,
        }));
        this.#inputSequence = (this.#inputSequence + 1) >>> 0;
      } catch {
        // A value the wire cannot carry (an unknown key code): drop this event only.
      }
    }
  }

  #pushOverlay(): void {
    // Loss on the media direction, as this side sees it: packet numbers that never arrived.
    const stats = this.connection.stats.media;
    if (stats.fecRecoveries > this.#fecSeen) {
      this.metrics.fecRecovered(stats.fecRecoveries - this.#fecSeen);
      this.#fecSeen = stats.fecRecoveries;
    }
    const expected = stats.packetsReceived + stats.packetsLost;
    this.metrics.transport(
      this.connection.rtt.smoothedMs,
      expected === 0 ? 0 : stats.packetsLost / expected,
    );
    const s = this.metrics.snapshot(performance.now());
    const overlay: Record<string, string | number> = {
      fps: s.fps,
      bitrate: `${(s.bitrateBps / 1e6).toFixed(2)} Mbit/s`,
      rtt: `${s.rttMs.toFixed(2)} ms`,
      loss: `${(100 * s.loss).toFixed(2)} %`,
      "fec recoveries": s.fecRecoveries,
      "retransmit recoveries": `${stats.retransmitRecoveries} of ${stats.nacksSent} nacked`,
      "frames dropped": s.framesDropped,
      path:
        `${this.connection.path} (${this.connection.remote.hostname}:${this.connection.remote.port})`,
      host: this.#lastHostStats || "-",
    };
    const c = s.congestion;
    if (c !== undefined) {
      overlay["target bitrate"] = `${(c.targetBitrateBps / 1e6).toFixed(2)} Mbit/s`;
      overlay["fec ratio"] = c.fecRatio.toFixed(3);
      overlay["congestion"] = `${c.state}, queue ${c.queuingDelayMs.toFixed(1)} ms, ${c.fps} fps`;
    }
    for (const [stage, summary] of Object.entries(s.stages)) {
      overlay[stage] = `${summary.p50.toFixed(1)} / ${summary.p99.toFixed(1)} ms`;
    }
    this.player.pushOverlay(overlay);
  }

  /** Frames received from the host. */
  get framesReceived(): number {
    return this.#framesReceived;
  }

  /** Closes the session and the player. */
  async stop(): Promise<void> {
    clearInterval(this.#overlayTimer);
    await this.connection.close();
    await this.player.close();
  }
}
