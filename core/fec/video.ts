/**
 * FEC for video frames: parity over each frame's fragments on the sending
 * side, and recovery of lost fragments on the receiving side, without
 * retransmission.
 *
 * A protected shard is the fragment's payload behind its length (u16,
 * big-endian), zero-padded to the longest shard of the group, so a rebuilt
 * fragment knows its true length. A frame's fragments are protected in groups
 * of at most `maxGroup` consecutive fragments; `group_first_index` in each
 * FEC_PARITY frame says which (docs/FEC.md).
 *
 * @module
 */
import { type FecParityFrame, FecScheme, type VideoFragmentFrame } from "../frames.ts";
import { codecFor } from "./mod.ts";
import { encodeParityPacked as rsEncodeParityPacked } from "./reed_solomon.ts";

/** How the sender protects video. */
export interface VideoFecConfig {
  /** Parity shards per data shard (0 = no FEC). */
  parityRatio: number;
  /** Reed-Solomon (any k of k + m rebuild) or XOR (one parity per group). */
  scheme: FecScheme;
  /** Most fragments per FEC group. */
  maxGroup: number;
}

/** No FEC until the congestion controller turns it on. */
export const DEFAULT_VIDEO_FEC: VideoFecConfig = {
  parityRatio: 0,
  scheme: FecScheme.ReedSolomon,
  maxGroup: 64,
};

const LENGTH_PREFIX = 2;

function shardOf(data: Uint8Array): Uint8Array {
  const shard = new Uint8Array(LENGTH_PREFIX + data.length);
  shard[0] = data.length >>> 8;
  shard[1] = data.length & 0xff;
  shard.set(data, LENGTH_PREFIX);
  return shard;
}

/** FEC_PARITY frames protecting `fragments` (all of one video frame, in index order). */
export function protectFrame(
  fragments: readonly VideoFragmentFrame[],
  config: VideoFecConfig,
): FecParityFrame[] {
  if (!(config.parityRatio > 0) || fragments.length === 0) return [];
  const codec = codecFor(config.scheme);
  const out: FecParityFrame[] = [];
  const groupSize = config.scheme === FecScheme.Xor
    ? Math.max(1, Math.min(config.maxGroup, Math.round(1 / config.parityRatio)))
    : config.maxGroup;
  for (let first = 0; first < fragments.length; first += groupSize) {
    const last = Math.min(fragments.length, first + groupSize);
    const k = last - first;
    const m = Math.min(codec.maxParity(k), Math.max(1, Math.ceil(k * config.parityRatio)));
    // The shards (length prefix + payload, zero-padded) go straight into one packed buffer.
    let len = 0;
    for (let j = first; j < last; j++) {
      len = Math.max(len, LENGTH_PREFIX + fragments[j].data.length);
    }
    const packed = new Uint8Array(k * len);
    for (let j = first; j < last; j++) {
      const data = fragments[j].data;
      const at = (j - first) * len;
      packed[at] = data.length >>> 8;
      packed[at + 1] = data.length & 0xff;
      packed.set(data, at + LENGTH_PREFIX);
    }
    // XOR parity is Reed-Solomon parity 0 (row of ones): one kernel serves both schemes.
    const parity = rsEncodeParityPacked(packed, k, len, m);
    for (let parityIndex = 0; parityIndex < m; parityIndex++) {
      const data = parity[parityIndex];
      out.push({
        type: "fec",
        scheme: config.scheme,
        frameId: fragments[first].frameId,
        groupFirstIndex: first,
        dataCount: k,
        parityIndex,
        parityCount: m,
        fragmentCount: fragments[first].fragmentCount,
        captureTimeUs: fragments[first].captureTimeUs,
        keyframe: fragments[first].keyframe,
        protectedLength: data.length,
        data,
      });
    }
  }
  return out;
}

/** What a rebuilt fragment takes from its frame: fragments and parity both carry it. */
type FrameShape = Pick<VideoFragmentFrame, "fragmentCount" | "captureTimeUs" | "keyframe">;

/** A copy of the three fields, so a fragment's packet buffer is not kept alive with it. */
function shapeOf(f: FrameShape): FrameShape {
  return { fragmentCount: f.fragmentCount, captureTimeUs: f.captureTimeUs, keyframe: f.keyframe };
}

