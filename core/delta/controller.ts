/**
 * DELTA: a delay-oriented congestion controller for interactive video.
 *
 * Sans-IO and deterministic: it is told when packets left
 * (`onPacketSent`), when the receiver saw them (`onFeedback`, receiver
 * clock), RTT samples and explicit losses, and it answers with a target
 * bitrate for the encoder, a pacing rate, a FEC ratio and a frame rate. It
 * reads no clock and draws no random numbers. See docs/DELTA.md for the
 * algorithm and why every constant has its value.
 *
 * @module
 */

import { AdaptiveFecPolicy } from "../fec/adaptive.ts";

/** What the controller believes about the bottleneck queue. */
export type DeltaState = "stable" | "rising" | "congested" | "draining";
/** What users are shown: the state, or "competing" while another flow holds the queue. */
export type DeltaReportedState = DeltaState | "competing";

/** One packet the receiver reported, with its receive time on the receiver's clock. */
export interface DeltaArrival {
  /** Packet number, as given to `onPacketSent`. */
  readonly packetNumber: number;
  /** Receive time in µs on the receiver's clock (any fixed offset from ours). */
  readonly receiveTimeUs: number;
}

/** Parameters of {@linkcode DeltaController}. */
export interface DeltaConfig {
  /** Target before any feedback, bit/s. */
  initialBitrateBps: number;
  /** Never below this, bit/s. */
  minBitrateBps: number;
  /** Never above this (the encoder's or the user's cap), bit/s. */
  maxBitrateBps: number;
  /** Usual media packet size, bytes (turns a bitrate into packets per frame for FEC). */
  packetBytes: number;
  /** Picture width in pixels (for the bits-per-pixel frame-rate policy). */
  width: number;
  /** Picture height in pixels. */
  height: number;
  /** Highest frame rate the source produces. */
  maxFps: number;
  /** How often the receiver sends feedback, µs (sets the decrease hold-off). */
  feedbackIntervalUs: number;
}

/** Defaults of {@linkcode DeltaConfig}: a 1080p60 stream up to 50 Mbit/s. */
export const DEFAULT_DELTA_CONFIG: Readonly<DeltaConfig> = {
  initialBitrateBps: 4_000_000,
  minBitrateBps: 150_000,
  maxBitrateBps: 50_000_000,
  packetBytes: 1200,
  width: 1920,
  height: 1080,
  maxFps: 60,
  feedbackIntervalUs: 20_000,
};

/** Counters of inputs the controller refused or could not use. */
export interface DeltaStats {
  /** Feedback entries used as delay samples. */
  samples: number;
  /** Entries for packets never sent, forgotten, or already reported. */
  unknownOrDuplicate: number;
  /** Entries with a non-finite or implausible time or packet number. */
  garbage: number;
  /** Packets declared lost (gap in feedback or `onLoss`). */
  lost: number;
  /** Multiplicative decreases taken. */
  decreases: number;
  /** Decreases because no feedback came back in time. */
  feedbackTimeouts: number;
  /** Losses while the bottleneck queue was overflowing (kept from the FEC loss estimate). */
  overflowLosses: number;
  /** Times competing mode began (a queue our own cuts could not drain). */
  competingEntries: number;
}

// --- Constants (docs/DELTA.md explains each one) ---------------------------

