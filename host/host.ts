/**
 * The Wavry host: listens for RIFT clients, streams the display to every
 * accepted client and injects their input.
 *
 * Four threads, one UDP socket (opened here through the FFI shim and shared
 * by descriptor, edge/native_udp.ts):
 * - the **input worker** (host/input_worker.ts) reads the socket, runs every
 *   client's session lane and injects their input;
 * - the **media send worker** (host/media_send_worker.ts) seals, protects
 *   and paces every client's media lane onto the same socket;
 * - the **capture worker** (host/media_worker.ts) captures and encodes;
 * - this thread only orchestrates: it starts capture for the first client,
 *   moves each encoded frame (by transfer) to the media send worker, and
 *   sends stats once a second. It does no per-packet work.
 *
 * @module
 */
import type { IdentityKeyPair } from "../crypto/identity.ts";
import { encodeControl, HostErrorCode } from "../core/stream.ts";
import { CloseCode } from "../core/frames.ts";
import type { SessionConfig } from "../core/session.ts";
import { StreamMetrics } from "../edge/metrics.ts";
import { NativeUdpSocket } from "../edge/native_udp.ts";
import type { PeerAddress } from "../edge/udp_socket.ts";
import { DEFAULT_MONITOR, PulseAudioSource } from "../media/linux/audio_pulse.ts";
import { OpusEncoder } from "../media/opus.ts";
import { type HostInputTrace, InputWorker } from "./input_worker_handle.ts";
import { type CongestionDecision, MediaSendWorker } from "./media_send.ts";
import type { MediaLaneState } from "../core/media_lane.ts";
import { MediaPipeline } from "./media_pipeline.ts";
import type { MediaSource } from "./media_worker.ts";
import type { HostIceOptions, HostIceOutcome } from "./host_connector.ts";
import type { IceOffer } from "../edge/ice_connect.ts";

/** Where the input worker's answers to gateway connect requests go (host/gateway_link.ts). */
export interface HostConnectEvents {
  onIceOffer(sessionId: string, offer: IceOffer): void;
  onIceOutcome(sessionId: string, outcome: HostIceOutcome): void;
  onRelayState(sessionId: string, state: string): void;
}

/** How to run a host. */
export interface HostOptions {
  /** UDP address to listen on (port 0: ephemeral). */
  listen: { hostname?: string; port: number };
  /** X display to capture and inject into (unused with a pattern source, which needs none). */
  display?: string;
  /**
   * Picture source (default X11). With `{ kind: "pattern", ... }` the host
   * streams the synthetic picture of media/pattern.ts and opens no display:
   * clients' input is then refused as Unsupported.
   */
  source?: MediaSource;
  /** Capture rate. */
  fps: number;
  /** Initial video bitrate. */
  bitrateBps: number;
  /** The host's identity. */
  identity: IdentityKeyPair;
  /** Which client identities (Ed25519 public keys) may connect (default: any). */
  allowedClients?: Uint8Array[];
  /**
   * Desktop audio: recorded from this PulseAudio source (default: the default sink's monitor)
   * and sent as Opus. Off when undefined; when it cannot open, the host logs why and streams
   * video alone.
   */
  audio?: { server?: string; source?: string };
  /**
   * DELTA congestion control (default on): the bitrate, frame rate, FEC and
   * pacing follow the link. Off: a fixed `bitrateBps`, the session's FEC and
   * 100 Mbit/s pacing (what fixed-rate streamers do).
   */
  congestionControl?: boolean;
  /** Highest bitrate DELTA may ask for (default: 4 × `bitrateBps`, at least 20 Mbit/s). */
  maxBitrateBps?: number;
  /** Session timers (tests shorten them). */
  sessionConfig?: Partial<SessionConfig>;
  /**
   * Reachable through a gateway: ICE agents and relay bindings run in the
   * input worker on the RIFT socket; their answers go to `connectEvents`.
   */
  ice?: HostIceOptions;
  /** Receives the answers to {@linkcode WavryHost.connector} commands. */
  connectEvents?: HostConnectEvents;
  /** Called for each line worth logging. */
  log?: (line: string) => void;
  /**
   * Nice value of the capture/encode worker and its encoder threads (default
   * {@linkcode DEFAULT_ENCODER_NICE}; 0 leaves them alone). A positive value
   * lets the display server and the application reading injected input win
   * their wake-ups against the encoder on a saturated machine, at the cost of
   * frames (bench/input.ts `--encoder-nice=N`).
   */
  encoderNice?: number;
  /** Called for every input event injected, with its host-side stage times (bench/input.ts). */
  onInputApplied?: (trace: HostInputTrace) => void;
}

