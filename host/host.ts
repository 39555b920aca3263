/**
 * The Wavry host: listens for RIFT clients, streams the display to every
 * accepted client and injects their input.
 *
 * Capture and encode run in the media worker (host/media_worker.ts); this
 * thread only moves packets and injects input (a few µs per event), so a busy
 * encoder never delays a key press.
 *
 * @module
 */
import type { IdentityKeyPair } from "../crypto/identity.ts";
import { encodeControl, HostErrorCode } from "../core/stream.ts";
import { CloseCode } from "../core/frames.ts";
import type { SessionConfig } from "../core/session.ts";
import { StreamMetrics } from "../edge/metrics.ts";
import { type PeerAddress, type SessionDriver, SessionListener } from "../edge/udp_session.ts";
import { monotonicMicros } from "../media/clock.ts";
import { XTestInputInjector } from "../media/linux/input_xtest.ts";
import { DEFAULT_MONITOR, PulseAudioSource } from "../media/linux/audio_pulse.ts";
import { OpusEncoder } from "../media/opus.ts";
import { encodeClockExtension } from "../core/clock_extension.ts";
import { InputApplier } from "./input_applier.ts";
import { MediaPipeline, toEncodedFrame } from "./media_pipeline.ts";

/** How to run a host. */
export interface HostOptions {
  /** UDP address to listen on (port 0: ephemeral). */
  listen: { hostname?: string; port: number };
  /** X display to capture and inject into. */
  display: string;
  /** Capture rate. */
  fps: number;
  /** Initial video bitrate. */
  bitrateBps: number;
  /** The host's identity. */
  identity: IdentityKeyPair;
  /** Which client identities may connect (default: any). */
  acceptClient?: (identity: Uint8Array) => boolean;
  /**
   * Desktop audio: recorded from this PulseAudio source (default: the default sink's monitor)
   * and sent as Opus. Off when undefined; when it cannot open, the host logs why and streams
   * video alone.
   */
  audio?: { server?: string; source?: string };
  /** Session timers (tests shorten them). */
  sessionConfig?: Partial<SessionConfig>;
  /** Called for each line worth logging. */
  log?: (line: string) => void;
}

interface Client {
  readonly driver: SessionDriver;
  readonly applier: InputApplier;
}

/** A running host. */
export class WavryHost {
  /** Host-side figures. */
  readonly metrics: StreamMetrics = new StreamMetrics("host");
  readonly #listener: SessionListener;
  readonly #options: HostOptions;
  readonly #clients = new Set<Client>();
  readonly #injector: XTestInputInjector;
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

  private constructor(
    listener: SessionListener,
    injector: XTestInputInjector,
    options: HostOptions,
  ) {
    this.#listener = listener;
    this.#injector = injector;
    this.#options = options;
  }

  /** Starts listening; capture starts with the first client and stops with the last. */
  static start(options: HostOptions): WavryHost {
    const injector = XTestInputInjector.open({ display: options.display });
    const monoMinusPerfUs = monotonicMicros() - performance.now() * 1000;
    let listener: SessionListener;
    try {
      listener = SessionListener.listen({
        hostname: options.listen.hostname,
        port: options.listen.port,
        identity: options.identity,
        acceptPeer: options.acceptClient,
        config: options.sessionConfig,
        extension: encodeClockExtension(monoMinusPerfUs),
      });
    } catch (error) {
      injector.close();
      throw error;
    }
    const host = new WavryHost(listener, injector, options);
    host.#acceptLoop();
    return host;
  }

  /** The bound UDP address. */
  get addr(): PeerAddress {
    return this.#listener.addr;
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

  async #acceptLoop(): Promise<void> {
    for await (const driver of this.#listener.accept()) {
      if (this.#stopped) {
        await driver.close();
        continue;
      }
      this.#serve(driver);
    }
  }

