/**
 * Video packetization: splitting an encoded frame into VIDEO_FRAGMENT frames
 * and reassembling them on the receiving side, out of order, with
 * duplicates, under a per-frame deadline. Sans-IO: the caller passes `now`
 * (milliseconds, any monotonic origin) and drives {@linkcode Reassembler.expire}
 * from {@linkcode Reassembler.nextDeadline}.
 *
 * @module
 */

import type { VideoFragmentFrame } from "./frames.ts";

/** An encoded video frame (one access unit) with its capture timestamp. */
export interface EncodedFrame {
  /** Frame id (u32), a serial number that increases by one per frame, modulo 2^32. */
  frameId: number;
  /** Capture time in µs, sender clock (< 2^53). */
  captureTimeUs: number;
  /** Whether the frame is a keyframe (decodable on its own). */
  keyframe: boolean;
  /** The encoded bytes. */
  data: Uint8Array;
}

/**
 * Splits `frame` into `max(1, ceil(len / maxPayload))` fragments: every
 * fragment but the last carries exactly `maxPayload` bytes, the last carries
 * the rest (at least one byte unless the frame is empty). Fragment `data`
 * fields are views of `frame.data` (no copy).
 *
 * @throws {RangeError} if `maxPayload` is not in 1..65535, the frame would
 * need more than 65535 fragments, or a field is out of range.
 */
export function fragmentFrame(
  frame: EncodedFrame,
  maxPayload: number,
): VideoFragmentFrame[] {
  if (!Number.isInteger(maxPayload) || maxPayload < 1 || maxPayload > 0xffff) {
    throw new RangeError(`maxPayload ${maxPayload} out of range 1..65535`);
  }
  const { frameId, captureTimeUs, keyframe, data } = frame;
  if (!Number.isInteger(frameId) || frameId < 0 || frameId > 0xffffffff) {
    throw new RangeError(`frameId ${frameId} is not a u32`);
  }
  if (
    !Number.isInteger(captureTimeUs) || captureTimeUs < 0 ||
    captureTimeUs > Number.MAX_SAFE_INTEGER
  ) {
    throw new RangeError(`captureTimeUs ${captureTimeUs} out of range`);
  }
  const count = Math.max(1, Math.ceil(data.length / maxPayload));
  if (count > 0xffff) {
    throw new RangeError(
      `${data.length} bytes need ${count} fragments of ${maxPayload}; at most 65535`,
    );
  }
  const fragments: VideoFragmentFrame[] = new Array(count);
  for (let i = 0; i < count; i++) {
    fragments[i] = {
      type: "video",
      frameId,
      fragmentIndex: i,
      fragmentCount: count,
      captureTimeUs,
      keyframe,
      data: data.subarray(i * maxPayload, Math.min(data.length, (i + 1) * maxPayload)),
    };
  }
  return fragments;
}

/** Tuning of a {@linkcode Reassembler}. */
export interface ReassemblerConfig {
  /** Give up a frame this many ms after its first fragment arrived. */
  deadlineMs: number;
  /** Frames larger than this (as announced by their fragments) are given up at once. */
  maxFrameBytes: number;
  /** At most this many frames are assembled at once; the oldest is evicted (given up) beyond it. */
  maxPendingFrames: number;
  /** How many completed or given-up frame ids are remembered to recognize late fragments. */
  rememberFrames: number;
}

/** Defaults: 100 ms deadline, 16 MiB frames, 32 pending frames, 1024 remembered ids. */
export const DEFAULT_REASSEMBLER_CONFIG: Readonly<ReassemblerConfig> = Object.freeze({
  deadlineMs: 100,
  maxFrameBytes: 16 * 1024 * 1024,
  maxPendingFrames: 32,
  rememberFrames: 1024,
});

/** Counters of a {@linkcode Reassembler}, cumulative since construction. */
export interface ReassemblerStats {
  /** Frames delivered by {@linkcode Reassembler.push}. */
  completed: number;
  /** Fragments received again while their frame was still pending. */
  duplicates: number;
  /** Frames given up: deadline passed, or evicted to respect `maxPendingFrames`. */
  expired: number;
  /** Fragments of frames already completed or given up. */
  late: number;
  /** Fragments disagreeing with earlier fragments of the same frame (count, size, timestamp, keyframe flag, index): dropped. */
  inconsistent: number;
  /** Frames given up because they announced more than `maxFrameBytes`. */
  oversized: number;
}

