/**
 * The numbers a user sees, measured once and shown everywhere: the player's
 * overlay reads {@linkcode StreamMetrics.snapshot}, Prometheus reads
 * {@linkcode StreamMetrics.prometheus}. Host and client each keep one.
 *
 * @module
 */
import client from "prom-client";

/** Where a frame spends its time, from the host's screen to the client's. */
export const STAGES = [
  "capture",
  "encode",
  "send_queue",
  "network",
  "reassembly",
  "decode",
  "present",
  "glass_to_glass",
  "input",
] as const;

/** One latency stage. */
export type Stage = typeof STAGES[number];

/** Percentiles of one stage over the recent window, in ms. */
export interface StageSummary {
  /** Median. */
  readonly p50: number;
  /** 99th percentile. */
  readonly p99: number;
  /** Samples in the window. */
  readonly count: number;
}

/** What the overlay shows. */
export interface MetricsSnapshot {
  /** Frames per second over the last second. */
  readonly fps: number;
  /** Bits per second over the last second. */
  readonly bitrateBps: number;
  /** Smoothed round-trip time, ms. */
  readonly rttMs: number;
  /** Fraction of packets lost (0..1). */
  readonly loss: number;
  /** Frames given up or dropped. */
  readonly framesDropped: number;
  /** Frames rebuilt by FEC. */
  readonly fecRecoveries: number;
  /** Congestion control's latest decision, once there is one. */
  readonly congestion: CongestionFigures | undefined;
  /** Latency by stage. */
  readonly stages: Readonly<Partial<Record<Stage, StageSummary>>>;
}

/** What congestion control decided, as shown in the overlay and exported. */
export interface CongestionFigures {
  /** Encoder target, bit/s. */
  readonly targetBitrateBps: number;
  /** Congestion control's send budget (encoder + FEC + headers), bit/s, when known. */
  readonly sendBitrateBps?: number;
  /** FEC parity per data packet. */
  readonly fecRatio: number;
  /** Frame rate being encoded. */
  readonly fps: number;
  /** Queuing delay estimate, ms. */
  readonly queuingDelayMs: number;
  /** Controller state ("off" without a controller). */
  readonly state: string;
}

const WINDOW = 600;

/** Latency, rate and loss figures of one program (host or client). */
export class StreamMetrics {
  readonly #registry = new client.Registry();
  readonly #stageHistogram: client.Histogram<"stage">;
  readonly #frames: client.Counter;
  readonly #bytes: client.Counter;
  readonly #dropped: client.Counter;
  readonly #fec: client.Counter;
  readonly #rtt: client.Gauge;
  readonly #loss: client.Gauge;
  readonly #fps: client.Gauge;
  readonly #bitrate: client.Gauge;
  readonly #target: client.Gauge;
  readonly #fecRatio: client.Gauge;
  readonly #encodedFps: client.Gauge;
  readonly #queuingDelay: client.Gauge;
  readonly #congestionState: client.Gauge;
  readonly #path: client.Gauge;
  #pathKind: string | undefined;
  #congestion: CongestionFigures | undefined;
  readonly #samples = new Map<Stage, number[]>();
  readonly #frameTimes: number[] = [];
  readonly #byteTimes: { at: number; bytes: number }[] = [];
  #rttMs = 0;
  #lossRatio = 0;
  #droppedTotal = 0;
  #fecTotal = 0;

