/**
 * The media lane of a RIFT session: video fragments, FEC parity and audio,
 * sealed under keys of their own and numbered in a packet-number space of
 * their own (header flag bit 1, docs/RIFT_SPEC.md "Lanes").
 *
 * A session starts with both halves inside it ({@linkcode Session}). The
 * edges may detach them ({@linkcode Session.detachMedia}) and rebuild each
 * half in its own thread from the plain, structured-cloneable
 * {@linkcode MediaLaneState}: a {@linkcode MediaSender} in the host's media
 * send worker and a {@linkcode MediaReceiver} in the client's media receive
 * worker. Neither half shares mutable state with the session lane, so a busy
 * media thread never delays input and control.
 *
 * Sans-IO like the session: callers pass the time in milliseconds of their
 * own clock. The receive times a {@linkcode MediaReceiver} reports are in
 * microseconds of that clock; congestion control only compares them with
 * each other.
 *
 * @module
 */

import type { AeadBatch } from "../crypto/aead.ts";
import {
  type OpenErrorKind,
  PacketProtector,
  type TransportConfig,
  type TransportKeys,
} from "../crypto/transport.ts";
import {
  decodeFrames,
  encodedFrameLength,
  encodeFramesInto,
  type Frame,
  maxVideoPayload,
  type VideoFragmentFrame,
} from "./frames.ts";
import {
  compareFrameIds,
  type EncodedFrame,
  fragmentFrame,
  frameIdBefore,
  Reassembler,
} from "./fragment.ts";
import { FecReceiver, protectFrame, type VideoFecConfig } from "./fec/video.ts";
import {
  AEAD_TAG_LENGTH,
  FLAG_MEDIA_LANE,
  HEADER_LENGTH,
  keyPhaseOf,
  PacketType,
  RIFT_VERSION,
  splitSealed,
  type WireErrorKind,
} from "./wire.ts";

/** Default {@linkcode MediaLaneState.lossGraceMs}: reordering beyond 20 ms is rare on real paths. */
export const DEFAULT_LOSS_GRACE_MS = 20;

/** Everything a thread needs to run one half of a session's media lane; structured-cloneable. */
export interface MediaLaneState {
  /** The lane's keys (derived from the session's, see `deriveLaneKeys`). */
  keys: TransportKeys;
  /** The peer's connection id: the receiver's id goes in every header. */
  peerConnectionId: number;
  /** This side's connection id: what a received header must carry. */
  localConnectionId: number;
  /** Largest datagram sent or accepted. */
  maxDatagram: number;
  /** Give up reassembling a frame this long after its first fragment (ms). */
  frameDeadlineMs: number;
  /**
   * Give up an incomplete frame this long (ms) after a later frame completed:
   * the reordering a path may show. Optional for states from older peers.
   */
  lossGraceMs?: number;
  /** Forward error correction of video frames. */
  fec: VideoFecConfig;
  /** Packet protection tunables. */
  transport: Partial<TransportConfig>;
}

/** One sent media packet, as congestion control needs it. */
export interface SentPacket {
  /** Media-lane packet number. */
  packetNumber: number;
  /** Datagram size in bytes. */
  sizeBytes: number;
  /** When it was handed out, µs of the sender's clock. */
  sendTimeUs: number;
}

/** One received media packet, reported back to the sender in FEEDBACK frames. */
export interface MediaArrival {
  /** Media-lane packet number. */
  packetNumber: number;
  /** Receive time, µs of the receiver's clock. */
  receiveTimeUs: number;
}

/** Why a media-lane datagram was dropped. */
export type MediaDropKind =
  | WireErrorKind
  | "WrongConnection"
  | "WrongLane"
  | "Unauthenticated"
  | "Replayed"
  | "TooOld"
  | "UnexpectedFrame";

/** What the receiving half produced. */
export type MediaEvent =
  | { type: "video-frame"; frame: EncodedFrame }
  | { type: "video-frame-lost"; frameId: number }
  /** Fragments to ask for again (send a NACK frame on the session lane). */
  | { type: "nack"; frameId: number; indexes: number[] }
  | { type: "audio"; sequence: number; captureTimeUs: number; data: Uint8Array };