interface Pending {
  frameId: number;
  count: number;
  captureTimeUs: number;
  keyframe: boolean;
  deadline: number;
  /** Size of every fragment but the last; -1 until a non-last fragment arrived. */
  payload: number;
  /** Size of the last fragment; -1 until it arrived. */
  lastLength: number;
  /** Copy of the last fragment, kept only while `payload` is still unknown. */
  lastCopy: Uint8Array | undefined;
  /** Frame bytes, allocated once `payload` is known. */
  buffer: Uint8Array | undefined;
  /** 1 per received fragment index. */
  received: Uint8Array;
  receivedCount: number;
}

const HALF_SERIAL = 0x80000000;

/** Whether frame id `a` comes strictly before `b` (u32 serial-number order, ids wrap at 2^32). */
export function frameIdBefore(a: number, b: number): boolean {
  const behind = (b - a) >>> 0;
  return behind !== 0 && behind < HALF_SERIAL;
}

/** Sort comparator for frame ids in serial-number order, oldest first. */
export function compareFrameIds(a: number, b: number): number {
  return a === b ? 0 : frameIdBefore(a, b) ? -1 : 1;
}

/**
 * Reassembles video frames from their fragments. Out-of-order and duplicate
 * fragments are fine; each frame is delivered at most once, and every frame
 * that is not delivered is reported exactly once by {@linkcode expire}.
 * Fragment data is copied: the caller may reuse the datagram buffers at once.
 */