  /** @param role "host" or "client": the `role` label on every series. */
  constructor(role: "host" | "client") {
    this.#registry.setDefaultLabels({ role });
    const registers = [this.#registry];
    this.#stageHistogram = new client.Histogram({
      name: "wavry_stage_latency_ms",
      help: "Latency of each pipeline stage in milliseconds",
      labelNames: ["stage"],
      buckets: [0.25, 0.5, 1, 2, 4, 8, 16, 33, 50, 100, 200, 500],
      registers,
    });
    this.#frames = new client.Counter({
      name: "wavry_frames_total",
      help: "Video frames sent (host) or decoded (client)",
      registers,
    });
    this.#bytes = new client.Counter({
      name: "wavry_video_bytes_total",
      help: "Encoded video bytes sent (host) or received (client)",
      registers,
    });
    this.#dropped = new client.Counter({
      name: "wavry_frames_dropped_total",
      help: "Video frames given up or dropped",
      registers,
    });
    this.#fec = new client.Counter({
      name: "wavry_fec_recoveries_total",
      help: "Packets rebuilt by forward error correction",
      registers,
    });
    this.#rtt = new client.Gauge({ name: "wavry_rtt_ms", help: "Smoothed RTT", registers });
    this.#loss = new client.Gauge({ name: "wavry_loss_ratio", help: "Packet loss", registers });
    this.#fps = new client.Gauge({ name: "wavry_fps", help: "Frames per second", registers });
    this.#bitrate = new client.Gauge({
      name: "wavry_bitrate_bps",
      help: "Video bits per second",
      registers,
    });
    this.#target = new client.Gauge({
      name: "wavry_target_bitrate_bps",
      help: "Encoder target bitrate chosen by congestion control",
      registers,
    });
    this.#fecRatio = new client.Gauge({
      name: "wavry_fec_ratio",
      help: "FEC parity packets per data packet",
      registers,
    });
    this.#encodedFps = new client.Gauge({
      name: "wavry_encoded_fps",
      help: "Frame rate being encoded (lowered when the link cannot carry more)",
      registers,
    });
    this.#queuingDelay = new client.Gauge({
      name: "wavry_queuing_delay_ms",
      help: "Queuing delay estimated by congestion control",
      registers,
    });
    this.#congestionState = new client.Gauge({
      name: "wavry_congestion_state",
      help: "1 for the congestion controller's current state",
      labelNames: ["state"],
      registers,
    });
    this.#path = new client.Gauge({
      name: "wavry_path",
      help:
        "1 for the network path in use: host, srflx, prflx (direct, by the host's candidate type), relay, direct-address (no ICE)",
      labelNames: ["path"],
      registers,
    });
  }

  /** Sets the network path the session runs on (one series at 1, the others removed). */
  path(kind: string): void {
    this.#pathKind = kind;
    this.#path.reset();
    this.#path.set({ path: kind }, 1);
  }

  /** The path last set with {@linkcode StreamMetrics.path}. */
  get pathKind(): string | undefined {
    return this.#pathKind;
  }

  /** Sets what congestion control decided (host: its own decision; client: the host's STATS). */
  congestion(figures: CongestionFigures): void {
    this.#congestion = { ...figures };
    this.#target.set(figures.targetBitrateBps);
    this.#fecRatio.set(figures.fecRatio);
    this.#encodedFps.set(figures.fps);
    this.#queuingDelay.set(figures.queuingDelayMs);
    this.#congestionState.reset();
    this.#congestionState.set({ state: figures.state }, 1);
  }

  /** Records one latency sample for `stage`. Negative or non-finite samples are ignored. */
  stage(stage: Stage, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.#stageHistogram.observe({ stage }, ms);
    let window = this.#samples.get(stage);
    if (window === undefined) this.#samples.set(stage, window = []);
    window.push(ms);
    if (window.length > WINDOW) window.shift();
  }

  /** Counts one video frame of `bytes` at `nowMs`. */
  frame(bytes: number, nowMs: number): void {
    this.#frames.inc();
    this.#bytes.inc(bytes);
    this.#frameTimes.push(nowMs);
    this.#byteTimes.push({ at: nowMs, bytes });
    this.#trim(nowMs);
  }

  /** Counts dropped frames. */
  dropped(count = 1): void {
    this.#dropped.inc(count);
    this.#droppedTotal += count;
  }

  /** Counts FEC recoveries. */
  fecRecovered(count = 1): void {
    this.#fec.inc(count);
    this.#fecTotal += count;
  }

  /** Sets the transport figures. */
  transport(rttMs: number, lossRatio: number): void {
    this.#rttMs = rttMs;
    this.#lossRatio = lossRatio;
    this.#rtt.set(rttMs);
    this.#loss.set(lossRatio);
  }

  /** The current figures, for the overlay and status lines. */
  snapshot(nowMs: number): MetricsSnapshot {
    this.#trim(nowMs);
    const fps = this.#frameTimes.length;
    const bitrateBps = this.#byteTimes.reduce((sum, b) => sum + b.bytes, 0) * 8;
    this.#fps.set(fps);
    this.#bitrate.set(bitrateBps);
    const stages: Partial<Record<Stage, StageSummary>> = {};
    for (const [stage, window] of this.#samples) {
      const sorted = [...window].sort((a, b) => a - b);
      stages[stage] = {
        p50: sorted[Math.floor(0.5 * (sorted.length - 1))],
        p99: sorted[Math.floor(0.99 * (sorted.length - 1))],
        count: sorted.length,
      };
    }
    return {
      fps,
      bitrateBps,
      rttMs: this.#rttMs,
      loss: this.#lossRatio,
      framesDropped: this.#droppedTotal,
      fecRecoveries: this.#fecTotal,
      congestion: this.#congestion,
      stages,
    };
  }

  /** Prometheus text exposition of every series. */
  prometheus(): Promise<string> {
    return this.#registry.metrics();
  }

  /** Content type of {@linkcode prometheus}'s text. */
  get contentType(): string {
    return this.#registry.contentType;
  }

  #trim(nowMs: number): void {
    while (this.#frameTimes.length > 0 && this.#frameTimes[0] <= nowMs - 1000) {
      this.#frameTimes.shift();
    }
    while (this.#byteTimes.length > 0 && this.#byteTimes[0].at <= nowMs - 1000) {
      this.#byteTimes.shift();
    }
  }
}