interface FrameState {
  meta: FrameShape | undefined;
  fragments: Map<number, Uint8Array>;
  /** Parity by group first index, then by parity index. */
  groups: Map<number, { k: number; m: number; scheme: FecScheme; parity: Map<number, Uint8Array> }>;
}

/** Rebuilds lost fragments from FEC_PARITY frames; remembers the last `maxFrames` frames. */
export class FecReceiver {
  readonly #frames = new Map<number, FrameState>();
  readonly #maxFrames: number;
  #recovered = 0;

  /** @param maxFrames frames whose fragments and parity are kept for recovery */
  constructor(maxFrames = 64) {
    this.#maxFrames = maxFrames;
  }

  /** Fragments rebuilt so far. */
  get recovered(): number {
    return this.#recovered;
  }

  /** Notes a received fragment; returns fragments it made recoverable (usually none). */
  onFragment(fragment: VideoFragmentFrame): VideoFragmentFrame[] {
    const state = this.#state(fragment.frameId);
    state.meta ??= shapeOf(fragment);
    if (state.fragments.has(fragment.fragmentIndex)) return [];
    state.fragments.set(fragment.fragmentIndex, fragment.data);
    if (state.groups.size === 0) return [];
    return this.#recover(fragment.frameId, state);
  }

  /** Notes a parity frame; returns the fragments it rebuilt. */
  onParity(parity: FecParityFrame): VideoFragmentFrame[] {
    const state = this.#state(parity.frameId);
    // Parity carries the frame's shape too, so a frame lost whole is rebuilt from parity alone.
    state.meta ??= shapeOf(parity);
    let group = state.groups.get(parity.groupFirstIndex);
    if (group === undefined) {
      group = {
        k: parity.dataCount,
        m: parity.parityCount,
        scheme: parity.scheme,
        parity: new Map(),
      };
      state.groups.set(parity.groupFirstIndex, group);
    }
    // A parity frame that disagrees with its group's shape is ignored (it cannot help).
    if (group.k !== parity.dataCount || group.m !== parity.parityCount) return [];
    if (parity.parityIndex >= group.m || group.parity.has(parity.parityIndex)) return [];
    group.parity.set(parity.parityIndex, parity.data);
    return this.#recover(parity.frameId, state);
  }

  #state(frameId: number): FrameState {
    let state = this.#frames.get(frameId);
    if (state === undefined) {
      state = { meta: undefined, fragments: new Map(), groups: new Map() };
      this.#frames.set(frameId, state);
      if (this.#frames.size > this.#maxFrames) {
        this.#frames.delete(this.#frames.keys().next().value!);
      }
    }
    return state;
  }

  #recover(frameId: number, state: FrameState): VideoFragmentFrame[] {
    const meta = state.meta;
    if (meta === undefined) return []; // nothing tells us the frame's shape yet
    const rebuilt: VideoFragmentFrame[] = [];
    for (const [first, group] of state.groups) {
      const missing: number[] = [];
      for (let i = first; i < first + group.k; i++) if (!state.fragments.has(i)) missing.push(i);
      if (missing.length === 0 || missing.length > group.parity.size) continue;
      const shards: (Uint8Array | undefined)[] = [];
      for (let i = first; i < first + group.k; i++) {
        const data = state.fragments.get(i);
        shards.push(data === undefined ? undefined : shardOf(data));
      }
      for (let p = 0; p < group.m; p++) shards.push(group.parity.get(p));
      let data: Uint8Array[] | undefined;
      try {
        data = codecFor(group.scheme).reconstruct(shards, group.k);
      } catch {
        continue; // inconsistent lengths from a confused sender: nothing to rebuild
      }
      if (data === undefined) continue;
      for (const index of missing) {
        const shard = data[index - first];
        const length = (shard[0] << 8) | shard[1];
        if (LENGTH_PREFIX + length > shard.length || index >= meta.fragmentCount) continue;
        const payload = shard.slice(LENGTH_PREFIX, LENGTH_PREFIX + length);
        state.fragments.set(index, payload);
        rebuilt.push({
          type: "video",
          frameId,
          fragmentIndex: index,
          fragmentCount: meta.fragmentCount,
          captureTimeUs: meta.captureTimeUs,
          keyframe: meta.keyframe,
          data: payload,
        });
      }
    }
    this.#recovered += rebuilt.length;
    return rebuilt;
  }
}
