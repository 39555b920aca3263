/**
 * One RIFT connection as a sans-IO state machine.
 *
 * The session never touches a socket or a clock. Its owner feeds it datagrams
 * and the time (`handleDatagram`, `handleTimeout`), drains what it wants to
 * send (`pollTransmit`), asks when to wake it (`pollTimeout`) and reads what
 * happened (`pollEvent`). The same code runs over real UDP sockets and inside
 * the deterministic link simulator.
 *
 * Bad input is a value, not an exception: every datagram that cannot be
 * accepted returns its {@linkcode DropKind}, is counted in
 * {@linkcode SessionStats.dropped}, and leaves the session exactly as it was.
 *
 * @module
 */

import { type HandshakeError, RiftHandshake } from "../crypto/handshake.ts";
import type { IdentityKeyPair } from "../crypto/identity.ts";
import {
  deriveLaneKeys,
  MEDIA_LANE_LABEL,
  PacketProtector,
  type TransportConfig,
} from "../crypto/transport.ts";
import {
  CloseCode,
  decodeFrames,
  encodedFrameLength,
  encodeFramesInto,
  type Frame,
  KeyframeReason,
  maxVideoPayload,
} from "./frames.ts";
import type { EncodedFrame } from "./fragment.ts";
import { ReliableReceiver, ReliableSender } from "./reliable.ts";
import { DEFAULT_VIDEO_FEC, type VideoFecConfig } from "./fec/video.ts";
import {
  type MediaArrival,
  type MediaLaneState,
  MediaReceiver,
  MediaSender,
} from "./media_lane.ts";
import { RttEstimator, type RttSnapshot } from "./rtt.ts";
import {
  AEAD_TAG_LENGTH,
  decodeHeader,
  decodeVersionNegotiation,
  DEFAULT_MAX_DATAGRAM,
  encodeHandshakePacket,
  encodeHeader,
  FLAG_MEDIA_LANE,
  HEADER_LENGTH,
  keyPhaseOf,
  negotiateVersion,
  PacketType,
  RIFT_VERSION,
  splitSealed,
  SUPPORTED_VERSIONS,
  versionNegotiationResponse,
  type WireErrorKind,
} from "./wire.ts";

/** Length of Noise message 1 in RIFT v1: ephemeral key (32) + initiator connection id (4). */
export const INIT_NOISE_LENGTH = 36;

/** Why a datagram was dropped. Each kind is counted in {@linkcode SessionStats.dropped}. */
export type DropKind =
  | WireErrorKind
  | "WrongConnection"
  | "Unauthenticated"
  | "Replayed"
  | "TooOld"
  | "UnexpectedPacket"
  | "HandshakeRejected"
  | "ForgedVersionNegotiation"
  | "AmplificationLimit"
  | "WrongLane"
  | "UnexpectedFrame"
  | "Closed";

/** Timers and limits of a session; every value in milliseconds unless named otherwise. */
export interface SessionConfig {
  /** Largest datagram the session sends or accepts, in bytes. */
  maxDatagram: number;
  /** First handshake retransmission timeout. */
  handshakeRtoMs: number;
  /** Cap of the doubling handshake retransmission timeout. */
  handshakeMaxRtoMs: number;
  /** Give up a handshake that has not completed after this long. */
  handshakeTimeoutMs: number;
  /** Send a PING this often once established (keepalive and RTT). */
  keepaliveMs: number;
  /** Close when nothing authenticated arrived for this long. */
  idleTimeoutMs: number;
  /** Give up reassembling a video frame this long after its first fragment. */
  frameDeadlineMs: number;
  /** Give up an incomplete frame this long after a later frame completed (reordering grace). */
  lossGraceMs: number;
  /**
   * Ask for lost video fragments again (NACK) when the round trip fits inside
   * the frame's deadline (LAN, nearby hosts); FEC remains the first repair.
   */
  retransmit: boolean;
  /** Send FEEDBACK (receive times) at most this often. */
  feedbackIntervalMs: number;
  /** Lower bound of the reliable channels' retransmission timeout. */
  minReliableRtoMs: number;
  /** Packet protection (rekeying, replay window, AEAD backend). */
  transport: Partial<TransportConfig>;
  /** Forward error correction of video frames (off by default: parity ratio 0). */
  fec: VideoFecConfig;
}

/** Defaults tuned for interactive streaming. */
export const DEFAULT_SESSION_CONFIG: SessionConfig = {
  maxDatagram: DEFAULT_MAX_DATAGRAM,
  handshakeRtoMs: 200,
  handshakeMaxRtoMs: 1000,
  handshakeTimeoutMs: 15_000,
  keepaliveMs: 500,
  idleTimeoutMs: 10_000,
  frameDeadlineMs: 150,
  lossGraceMs: 20,
  retransmit: true,
  feedbackIntervalMs: 20,
  minReliableRtoMs: 10,
  transport: {},
  fec: DEFAULT_VIDEO_FEC,
};

/** Who this session is and whom it accepts. */
export interface SessionOptions {
  /** This side's long-term Ed25519 identity. */
  identity: IdentityKeyPair;
  /** Whether the peer's Ed25519 identity is acceptable (default: any). */
  acceptPeer?: (peerIdentity: Uint8Array) => boolean;
  /** Randomness (Noise ephemerals, connection id); the simulator passes a seeded one. */
  random?: (n: number) => Uint8Array;
  /** This side's connection id; random and non-zero by default. */
  localConnectionId?: number;
  /** Opaque bytes for the peer, carried encrypted in the handshake. */
  extension?: Uint8Array;
  /** Overrides of {@linkcode DEFAULT_SESSION_CONFIG}. */
  config?: Partial<SessionConfig>;
}