interface Client {
  readonly id: number;
  readonly remote: PeerAddress;
  readonly lane: MediaLaneState;
  decision: CongestionDecision | undefined;
  /** Resolves when the session ends. */
  readonly closed: Promise<void>;
  readonly onClosed: () => void;
}

/**
 * Nice value of the host's capture/encode threads by default: 0, unchanged.
 * At 10 the X server's share of the input path shrank (bench/input.ts,
 * loaded x_server p99 5.4 → 3.1 ms over 3 and 5 runs) but the end-to-end
 * tail did not, and on a saturated machine the encoder then loses to every
 * ordinary process (a game): docs/LATENCY.md "Input under load".
 */
export const DEFAULT_ENCODER_NICE = 0;

/** A running host. */
export class WavryHost {
  /** Host-side figures. */
  readonly metrics: StreamMetrics = new StreamMetrics("host");
  readonly #socket: NativeUdpSocket;
  readonly #options: HostOptions;
  readonly #clients = new Map<number, Client>();
  #input!: InputWorker;
  #media!: MediaSendWorker;
  readonly #encodeEndUs = new Map<number, number>();
  #pipeline: MediaPipeline | undefined;
  #stopped = false;
  #framesSent = 0;
  #audio: AbortController | undefined;
  #audioLoop: Promise<void> | undefined;
  #audioPacketsSent = 0;
  #audioSource: PulseAudioSource | undefined;
  #lifecycle: Promise<unknown> = Promise.resolve();
  readonly #encodeMs: number[] = [];
  readonly #captureMs: number[] = [];

  private constructor(socket: NativeUdpSocket, options: HostOptions) {
    this.#socket = socket;
    this.#options = options;
  }

  /**
   * Opens the socket and starts the input and media send workers; capture
   * starts with the first client and stops with the last. Rejects (with
   * everything released) when the socket, the X display or a worker cannot start.
   */
  static async start(options: HostOptions): Promise<WavryHost> {
    const socket = NativeUdpSocket.open({
      hostname: options.listen.hostname ?? "0.0.0.0",
      port: options.listen.port,
    });
    const host = new WavryHost(socket, options);
    try {
      await host.#startWorkers();
    } catch (error) {
      await host.#input?.stop();
      await host.#media?.stop();
      await socket.close();
      throw error;
    }
    return host;
  }