  /** Serves one client until its session ends; never throws (the accept loop does not wait for it). */
  async #serve(driver: SessionDriver): Promise<void> {
    let screen = { width: 1, height: 1 };
    try {
      screen = this.#injector.screenSize();
    } catch {
      // The display is gone; starting the pipeline below reports it to the client.
    }
    const client: Client = {
      driver,
      applier: new InputApplier(this.#injector, {
        area: () => ({
          x: 0,
          y: 0,
          width: this.#pipeline?.width ?? screen.width,
          height: this.#pipeline?.height ?? screen.height,
        }),
      }),
    };
    this.#clients.add(client);
    this.#log(`client ${driver.remote.hostname}:${driver.remote.port} connected`);
    try {
      const pipeline = await this.#ensurePipeline();
      driver.sendControl(encodeControl(pipeline.streamConfig()));
      // A client that joins mid-stream starts at a keyframe.
      pipeline.requestKeyframe();
      for await (const event of driver.events()) {
        if (event.type === "input") {
          const applied = client.applier.apply(event.data);
          if (applied.ok) driver.sendControl(applied.value.replyBytes);
        } else if (event.type === "keyframe-request") {
          this.#pipeline?.requestKeyframe();
        } else if (event.type === "closed") {
          this.#log(`client disconnected: ${event.reason || `code ${event.code}`}`);
        }
      }
    } catch (error) {
      const message = (error as Error).message;
      this.#log(`client session failed: ${message}`);
      driver.sendControl(
        encodeControl({ type: "error", code: HostErrorCode.CaptureFailed, text: message }),
      );
      await driver.close(CloseCode.ProtocolError, `host media failed: ${message}`).catch(() => {});
    } finally {
      // Nothing stays pressed for a client that went away (unless the display went with it).
      try {
        client.applier.releaseAll();
      } catch (error) {
        this.#log(`releasing input failed: ${(error as Error).message}`);
      }
      this.#clients.delete(client);
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
        fps: this.#options.fps,
        bitrateBps: this.#options.bitrateBps,
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
      for (const client of this.#clients) {
        client.driver.sendControl(notice);
        client.driver.close(CloseCode.ProtocolError, `host media failed: ${message}`).catch(
          () => {},
        );
      }
    }
  }

  async #sendFrames(pipeline: MediaPipeline): Promise<void> {
    let lastStats = performance.now();
    for await (const frame of pipeline.frames()) {
      const handedUs = monotonicMicros();
      const encoded = toEncodedFrame(frame, handedUs);
      for (const client of this.#clients) client.driver.sendVideoFrame(encoded);
      const t = frame.timing;
      const captureMs = (t.captureEndUs - frame.captureTimeUs) / 1000;
      const encodeMs = (t.encodeEndUs - t.encodeStartUs) / 1000;
      this.#framesSent++;
      this.#remember(this.#captureMs, captureMs);
      this.#remember(this.#encodeMs, encodeMs);
      this.metrics.stage("capture", captureMs);
      this.metrics.stage("encode", encodeMs);
      this.metrics.stage("send_queue", (handedUs - t.encodeEndUs) / 1000);
      this.metrics.frame(encoded.data.length, performance.now());
      if (performance.now() - lastStats >= 1000) {
        lastStats = performance.now();
        this.#sendStats(pipeline);
      }
    }
  }

  /** Once a second: the encoder and the host-side stage medians, for the client's overlay. */
  #sendStats(pipeline: MediaPipeline): void {
    const stages = this.metrics.snapshot(performance.now()).stages;
    const message = encodeControl({
      type: "stats",
      encoder: pipeline.encoderName,
      targetBitrateBps: Math.min(0xffffffff, Math.round(pipeline.bitrateBps)),
      stages: (["capture", "encode", "send_queue"] as const).flatMap((name) => {
        const s = stages[name];
        return s === undefined ? [] : [{ name, p50Us: Math.round(s.p50 * 1000) }];
      }),
    });
    for (const client of this.#clients) client.driver.sendControl(message);
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
        for (const client of this.#clients) {
          client.driver.sendAudio(sequence, frame.captureTimeUs, packet);
        }
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
    await Promise.all([...this.#clients].map((c) => c.driver.close()));
    await this.#stopPipeline(true);
    await this.#listener.close();
    this.#injector.close();
  }
}