/** Base delay = min one-way delay over this many buckets... */
export const BASE_BUCKETS = 10;
/** ...of this length each (a 10 s window that forgets a stale minimum). */
export const BASE_BUCKET_US = 1_000_000;
/** Standing-queue window: the min queuing delay over this much receive time (≥ a frame interval). */
export const STANDING_MIN_WINDOW_US = 15_000;
/** Trend (least-squares slope) over this much receive time, or 2.5 frame intervals if longer. */
export const TREND_WINDOW_US = 40_000;
/** Receive rate over this much receive time (short: after a drop only the new rate counts). */
export const RECV_RATE_WINDOW_US = 30_000;
/** Longer receive-rate window used to cap increases when the sender is app-limited. */
export const RECV_RATE_LONG_WINDOW_US = 250_000;
/** Standing queue at which the state is at least Rising. */
export const Q_RISING_US = 5_000;
/** Standing queue that means Congested. */
export const Q_CONGESTED_US = 10_000;
/** Below this standing queue the queue counts as gone (leave Draining/Congested). */
export const Q_DRAINED_US = 3_000;
/** Congested threshold (and the onset and spike rules' latest delay) + this × service time. */
export const SVC_CONGESTED = 1.5;
/** Rising threshold + this × service time. */
export const SVC_RISING = 1;
/** Drained threshold + this × service time. */
export const SVC_DRAINED = 0.5;
/** Queuing-delay slope (µs per µs) that signals onset when the latest delay is above Q_ONSET_US. */
export const ONSET_SLOPE = 0.25;
/** Latest queuing delay needed for the slope rule. */
export const Q_ONSET_US = 4_000;
/** A single recent delay this high while the trend is up is onset, not a frame's ramp... */
export const Q_SPIKE_US = 20_000;
/** ...with at least this slope. */
export const SPIKE_SLOPE = 0.1;
/** Slope above which a small queue counts as Rising. */
export const RISING_SLOPE = 0.05;
/** Time in which a decrease plans to drain the estimated queue. */
export const DRAIN_US = 150_000;
/** Decrease factor bounds on the measured receive rate. */
export const BETA_MIN = 0.3;
/** Largest decrease factor (smallest cut). */
export const BETA_MAX = 0.9;
/** Fast recovery toward the last good rate: time constant. */
export const RECOVERY_TAU_US = 200_000;
/** Fast recovery stops this close to the last good rate; probing takes over. */
export const RECOVERY_BAND = 0.95;
/** Probing growth rate (per second, exponential) when the delay just became flat. */
export const PROBE_GROWTH_START = 0.05;
/** The probing growth rate doubles every this long of continuous Stable. */
export const PROBE_DOUBLING_US = 250_000;
/** Cap on the probing growth rate, per second. */
export const PROBE_GROWTH_MAX = 0.8;
/** The target never exceeds this multiple of the long receive rate (app-limited guard). */
export const APP_LIMIT_HEADROOM = 1.5;
/** RTT assumed before the first sample, µs. */
export const DEFAULT_RTT_US = 100_000;
/** Window slack beyond RTT + two feedback intervals: the queue a frame may build, µs. */
export const WINDOW_MARGIN_US = 20_000;
/** Pacing rate = target × this. */
export const PACING_GAIN = 1.5;
/** Loss rate that counts as congestion even with flat delay. */
export const HIGH_LOSS = 0.15;
/** EWMA weight per packet of the loss rate used by the rate logic. */
export const LOSS_ALPHA = 1 / 200;
/** A packet counts as lost when this many later-sent packets were reported. */
export const REORDER_THRESHOLD = 3;
/** Sent packets remembered at most (older ones are forgotten). */
export const MAX_TRACKED = 16384;
/** Samples whose queuing delay exceeds this are garbage (or a clock jump). */
export const MAX_QUEUE_US = 3_000_000;
/** Samples this far below the base delay are garbage (or a clock jump). */
export const MAX_BASE_DROP_US = 1_000_000;
/** Without feedback for max(this × srtt, FEEDBACK_TIMEOUT_MIN_US) the rate is cut. */
export const FEEDBACK_TIMEOUT_RTTS = 4;
/** Smallest feedback timeout. */
export const FEEDBACK_TIMEOUT_MIN_US = 400_000;
/** Cut applied per feedback timeout. */
export const FEEDBACK_TIMEOUT_BETA = 0.7;
/** A standing queue at least this long at a decrease may be someone else's (competing mode)... */
export const COMPETE_QUEUE_US = 200_000;
/** ...when this many decreases in a row, each at least that long, left it no shorter than... */
export const COMPETE_CUTS = 4;
/** ...this share of the queue at the previous decrease (a cut of our own drains ours). */
export const COMPETE_KEEP = 0.8;
/** In competing mode: cut on a loss event (at most once per smoothed RTT) by this factor. */
export const COMPETE_BETA = 0.7;
/** In competing mode: grow by this much per second (exponential) while no loss is reported. */
export const COMPETE_GROWTH = 0.15;
/** Competing mode ends when the standing queue falls under this (the other flow left). */
export const COMPETE_EXIT_US = 50_000;
/** Frame-rate ladder, highest first. */
export const FPS_LADDER: readonly number[] = [60, 45, 30, 20];
/** Lower the frame rate when bits per pixel at the current rate fall below this. */
export const BPP_LOWER = 0.05;
/** Raise the frame rate when bits per pixel at the higher rate would be at least this... */
export const BPP_RAISE = 0.07;
/** ...continuously for this long. */
export const FPS_RAISE_HOLD_US = 1_000_000;

interface Sent {
  sendUs: number;
  size: number;
  /** 0 = in flight, 1 = acked, 2 = declared lost (a late ack still gives a delay sample). */
  fate: 0 | 1 | 2;
  resolved: boolean;
}

function finite(x: number): boolean {
  return typeof x === "number" && Number.isFinite(x);
}

/** A plausible time in µs: finite and within ±2^53 (beyond that, µs arithmetic loses precision). */
function time(x: number): boolean {
  return finite(x) && Math.abs(x) <= Number.MAX_SAFE_INTEGER;
}

