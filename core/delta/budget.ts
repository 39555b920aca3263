/**
 * The encoder's share of DELTA's send budget.
 *
 * DELTA's target is what may go on the wire: the encoded frames, their FEC
 * parity, the per-datagram headers (RIFT header, AEAD tag, fragment header),
 * the per-frame timing header and any retransmissions. The encoder must be
 * given the target divided by the wire bytes each encoded byte costs, or the
 * wire runs above the target by that factor. The factor is not a constant:
 * FEC sends at least one parity datagram per protected frame, so a 3-packet
 * frame at a parity ratio of 0.1 still costs a whole datagram of parity, and
 * a frame's last datagram is partly empty while parity datagrams are full.
 * So it is measured: wire bytes over encoded bytes, summed over the last
 * frames, with a model (ratio and header share) until enough frames were seen.
 *
 * Sans-IO: the caller says what was encoded and what left.
 *
 * @module
 */

/** Frames the measured wire factor sums over (half a second at 60 fps). */
export const BUDGET_WINDOW_FRAMES = 30;
/** Frames needed before the measurement replaces the model. */
export const BUDGET_MIN_FRAMES = 8;
/** The factor is kept within these bounds (a stall or a burst of retransmissions is not a trend). */
export const BUDGET_FACTOR_MIN = 1;
/** Upper bound of the wire factor (a 1-packet frame with 1 parity datagram costs about 2.1). */
export const BUDGET_FACTOR_MAX = 3;

/** Parameters of {@linkcode EncoderBudget}. */
export interface EncoderBudgetConfig {
  /** Datagram size on the wire, bytes. */
  datagramBytes: number;
  /** Video payload bytes per datagram (datagram minus headers). */
  payloadBytes: number;
  /** Frames summed over ({@linkcode BUDGET_WINDOW_FRAMES}). */
  windowFrames?: number;
}

/**
 * Turns DELTA's send budget into the encoder's bitrate, from the measured
 * wire cost of each encoded byte.
 *
 * @example
 * ```ts
 * const budget = new EncoderBudget({ datagramBytes: 1200, payloadBytes: 1140 });
 * budget.onFrame(accessUnitBytes, wireBytesSentSinceThePreviousFrame);
 * encoder.setBitrate(budget.encoderBitrateBps(delta.targetBitrateBps, delta.fecRatio));
 * ```
 */
export class EncoderBudget {
  readonly #datagram: number;
  readonly #payload: number;
  readonly #window: number;
  #frames: { encoded: number; wire: number }[] = [];
  #encoded = 0;
  #wire = 0;
  #garbage = 0;

  /** @throws RangeError unless 0 < payloadBytes ≤ datagramBytes and the window is ≥ 1 frame */
  constructor(config: EncoderBudgetConfig) {
    const { datagramBytes, payloadBytes } = config;
    const window = config.windowFrames ?? BUDGET_WINDOW_FRAMES;
    if (
      !(Number.isFinite(datagramBytes) && Number.isFinite(payloadBytes) && payloadBytes > 0 &&
        payloadBytes <= datagramBytes) || !(Number.isInteger(window) && window >= 1)
    ) {
      throw new RangeError(
        "EncoderBudget: need 0 < payloadBytes <= datagramBytes and windowFrames >= 1",
      );
    }
    this.#datagram = datagramBytes;
    this.#payload = payloadBytes;
    this.#window = window;
  }

  /**
   * One frame was handed to the lane: `encodedBytes` from the encoder, and
   * `wireBytes` the lane sent since the previous frame was handed (the
   * previous frame's datagrams, parity and retransmissions, paced out in the
   * meantime). Non-finite or negative values are ignored (counted).
   */
  onFrame(encodedBytes: number, wireBytes: number): void {
    if (
      !(Number.isFinite(encodedBytes) && encodedBytes >= 0 && Number.isFinite(wireBytes) &&
        wireBytes >= 0)
    ) {
      this.#garbage++;
      return;
    }
    this.#frames.push({ encoded: encodedBytes, wire: wireBytes });
    this.#encoded += encodedBytes;
    this.#wire += wireBytes;
    while (this.#frames.length > this.#window) {
      const old = this.#frames.shift()!;
      this.#encoded -= old.encoded;
      this.#wire -= old.wire;
    }
  }

  /** Inputs refused by {@linkcode onFrame}. */
  get garbage(): number {
    return this.#garbage;
  }

  /**
   * Wire bytes per encoded byte: measured over the window once
   * {@linkcode BUDGET_MIN_FRAMES} frames were seen (the first frame's
   * bytes leave before the second is handed, so frames pair with the wire
   * bytes that follow them), else the model `(1 + fecRatio) × datagram / payload`.
   */
  wireFactor(fecRatio: number): number {
    let f: number;
    // The wire bytes counted at frame i belong to frames before it: pair frames [0, n-1) with wire [1, n).
    const n = this.#frames.length;
    if (n >= BUDGET_MIN_FRAMES) {
      const encoded = this.#encoded - this.#frames[n - 1].encoded;
      const wire = this.#wire - this.#frames[0].wire;
      f = encoded > 0 ? wire / encoded : NaN;
    } else {
      const r = Number.isFinite(fecRatio) && fecRatio > 0 ? fecRatio : 0;
      f = (1 + r) * this.#datagram / this.#payload;
    }
    if (!Number.isFinite(f)) f = this.#datagram / this.#payload;
    return Math.min(BUDGET_FACTOR_MAX, Math.max(BUDGET_FACTOR_MIN, f));
  }

  /** The encoder's bitrate so that the wire carries `targetBps`: target / wire factor. */
  encoderBitrateBps(targetBps: number, fecRatio: number): number {
    return targetBps / this.wireFactor(fecRatio);
  }
}