/** Lifecycle of a session. */
export type SessionState = "handshaking" | "established" | "closed";

/** Received per-packet timing of media-lane packets, as the peer reported it in FEEDBACK frames. */
export interface FeedbackReport {
  /** Media packets the peer counts as lost so far. */
  readonly lostTotal: number;
  /** Media-lane packet number and peer-clock receive time (µs) of each packet reported. */
  readonly arrivals: ReadonlyArray<
    { packetNumber: number; receiveTimeUs: number }
  >;
}

/** Something that happened, read with {@linkcode Session.pollEvent}. */
export type SessionEvent =
  | { type: "established"; peerIdentity: Uint8Array; peerExtension: Uint8Array }
  | { type: "video-frame"; frame: EncodedFrame }
  | { type: "video-frame-lost"; frameId: number }
  | { type: "audio"; sequence: number; captureTimeUs: number; data: Uint8Array }
  /** `at`: when the datagram that made it deliverable arrived (the `now` given to handleDatagram). */
  | { type: "input"; data: Uint8Array; at: number }
  | { type: "control"; data: Uint8Array }
  | { type: "keyframe-request"; lastCompleteFrameId: number; reason: number }
  /** The peer asks for fragments of a video frame again (selective retransmission). */
  | { type: "nack"; frameId: number; indexes: number[] }
  | { type: "feedback"; report: FeedbackReport }
  | { type: "closed"; code: number; reason: string; byPeer: boolean };

/** Counters of one session. */
export interface SessionStats {
  /** Datagrams handed out by pollTransmit. */
  datagramsSent: number;
  /** Bytes handed out by pollTransmit. */
  bytesSent: number;
  /** Datagrams passed to handleDatagram. */
  datagramsReceived: number;
  /** Datagrams accepted (authenticated and well formed). */
  datagramsAccepted: number;
  /** Dropped datagrams by kind. */
  dropped: Partial<Record<DropKind, number>>;
  /** Handshake messages sent again. */
  handshakeRetransmissions: number;
  /** Input and control messages sent again. */
  reliableRetransmissions: number;
  /** Video frames reassembled. */
  framesCompleted: number;
  /** Video frames given up at their deadline. */
  framesLost: number;
  /** Packets the peer reported lost (latest FEEDBACK). */
  peerReportedLost: number;
  /** SEALED packets from the peer accepted here. */
  packetsReceived: number;
  /** Packets from the peer this side counts as lost: numbers below the largest seen that never arrived. */
  packetsLost: number;
  /** Video fragments rebuilt from FEC parity (lost on the wire, recovered without retransmission). */
  fecRecoveries: number;
}

const CHANNEL_INPUT = 0x12;
const CHANNEL_CONTROL = 0x13;
/** FEEDBACK entries per frame, so one frame fits any datagram of 256 bytes or more. */
const MAX_FEEDBACK_ENTRIES = 32;
/** Before the handshake completes a responder sends at most this many times what it received (anti-amplification). */
const AMPLIFICATION_FACTOR = 3;
/** INITs a responder keeps answering before the oldest is forgotten. */
const MAX_RESPONDER_ATTEMPTS = 4;

/** A responder's answer to one INIT, kept until a FINISH completes one of them. */
interface ResponderAttempt {
  init: Uint8Array;
  handshake: RiftHandshake;
  peerId: number;
  response: Uint8Array;
}

