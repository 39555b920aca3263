/**
 * A small reliable, ordered message channel (used for input and control).
 *
 * The sender keeps every message until it is acknowledged and retransmits it
 * after a retransmission timeout that backs off per attempt. The receiver
 * delivers messages in sequence order exactly once and describes what it holds
 * with a cumulative `nextExpected` plus a 32-bit selective bitmap, which is the
 * shape of the RIFT ACK frame. Sequence numbers are u32 and never wrap: a
 * channel refuses messages once 2^32 have been sent (about 50 days of input at
 * 1000 events per second).
 *
 * @module
 */

/** One message of a reliable channel. */
export interface ReliableMessage {
  /** Position in the channel, from 0. */
  readonly sequence: number;
  /** Application bytes. */
  readonly data: Uint8Array;
}

/** What the receiver acknowledges: everything below `nextExpected`, plus bitmap bit i for `nextExpected + 1 + i`. */
export interface AckState {
  /** Every sequence below this was received. */
  readonly nextExpected: number;
  /** Bit i set: `nextExpected + 1 + i` was received. */
  readonly bitmap: number;
}

const MAX_SEQUENCE = 0xffff_ffff;
/** Retransmission backoff doubles per attempt up to this factor. */
const MAX_BACKOFF = 8;

interface Outstanding {
  data: Uint8Array;
  lastSentAt: number | undefined;
  sends: number;
}

/** Sending half of a reliable channel. */
export class ReliableSender {
  readonly #maxInFlight: number;
  readonly #outstanding = new Map<number, Outstanding>();
  #nextSequence = 0;
  #retransmissions = 0;

  /** @param maxInFlight messages that may await acknowledgement at once */
  constructor(maxInFlight = 1024) {
    this.#maxInFlight = maxInFlight;
  }

  /** Queues a message; false when the window is full or sequence space is used up. */
  enqueue(data: Uint8Array): boolean {
    if (this.#outstanding.size >= this.#maxInFlight) return false;
    if (this.#nextSequence > MAX_SEQUENCE) return false;
    this.#outstanding.set(this.#nextSequence++, {
      data: data.slice(),
      lastSentAt: undefined,
      sends: 0,
    });
    return true;
  }

  /** The first message that is new or whose retransmission is due at `now`, without marking it sent. */
  peekDue(now: number, rtoMs: number): ReliableMessage | undefined {
    for (const [sequence, entry] of this.#outstanding) {
      if (entry.lastSentAt === undefined || this.#dueAt(entry, rtoMs) <= now) {
        return { sequence, data: entry.data };
      }
    }
    return undefined;
  }

  /** Records that `sequence` went on the wire at `now` (its retransmission timer restarts). */
  markSent(sequence: number, now: number): void {
    const entry = this.#outstanding.get(sequence);
    if (entry === undefined) return;
    if (entry.sends > 0) this.#retransmissions++;
    entry.lastSentAt = now;
    entry.sends++;
  }

  /** Applies an acknowledgement; returns how many messages it newly acknowledged. */
  onAck(ack: AckState): number {
    let acked = 0;
    for (const sequence of [...this.#outstanding.keys()]) {
      const offset = sequence - ack.nextExpected;
      const covered = offset < 0 ||
        (offset >= 1 && offset <= 32 &&
          ((ack.bitmap >>> (offset - 1)) & 1) === 1);
      if (covered) {
        this.#outstanding.delete(sequence);
        acked++;
      }
    }
    return acked;
  }

  /** When the earliest retransmission is due, or undefined with nothing unacknowledged. */
  nextTimeout(rtoMs: number): number | undefined {
    let earliest: number | undefined;
    for (const entry of this.#outstanding.values()) {
      const due = entry.lastSentAt === undefined ? -Infinity : this.#dueAt(entry, rtoMs);
      if (earliest === undefined || due < earliest) earliest = due;
    }
    return earliest;
  }

  /** Messages sent or queued and not yet acknowledged. */
  get inFlight(): number {
    return this.#outstanding.size;
  }

  /** Messages sent again after a timeout. */
  get retransmissions(): number {
    return this.#retransmissions;
  }

  #dueAt(entry: Outstanding, rtoMs: number): number {
    const backoff = Math.min(MAX_BACKOFF, 2 ** (entry.sends - 1));
    return (entry.lastSentAt ?? 0) + rtoMs * backoff;
  }
}

/** Receiving half of a reliable channel. */
export class ReliableReceiver {
  readonly #maxBuffered: number;
  readonly #buffered = new Map<number, Uint8Array>();
  readonly #ready: Uint8Array[] = [];
  #nextExpected = 0;
  #ackPending = false;
  #duplicates = 0;

  /** @param maxBuffered how far ahead of the next expected message the receiver holds messages */
  constructor(maxBuffered = 1024) {
    this.#maxBuffered = maxBuffered;
  }

  /** Takes a message off the wire; returns false for one that is a duplicate or too far ahead. */
  receive(message: ReliableMessage): boolean {
    const { sequence } = message;
    // Always re-acknowledge: a duplicate means our ack was lost.
    this.#ackPending = true;
    if (sequence < this.#nextExpected || this.#buffered.has(sequence)) {
      this.#duplicates++;
      return false;
    }
    if (sequence >= this.#nextExpected + this.#maxBuffered) return false;
    this.#buffered.set(sequence, message.data.slice());
    while (this.#buffered.has(this.#nextExpected)) {
      this.#ready.push(this.#buffered.get(this.#nextExpected)!);
      this.#buffered.delete(this.#nextExpected);
      this.#nextExpected++;
    }
    return true;
  }

  /** The next message in order, once each. */
  pollDelivered(): Uint8Array | undefined {
    return this.#ready.shift();
  }

  /** True when something arrived since the last `takeAck`. */
  get ackPending(): boolean {
    return this.#ackPending;
  }

  /** The acknowledgement to send now; clears `ackPending`. */
  takeAck(): AckState {
    this.#ackPending = false;
    return this.ackState;
  }

  /** The current acknowledgement state. */
  get ackState(): AckState {
    let bitmap = 0;
    for (let i = 0; i < 32; i++) {
      if (this.#buffered.has(this.#nextExpected + 1 + i)) bitmap |= 1 << i;
    }
    return { nextExpected: this.#nextExpected, bitmap: bitmap >>> 0 };
  }

  /** Messages received more than once. */
  get duplicates(): number {
    return this.#duplicates;
  }
}