/**
 * The DELTA controller. Feed it events in time order; read its outputs at
 * any time. All times are µs on the sender's clock, except receive times,
 * which are on the receiver's.
 *
 * @example
 * ```ts
 * const cc = new DeltaController({ initialBitrateBps: 5e6 });
 * cc.onPacketSent(0, 1200, 0);
 * cc.onFeedback([{ packetNumber: 0, receiveTimeUs: 25_000 }], 50_000);
 * encoder.setBitrate(cc.mediaBitrateBps);
 * pacer.setRate(cc.pacingRateBps);
 * ```
 */
export class DeltaController {
  readonly #cfg: DeltaConfig;
  readonly #fec = new AdaptiveFecPolicy();
  #target: number;
  #state: DeltaState = "stable";
  #stats: DeltaStats = {
    samples: 0,
    unknownOrDuplicate: 0,
    garbage: 0,
    lost: 0,
    decreases: 0,
    feedbackTimeouts: 0,
    overflowLosses: 0,
    competingEntries: 0,
  };

  // Sent packets, in packet-number order.
  readonly #sent = new Map<number, Sent>();
  #order: number[] = [];
  #resolveCursor = 0;
  #largestSent = -1;
  #largestAcked = -1;
  #inflight = 0;
  #minRttUs: number | undefined;

  // Delay.
  #baseBuckets: { start: number; min: number }[] = [];
  #samples: { recv: number; q: number }[] = [];
  #latestRecv = -Infinity;
  #standing = 0;
  #slope = 0;
  #latestQ = 0;

  // Rates.
  #recv: { recv: number; size: number }[] = [];
  #sendLog: { t: number; size: number }[] = [];
  #recvRate = 0;
  #recvRateLong = 0;
  #lastGood: number;

  // Loss.
  #lossRate = 0;
  #lostInLastFeedback = 0;

  // Time.
  #srttUs: number | undefined;
  #lastUpdateUs: number | undefined;
  #lastFeedbackUs: number | undefined;
  #lastDecreaseUs = -Infinity;
  #stableSinceUs: number | undefined;

  // Competing mode: a loss-driven AIMD while another flow holds the queue (docs/DELTA.md).
  #competing = false;
  /** Base delay when competing began: a queue kept full longer than the base window must not become the base. */
  #competeBaseUs = Infinity;
  #undrainedCuts = 0;
  #queueAtLastCut = 0;

  // Outputs derived per feedback.
  #fecRatio = 0;
  #fps: number;
  #raiseSinceUs: number | undefined;

  /** @param config overrides of {@linkcode DEFAULT_DELTA_CONFIG} */
  constructor(config: Partial<DeltaConfig> = {}) {
    const c = { ...DEFAULT_DELTA_CONFIG, ...config };
    const positive = (name: keyof DeltaConfig) => {
      if (!(finite(c[name]) && c[name] > 0)) {
        throw new RangeError(`DeltaController: ${name} must be a positive number`);
      }
    };
    for (const k of Object.keys(DEFAULT_DELTA_CONFIG) as (keyof DeltaConfig)[]) positive(k);
    if (c.minBitrateBps > c.maxBitrateBps) {
      throw new RangeError("DeltaController: minBitrateBps > maxBitrateBps");
    }
    this.#cfg = c;
    this.#target = Math.min(c.maxBitrateBps, Math.max(c.minBitrateBps, c.initialBitrateBps));
    this.#lastGood = this.#target;
    this.#fps = FPS_LADDER.find((f) => f <= c.maxFps) ?? c.maxFps;
    this.#updateFps(0);
    this.#updateFec();
  }

  // --- Outputs ---------------------------------------------------------------

  /** Total send budget for media plus FEC, bit/s, in [minBitrateBps, maxBitrateBps]. */
  get targetBitrateBps(): number {
    return this.#target;
  }

  /** What the encoder should produce: the target minus the FEC share. */
  get mediaBitrateBps(): number {
    return this.#target / (1 + this.#fecRatio);
  }

  /** Rate for the pacer: above the target so a frame leaves well within its interval. */
  get pacingRateBps(): number {
    return this.#target * PACING_GAIN;
  }

  /** Bytes sent and neither reported received nor declared lost. */
  get bytesInFlight(): number {
    return Math.max(0, this.#inflight);
  }

  /**
   * Most bytes in flight before the sender should skip frames: the target
   * over the smallest RTT plus two feedback intervals plus WINDOW_MARGIN_US.
   * When the link stalls, reports stop and this gate closes within about one
   * RTT, long before the delay trend could be measured.
   */
  get congestionWindowBytes(): number {
    // While competing the queue is the other flow's and cannot be avoided: the window spans it.
    const rtt = this.#competing
      ? (this.#srttUs ?? this.#minRttUs ?? DEFAULT_RTT_US)
      : (this.#minRttUs ?? DEFAULT_RTT_US);
    const span = rtt + 2 * this.#cfg.feedbackIntervalUs + WINDOW_MARGIN_US;
    return Math.max(4 * this.#cfg.packetBytes, (this.#target / 8) * (span / 1e6));
  }

  /** Whether a new frame of `bytes` may be sent now (in flight + `bytes` within the window). */
  canSend(bytes: number): boolean {
    return this.bytesInFlight + Math.max(0, bytes) <= this.congestionWindowBytes ||
      this.bytesInFlight === 0;
  }

  /** Current classification of the bottleneck queue. */
  get state(): DeltaState {
    return this.#state;
  }

  /**
   * Whether the controller is in competing mode: a standing queue survived
   * COMPETE_CUTS of its own cuts, so another (loss-based) flow holds it, and the
   * rate follows loss instead of delay until the queue falls under COMPETE_EXIT_US.
   */
  get competing(): boolean {
    return this.#competing;
  }

  /**
   * The state as users see it (STATS, the overlay, Prometheus): "competing"
   * in competing mode, where {@linkcode state} reads "congested" for the
   * controller's own rules.
   */
  get reportedState(): DeltaReportedState {
    return this.#competing ? "competing" : this.#state;
  }

  /** Recommended parity/data ratio for the next frame (adaptive FEC over measured loss). */
  get fecRatio(): number {
    return this.#fecRatio;
  }

  /** Recommended frame rate (from {@linkcode FPS_LADDER}, at most maxFps). */
  get fps(): number {
    return this.#fps;
  }

  /** Standing queuing delay estimate, µs. */
  get queuingDelayUs(): number {
    return this.#standing;
  }

  /** Queuing-delay trend, µs of delay per µs of time (dimensionless). */
  get trend(): number {
    return this.#slope;
  }

  /** Receive rate measured over the short window, bit/s (0 before enough samples). */
  get receiveRateBps(): number {
    return this.#recvRate;
  }

  /** Per-packet loss rate estimate (EWMA). */
  get lossRate(): number {
    return this.#lossRate;
  }

  /** Loss rate as the FEC policy sees it (overflow losses left out). */
  get fecLossRate(): number {
    return this.#fec.lossRate;
  }

  /** Mean loss-run length in packets, as the FEC policy sees it. */
  get meanLossBurst(): number {
    return this.#fec.meanBurst;
  }

  /** Counters (a snapshot copy). */
  get stats(): DeltaStats {
    return { ...this.#stats };
  }

  /** When `onTick` should next be called (feedback-timeout check), µs, if ever. */
  pollTimeout(): number | undefined {
    if (this.#lastFeedbackUs === undefined) return undefined;
    return this.#lastFeedbackUs + this.#feedbackTimeoutUs();
  }

  // --- Inputs ----------------------------------------------------------------

  /**
   * A packet left. Packet numbers must increase; others are ignored
   * (counted as garbage).
   */
  onPacketSent(packetNumber: number, sizeBytes: number, sendTimeUs: number): void {
    if (
      !Number.isSafeInteger(packetNumber) || packetNumber <= this.#largestSent ||
      !finite(sizeBytes) || sizeBytes < 0 || sizeBytes > 1e6 || !time(sendTimeUs)
    ) {
      this.#stats.garbage++;
      return;
    }
    this.#largestSent = packetNumber;
    this.#sent.set(packetNumber, { sendUs: sendTimeUs, size: sizeBytes, fate: 0, resolved: false });
    this.#inflight += sizeBytes;
    this.#order.push(packetNumber);
    this.#sendLog.push({ t: sendTimeUs, size: sizeBytes });
    while (this.#sendLog.length > 0 && this.#sendLog[0].t < sendTimeUs - 200_000) {
      this.#sendLog.shift();
    }
    this.#forget();
  }

  /** An RTT sample (µs), e.g. from a ping/pong exchange. Non-finite or negative ones are ignored. */
  onRttSample(rttUs: number): void {
    if (!finite(rttUs) || rttUs < 0 || rttUs > 60_000_000) {
      this.#stats.garbage++;
      return;
    }
    this.#srttUs = this.#srttUs === undefined ? rttUs : 0.875 * this.#srttUs + 0.125 * rttUs;
    this.#minRttUs = Math.min(this.#minRttUs ?? Infinity, rttUs);
  }

  /** Packets known lost by other means (e.g. the session's own loss detection). */
  onLoss(packetNumbers: readonly number[], nowUs: number): void {
    for (const pn of packetNumbers) {
      const s = this.#sent.get(pn);
      if (s === undefined || s.fate !== 0) continue;
      this.#markLost(s);
      this.#lostInLastFeedback++;
    }
    this.#resolve();
    if (time(nowUs)) this.#update(nowUs);
  }

  /**
   * A feedback report: which packets arrived and when (receiver clock). Any
   * order, duplicates and garbage are tolerated (counted in `stats`).
   */
  onFeedback(entries: readonly DeltaArrival[], nowUs: number): void {
    if (!time(nowUs)) {
      this.#stats.garbage++;
      return;
    }
    this.#lastFeedbackUs = nowUs;
    this.#lostInLastFeedback = 0;
    for (const e of entries) this.#onArrival(e);
    // Gap-based loss detection, then in-order resolution for the loss and FEC estimators.
    const limit = this.#largestAcked - REORDER_THRESHOLD;
    for (let i = this.#resolveCursor; i < this.#order.length; i++) {
      const pn = this.#order[i];
      if (pn > limit) break;
      const s = this.#sent.get(pn);
      if (s !== undefined && s.fate === 0) this.#markLost(s);
    }
    // Measure first: #resolve tells overflow losses by the queue this very report shows.
    this.#measure();
    this.#resolve();
    this.#update(nowUs);
  }

  /** Timer: cuts the rate when feedback stopped coming (a dead or congested return path). */
  onTick(nowUs: number): void {
    if (!time(nowUs) || this.#lastFeedbackUs === undefined) return;
    // 1 µs of slack: callers may round their clock to whole µs.
    if (nowUs - this.#lastFeedbackUs >= this.#feedbackTimeoutUs() - 1) {
      this.#setTarget(this.#target * FEEDBACK_TIMEOUT_BETA);
      this.#lastGood = Math.min(this.#lastGood, this.#target);
      this.#stats.feedbackTimeouts++;
      this.#state = "congested";
      this.#stableSinceUs = undefined;
      // Packets sent a whole timeout ago will not be reported: stop counting them in flight,
      // or a dead feedback path would close the window for good.
      const horizon = nowUs - this.#feedbackTimeoutUs();
      for (const s of this.#sent.values()) {
        if (s.sendUs > horizon) break;
        if (s.fate === 0) this.#markLost(s);
      }
      this.#resolve(false);
      this.#lastFeedbackUs = nowUs; // next cut one timeout later
      this.#lastUpdateUs = nowUs;
      this.#updateFps(nowUs);
    }
  }

  // --- Internals -------------------------------------------------------------

  #markLost(s: Sent): void {
    s.fate = 2;
    this.#inflight -= s.size;
    this.#stats.lost++;
    this.#lostInLastFeedback++;
  }

  #feedbackTimeoutUs(): number {
    return Math.max(FEEDBACK_TIMEOUT_MIN_US, FEEDBACK_TIMEOUT_RTTS * (this.#srttUs ?? 0));
  }

  #onArrival(e: DeltaArrival): void {
    if (e === null || typeof e !== "object") {
      this.#stats.garbage++;
      return;
    }
    const pn = e.packetNumber, recv = e.receiveTimeUs;
    if (!Number.isSafeInteger(pn) || pn < 0 || !time(recv)) {
      this.#stats.garbage++;
      return;
    }
    const s = this.#sent.get(pn);
    if (s === undefined || s.fate === 1) {
      this.#stats.unknownOrDuplicate++;
      return;
    }
    const owd = recv - s.sendUs;
    const base = this.#base();
    if (base !== undefined && (owd - base > MAX_QUEUE_US || base - owd > MAX_BASE_DROP_US)) {
      this.#stats.garbage++;
      return;
    }
    if (s.fate === 0) this.#inflight -= s.size;
    s.fate = 1;
    if (pn > this.#largestAcked) this.#largestAcked = pn;
    this.#addBase(owd, s.sendUs);
    const q = Math.max(0, owd - this.#base()!);
    this.#samples.push({ recv, q });
    this.#recv.push({ recv, size: s.size });
    if (recv > this.#latestRecv) {
      this.#latestRecv = recv;
      this.#latestQ = q;
    }
    this.#stats.samples++;
  }

  #addBase(owd: number, atUs: number): void {
    const start = Math.floor(atUs / BASE_BUCKET_US) * BASE_BUCKET_US;
    const b = this.#baseBuckets;
    const last = b[b.length - 1];
    if (last !== undefined && last.start === start) last.min = Math.min(last.min, owd);
    else if (last === undefined || start > last.start) b.push({ start, min: owd });
    else {
      // A late packet from an older bucket: fold it into the oldest bucket it can touch.
      const hit = b.find((x) => x.start === start) ?? last;
      hit.min = Math.min(hit.min, owd);
    }
    while (b.length > 0 && b[0].start <= start - BASE_BUCKETS * BASE_BUCKET_US) b.shift();
  }

  #base(): number | undefined {
    let m = this.#competing ? this.#competeBaseUs : Infinity;
    for (const x of this.#baseBuckets) m = Math.min(m, x.min);
    return m === Infinity ? undefined : m;
  }

  /**
   * Moves the resolved head of the sent list into the loss estimates.
   * `forFec` false keeps those fates from the FEC estimator (packets written off by a
   * feedback timeout: a stalled path, not random loss).
   */
  #resolve(forFec = true): void {
    const fates: boolean[] = [];
    // A loss while a standing queue is at the Congested threshold is the bottleneck's queue
    // overflowing: parity cannot repair that (it only adds to the overflow), so the FEC
    // estimator sees neither those losses nor their neighbours; the controller's own loss rate
    // counts them all.
    const overflowing = this.#standing >= Q_CONGESTED_US + SVC_CONGESTED * this.#serviceUs();
    const keepFromFec = overflowing || !forFec;
    while (this.#resolveCursor < this.#order.length) {
      const s = this.#sent.get(this.#order[this.#resolveCursor]);
      if (s !== undefined && s.fate === 0) break;
      if (s !== undefined && !s.resolved) {
        s.resolved = true;
        const lost = s.fate === 2;
        if (!keepFromFec) fates.push(lost);
        else if (overflowing && lost) this.#stats.overflowLosses++;
        this.#lossRate += LOSS_ALPHA * ((lost ? 1 : 0) - this.#lossRate);
      }
      this.#resolveCursor++;
    }
    if (fates.length > 0) this.#fec.observe(fates);
    if (this.#resolveCursor > 4096) {
      this.#order = this.#order.slice(this.#resolveCursor);
      this.#resolveCursor = 0;
    }
  }

  /** Forgets the oldest packets beyond MAX_TRACKED (their feedback will count as unknown). */
  #forget(): void {
    while (this.#sent.size > MAX_TRACKED) {
      const oldest = this.#sent.keys().next().value as number;
      const s = this.#sent.get(oldest)!;
      if (s.fate === 0) this.#inflight -= s.size;
      this.#sent.delete(oldest);
    }
    // Keep the order list aligned with what is still tracked.
    while (
      this.#resolveCursor < this.#order.length &&
      !this.#sent.has(this.#order[this.#resolveCursor])
    ) this.#resolveCursor++;
  }

  /** Recomputes standing queue, trend and receive rates from the sample windows. */
  #measure(): void {
    const latest = this.#latestRecv;
    if (latest === -Infinity) return;
    const keepFrom = latest - RECV_RATE_LONG_WINDOW_US;
    // Both windows cover the frame structure: a frame paced faster than the link ramps the
    // delay up inside one frame interval, and that ramp is not congestion.
    const trendWindow = Math.max(TREND_WINDOW_US, 2.5e6 / this.#fps);
    this.#samples = this.#samples.filter((x) => x.recv >= latest - trendWindow);
    this.#recv = this.#recv.filter((x) => x.recv >= keepFrom);
    // Standing queue: min over a window at least one frame interval long (ignores a frame's own ramp).
    const window = Math.max(STANDING_MIN_WINDOW_US, 1.25e6 / this.#fps);
    let standing = Infinity;
    for (const x of this.#samples) {
      if (x.recv >= latest - window) standing = Math.min(standing, x.q);
    }
    if (standing !== Infinity) this.#standing = standing;
    // Trend: least-squares slope of q over receive time.
    const n = this.#samples.length;
    if (n >= 4) {
      let sx = 0, sy = 0;
      for (const x of this.#samples) {
        sx += x.recv - latest;
        sy += x.q;
      }
      const mx = sx / n, my = sy / n;
      let sxx = 0, sxy = 0;
      for (const x of this.#samples) {
        const dx = x.recv - latest - mx;
        sxx += dx * dx;
        sxy += dx * (x.q - my);
      }
      this.#slope = sxx > 0 ? sxy / sxx : 0;
      if (!finite(this.#slope)) this.#slope = 0;
    }
    this.#recvRate = this.#rateOver(RECV_RATE_WINDOW_US);
    this.#recvRateLong = this.#rateOver(RECV_RATE_LONG_WINDOW_US);
  }

  #rateOver(windowUs: number): number {
    const latest = this.#latestRecv;
    let first = Infinity, bytes = 0, n = 0, firstSize = 0;
    for (const x of this.#recv) {
      if (x.recv < latest - windowUs) continue;
      n++;
      bytes += x.size;
      if (x.recv < first) {
        first = x.recv;
        firstSize = x.size;
      }
    }
    const span = latest - first;
    // Bytes after the first packet over the span between first and last arrival.
    if (n < 3 || !(span >= windowUs / 4)) return this.#recvRate;
    const r = ((bytes - firstSize) * 8e6) / span;
    return finite(r) && r >= 0 ? r : 0;
  }

  #sendRate(nowUs: number, windowUs: number): number {
    let bytes = 0;
    for (const x of this.#sendLog) if (x.t >= nowUs - windowUs) bytes += x.size;
    return (bytes * 8e6) / windowUs;
  }

  #setTarget(bps: number): void {
    const c = this.#cfg;
    const v = finite(bps) ? bps : c.minBitrateBps;
    this.#target = Math.min(c.maxBitrateBps, Math.max(c.minBitrateBps, v));
  }

  /**
   * Time one packet takes through the bottleneck at the measured rate, µs.
   * Every queue threshold is raised by a multiple of it: at 1 Mbit/s one
   * 1200-byte packet alone is 9.6 ms of "queue", and slotted links (cellular,
   * Mahimahi traces) add up to one slot of wait to any packet.
   */
  #serviceUs(): number {
    const rate = Math.max(this.#recvRate, this.#cfg.minBitrateBps);
    return Math.min(50_000, (this.#cfg.packetBytes * 8e6) / rate);
  }

  #classify(): DeltaState {
    const q = this.#standing, slope = this.#slope, prev = this.#state;
    const svc = this.#serviceUs();
    const rising = Q_RISING_US + SVC_RISING * svc, congested = Q_CONGESTED_US + SVC_CONGESTED * svc;
    const drained = Q_DRAINED_US + SVC_DRAINED * svc;
    const congestedLoss = this.#lostInLastFeedback > 0 && q >= rising;
    if (
      q >= congested ||
      (slope >= ONSET_SLOPE && this.#latestQ >= Q_ONSET_US + SVC_CONGESTED * svc) ||
      (slope >= SPIKE_SLOPE && this.#latestQ >= Q_SPIKE_US + SVC_CONGESTED * svc) ||
      congestedLoss || this.#lossRate >= HIGH_LOSS
    ) return "congested";
    if (prev === "congested" || prev === "draining") {
      // Hysteresis: stay out of Stable until the queue is really gone.
      return q >= drained ? "draining" : "stable";
    }
    if (q >= rising || (slope >= RISING_SLOPE && q >= drained)) return "rising";
    if (prev === "rising" && q >= drained) return "rising";
    return "stable";
  }

  #update(nowUs: number): void {
    const dt = this.#lastUpdateUs === undefined
      ? 0
      : Math.min(200_000, Math.max(0, nowUs - this.#lastUpdateUs));
    if (this.#lastUpdateUs === undefined || nowUs > this.#lastUpdateUs) this.#lastUpdateUs = nowUs;
    const next = this.#classify();
    const holdoff = (this.#srttUs ?? 100_000) + 2 * this.#cfg.feedbackIntervalUs;
    let state = next;
    if (this.#competing) {
      state = this.#compete(nowUs, dt, next);
      this.#stableSinceUs = undefined;
    } else if (next === "congested") {
      const fresh = this.#state !== "congested" || nowUs - this.#lastDecreaseUs >= holdoff;
      // Cut again after the hold-off unless the queue is already draining fast enough.
      const drainingFast = this.#slope < -Math.max(RISING_SLOPE, this.#standing / DRAIN_US);
      if (fresh && !drainingFast) this.#decrease(nowUs);
      this.#stableSinceUs = undefined;
    } else if (next === "stable") {
      this.#stableSinceUs ??= nowUs;
      this.#increase(nowUs, dt);
    } else {
      this.#stableSinceUs = undefined;
    }
    this.#state = state;
    this.#updateFec();
    this.#updateFps(nowUs);
  }

  #decrease(nowUs: number): void {
    const recv = this.#recvRate > 0 ? this.#recvRate : this.#target;
    // The reported queue is a feedback-delay old; what was sent since beyond what the
    // bottleneck drains (≈ the receive rate) has joined it.
    const sendRate = this.#sendRate(nowUs, 50_000);
    const age = Math.min(500_000, Math.max(0, nowUs - this.#newestAckedSendUs()));
    const grown = recv > 0 ? Math.max(0, sendRate / recv - 1) * age : 0;
    const q = Math.max(this.#standing, this.#latestQ) + grown;
    let beta = Math.min(BETA_MAX, Math.max(BETA_MIN, 1 - q / DRAIN_US));
    if (this.#lossRate >= HIGH_LOSS) beta = Math.min(beta, 1 - this.#lossRate / 2);
    this.#lastGood = recv;
    this.#setTarget(Math.min(this.#target, recv * beta));
    this.#lastDecreaseUs = nowUs;
    this.#stats.decreases++;
    this.#noteCut(nowUs);
  }

  /** Counts cuts that left a long standing queue in place; enough of them mean competing. */
  #noteCut(nowUs: number): void {
    const q = this.#standing;
    // Ours would drain: a sender that puts more in than comes out is the one keeping it.
    const notOverdriving = this.#sendRate(nowUs, 200_000) <= 1.1 * this.#recvRateLong;
    const undrained = q >= COMPETE_QUEUE_US && q >= COMPETE_KEEP * this.#queueAtLastCut &&
      notOverdriving;
    this.#undrainedCuts = q >= COMPETE_QUEUE_US ? (undrained ? this.#undrainedCuts + 1 : 1) : 0;
    this.#queueAtLastCut = q;
    if (this.#undrainedCuts >= COMPETE_CUTS) {
      this.#competeBaseUs = this.#base() ?? Infinity;
      this.#competing = true;
      this.#undrainedCuts = 0;
      this.#stats.competingEntries++;
    }
  }

  /**
   * Competing mode: delay says nothing about our own sending any more, so the
   * rate follows loss as a TCP flow's does, growing slowly without it.
   * Returns the state to report.
   */
  #compete(nowUs: number, dtUs: number, next: DeltaState): DeltaState {
    if (this.#standing < COMPETE_EXIT_US) {
      // The other flow left (or never was): back to delay, from "stable".
      this.#competing = false;
      this.#queueAtLastCut = 0;
      return next === "congested" ? "congested" : "stable";
    }
    const srtt = this.#srttUs ?? DEFAULT_RTT_US;
    if (this.#lostInLastFeedback > 0 && nowUs - this.#lastDecreaseUs >= srtt) {
      this.#setTarget(this.#target * COMPETE_BETA);
      this.#lastDecreaseUs = nowUs;
      this.#stats.decreases++;
    } else if (dtUs > 0) {
      const t = this.#appLimit(this.#target * Math.exp((COMPETE_GROWTH * dtUs) / 1e6));
      this.#setTarget(Math.max(this.#target, t));
    }
    return "congested";
  }

  /** A raised target, capped at what the sender actually puts through (app-limited). */
  #appLimit(t: number): number {
    if (this.#recvRateLong <= 0) return t;
    return Math.min(t, Math.max(this.#target, APP_LIMIT_HEADROOM * this.#recvRateLong));
  }

  #newestAckedSendUs(): number {
    const s = this.#sent.get(this.#largestAcked);
    return s === undefined ? -Infinity : s.sendUs;
  }

  #increase(nowUs: number, dtUs: number): void {
    if (dtUs <= 0) return;
    if (this.#recvRate > this.#lastGood) this.#lastGood = this.#recvRate;
    let t = this.#target;
    if (t < RECOVERY_BAND * this.#lastGood) {
      t += (this.#lastGood - t) * (1 - Math.exp(-dtUs / RECOVERY_TAU_US));
    } else {
      const stableFor = nowUs - (this.#stableSinceUs ?? nowUs);
      const g = Math.min(
        PROBE_GROWTH_MAX,
        PROBE_GROWTH_START * 2 ** (stableFor / PROBE_DOUBLING_US),
      );
      t *= Math.exp((g * dtUs) / 1e6);
    }
    this.#setTarget(Math.max(this.#target, this.#appLimit(t)));
  }

  #updateFec(): void {
    const k = Math.max(
      1,
      Math.ceil(this.#target / this.#fps / 8 / this.#cfg.packetBytes),
    );
    const r = this.#fec.ratioFor(Math.min(k, 170));
    this.#fecRatio = finite(r) && r >= 0 ? r : 0;
  }

  /** Bits per pixel the target gives at `fps`. */
  #bpp(fps: number): number {
    return this.mediaBitrateBps / (this.#cfg.width * this.#cfg.height * fps);
  }

  #updateFps(nowUs: number): void {
    const ladder = FPS_LADDER.filter((f) => f <= this.#cfg.maxFps);
    if (ladder.length === 0) return;
    const i = Math.max(0, ladder.indexOf(this.#fps));
    if (this.#bpp(this.#fps) < BPP_LOWER) {
      // Lower at once, as far as needed.
      let j = i;
      while (j < ladder.length - 1 && this.#bpp(ladder[j]) < BPP_LOWER) j++;
      this.#fps = ladder[j];
      this.#raiseSinceUs = undefined;
      return;
    }
    if (i > 0 && this.#bpp(ladder[i - 1]) >= BPP_RAISE) {
      this.#raiseSinceUs ??= nowUs;
      if (nowUs - this.#raiseSinceUs >= FPS_RAISE_HOLD_US) {
        this.#fps = ladder[i - 1];
        this.#raiseSinceUs = undefined;
      }
    } else {
      this.#raiseSinceUs = undefined;
    }
  }
}