/** Counters of the sending half. */
export interface MediaSenderStats {
  /** Datagrams handed out. */
  datagramsSent: number;
  /** Bytes handed out. */
  bytesSent: number;
  /** Video frames queued. */
  framesQueued: number;
  /** FEC parity frames queued. */
  parityQueued: number;
  /** Fragments sent again after a NACK. */
  retransmitted: number;
  /** NACKed fragments no longer held (the frame was too old). */
  retransmitMisses: number;
}

/** Counters of the receiving half. */
export interface MediaReceiverStats {
  /** Datagrams accepted (authenticated and well formed). */
  datagramsAccepted: number;
  /** Dropped datagrams by kind. */
  dropped: Partial<Record<MediaDropKind, number>>;
  /** Media packets accepted. */
  packetsReceived: number;
  /** Packet numbers below the largest seen that never arrived. */
  packetsLost: number;
  /** Video frames reassembled. */
  framesCompleted: number;
  /** Video frames given up at their deadline. */
  framesLost: number;
  /** Video fragments rebuilt from FEC parity. */
  fecRecoveries: number;
  /** Id of the last frame reassembled (0 before the first). */
  lastCompleteFrameId: number;
  /** Frames NACKed (selective retransmission asked for). */
  nacksSent: number;
  /** NACKed frames that then completed in time. */
  retransmitRecoveries: number;
}

/** Datagrams opened with one AEAD call by {@linkcode MediaReceiver.handleBatch}. */
const RUN_MAX = 256;
/** Plaintext slab of the batch receive path (a new one when full; FEC keeps views into old ones). */
const SLAB_BYTES = 256 * 1024;
const EMPTY = new Uint8Array(0);

/** Frames a sender keeps for selective retransmission. */
const RETAINED_FRAMES = 32;
/** Frames whose loss handling the receiver remembers (NACK once per frame). */
const REVIEWED_FRAMES = 256;

function toMicros(ms: number): number {
  return Math.round(ms * 1000);
}