export class Reassembler {
  readonly #config: ReassemblerConfig;
  /** Pending frames in order of their first fragment. */
  readonly #pending = new Map<number, Pending>();
  /** Completed or given-up frame ids, oldest first, bounded by `rememberFrames`. */
  readonly #done = new Set<number>();
  /** Frame ids given up outside `expire` (eviction, oversize), with the time it happened. */
  #givenUp: { frameId: number; at: number }[] = [];
  /** Highest frame id seen (serial-number order), -1 before the first fragment. */
  #highest = -1;
  readonly #stats: ReassemblerStats = {
    completed: 0,
    duplicates: 0,
    expired: 0,
    late: 0,
    inconsistent: 0,
    oversized: 0,
  };

  /** Creates a reassembler; missing config fields take {@linkcode DEFAULT_REASSEMBLER_CONFIG}. */
  constructor(config: Partial<ReassemblerConfig> = {}) {
    this.#config = { ...DEFAULT_REASSEMBLER_CONFIG };
    for (const key of Object.keys(config) as (keyof ReassemblerConfig)[]) {
      const v = config[key];
      if (v !== undefined) this.#config[key] = v;
    }
    const c = this.#config;
    if (!(c.deadlineMs >= 0) || !(c.maxFrameBytes >= 0)) {
      throw new RangeError("deadlineMs and maxFrameBytes must be ≥ 0");
    }
    if (!Number.isInteger(c.maxPendingFrames) || c.maxPendingFrames < 1) {
      throw new RangeError("maxPendingFrames must be an integer ≥ 1");
    }
    if (!Number.isInteger(c.rememberFrames) || c.rememberFrames < 1) {
      throw new RangeError("rememberFrames must be an integer ≥ 1");
    }
  }

  /** A snapshot of the counters. */
  get stats(): ReassemblerStats {
    return { ...this.#stats };
  }

  /** Number of frames currently being assembled. */
  get pendingFrames(): number {
    return this.#pending.size;
  }

  /**
   * Adds one fragment received at `now` (ms). Returns the completed frame
   * (with its own copy of the bytes) when this fragment completes it, exactly
   * once per frame; otherwise `undefined`.
   */
  push(fragment: VideoFragmentFrame, now: number): EncodedFrame | undefined {
    const { frameId, fragmentIndex: index, fragmentCount: count, data } = fragment;
    let p = this.#pending.get(frameId);
    if (p === undefined) {
      if (this.#isLate(frameId)) {
        this.#stats.late++;
        return undefined;
      }
      if (
        !Number.isInteger(count) || count < 1 || count > 0xffff ||
        !Number.isInteger(index) || index < 0 || index >= count
      ) {
        this.#stats.inconsistent++;
        return undefined;
      }
      if (count === 1) {
        this.#noteHighest(frameId);
        if (data.length > this.#config.maxFrameBytes) return this.#oversized(frameId, now);
        this.#remember(frameId);
        this.#stats.completed++;
        return {
          frameId,
          captureTimeUs: fragment.captureTimeUs,
          keyframe: fragment.keyframe,
          data: data.slice(),
        };
      }
      if (index < count - 1 && data.length === 0) {
        // Only the last fragment may be short, and only a single-fragment frame empty.
        this.#stats.inconsistent++;
        return undefined;
      }
      this.#noteHighest(frameId);
      if (this.#pending.size >= this.#config.maxPendingFrames) this.#evictOldest(now);
      p = {
        frameId,
        count,
        captureTimeUs: fragment.captureTimeUs,
        keyframe: fragment.keyframe,
        deadline: now + this.#config.deadlineMs,
        payload: -1,
        lastLength: -1,
        lastCopy: undefined,
        buffer: undefined,
        received: new Uint8Array(count),
        receivedCount: 0,
      };
      this.#pending.set(frameId, p);
    } else if (
      count !== p.count || index >= count ||
      fragment.captureTimeUs !== p.captureTimeUs || fragment.keyframe !== p.keyframe
    ) {
      this.#stats.inconsistent++;
      return undefined;
    } else if (p.received[index] !== 0) {
      this.#stats.duplicates++;
      return undefined;
    }
    return this.#accept(p, index, data, now);
  }

  #accept(
    p: Pending,
    index: number,
    data: Uint8Array,
    now: number,
  ): EncodedFrame | undefined {
    const len = data.length;
    const isLast = index === p.count - 1;
    if (isLast) {
      if (len === 0 || (p.payload >= 0 && len > p.payload)) {
        this.#stats.inconsistent++;
        return this.#dropIfEmpty(p);
      }
      p.lastLength = len;
      if (p.buffer === undefined) {
        if (this.#announcedTooBig(p.count, len, len)) return this.#giveUpOversized(p, now);
        p.lastCopy = data.slice();
      } else {
        if (this.#announcedTooBig(p.count, p.payload, len)) {
          return this.#giveUpOversized(p, now);
        }
        p.buffer.set(data, (p.count - 1) * p.payload);
      }
    } else {
      if (p.payload < 0) {
        if (len === 0 || (p.lastLength >= 0 && p.lastLength > len)) {
          this.#stats.inconsistent++;
          return this.#dropIfEmpty(p);
        }
        const last = p.lastLength >= 0 ? p.lastLength : 1;
        if (this.#announcedTooBig(p.count, len, last)) return this.#giveUpOversized(p, now);
        p.payload = len;
        const capacity = (p.count - 1) * len + (p.lastLength >= 0 ? p.lastLength : len);
        p.buffer = new Uint8Array(capacity);
        if (p.lastCopy !== undefined) {
          p.buffer.set(p.lastCopy, (p.count - 1) * len);
          p.lastCopy = undefined;
        }
      } else if (len !== p.payload) {
        this.#stats.inconsistent++;
        return undefined;
      }
      p.buffer!.set(data, index * p.payload);
    }
    p.received[index] = 1;
    p.receivedCount++;
    if (p.receivedCount < p.count) return undefined;

    this.#pending.delete(p.frameId);
    this.#remember(p.frameId);
    this.#stats.completed++;
    const total = (p.count - 1) * p.payload + p.lastLength;
    const buffer = p.buffer!;
    return {
      frameId: p.frameId,
      captureTimeUs: p.captureTimeUs,
      keyframe: p.keyframe,
      data: buffer.length === total ? buffer : buffer.subarray(0, total),
    };
  }

  /** A frame created by an inconsistent first fragment holds nothing: forget it again. */
  #dropIfEmpty(p: Pending): undefined {
    if (p.receivedCount === 0) this.#pending.delete(p.frameId);
    return undefined;
  }

  #announcedTooBig(count: number, payload: number, last: number): boolean {
    return (count - 1) * payload + last > this.#config.maxFrameBytes;
  }

  #giveUpOversized(p: Pending, now: number): undefined {
    this.#pending.delete(p.frameId);
    return this.#oversized(p.frameId, now);
  }

  #oversized(frameId: number, now: number): undefined {
    this.#stats.oversized++;
    this.#remember(frameId);
    this.#givenUp.push({ frameId, at: now });
    return undefined;
  }

  #evictOldest(now: number): void {
    const oldest = this.#pending.values().next().value as Pending;
    this.#pending.delete(oldest.frameId);
    this.#remember(oldest.frameId);
    this.#stats.expired++;
    this.#givenUp.push({ frameId: oldest.frameId, at: now });
  }

  /**
   * Pending frames sent before `frameId` (serial-number order), oldest first,
   * with the fragment indexes still missing and their current deadline.
   */
  incompleteBefore(frameId: number): { frameId: number; missing: number[]; deadline: number }[] {
    const out: { frameId: number; missing: number[]; deadline: number }[] = [];
    for (const p of this.#pending.values()) {
      if (!frameIdBefore(p.frameId, frameId)) continue;
      const missing: number[] = [];
      for (let i = 0; i < p.count; i++) if (p.received[i] === 0) missing.push(i);
      out.push({ frameId: p.frameId, missing, deadline: p.deadline });
    }
    return out.sort((a, b) => compareFrameIds(a.frameId, b.frameId));
  }

  /** Moves a pending frame's deadline earlier (never later than it was). */
  hasten(frameId: number, deadline: number): void {
    const p = this.#pending.get(frameId);
    if (p !== undefined) p.deadline = Math.min(p.deadline, deadline);
  }

  /**
   * Gives up every pending frame whose deadline is ≤ `now` and returns the
   * ids of all frames given up since the last call (including frames evicted
   * or rejected as oversized), each exactly once, so the caller can request a
   * keyframe.
   */
  expire(now: number): number[] {
    const ids: number[] = [];
    for (const g of this.#givenUp) ids.push(g.frameId);
    this.#givenUp = [];
    for (const p of this.#pending.values()) {
      if (p.deadline <= now) {
        this.#pending.delete(p.frameId);
        this.#remember(p.frameId);
        this.#stats.expired++;
        ids.push(p.frameId);
      }
    }
    return ids;
  }

  /**
   * When {@linkcode expire} next has work: the earliest pending deadline, or
   * the time a frame was already given up (≤ the current time) if one awaits
   * reporting; `undefined` when nothing is pending.
   */
  nextDeadline(): number | undefined {
    let next: number | undefined;
    for (const g of this.#givenUp) {
      if (next === undefined || g.at < next) next = g.at;
    }
    for (const p of this.#pending.values()) {
      if (next === undefined || p.deadline < next) next = p.deadline;
    }
    return next;
  }

  #remember(frameId: number): void {
    this.#done.add(frameId);
    if (this.#done.size > this.#config.rememberFrames) {
      const oldest = this.#done.values().next().value as number;
      this.#done.delete(oldest);
    }
  }

  #noteHighest(frameId: number): void {
    if (this.#highest < 0 || ((frameId - this.#highest) >>> 0) < HALF_SERIAL) {
      this.#highest = frameId;
    }
  }

  /**
   * A frame is late if it was completed or given up (and still remembered),
   * or if it lies further behind the highest frame id seen than the memory
   * reaches (serial-number arithmetic, so ids may wrap around 2^32).
   */
  #isLate(frameId: number): boolean {
    if (this.#done.has(frameId)) return true;
    if (this.#highest < 0) return false;
    const behind = (this.#highest - frameId) >>> 0;
    return behind !== 0 && behind < HALF_SERIAL && behind >= this.#config.rememberFrames;
  }
}