  async #startWorkers(): Promise<void> {
    this.#media = await MediaSendWorker.start(this.#socket.fd, {
      onFrameSent: (frameId, handedUs) => {
        const encodeEndUs = this.#encodeEndUs.get(frameId);
        this.#encodeEndUs.delete(frameId);
        if (encodeEndUs !== undefined) {
          this.metrics.stage("send_queue", (handedUs - encodeEndUs) / 1000);
        }
      },
      onError: (message) => this.#log(`media send worker: ${message}`),
      onDecision: (id, decision) => this.#onDecision(id, decision),
    });
    this.#input = await InputWorker.start({
      fd: this.#socket.fd,
      // Identity files keep the secret behind a getter, which structured cloning drops.
      identity: {
        publicKey: this.#options.identity.publicKey.slice(),
        secretKey: this.#options.identity.secretKey.slice(),
      },
      allowedClients: this.#options.allowedClients,
      sessionConfig: this.#options.sessionConfig,
      display: this.#options.source?.kind === "pattern" ? undefined : this.#options.display,
      ice: this.#options.ice,
    }, {
      onIceOffer: (id, offer) => this.#options.connectEvents?.onIceOffer(id, offer),
      onIceOutcome: (id, outcome) => this.#options.connectEvents?.onIceOutcome(id, outcome),
      onRelayState: (id, state) => this.#options.connectEvents?.onRelayState(id, state),
      onClient: (id, remote, _peer, lane) => this.#serve(id, remote, lane),
      onClosed: (id, reason) => {
        this.#log(`client disconnected: ${reason}`);
        this.#clients.get(id)?.onClosed();
      },
      onKeyframeRequest: () => this.#pipeline?.requestKeyframe(),
      onFeedback: (id, report, rttMs) => this.#media.feedback(id, report, rttMs),
      onNack: (id, frameId, indexes) => this.#media.retransmit(id, frameId, indexes),
      onLog: (line) => this.#log(line),
      onInputApplied: (_id, _applyUs, trace) => this.#options.onInputApplied?.(trace),
    });
  }

  /** The input worker's connect commands (ICE and relay on the RIFT socket), for the gateway link. */
  get connector(): InputWorker {
    return this.#input;
  }

  /** The bound UDP address. */
  get addr(): PeerAddress {
    return { ...this.#socket.localAddr };
  }

  /** Clients being served. */
  get clients(): number {
    return this.#clients.size;
  }

  /** The media pipeline while one runs. */
  get pipeline(): MediaPipeline | undefined {
    return this.#pipeline;
  }

  #log(line: string): void {
    this.#options.log?.(line);
  }

  /** Serves one client until its session ends; never throws. */
  async #serve(id: number, remote: PeerAddress, lane: MediaLaneState): Promise<void> {
    let onClosed!: () => void;
    const closed = new Promise<void>((resolve) => onClosed = resolve);
    const client: Client = { id, remote, lane, decision: undefined, closed, onClosed };
    this.#clients.set(id, client);
    this.#log(`client ${remote.hostname}:${remote.port} connected`);
    try {
      if (this.#stopped) throw new Error("the host is stopping");
      const pipeline = await this.#ensurePipeline();
      this.#media.add(id, lane, remote, this.#congestionSettings(pipeline));
      this.#input.setArea({ x: 0, y: 0, width: pipeline.width, height: pipeline.height });
      this.#input.sendControl(id, encodeControl(pipeline.streamConfig()));
      // A client that joins mid-stream starts at a keyframe.
      pipeline.requestKeyframe();
      await closed;
    } catch (error) {
      const message = (error as Error).message;
      this.#log(`client session failed: ${message}`);
      this.#input.sendControl(
        id,
        encodeControl({ type: "error", code: HostErrorCode.CaptureFailed, text: message }),
      );
      this.#input.close(id, CloseCode.ProtocolError, `host media failed: ${message}`);
      await closed;
    } finally {
      this.#media.remove(id);
      this.#clients.delete(id);
      // A client that held the encoder (its window was full) no longer does.
      this.#pipeline?.setHold(this.#anyClientHolds());
      if (this.#clients.size === 0) await this.#stopPipeline();
    }
  }

  /**
   * Starting and stopping capture go through one queue, so a client that joins while the last
   * one's pipeline is stopping waits for that stop and then gets a fresh pipeline, and a stop
   * queued behind a join does nothing.
   */
  #ensurePipeline(): Promise<MediaPipeline> {
    const next = this.#lifecycle.then(async () => {
      if (this.#pipeline !== undefined) return this.#pipeline;
      // A client accepted just before stop() must not start capture after stop() stopped it.
      if (this.#stopped) throw new Error("the host is stopping");
      const pipeline = await MediaPipeline.start({
        display: this.#options.display,
        source: this.#options.source,
        fps: this.#options.fps,
        bitrateBps: this.#options.bitrateBps,
        nice: this.#options.encoderNice ?? DEFAULT_ENCODER_NICE,
        log: (line) => this.#log(line),
      });
      this.#pipeline = pipeline;
      this.#log(
        `streaming ${pipeline.width}x${pipeline.height}@${pipeline.fps} with ${pipeline.encoderName}`,
      );
      this.#broadcast(pipeline);
      this.#startAudio();
      return pipeline;
    });
    this.#lifecycle = next.catch(() => {});
    return next;
  }

  async #broadcast(pipeline: MediaPipeline): Promise<void> {
    try {
      await this.#sendFrames(pipeline);
    } catch (error) {
      // Capture or encode failed (e.g. the display went away): tell every client why and end
      // their sessions; the host itself keeps listening.
      const message = (error as Error).message;
      this.#log(`media pipeline failed: ${message}`);
      const notice = encodeControl({
        type: "error",
        code: HostErrorCode.CaptureFailed,
        text: message,
      });
      for (const id of this.#clients.keys()) {
        this.#input.sendControl(id, notice);
        this.#input.close(id, CloseCode.ProtocolError, `host media failed: ${message}`);
      }
    }
  }

  async #sendFrames(pipeline: MediaPipeline): Promise<void> {
    let lastStats = performance.now();
    for await (const frame of pipeline.frames()) {
      const t = frame.timing;
      const bytes = frame.payload.length;
      this.#encodeEndUs.set(frame.frameId, t.encodeEndUs);
      if (this.#encodeEndUs.size > 256) {
        this.#encodeEndUs.delete(this.#encodeEndUs.keys().next().value!);
      }
      // The payload moves to the media send worker (transferred, no copy), which stamps it.
      this.#media.sendFrame(frame);
      const captureMs = (t.captureEndUs - frame.captureTimeUs) / 1000;
      const encodeMs = (t.encodeEndUs - t.encodeStartUs) / 1000;
      this.#framesSent++;
      this.#remember(this.#captureMs, captureMs);
      this.#remember(this.#encodeMs, encodeMs);
      this.metrics.stage("capture", captureMs);
      this.metrics.stage("encode", encodeMs);
      this.metrics.frame(bytes, performance.now());
      if (performance.now() - lastStats >= 1000) {
        lastStats = performance.now();
        this.#sendStats(pipeline);
      }
    }
  }

  #congestionSettings(pipeline: MediaPipeline) {
    if (this.#options.congestionControl === false) return undefined;
    const initial = this.#options.bitrateBps;
    return {
      initialBitrateBps: initial,
      maxBitrateBps: this.#options.maxBitrateBps ?? Math.max(4 * initial, 20_000_000),
      width: pipeline.width,
      height: pipeline.height,
      maxFps: pipeline.fps,
    };
  }

  /**
   * DELTA changed its mind for one client. One encoder serves every client, so it follows the
   * most constrained one: the lowest bitrate and frame rate any client's link carries.
   */
  #onDecision(id: number, decision: CongestionDecision): void {
    const client = this.#clients.get(id);
    if (client === undefined) return;
    client.decision = decision;
    this.metrics.congestion({
      targetBitrateBps: decision.mediaBitrateBps,
      sendBitrateBps: decision.targetBitrateBps,
      fecRatio: decision.fecRatio,
      fps: decision.fps,
      queuingDelayMs: decision.queuingDelayMs,
      state: decision.state,
    });
    const pipeline = this.#pipeline;
    if (pipeline === undefined) return;
    let bitrate = Infinity;
    let fps = pipeline.fps;
    for (const c of this.#clients.values()) {
      if (c.decision === undefined) continue;
      bitrate = Math.min(bitrate, c.decision.mediaBitrateBps);
      fps = Math.min(fps, c.decision.fps);
    }
    pipeline.setHold(this.#anyClientHolds());
    if (!Number.isFinite(bitrate)) return;
    const rounded = Math.max(1, Math.min(0x7fffffff, Math.round(bitrate)));
    if (Math.abs(rounded - pipeline.bitrateBps) > 0.01 * pipeline.bitrateBps) {
      pipeline.setBitrate(rounded);
    }
    if (fps !== pipeline.targetFps) {
      this.#log(`frame rate ${pipeline.targetFps} -> ${fps} (${decision.state})`);
      pipeline.setFps(fps);
    }
  }

  /** A client whose link stopped delivering (its DELTA window is full) holds the shared encoder. */
  #anyClientHolds(): boolean {
    for (const c of this.#clients.values()) if (c.decision?.hold) return true;
    return false;
  }

  /** Once a second: the encoder, congestion control and host stage medians, for the overlay. */
  #sendStats(pipeline: MediaPipeline): void {
    const stages = this.metrics.snapshot(performance.now()).stages;
    const stageTimes = (["capture", "encode", "send_queue"] as const).flatMap((name) => {
      const s = stages[name];
      return s === undefined ? [] : [{ name, p50Us: Math.round(s.p50 * 1000) }];
    });
    for (const [id, client] of this.#clients) {
      const d = client.decision;
      const message = encodeControl({
        type: "stats",
        encoder: pipeline.encoderName,
        targetBitrateBps: Math.min(0xffffffff, Math.round(pipeline.bitrateBps)),
        fps: Math.min(255, Math.round(pipeline.targetFps)),
        fecPermille: Math.min(
          0xffff,
          Math.round(1000 * (d?.fecRatio ?? client.lane.fec.parityRatio)),
        ),
        congestionState: d?.state ?? "off",
        queuingDelayUs: Math.min(0xffffffff, Math.round((d?.queuingDelayMs ?? 0) * 1000)),
        stages: stageTimes,
      });
      this.#input.sendControl(id, message);
    }
  }

  #remember(series: number[], value: number): void {
    series.push(value);
    if (series.length > 100_000) series.shift();
  }

  /** Frames handed to clients' sessions since start. */
  get framesSent(): number {
    return this.#framesSent;
  }

  /** Per-frame encode times (ms), oldest first (the last 100 000). */
  get encodeTimesMs(): readonly number[] {
    return this.#encodeMs;
  }

  /** Per-frame capture times (ms), oldest first (the last 100 000). */
  get captureTimesMs(): readonly number[] {
    return this.#captureMs;
  }

  /** Opus packets sent to clients since start. */
  get audioPacketsSent(): number {
    return this.#audioPacketsSent;
  }

  #startAudio(): void {
    const options = this.#options.audio;
    if (options === undefined || this.#audio !== undefined) return;
    const controller = new AbortController();
    this.#audio = controller;
    this.#audioLoop = this.#runAudio(options, controller.signal);
  }

  async #runAudio(
    options: { server?: string; source?: string },
    signal: AbortSignal,
  ): Promise<void> {
    let source: PulseAudioSource | undefined;
    let encoder: OpusEncoder | undefined;
    try {
      source = await PulseAudioSource.open({
        server: options.server,
        source: options.source ?? DEFAULT_MONITOR,
        channels: 2,
      });
      this.#audioSource = source;
      if (signal.aborted) return;
      encoder = new OpusEncoder({ channels: 2, bitrateBps: 96_000 });
      this.#log(`audio: ${options.source ?? "the default sink's monitor"} as Opus, 10 ms frames`);
      let sequence = 0;
      while (!signal.aborted) {
        const frame = await source.read();
        const packet = encoder.encode(frame.samples);
        this.#media.sendAudio(sequence, frame.captureTimeUs, packet);
        sequence = (sequence + 1) >>> 0;
        this.#audioPacketsSent++;
      }
    } catch (error) {
      if (!signal.aborted) this.#log(`audio off: ${(error as Error).message}`);
    } finally {
      encoder?.close();
      source?.close();
      this.#audioSource = undefined;
    }
  }

  async #stopAudio(): Promise<void> {
    this.#audio?.abort();
    this.#audio = undefined;
    // Closing interrupts a read that is waiting for audio (an idle monitor can be silent for seconds).
    this.#audioSource?.close();
    await this.#audioLoop;
    this.#audioLoop = undefined;
  }

  /** Stops capture once no client is left (or always, with `force`), after queued starts. */
  #stopPipeline(force = false): Promise<void> {
    const next = this.#lifecycle.then(async () => {
      if (!force && this.#clients.size > 0) return; // a client joined while this waited
      await this.#stopAudio();
      const pipeline = this.#pipeline;
      this.#pipeline = undefined;
      await pipeline?.stop();
    });
    this.#lifecycle = next.catch(() => {});
    return next;
  }

  /** Closes every session, stops capture, releases input and the socket. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    // The input worker closes every session (CLOSE goes out) before the socket goes away.
    await this.#input.stop();
    for (const client of this.#clients.values()) client.onClosed();
    await this.#stopPipeline(true);
    await this.#media.stop();
    await this.#socket.close();
  }
}
