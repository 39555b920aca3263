/**
 * Round-trip time and clock-offset estimation from ping/pong samples.
 *
 * RTT smoothing follows RFC 6298 (alpha 1/8, beta 1/4). The clock offset uses
 * the NTP idea: the sample taken on the fastest round trip is the one whose
 * one-way split is least uncertain, so the offset is re-estimated only when a
 * sample's RTT is within a small margin of the minimum seen recently.
 *
 * @module
 */

/** A snapshot of the RTT estimator, in milliseconds. */
export interface RttSnapshot {
  /** Most recent sample. */
  readonly latestMs: number;
  /** Smoothed RTT (RFC 6298 SRTT). */
  readonly smoothedMs: number;
  /** RTT variation (RFC 6298 RTTVAR). */
  readonly variationMs: number;
  /** Smallest sample seen. */
  readonly minMs: number;
  /** Number of samples taken. */
  readonly samples: number;
}

/** RTT value assumed before the first sample (RFC 6298 uses 1 s; a LAN-first protocol starts lower). */
export const INITIAL_RTT_MS = 250;

/** RFC 6298 round-trip estimator plus a peer clock offset estimate. */
export class RttEstimator {
  #latest = INITIAL_RTT_MS;
  #smoothed = INITIAL_RTT_MS;
  #variation = INITIAL_RTT_MS / 2;
  #min = Infinity;
  #samples = 0;
  #offsetUs: number | undefined;
  #offsetRttMs = Infinity;

  /** Adds one RTT sample (ms). Negative or non-finite samples are ignored. */
  addSample(rttMs: number): void {
    if (!Number.isFinite(rttMs) || rttMs < 0) return;
    this.#latest = rttMs;
    this.#min = Math.min(this.#min, rttMs);
    if (this.#samples === 0) {
      this.#smoothed = rttMs;
      this.#variation = rttMs / 2;
    } else {
      this.#variation = 0.75 * this.#variation +
        0.25 * Math.abs(this.#smoothed - rttMs);
      this.#smoothed = 0.875 * this.#smoothed + 0.125 * rttMs;
    }
    this.#samples++;
  }

  /**
   * Adds a ping/pong exchange with timestamps from both clocks: the ping left
   * at `sentUs` and the pong arrived at `receivedUs` (local clock), and the
   * peer stamped `peerUs` (its clock) when it answered.
   */
  addExchange(sentUs: number, peerUs: number, receivedUs: number): void {
    const rttMs = (receivedUs - sentUs) / 1000;
    this.addSample(rttMs);
    if (!(rttMs >= 0)) return;
    // Keep the offset from the fastest exchange; let it age so a changed path is followed.
    this.#offsetRttMs *= 1.01;
    if (rttMs <= this.#offsetRttMs) {
      this.#offsetRttMs = rttMs;
      this.#offsetUs = peerUs - (sentUs + receivedUs) / 2;
    }
  }

  /** Retransmission timeout: SRTT + 4 RTTVAR, at least `minMs`. */
  rtoMs(minMs = 10): number {
    return Math.max(minMs, this.#smoothed + 4 * this.#variation);
  }

  /** Estimated peer clock minus local clock, in microseconds, once known. */
  get clockOffsetUs(): number | undefined {
    return this.#offsetUs;
  }

  /** The current estimate. */
  get snapshot(): RttSnapshot {
    return {
      latestMs: this.#latest,
      smoothedMs: this.#smoothed,
      variationMs: this.#variation,
      minMs: this.#samples === 0 ? 0 : this.#min,
      samples: this.#samples,
    };
  }
}