/** Seals a session's video and audio into media-lane datagrams. */
export class MediaSender {
  readonly #protector: PacketProtector;
  readonly #peerConnectionId: number;
  readonly #maxDatagram: number;
  #fec: VideoFecConfig;
  readonly #out: TransmitBatch = {
    bytes: new Uint8Array(0),
    lengths: new Int32Array(0),
    count: 0,
  };
  #offsets = new Int32Array(0);
  #counters = new Float64Array(0);
  readonly #frames: Frame[] = [];
  readonly #writeHeader: (pn: number, keyPhase: 0 | 1, buffer: Uint8Array, at: number) => void;
  readonly #audio: Frame[] = [];
  readonly #video: Frame[] = [];
  #sent: SentPacket[] = [];
  #recordSent = false;
  #closed = false;
  readonly #stats: MediaSenderStats = {
    datagramsSent: 0,
    bytesSent: 0,
    framesQueued: 0,
    parityQueued: 0,
    retransmitted: 0,
    retransmitMisses: 0,
  };
  readonly #retained = new Map<number, VideoFragmentFrame[]>();

  /** Builds the sending half from a detached lane state. */
  constructor(state: MediaLaneState, now: number) {
    this.#protector = new PacketProtector(state.keys, now, state.transport);
    this.#peerConnectionId = state.peerConnectionId;
    this.#maxDatagram = state.maxDatagram;
    this.#fec = state.fec;
    const peer = this.#peerConnectionId;
    this.#writeHeader = (packetNumber, keyPhase, buffer, at) => {
      // The 16-byte header (docs/RIFT_SPEC.md), written byte by byte: no DataView per packet.
      const hi = Math.floor(packetNumber / 0x100000000), lo = packetNumber >>> 0;
      buffer[at] = 0xc0 | RIFT_VERSION;
      buffer[at + 1] = PacketType.Sealed;
      buffer[at + 2] = keyPhase | FLAG_MEDIA_LANE;
      buffer[at + 3] = 0;
      buffer[at + 4] = peer >>> 24;
      buffer[at + 5] = (peer >>> 16) & 0xff;
      buffer[at + 6] = (peer >>> 8) & 0xff;
      buffer[at + 7] = peer & 0xff;
      buffer[at + 8] = hi >>> 24;
      buffer[at + 9] = (hi >>> 16) & 0xff;
      buffer[at + 10] = (hi >>> 8) & 0xff;
      buffer[at + 11] = hi & 0xff;
      buffer[at + 12] = lo >>> 24;
      buffer[at + 13] = (lo >>> 16) & 0xff;
      buffer[at + 14] = (lo >>> 8) & 0xff;
      buffer[at + 15] = lo & 0xff;
    };
  }

  /** Video payload bytes per datagram. */
  get maxVideoPayload(): number {
    return maxVideoPayload(this.#maxDatagram);
  }

  /** The FEC applied to frames queued from now on. */
  get fec(): VideoFecConfig {
    return this.#fec;
  }

  /** Changes the FEC of the frames queued from now on (the congestion controller's choice). */
  setFec(fec: VideoFecConfig): void {
    this.#fec = fec;
  }

  /** Counters (a copy). */
  get stats(): MediaSenderStats {
    return { ...this.#stats };
  }

  /** Whether datagrams are waiting for {@linkcode pollTransmit}. */
  get pending(): boolean {
    return this.#audio.length > 0 || this.#video.length > 0;
  }

  /** Starts recording every sent packet for {@linkcode takeSent} (congestion control). */
  recordSentPackets(): void {
    this.#recordSent = true;
  }

  /** The packets sent since the last call (empty unless {@linkcode recordSentPackets} was called). */
  takeSent(): SentPacket[] {
    const sent = this.#sent;
    this.#sent = [];
    return sent;
  }

  /** Queues an encoded video frame: its fragments, then its FEC parity. */
  sendVideoFrame(frame: EncodedFrame): void {
    if (this.#closed) return;
    const fragments = fragmentFrame(frame, this.maxVideoPayload);
    for (const fragment of fragments) this.#video.push(fragment);
    this.#retained.set(frame.frameId, fragments);
    if (this.#retained.size > RETAINED_FRAMES) {
      this.#retained.delete(this.#retained.keys().next().value!);
    }
    // Parity follows its frame's fragments, so a loss is repaired before the frame's deadline.
    const parity = protectFrame(fragments, this.#fec);
    for (const p of parity) this.#video.push(p);
    this.#stats.framesQueued++;
    this.#stats.parityQueued += parity.length;
  }

  /**
   * Sends fragments of a recent frame again (a NACK arrived), ahead of queued
   * video: they complete an older frame the receiver is waiting on, while the
   * queued ones belong to frames it cannot decode before that one anyway.
   * Returns how many were queued; a frame no longer held is ignored.
   */
  retransmit(frameId: number, indexes: readonly number[]): number {
    if (this.#closed) return 0;
    const fragments = this.#retained.get(frameId);
    if (fragments === undefined) {
      this.#stats.retransmitMisses += indexes.length;
      return 0;
    }
    const again = indexes.flatMap((i) => i < fragments.length ? [fragments[i]] : []);
    this.#video.unshift(...again);
    this.#stats.retransmitted += again.length;
    return again.length;
  }

  /** Queues one audio packet (unreliable: late audio is useless); audio goes ahead of video. */
  sendAudio(sequence: number, captureTimeUs: number, data: Uint8Array): void {
    if (this.#closed) return;
    this.#audio.push({ type: "audio", sequence, captureTimeUs, data: data.slice() });
  }

  /** Drops everything queued and sends nothing more. */
  close(): void {
    this.#closed = true;
    this.#audio.length = 0;
    this.#video.length = 0;
    this.#retained.clear();
  }

  /** The next media datagram (a copy), or undefined when nothing is queued. */
  pollTransmit(now: number): Uint8Array | undefined {
    const batch = this.pollTransmitBatch(now, 1);
    return batch.count === 0 ? undefined : batch.bytes.slice(0, batch.lengths[0]);
  }

  /**
   * The next datagrams, at most `maxDatagrams` of them, while fewer than
   * `budgetBytes` have been taken (the last may overshoot, as a token bucket
   * allows): laid out back to back in `bytes` (datagram i is `lengths[i]`
   * bytes), sealed with one AEAD call, ready for one `sendmmsg`. The batch
   * lives in this sender's own buffers: it is valid until the next call.
   */
  pollTransmitBatch(now: number, maxDatagrams: number, budgetBytes = Infinity): TransmitBatch {
    const out = this.#out;
    out.count = 0;
    if (this.#closed || !(maxDatagrams >= 1)) return out;
    if (maxDatagrams > out.lengths.length) this.#grow(maxDatagrams);
    const max = this.#maxDatagram;
    const bytes = this.#out.bytes;
    let at = 0;
    let n = 0;
    let spent = 0;
    const frames = this.#frames;
    while (n < maxDatagrams && spent < budgetBytes) {
      frames.length = 0;
      let room = max - HEADER_LENGTH - AEAD_TAG_LENGTH;
      for (let q = 0; q < 2; q++) {
        const queue = q === 0 ? this.#audio : this.#video;
        while (queue.length > 0) {
          const length = encodedFrameLength(queue[0]);
          if (length > room || sharesGroup(frames, queue[0])) break;
          frames.push(queue.shift()!);
          room -= length;
        }
      }
      if (frames.length === 0) break;
      const end = encodeFramesInto(frames, bytes, at + HEADER_LENGTH) + AEAD_TAG_LENGTH;
      this.#offsets[n] = at;
      out.lengths[n] = end - at;
      spent += end - at;
      at = end;
      n++;
    }
    frames.length = 0;
    if (n === 0) return out;
    const sealed = this.#protector.sealBatch(this.#writeHeader, {
      buffer: bytes,
      offsets: this.#offsets,
      lengths: out.lengths,
      counters: this.#counters,
      count: n,
    }, now);
    if (sealed.sealed < n) {
      // 2^53 packets: unreachable in practice; stop rather than reuse a nonce.
      this.close();
      out.count = 0;
      return out;
    }
    out.count = n;
    this.#stats.datagramsSent += n;
    this.#stats.bytesSent += at;
    if (this.#recordSent) {
      const sendTimeUs = toMicros(now);
      for (let i = 0; i < n; i++) {
        this.#sent.push({
          packetNumber: sealed.firstPacketNumber + i,
          sizeBytes: out.lengths[i],
          sendTimeUs,
        });
      }
    }
    return out;
  }

  #grow(maxDatagrams: number): void {
    this.#out.bytes = new Uint8Array(maxDatagrams * this.#maxDatagram);
    this.#out.lengths = new Int32Array(maxDatagrams);
    this.#offsets = new Int32Array(maxDatagrams);
    this.#counters = new Float64Array(maxDatagrams);
  }
}

/**
 * Whether `next` is parity of a frame `packed` already carries, or a fragment
 * of a frame whose parity it carries: parity in the same datagram as what it
 * protects is lost with it, so small frames (one fragment and its parity fit one
 * datagram) would gain nothing from FEC.
 */
function sharesGroup(packed: readonly Frame[], next: Frame): boolean {
  if (next.type !== "video" && next.type !== "fec") return false;
  for (const f of packed) {
    if (
      (f.type === "video" || f.type === "fec") && f.frameId === next.frameId &&
      (f.type === "fec" || next.type === "fec")
    ) return true;
  }
  return false;
}

/** Datagrams {@linkcode MediaSender.pollTransmitBatch} sealed, back to back in one buffer. */
export interface TransmitBatch {
  /** The datagrams, back to back (the buffer is longer than their sum). */
  bytes: Uint8Array;
  /** Length of datagram i. */
  lengths: Int32Array;
  /** Datagrams in the batch. */
  count: number;
}

/** Opens media-lane datagrams, rebuilds lost fragments from FEC and reassembles frames. */
export class MediaReceiver {
  readonly #protector: PacketProtector;
  readonly #localConnectionId: number;
  readonly #maxDatagram: number;
  readonly #lossGraceMs: number;
  readonly #reassembler: Reassembler;
  readonly #fec = new FecReceiver();
  readonly #events: MediaEvent[] = [];
  #arrivals: MediaArrival[] = [];
  #retransmitRttMs: number | undefined;
  readonly #reviewed = new Set<number>();
  /** Frames NACKed and not yet complete or lost: later frames wait for them (decode order). */
  readonly #awaiting = new Set<number>();
  #held: EncodedFrame[] = [];
  #largestReceived = -1;
  #receivedCount = 0;
  // Batch receive scratch, allocated once.
  readonly #run: AeadBatch = {
    buffer: EMPTY,
    offsets: new Int32Array(RUN_MAX),
    lengths: new Int32Array(RUN_MAX),
    counters: new Float64Array(RUN_MAX),
    count: 0,
  };
  readonly #runIndex = new Int32Array(RUN_MAX);
  readonly #dstOffsets = new Int32Array(RUN_MAX);
  readonly #ok = new Uint8Array(RUN_MAX);
  readonly #kinds: (OpenErrorKind | undefined)[] = new Array(RUN_MAX).fill(undefined);
  #slab = EMPTY;
  #slabAt = 0;
  readonly #stats: MediaReceiverStats = {
    datagramsAccepted: 0,
    dropped: {},
    packetsReceived: 0,
    packetsLost: 0,
    framesCompleted: 0,
    framesLost: 0,
    fecRecoveries: 0,
    lastCompleteFrameId: 0,
    nacksSent: 0,
    retransmitRecoveries: 0,
  };

  /** Builds the receiving half from a detached lane state. */
  constructor(state: MediaLaneState, now: number) {
    this.#protector = new PacketProtector(state.keys, now, state.transport);
    this.#localConnectionId = state.localConnectionId;
    this.#maxDatagram = state.maxDatagram;
    this.#reassembler = new Reassembler({ deadlineMs: state.frameDeadlineMs });
    this.#lossGraceMs = state.lossGraceMs ?? DEFAULT_LOSS_GRACE_MS;
  }

  /** Counters (a copy). */
  get stats(): MediaReceiverStats {
    this.#stats.packetsReceived = this.#receivedCount;
    this.#stats.packetsLost = Math.max(0, this.#largestReceived + 1 - this.#receivedCount);
    this.#stats.fecRecoveries = this.#fec.recovered;
    return structuredClone(this.#stats);
  }

  /**
   * Enables selective retransmission with the current smoothed RTT (ms), or
   * disables it (undefined). A frame is NACKed only when a retransmission can
   * still arrive before the frame's deadline.
   */
  setRetransmission(rttMs: number | undefined): void {
    this.#retransmitRttMs = rttMs !== undefined && rttMs >= 0 && Number.isFinite(rttMs)
      ? rttMs
      : undefined;
  }

  /** Packets the sender should count as lost (for the FEEDBACK frame's `lost_total`). */
  get lostTotal(): number {
    return Math.max(0, this.#largestReceived + 1 - this.#receivedCount);
  }

  /**
   * Takes one media-lane datagram. Returns why it was dropped, or undefined
   * when accepted; a dropped datagram changes nothing but the counters.
   */
  handleDatagram(datagram: Uint8Array, now: number): MediaDropKind | undefined {
    const drop = this.#handle(datagram, now);
    if (drop === undefined) this.#stats.datagramsAccepted++;
    else this.#stats.dropped[drop] = (this.#stats.dropped[drop] ?? 0) + 1;
    return drop;
  }

  #handle(datagram: Uint8Array, now: number): MediaDropKind | undefined {
    if (datagram.length > this.#maxDatagram) return "Oversized";
    const split = splitSealed(datagram);
    if (!split.ok) return split.error.kind;
    const { header, headerBytes, sealed } = split.value;
    if ((header.flags & FLAG_MEDIA_LANE) === 0) return "WrongLane";
    if (header.connectionId !== this.#localConnectionId) return "WrongConnection";
    const opened = this.#protector.open(
      headerBytes,
      header.packetNumber,
      keyPhaseOf(header),
      sealed,
      now,
    );
    if (!opened.ok) return opened.kind;
    const frames = decodeFrames(opened.plaintext);
    if (!frames.ok) return frames.error.kind;
    // Only media frames belong on this lane; anything else means a confused or hostile peer.
    for (const f of frames.value) {
      if (f.type !== "video" && f.type !== "fec" && f.type !== "audio" && f.type !== "padding") {
        return "UnexpectedFrame";
      }
    }
    opened.commit();
    this.#accept(frames.value, header.packetNumber, now);
    return undefined;
  }

  /**
   * Takes `count` media-lane datagrams at once: datagram i is
   * `buffer[offsets[i], offsets[i] + lengths[i])`, received at `times[i]`.
   * The outcome (events, counters, drops) is that of
   * {@linkcode handleDatagram} on each in turn, but runs of well-formed
   * datagrams under the current key are opened with one AEAD call and no
   * allocation per datagram. `buffer` may be reused once this returns.
   * Returns how many were accepted.
   */
  handleBatch(
    buffer: Uint8Array,
    offsets: ArrayLike<number>,
    lengths: ArrayLike<number>,
    count: number,
    times: ArrayLike<number>,
  ): number {
    let accepted = 0;
    let i = 0;
    while (i < count) {
      const phase = this.#protector.receivePhase;
      const run = this.#run;
      let n = 0;
      let need = 0;
      for (; i < count && n < RUN_MAX; i++) {
        const pn = this.#fastHeader(buffer, offsets[i], lengths[i], phase);
        if (pn < 0) break;
        run.offsets[n] = offsets[i];
        run.lengths[n] = lengths[i];
        run.counters[n] = pn;
        this.#runIndex[n] = i;
        need += lengths[i] - HEADER_LENGTH - AEAD_TAG_LENGTH;
        n++;
      }
      if (n > 0) accepted += this.#openRun(buffer, n, need, times);
      if (n < RUN_MAX && i < count) {
        // Anything unusual (another key phase, a bad header) takes the one-at-a-time path.
        const at = offsets[i];
        if (this.handleDatagram(buffer.subarray(at, at + lengths[i]), times[i]) === undefined) {
          accepted++;
        }
        i++;
      }
    }
    return accepted;
  }

  /** The packet number of a well-formed media-lane header in the given key phase, else -1. */
  #fastHeader(buffer: Uint8Array, at: number, length: number, phase: number): number {
    if (
      !(length >= HEADER_LENGTH + AEAD_TAG_LENGTH && length <= this.#maxDatagram && at >= 0 &&
        at + length <= buffer.length)
    ) return -1;
    const flags = buffer[at + 2];
    if (
      buffer[at] !== (0xc0 | RIFT_VERSION) || buffer[at + 1] !== PacketType.Sealed ||
      (flags & FLAG_MEDIA_LANE) === 0 || (flags & 1) !== phase
    ) return -1;
    const cid = ((buffer[at + 4] << 24) | (buffer[at + 5] << 16) | (buffer[at + 6] << 8) |
      buffer[at + 7]) >>> 0;
    if (cid !== this.#localConnectionId) return -1;
    const hi = ((buffer[at + 8] << 24) | (buffer[at + 9] << 16) | (buffer[at + 10] << 8) |
      buffer[at + 11]) >>> 0;
    if (hi > 0x1fffff) return -1;
    const lo = ((buffer[at + 12] << 24) | (buffer[at + 13] << 16) | (buffer[at + 14] << 8) |
      buffer[at + 15]) >>> 0;
    return hi * 0x100000000 + lo;
  }

  #openRun(buffer: Uint8Array, n: number, need: number, times: ArrayLike<number>): number {
    // Plaintexts go to a slab of our own: FEC keeps views of fragments, the caller's buffer is free.
    if (this.#slab.length - this.#slabAt < need) {
      this.#slab = new Uint8Array(Math.max(SLAB_BYTES, need));
      this.#slabAt = 0;
    }
    const run = this.#run;
    const dstOffsets = this.#dstOffsets;
    let at = this.#slabAt;
    for (let j = 0; j < n; j++) {
      dstOffsets[j] = at;
      at += run.lengths[j] - HEADER_LENGTH - AEAD_TAG_LENGTH;
      this.#ok[j] = 1;
    }
    this.#slabAt = at;
    run.buffer = buffer;
    run.count = n;
    const kinds = this.#kinds;
    this.#protector.openCurrentBatch(run, this.#slab, dstOffsets, this.#ok, kinds);
    run.buffer = EMPTY;
    let accepted = 0;
    for (let j = 0; j < n; j++) {
      const now = times[this.#runIndex[j]];
      const pn = run.counters[j];
      // The drop handleDatagram would report at this point of the sequence: replay first.
      const drop = this.#protector.replayKind(pn) ??
        (this.#ok[j] === 1 ? this.#acceptOpened(j, pn, now) : kinds[j] ?? "Unauthenticated");
      if (drop === undefined) {
        this.#stats.datagramsAccepted++;
        accepted++;
      } else {
        this.#stats.dropped[drop] = (this.#stats.dropped[drop] ?? 0) + 1;
      }
    }
    return accepted;
  }

  #acceptOpened(j: number, pn: number, now: number): MediaDropKind | undefined {
    const start = this.#dstOffsets[j];
    const plaintext = this.#slab.subarray(
      start,
      start + this.#run.lengths[j] - HEADER_LENGTH - AEAD_TAG_LENGTH,
    );
    const frames = decodeFrames(plaintext);
    if (!frames.ok) return frames.error.kind;
    for (const f of frames.value) {
      if (f.type !== "video" && f.type !== "fec" && f.type !== "audio" && f.type !== "padding") {
        return "UnexpectedFrame";
      }
    }
    const late = this.#protector.commitCurrent(pn, now);
    if (late !== undefined) return late;
    this.#accept(frames.value, pn, now);
    return undefined;
  }

  #accept(frames: Frame[], packetNumber: number, now: number): void {
    this.#receivedCount++;
    this.#largestReceived = Math.max(this.#largestReceived, packetNumber);
    this.#arrivals.push({ packetNumber, receiveTimeUs: toMicros(now) });
    for (const frame of frames) {
      switch (frame.type) {
        case "video":
          this.#onFragment(frame, now);
          for (const rebuilt of this.#fec.onFragment(frame)) this.#onFragment(rebuilt, now);
          break;
        case "fec":
          for (const rebuilt of this.#fec.onParity(frame)) this.#onFragment(rebuilt, now);
          break;
        case "audio":
          this.#events.push({
            type: "audio",
            sequence: frame.sequence,
            captureTimeUs: frame.captureTimeUs,
            data: frame.data.slice(),
          });
          break;
      }
    }
  }

  #onFragment(fragment: VideoFragmentFrame, now: number): void {
    const complete = this.#reassembler.push(fragment, now);
    if (complete === undefined) return;
    this.#stats.framesCompleted++;
    this.#stats.lastCompleteFrameId = complete.frameId;
    if (this.#awaiting.delete(complete.frameId)) this.#stats.retransmitRecoveries++;
    this.#reviewOlder(complete.frameId, now);
    this.#held.push(complete);
    this.#release();
  }

  /**
   * A frame's fragments and FEC parity all leave before the next frame's, so
   * an older frame still incomplete once a newer one is whole lacks packets
   * FEC could not rebuild: NACK them when a retransmission fits before its
   * deadline, else give it up after a short reordering grace (so the keyframe
   * request leaves then, not at the full reassembly deadline).
   */
  #reviewOlder(frameId: number, now: number): void {
    for (const f of this.#reassembler.incompleteBefore(frameId)) {
      if (this.#reviewed.has(f.frameId)) continue;
      this.#reviewed.add(f.frameId);
      if (this.#reviewed.size > REVIEWED_FRAMES) {
        this.#reviewed.delete(this.#reviewed.values().next().value!);
      }
      const rtt = this.#retransmitRttMs;
      const wait = rtt === undefined ? Infinity : 1.5 * rtt + this.#lossGraceMs;
      if (now + wait < f.deadline && f.missing.length > 0 && f.missing.length <= 255) {
        this.#stats.nacksSent++;
        this.#awaiting.add(f.frameId);
        this.#events.push({ type: "nack", frameId: f.frameId, indexes: f.missing });
        this.#reassembler.hasten(f.frameId, now + wait);
      } else {
        this.#reassembler.hasten(f.frameId, now + this.#lossGraceMs);
      }
    }
  }

  /** Delivers completed frames in order: none overtakes a NACKed frame still on its way. */
  #release(): void {
    if (this.#held.length === 0) return;
    const blocked = (frameId: number) => {
      for (const a of this.#awaiting) if (frameIdBefore(a, frameId)) return true;
      return false;
    };
    // Oldest first (serial-number order), whatever order they completed in.
    this.#held.sort((a, b) => compareFrameIds(a.frameId, b.frameId));
    const keep: EncodedFrame[] = [];
    for (const frame of this.#held) {
      if (blocked(frame.frameId)) keep.push(frame);
      else this.#events.push({ type: "video-frame", frame });
    }
    this.#held = keep;
  }

  /** Arrivals since the last call, for the session lane's FEEDBACK frames. */
  takeArrivals(): MediaArrival[] {
    const arrivals = this.#arrivals;
    this.#arrivals = [];
    return arrivals;
  }

  /** When the next reassembly deadline falls, or undefined. */
  pollTimeout(): number | undefined {
    return this.#reassembler.nextDeadline();
  }

  /** Gives up the frames whose deadline passed (each becomes a `video-frame-lost` event). */
  handleTimeout(now: number): void {
    for (const frameId of this.#reassembler.expire(now)) {
      this.#stats.framesLost++;
      this.#awaiting.delete(frameId);
      this.#events.push({ type: "video-frame-lost", frameId });
    }
    this.#release();
  }

  /** The next event, once each. */
  pollEvent(): MediaEvent | undefined {
    return this.#events.shift();
  }
}