function defaultRandom(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

/** A RIFT connection to one peer: handshake, packet protection, channels and timers. */
export class Session {
  /** Which side of the handshake this is. */
  readonly role: "initiator" | "responder";
  readonly #config: SessionConfig;
  readonly #options: SessionOptions;
  readonly #random: (n: number) => Uint8Array;
  readonly #localId: number;
  readonly #startedAt: number;

  #state: SessionState = "handshaking";
  #handshake: RiftHandshake | undefined;
  #protector: PacketProtector | undefined;
  #peerId = 0;
  #peerIdentity: Uint8Array | undefined;

  // Initiator: the handshake message it retransmits until answered (INIT, then FINISH).
  #flightType: PacketType | undefined;
  #flightBody: Uint8Array | undefined;
  #flightRetransmitAt: number | undefined;
  #flightRto = 0;
  // Responder: the latest few INITs it answered. An INIT is unauthenticated, so a changed or
  // injected copy must not displace the genuine attempt that the FINISH will complete.
  readonly #attempts: ResponderAttempt[] = [];
  #receivedFinish: Uint8Array | undefined;
  #receivedResponse: Uint8Array | undefined;
  #confirmed = false;
  #amplificationCredit = 0;

  readonly #handshakeOut: Uint8Array[] = [];
  readonly #controlFrames: Frame[] = [];
  readonly #events: SessionEvent[] = [];

  // The media lane: inside the session until an edge detaches it to run in its own threads.
  #mediaSender: MediaSender | undefined;
  #mediaReceiver: MediaReceiver | undefined;
  #mediaState: MediaLaneState | undefined;
  #mediaDetached = false;
  #lastCompleteFrameId = 0;

  readonly #inputOut = new ReliableSender();
  readonly #inputIn = new ReliableReceiver();
  readonly #controlOut = new ReliableSender();
  readonly #controlIn = new ReliableReceiver();
  readonly #rtt = new RttEstimator();

  #lastAuthenticatedAt: number;
  #nextPingAt: number | undefined;
  #nextPingId = 1;
  readonly #pingsInFlight = new Map<number, number>();

  // Receive-time feedback of media packets, for delay-based congestion control.
  #arrivals: MediaArrival[] = [];
  #mediaLostTotal = 0;
  #feedbackDueAt: number | undefined;
  // Session-lane packet accounting (the media lane counts its own).
  #largestReceived = -1;
  #receivedCount = 0;

  #closeFrameQueued = false;
  /** Frames are encoded here, then sealed straight into the outgoing datagram. */
  readonly #plaintext: Uint8Array;
  #stats: SessionStats = {
    datagramsSent: 0,
    bytesSent: 0,
    datagramsReceived: 0,
    datagramsAccepted: 0,
    dropped: {},
    handshakeRetransmissions: 0,
    reliableRetransmissions: 0,
    framesCompleted: 0,
    framesLost: 0,
    peerReportedLost: 0,
    packetsReceived: 0,
    packetsLost: 0,
    fecRecoveries: 0,
  };

  private constructor(
    role: "initiator" | "responder",
    options: SessionOptions,
    now: number,
  ) {
    this.role = role;
    this.#options = options;
    this.#config = { ...DEFAULT_SESSION_CONFIG, ...options.config };
    this.#random = options.random ?? defaultRandom;
    this.#localId = options.localConnectionId ?? this.#randomConnectionId();
    this.#startedAt = now;
    this.#lastAuthenticatedAt = now;
    this.#plaintext = new Uint8Array(this.#config.maxDatagram);
  }

  /** Starts a connection as the initiator: the first datagram is ready at once. */
  static connect(options: SessionOptions, now: number): Session {
    const session = new Session("initiator", options, now);
    session.#handshake = RiftHandshake.initiator(session.#handshakeOptions());
    session.#startFlight(
      PacketType.HandshakeInit,
      session.#handshake.writeNext(),
      now,
    );
    return session;
  }

  /** Creates the responder side; it waits for the initiator's HANDSHAKE_INIT. */
  static accept(options: SessionOptions, now: number): Session {
    return new Session("responder", options, now);
  }

  /** Lifecycle state. */
  get state(): SessionState {
    return this.#state;
  }

  /** This side's connection id (peers address packets to it). */
  get localConnectionId(): number {
    return this.#localId;
  }

  /** The peer's connection id, once known. */
  get peerConnectionId(): number | undefined {
    return this.#peerId === 0 ? undefined : this.#peerId;
  }

  /** The peer's verified Ed25519 identity, once the handshake proved it. */
  get peerIdentity(): Uint8Array | undefined {
    return this.#peerIdentity;
  }

  /** Round-trip estimate. */
  get rtt(): RttSnapshot {
    return this.#rtt.snapshot;
  }

  /** Peer clock minus local clock (µs), estimated from PING/PONG. */
  get clockOffsetUs(): number | undefined {
    return this.#rtt.clockOffsetUs;
  }

  /** Counters (a copy). */
  get stats(): SessionStats {
    this.#stats.reliableRetransmissions = this.#inputOut.retransmissions +
      this.#controlOut.retransmissions;
    const media = this.#mediaReceiver?.stats;
    this.#stats.packetsReceived = this.#receivedCount + (media?.packetsReceived ?? 0);
    this.#stats.packetsLost = Math.max(0, this.#largestReceived + 1 - this.#receivedCount) +
      (media?.packetsLost ?? 0);
    this.#stats.fecRecoveries = media?.fecRecoveries ?? 0;
    this.#stats.framesCompleted = media?.framesCompleted ?? 0;
    this.#stats.framesLost = media?.framesLost ?? 0;
    return structuredClone(this.#stats);
  }

  /** Video payload bytes that fit one datagram. */
  get maxVideoPayload(): number {
    return maxVideoPayload(this.#config.maxDatagram);
  }

  // ---------------------------------------------------------------- input

  /**
   * Takes one datagram off the wire. Returns why it was dropped, or undefined
   * when it was accepted. A dropped datagram changes nothing but the counters.
   */
  handleDatagram(datagram: Uint8Array, now: number): DropKind | undefined {
    this.#stats.datagramsReceived++;
    const drop = this.#handle(datagram, now);
    if (drop === undefined) {
      this.#stats.datagramsAccepted++;
    } else {
      this.#stats.dropped[drop] = (this.#stats.dropped[drop] ?? 0) + 1;
    }
    return drop;
  }

  #handle(datagram: Uint8Array, now: number): DropKind | undefined {
    if (this.#state === "closed") return "Closed";
    if (datagram.length > this.#config.maxDatagram) return "Oversized";
    const decoded = decodeHeader(datagram, this.#config.maxDatagram);
    if (!decoded.ok) {
      if (decoded.error.kind === "UnknownVersion") {
        this.#answerUnknownVersion(datagram);
      }
      return decoded.error.kind;
    }
    const header = decoded.value;
    if (header.type !== PacketType.Sealed && !isCanonicalHandshakeHeader(datagram)) {
      return "Malformed";
    }
    switch (header.type) {
      case PacketType.VersionNegotiation:
        return this.#onVersionNegotiation(datagram, now);
      case PacketType.HandshakeInit:
        return this.#onInit(datagram);
      case PacketType.HandshakeResponse:
        if (header.connectionId !== this.#localId) return "WrongConnection";
        return this.#onResponse(datagram.subarray(HEADER_LENGTH), now);
      case PacketType.HandshakeFinish:
        if (header.connectionId !== this.#localId) return "WrongConnection";
        return this.#onFinish(datagram.subarray(HEADER_LENGTH), now);
      case PacketType.Sealed:
        return this.#onSealed(datagram, now);
      default:
        return "UnknownType";
    }
  }

  #answerUnknownVersion(datagram: Uint8Array): void {
    // Only a responder still waiting for its first INIT answers (with no more bytes than it got).
    if (this.role !== "responder" || this.#attempts.length > 0 || this.#protector) return;
    const answer = versionNegotiationResponse(
      datagram,
      SUPPORTED_VERSIONS,
      this.#config.maxDatagram,
    );
    if (answer !== undefined) this.#handshakeOut.push(answer);
  }

  #onVersionNegotiation(datagram: Uint8Array, now: number): DropKind | undefined {
    if (this.role !== "initiator" || this.#protector !== undefined) return "UnexpectedPacket";
    const versions = decodeVersionNegotiation(datagram);
    if (!versions.ok) return versions.error.kind;
    const decision = negotiateVersion(versions.value, RIFT_VERSION);
    if (decision.action === "ignore") return "ForgedVersionNegotiation";
    // v1 is the only version there is, so a retry cannot happen yet; fail clearly.
    this.#closeLocally(
      CloseCode.VersionMismatch,
      `peer speaks RIFT versions ${versions.value.join(", ")}, we speak ${RIFT_VERSION}`,
      now,
    );
    return undefined;
  }

  #onInit(datagram: Uint8Array): DropKind | undefined {
    if (this.role !== "responder") return "UnexpectedPacket";
    const body = datagram.subarray(HEADER_LENGTH);
    if (body.length < INIT_NOISE_LENGTH) return "Truncated";
    // INIT is addressed to nobody yet: its connection id is 0.
    if (datagram[4] | datagram[5] | datagram[6] | datagram[7]) return "Malformed";
    if (this.#protector !== undefined) return "UnexpectedPacket";
    const message = body.subarray(0, INIT_NOISE_LENGTH);
    if (!body.subarray(INIT_NOISE_LENGTH).every((b) => b === 0)) return "Malformed";
    const known = this.#attempts.find((a) => equalBytes(a.init, message));
    if (known !== undefined) {
      // The initiator did not get our RESPONSE: send the same one again.
      this.#amplificationCredit += AMPLIFICATION_FACTOR * datagram.length;
      this.#stats.handshakeRetransmissions++;
      this.#sendResponse(known);
      return undefined;
    }
    const handshake = RiftHandshake.responder(this.#handshakeOptions());
    const read = handshake.readNext(message);
    if (!read.ok) return "HandshakeRejected";
    const attempt: ResponderAttempt = {
      init: message.slice(),
      handshake,
      peerId: handshake.peerConnectionId ?? 0,
      response: handshake.writeNext(),
    };
    this.#attempts.push(attempt);
    if (this.#attempts.length > MAX_RESPONDER_ATTEMPTS) this.#attempts.shift();
    this.#amplificationCredit += AMPLIFICATION_FACTOR * datagram.length;
    this.#sendResponse(attempt);
    return undefined;
  }

  #sendResponse(attempt: ResponderAttempt): void {
    const datagram = encodeHandshakePacket(
      PacketType.HandshakeResponse,
      attempt.peerId,
      0,
      attempt.response,
    );
    // Anti-amplification: before completion, never send more than 3x what the peer sent.
    if (datagram.length > this.#amplificationCredit) {
      this.#stats.dropped.AmplificationLimit = (this.#stats.dropped.AmplificationLimit ?? 0) + 1;
      return;
    }
    this.#amplificationCredit -= datagram.length;
    this.#handshakeOut.push(datagram);
  }

  #onResponse(body: Uint8Array, now: number): DropKind | undefined {
    const handshake = this.#handshake;
    if (this.role !== "initiator" || handshake === undefined) {
      return "UnexpectedPacket";
    }
    if (this.#receivedResponse !== undefined) {
      if (!equalBytes(this.#receivedResponse, body)) return "UnexpectedPacket";
      // Our FINISH was lost: answer at once instead of waiting for the timer.
      if (!this.#confirmed) {
        this.#stats.handshakeRetransmissions++;
        this.#sendFlight(now);
      }
      return undefined;
    }
    const read = handshake.readNext(body);
    if (!read.ok) {
      if (read.error.kind === "PeerNotAllowed") {
        this.#closeLocally(CloseCode.PeerNotAllowed, read.error.detail, now);
      }
      return "HandshakeRejected";
    }
    this.#receivedResponse = body.slice();
    this.#peerId = handshake.peerConnectionId ?? 0;
    const finish = handshake.writeNext();
    this.#establish(now);
    // FINISH is retransmitted until the responder proves it has keys by sending a sealed packet.
    this.#startFlight(PacketType.HandshakeFinish, finish, now);
    return undefined;
  }

  #onFinish(body: Uint8Array, now: number): DropKind | undefined {
    if (this.role !== "responder") return "UnexpectedPacket";
    if (this.#receivedFinish !== undefined) {
      if (!equalBytes(this.#receivedFinish, body)) return "UnexpectedPacket";
      // Our confirmation was lost, so the initiator sent FINISH again: confirm again.
      this.#queuePing(now);
      return undefined;
    }
    if (this.#attempts.length === 0) return "UnexpectedPacket";
    let rejection: HandshakeError | undefined;
    for (let i = this.#attempts.length - 1; i >= 0; i--) {
      const attempt = this.#attempts[i];
      const read = attempt.handshake.readNext(body);
      if (!read.ok) {
        rejection ??= read.error;
        continue;
      }
      this.#handshake = attempt.handshake;
      this.#peerId = attempt.peerId;
      this.#attempts.length = 0;
      this.#receivedFinish = body.slice();
      this.#confirmed = true;
      this.#establish(now);
      this.#queuePing(now);
      return undefined;
    }
    if (rejection?.kind === "PeerNotAllowed") {
      this.#closeLocally(CloseCode.PeerNotAllowed, rejection.detail, now);
    }
    return "HandshakeRejected";
  }

  #establish(now: number): void {
    const handshake = this.#handshake!;
    const keys = handshake.transportKeys();
    this.#protector = new PacketProtector(keys, now, this.#config.transport);
    this.#mediaState = {
      keys: deriveLaneKeys(keys, MEDIA_LANE_LABEL),
      peerConnectionId: this.#peerId,
      localConnectionId: this.#localId,
      maxDatagram: this.#config.maxDatagram,
      frameDeadlineMs: this.#config.frameDeadlineMs,
      lossGraceMs: this.#config.lossGraceMs,
      fec: this.#config.fec,
      transport: this.#config.transport,
    };
    this.#mediaSender = new MediaSender(this.#mediaState, now);
    this.#mediaReceiver = new MediaReceiver(this.#mediaState, now);
    this.#peerIdentity = handshake.peerIdentity;
    this.#state = "established";
    this.#lastAuthenticatedAt = now;
    this.#nextPingAt = now + this.#config.keepaliveMs;
    this.#events.push({
      type: "established",
      peerIdentity: handshake.peerIdentity!,
      peerExtension: handshake.peerExtension ?? new Uint8Array(0),
    });
  }

  #onSealed(datagram: Uint8Array, now: number): DropKind | undefined {
    const split = splitSealed(datagram);
    if (!split.ok) return split.error.kind;
    const { header, headerBytes, sealed } = split.value;
    if (header.connectionId !== this.#localId) return "WrongConnection";
    const protector = this.#protector;
    if (protector === undefined) return "UnexpectedPacket";
    if ((header.flags & FLAG_MEDIA_LANE) !== 0) return this.#onMediaDatagram(datagram, now);
    const opened = protector.open(
      headerBytes,
      header.packetNumber,
      keyPhaseOf(header),
      sealed,
      now,
    );
    if (!opened.ok) return opened.kind;
    const frames = decodeFrames(opened.plaintext);
    // Parse before committing: a packet we cannot read leaves the replay window untouched.
    if (!frames.ok) return frames.error.kind;
    // Media frames travel on the media lane only.
    for (const f of frames.value) {
      if (f.type === "video" || f.type === "fec" || f.type === "audio") return "UnexpectedFrame";
    }
    opened.commit();

    this.#onAuthenticated(now);
    this.#receivedCount++;
    this.#largestReceived = Math.max(this.#largestReceived, header.packetNumber);
    for (const frame of frames.value) this.#onFrame(frame, now);
    return undefined;
  }

  #onAuthenticated(now: number): void {
    this.#lastAuthenticatedAt = now;
    if (!this.#confirmed) {
      this.#confirmed = true;
      this.#stopFlight();
    }
  }

  #onMediaDatagram(datagram: Uint8Array, now: number): DropKind | undefined {
    const receiver = this.#mediaReceiver;
    if (receiver === undefined) return "WrongLane";
    receiver.setRetransmission(this.retransmitRttMs);
    const drop = receiver.handleDatagram(datagram, now);
    if (drop !== undefined) return drop;
    this.#onAuthenticated(now);
    this.#drainMedia(receiver, now);
    return undefined;
  }

  /** Moves the media receiver's events and arrivals into the session. */
  #drainMedia(receiver: MediaReceiver, now: number): void {
    for (let event; (event = receiver.pollEvent()) !== undefined;) {
      if (event.type === "nack") {
        this.sendNack(event.frameId, event.indexes);
        continue;
      }
      this.#events.push(event);
      if (event.type === "video-frame") this.#lastCompleteFrameId = event.frame.frameId;
      // Ask at once: waiting for the next loss signal would freeze the picture longer.
      if (event.type === "video-frame-lost") this.requestKeyframe(KeyframeReason.Loss);
    }
    this.reportMediaArrivals(receiver.takeArrivals(), receiver.lostTotal, now);
  }

  #onFrame(frame: Frame, now: number): void {
    switch (frame.type) {
      case "input":
        this.#inputIn.receive(frame);
        for (let data; (data = this.#inputIn.pollDelivered()) !== undefined;) {
          this.#events.push({ type: "input", data, at: now });
        }
        break;
      case "control":
        this.#controlIn.receive(frame);
        for (
          let data;
          (data = this.#controlIn.pollDelivered()) !== undefined;
        ) {
          this.#events.push({ type: "control", data });
        }
        break;
      case "ack":
        (frame.channel === CHANNEL_INPUT ? this.#inputOut : this.#controlOut)
          .onAck(frame);
        break;
      case "feedback": {
        this.#stats.peerReportedLost = frame.lostTotal;
        const arrivals = frame.entries.map((entry) => ({
          packetNumber: frame.basePacketNumber + entry.packetNumberDelta,
          receiveTimeUs: frame.baseReceiveTimeUs + entry.receiveTimeDeltaUs,
        }));
        this.#events.push({
          type: "feedback",
          report: { lostTotal: frame.lostTotal, arrivals },
        });
        break;
      }
      case "nack":
        // Internal media lane: answer directly; detached: the edge's media thread does.
        if (this.#mediaSender !== undefined) {
          this.#mediaSender.retransmit(frame.frameId, frame.indexes);
        } else this.#events.push({ type: "nack", frameId: frame.frameId, indexes: frame.indexes });
        break;
      case "keyframe-request":
        this.#events.push({
          type: "keyframe-request",
          lastCompleteFrameId: frame.lastCompleteFrameId,
          reason: frame.reason,
        });
        break;
      case "ping":
        this.#controlFrames.push({
          type: "pong",
          pingId: frame.pingId,
          pingSendTimeUs: frame.sendTimeUs,
          responderTimeUs: toMicros(now),
        });
        break;
      case "pong": {
        const sentUs = this.#pingsInFlight.get(frame.pingId);
        if (sentUs === undefined || sentUs !== frame.pingSendTimeUs) break;
        this.#pingsInFlight.delete(frame.pingId);
        this.#rtt.addExchange(sentUs, frame.responderTimeUs, toMicros(now));
        break;
      }
      case "close":
        this.#finish(frame.code, frame.reason, true);
        break;
      case "padding":
      case "video":
      case "audio":
      case "fec":
        // Media frames were refused before commit; padding carries nothing.
        break;
    }
  }

  // ---------------------------------------------------------------- sending API

  /**
   * Queues an encoded video frame on the media lane; it is split into
   * fragments that each fit a datagram, followed by its FEC parity.
   *
   * @throws {Error} once the media lane is detached (its sender lives elsewhere).
   */
  sendVideoFrame(frame: EncodedFrame): void {
    if (this.#state !== "established") return;
    this.#attachedSender().sendVideoFrame(frame);
  }

  /**
   * Queues one audio packet on the media lane (unreliable: late audio is useless).
   *
   * @throws {Error} once the media lane is detached.
   */
  sendAudio(sequence: number, captureTimeUs: number, data: Uint8Array): void {
    if (this.#state !== "established") return;
    this.#attachedSender().sendAudio(sequence, captureTimeUs, data);
  }

  #attachedSender(): MediaSender {
    if (this.#mediaDetached) throw new Error("the media lane is detached from this session");
    return this.#mediaSender!;
  }

  /**
   * Hands the media lane to the edges: returns the state from which a
   * {@linkcode MediaSender} and a {@linkcode MediaReceiver} are rebuilt in
   * other threads. From then on this session neither sends media nor accepts
   * media-lane datagrams (`WrongLane`); the receiving thread reports arrivals
   * through {@linkcode reportMediaArrivals} and losses through
   * {@linkcode requestKeyframe}. Established sessions only.
   *
   * @throws {Error} before the handshake completed or when already detached.
   */
  detachMedia(): MediaLaneState {
    if (this.#mediaState === undefined) throw new Error("detachMedia() before establishment");
    if (this.#mediaDetached) throw new Error("the media lane is already detached");
    this.#mediaDetached = true;
    this.#mediaSender = undefined;
    this.#mediaReceiver = undefined;
    return structuredClone(this.#mediaState);
  }

  /**
   * Queues receive times of media packets for the next FEEDBACK frames (sent
   * at most every `feedbackIntervalMs`). Called by the session itself while
   * the media lane is attached, and by the edge once it is detached.
   */
  reportMediaArrivals(arrivals: readonly MediaArrival[], lostTotal: number, now: number): void {
    if (this.#state !== "established" || arrivals.length === 0) return;
    for (const a of arrivals) this.#arrivals.push(a);
    this.#mediaLostTotal = lostTotal;
    this.#feedbackDueAt ??= now + this.#config.feedbackIntervalMs;
  }

  /** Queues an input event on the reliable input channel, which goes out ahead of everything else. */
  sendInput(data: Uint8Array): boolean {
    return this.#state !== "closed" && this.#checkReliableSize(data) &&
      this.#inputOut.enqueue(data);
  }

  /** Queues a control message on the reliable control channel. */
  sendControl(data: Uint8Array): boolean {
    return this.#state !== "closed" && this.#checkReliableSize(data) &&
      this.#controlOut.enqueue(data);
  }

  /**
   * Asks the peer for a keyframe (after a loss the decoder cannot conceal).
   * `lastCompleteFrameId` defaults to the last frame this session reassembled;
   * an edge running the media receiver elsewhere passes its own.
   */
  requestKeyframe(
    reason: KeyframeReason = KeyframeReason.Loss,
    lastCompleteFrameId: number = this.#lastCompleteFrameId,
  ): void {
    if (this.#state !== "established") return;
    this.#controlFrames.push({ type: "keyframe-request", lastCompleteFrameId, reason });
  }

  /** Asks the peer to send fragments of a video frame again (the media receiver decided). */
  sendNack(frameId: number, indexes: readonly number[]): void {
    if (this.#state !== "established" || indexes.length === 0) return;
    this.#controlFrames.push({ type: "nack", frameId, indexes: indexes.slice(0, 255) });
  }

  /** The smoothed RTT for selective retransmission, when enabled and measured. */
  get retransmitRttMs(): number | undefined {
    const rtt = this.rtt;
    return this.#config.retransmit && rtt.samples > 0 ? rtt.smoothedMs : undefined;
  }

  /** Closes the session, telling the peer when keys exist. */
  close(code: number, reason: string, now: number): void {
    if (this.#state === "closed") return;
    if (this.#protector !== undefined) {
      this.#controlFrames.push({ type: "close", code, reason });
      this.#closeFrameQueued = true;
    }
    this.#closeLocally(code, reason, now);
  }

  #checkReliableSize(data: Uint8Array): boolean {
    // type + sequence + length
    const overhead = 1 + 4 + 2;
    if (
      data.length + overhead >
        this.#config.maxDatagram - HEADER_LENGTH - AEAD_TAG_LENGTH
    ) {
      throw new RangeError(
        `reliable message of ${data.length} bytes does not fit one datagram`,
      );
    }
    return true;
  }

  // ---------------------------------------------------------------- output

  /** The next datagram to put on the wire, or undefined when there is nothing to send now. */
  pollTransmit(now: number): Uint8Array | undefined {
    const handshakeDatagram = this.#handshakeOut.shift();
    if (handshakeDatagram !== undefined) return this.#count(handshakeDatagram);
    const protector = this.#protector;
    if (protector === undefined) return undefined;
    if (this.#state === "closed" && !this.#closeFrameQueued) return undefined;

    const budget = this.#config.maxDatagram - HEADER_LENGTH - AEAD_TAG_LENGTH;
    const frames = this.#collectFrames(budget, now);
    if (frames.length === 0) {
      // The session lane (input, acks, control) always goes first; media fills the rest.
      if (this.#state !== "established") return undefined;
      const media = this.#mediaSender?.pollTransmit(now);
      return media === undefined ? undefined : this.#count(media);
    }
    if (frames.some((f) => f.type === "close")) this.#closeFrameQueued = false;

    const sealed = protector.seal(
      (packetNumber, keyPhase, out) =>
        encodeHeader(
          {
            version: RIFT_VERSION,
            type: PacketType.Sealed,
            flags: keyPhase,
            connectionId: this.#peerId,
            packetNumber,
          },
          out,
          0,
        ),
      this.#plaintext.subarray(0, encodeFramesInto(frames, this.#plaintext, 0)),
      now,
    );
    if (!sealed.ok) {
      this.#finish(CloseCode.ProtocolError, "packet numbers exhausted", false);
      return undefined;
    }
    return this.#count(sealed.datagram);
  }

  #collectFrames(budget: number, now: number): Frame[] {
    const frames: Frame[] = [];
    let room = budget;
    const take = (frame: Frame): boolean => {
      const length = encodedFrameLength(frame);
      if (length > room) return false;
      frames.push(frame);
      room -= length;
      return true;
    };
    if (this.#state === "closed") {
      // Only the CLOSE frame leaves a closed session.
      const close = this.#controlFrames.find((f) => f.type === "close");
      if (close) take(close);
      this.#controlFrames.length = 0;
      return frames;
    }
    const rto = this.#rtt.rtoMs(this.#config.minReliableRtoMs);
    // Input first, always: a key press never waits behind anything.
    this.#takeReliable(this.#inputOut, "input", take, now, rto);
    if (this.#inputIn.ackPending) {
      take({ type: "ack", channel: CHANNEL_INPUT, ...this.#inputIn.takeAck() });
    }
    if (this.#controlIn.ackPending) {
      take({
        type: "ack",
        channel: CHANNEL_CONTROL,
        ...this.#controlIn.takeAck(),
      });
    }
    while (this.#controlFrames.length > 0 && take(this.#controlFrames[0])) {
      this.#controlFrames.shift();
    }
    this.#takeReliable(this.#controlOut, "control", take, now, rto);
    return frames;
  }

  #takeReliable(
    sender: ReliableSender,
    type: "input" | "control",
    take: (frame: Frame) => boolean,
    now: number,
    rto: number,
  ): void {
    // Peek, then mark sent only once it fits: a message that does not fit waits for the next datagram.
    for (let message; (message = sender.peekDue(now, rto)) !== undefined;) {
      if (!take({ type, sequence: message.sequence, data: message.data })) return;
      sender.markSent(message.sequence, now);
    }
  }

  #count(datagram: Uint8Array): Uint8Array {
    this.#stats.datagramsSent++;
    this.#stats.bytesSent += datagram.length;
    return datagram;
  }

  // ---------------------------------------------------------------- timers

  /** The absolute time of the next timer, or undefined when none is armed. */
  pollTimeout(): number | undefined {
    if (this.#state === "closed") return undefined;
    const candidates: (number | undefined)[] = [this.#flightRetransmitAt];
    if (this.#state === "handshaking") {
      candidates.push(this.#startedAt + this.#config.handshakeTimeoutMs);
    } else {
      const rto = this.#rtt.rtoMs(this.#config.minReliableRtoMs);
      candidates.push(
        this.#nextPingAt,
        this.#lastAuthenticatedAt + this.#config.idleTimeoutMs,
        this.#inputOut.nextTimeout(rto),
        this.#controlOut.nextTimeout(rto),
        this.#mediaReceiver?.pollTimeout(),
        this.#feedbackDueAt,
      );
    }
    let earliest: number | undefined;
    for (const at of candidates) {
      if (at !== undefined && (earliest === undefined || at < earliest)) {
        earliest = at;
      }
    }
    return earliest;
  }

  /** Runs every timer that is due at `now`. */
  handleTimeout(now: number): void {
    if (this.#state === "closed") return;
    if (
      this.#state === "handshaking" &&
      now >= this.#startedAt + this.#config.handshakeTimeoutMs
    ) {
      this.#closeLocally(
        CloseCode.HandshakeTimeout,
        "handshake timed out",
        now,
      );
      return;
    }
    if (
      this.#flightRetransmitAt !== undefined && now >= this.#flightRetransmitAt
    ) {
      this.#stats.handshakeRetransmissions++;
      this.#flightRto = Math.min(
        this.#flightRto * 2,
        this.#config.handshakeMaxRtoMs,
      );
      this.#sendFlight(now);
    }
    if (this.#state !== "established") return;
    if (now >= this.#lastAuthenticatedAt + this.#config.idleTimeoutMs) {
      this.close(CloseCode.IdleTimeout, "idle timeout", now);
      return;
    }
    if (this.#nextPingAt !== undefined && now >= this.#nextPingAt) {
      this.#queuePing(now);
    }
    const receiver = this.#mediaReceiver;
    if (receiver !== undefined) {
      receiver.handleTimeout(now);
      this.#drainMedia(receiver, now);
    }
    if (this.#feedbackDueAt !== undefined && now >= this.#feedbackDueAt) {
      this.#queueFeedback();
    }
  }

  // ---------------------------------------------------------------- events

  /** The next event, once each. */
  pollEvent(): SessionEvent | undefined {
    return this.#events.shift();
  }

  // ---------------------------------------------------------------- helpers

  #handshakeOptions() {
    return {
      identity: this.#options.identity,
      random: this.#random,
      localConnectionId: this.#localId,
      acceptPeer: this.#options.acceptPeer,
      extension: this.#options.extension,
    };
  }

  #randomConnectionId(): number {
    for (;;) {
      const bytes = this.#random(4);
      const id = ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>>
        0;
      if (id !== 0) return id;
    }
  }

  #startFlight(type: PacketType, body: Uint8Array, now: number): void {
    this.#flightType = type;
    this.#flightBody = body;
    this.#flightRto = this.#config.handshakeRtoMs;
    this.#sendFlight(now);
  }

  #sendFlight(now: number): void {
    if (this.#flightType === undefined || this.#flightBody === undefined) {
      return;
    }
    let body = this.#flightBody;
    if (this.#flightType === PacketType.HandshakeInit) {
      // Pad INIT to the full datagram: it proves the path carries full datagrams and
      // earns the responder its amplification budget.
      body = new Uint8Array(this.#config.maxDatagram - HEADER_LENGTH);
      body.set(this.#flightBody);
    }
    const connectionId = this.#flightType === PacketType.HandshakeInit ? 0 : this.#peerId;
    const datagram = encodeHandshakePacket(
      this.#flightType,
      connectionId,
      0,
      body,
    );
    this.#handshakeOut.push(datagram);
    this.#flightRetransmitAt = now + this.#flightRto;
  }

  #stopFlight(): void {
    this.#flightType = undefined;
    this.#flightBody = undefined;
    this.#flightRetransmitAt = undefined;
  }

  #queuePing(now: number): void {
    const pingId = this.#nextPingId++;
    const sendTimeUs = toMicros(now);
    this.#pingsInFlight.set(pingId, sendTimeUs);
    // Keep a bounded set of outstanding pings: old ones are lost anyway.
    if (this.#pingsInFlight.size > 16) {
      this.#pingsInFlight.delete(this.#pingsInFlight.keys().next().value!);
    }
    this.#controlFrames.push({ type: "ping", pingId, sendTimeUs });
    this.#nextPingAt = now + this.#config.keepaliveMs;
  }

  #queueFeedback(): void {
    const lostTotal = this.#mediaLostTotal;
    const arrivals = this.#arrivals;
    this.#arrivals = [];
    this.#feedbackDueAt = undefined;
    // Entries are listed in packet-number order (the wire format requires increasing deltas).
    arrivals.sort((x, y) => x.packetNumber - y.packetNumber);
    for (let i = 0; i < arrivals.length; i += MAX_FEEDBACK_ENTRIES) {
      const chunk = arrivals.slice(i, i + MAX_FEEDBACK_ENTRIES);
      const basePacketNumber = chunk[0].packetNumber;
      let baseReceiveTimeUs = chunk[0].receiveTimeUs;
      for (const a of chunk) baseReceiveTimeUs = Math.min(baseReceiveTimeUs, a.receiveTimeUs);
      const entries = chunk
        .filter((a) => a.packetNumber - basePacketNumber <= 0xffff)
        .map((a) => ({
          packetNumberDelta: a.packetNumber - basePacketNumber,
          receiveTimeDeltaUs: a.receiveTimeUs - baseReceiveTimeUs,
        }));
      this.#controlFrames.push({
        type: "feedback",
        lostTotal,
        basePacketNumber,
        baseReceiveTimeUs,
        entries,
      });
    }
  }

  #closeLocally(code: number, reason: string, _now: number): void {
    this.#finish(code, reason, false);
  }

  #finish(code: number, reason: string, byPeer: boolean): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#stopFlight();
    this.#mediaSender?.close();
    this.#events.push({ type: "closed", code, reason, byPeer });
  }
}

/**
 * Handshake headers are not authenticated, so every field that is not the
 * type or connection id must hold its one fixed value: then a changed header
 * byte is refused instead of silently accepted. (Retransmissions are byte-identical.)
 */
function isCanonicalHandshakeHeader(datagram: Uint8Array): boolean {
  for (let i = 8; i < HEADER_LENGTH; i++) if (datagram[i] !== 0) return false;
  return datagram[2] === 0 && datagram[3] === 0;
}

function toMicros(ms: number): number {
  return Math.round(ms * 1000);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
