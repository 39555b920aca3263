/**
 * The relay's state machine, sans-IO: every datagram goes through
 * {@linkcode BindingTable.handle} with its source address and the time, and
 * comes back as at most one datagram to forward, one reply to the source, or
 * a typed drop. Timers go through `pollTimeout` / `handleTimeout`. No socket,
 * no clock: the worker (`forwarder_worker.ts`) and the tests drive it.
 *
 * A session (one lease `sid`) has two slots, one per lease peer. A peer fills
 * its slot with a BIND_REQUEST that carries a valid lease and its signature;
 * once both slots are filled, RIFT datagrams (first byte 0xC0–0xFF) from one
 * slot's address go, byte for byte, to the other's. See docs/RELAY.md.
 *
 * @module
 */

import {
  DEFAULT_LEASE_CLOCK_SKEW_MS,
  encodePeerKey,
  type LeaseClaims,
  type LeasePublicKey,
  verifyLease,
} from "../crypto/lease.ts";
import { TokenBucket } from "./token_bucket.ts";
import {
  BIND_REQUEST,
  type BindErrorKind,
  BindState,
  decodeBindRequest,
  encodeBindAck,
  encodeBindError,
  leaseHash,
  verifyBindSignature,
} from "./wire.ts";

/** A UDP address. */
export interface RelayAddress {
  /** IP address. */
  hostname: string;
  /** UDP port. */
  port: number;
}

/** Why a datagram was dropped (each is a Prometheus label value). */
export const DROP_KINDS = [
  // not for us
  "Malformed",
  "ForeignProtocol",
  // data path
  "UnboundSource",
  "PeerNotBound",
  "BandwidthExceeded",
  "SessionExpired",
  // binding requests
  "LeaseMalformed",
  "LeaseForged",
  "LeaseExpired",
  "LeaseNotYetValid",
  "LeaseWrongRelay",
  "PeerNotInLease",
  "BadPeerSignature",
  "BindStale",
  "BindReplayed",
  "BindRateLimited",
  "TableFull",
  "AddressInUse",
  "SessionConflict",
] as const;
/** One of {@linkcode DROP_KINDS}. */
export type DropKind = typeof DROP_KINDS[number];

/** A datagram to send. */
export interface Send {
  /** Destination. */
  to: RelayAddress;
  /** The bytes (for a forward: the very datagram received). */
  bytes: Uint8Array;
}

/** What {@linkcode BindingTable.handle} decided. Exactly one field is set. */
export interface HandleResult {
  /** Forward to the session's other peer. */
  forward?: Send;
  /** Answer the source (a BIND_ACK or BIND_ERROR, never larger than what it sent). */
  reply?: Send;
  /** Dropped, and counted under this kind. */
  drop?: DropKind;
}

/** Cumulative counters. */
export interface RelayCounters {
  /** Datagrams handled. */
  datagramsIn: number;
  /** Bytes handled. */
  bytesIn: number;
  /** Datagrams forwarded. */
  forwardedPackets: number;
  /** Bytes forwarded. */
  forwardedBytes: number;
  /** Replies (acks and errors) sent. */
  replies: number;
  /** Reply bytes. */
  replyBytes: number;
  /** Binding requests accepted (new bindings and refreshes). */
  bindsAccepted: number;
  /** Peer bindings ended because the peer was silent for the idle timeout. */
  bindingsExpired: number;
  /** Sessions ended because their lease expired. */
  sessionsExpired: number;
  /** Drops by kind. */
  drops: Record<DropKind, number>;
}

/** Options of {@linkcode BindingTable}. */
export interface BindingTableOptions {
  /** This relay's id; leases must name it (`rid`). */
  relayId: string;
  /** The gateway's lease verification key (`k4.public.…`). */
  leasePublicKey: LeasePublicKey;
  /** A peer binding ends after this long without a datagram from it (ms). Default 30,000. */
  idleTimeoutMs?: number;
  /** A BIND_REQUEST's timestamp may differ from now by at most this (ms). Default 10,000. */
  bindFreshnessMs?: number;
  /** Clock skew tolerated on lease `nbf`/`exp` (ms). Default 30,000 (as `verifyLease`). */
  leaseClockSkewMs?: number;
  /** Most sessions held at once. Default 10,000. */
  maxSessions?: number;
  /** Binding requests verified per second, all sources together. Default 500. */
  bindVerifyPerSecond?: number;
  /** Burst of binding requests verified. Default 500. */
  bindVerifyBurst?: number;
  /** Bandwidth burst each direction may bank, as ms of its lease rate. Default 250. */
  bandwidthBurstMs?: number;
  /** Smallest bandwidth burst, bytes (at least one datagram always fits). Default 65,536. */
  minBurstBytes?: number;
  /** How often timers sweep the table (ms). Default 1,000. */
  sweepIntervalMs?: number;
}

/** One peer's binding, as {@linkcode BindingTable.describe} shows it. */
export interface SlotView {
  /** The peer's address. */
  address: RelayAddress;
  /** Last datagram from it (ms). */
  lastSeenMs: number;
}

/** One session, as {@linkcode BindingTable.describe} shows it. */
export interface SessionView {
  /** Lease `sid`. */
  sessionId: string;
  /** Lease peers. */
  peers: [string, string];
  /** Bindings of peer 0 and peer 1. */
  slots: [SlotView | null, SlotView | null];
  /** Last accepted BIND_REQUEST timestamp per peer (0 if none). */
  lastBindTimestampMs: [number, number];
  /** Lease `exp` (ms since epoch). */
  expiresAtMs: number;
  /** Lease `bw`. */
  bandwidthBps: number;
}

interface Slot {
  key: string;
  address: RelayAddress;
  lastSeenMs: number;
}

interface Session {
  sessionId: string;
  digest: string;
  claims: LeaseClaims;
  /** Forwarding stops (and the session ends) at `exp` + skew, where `verifyLease` would refuse it. */
  validUntilMs: number;
  slots: [Slot | undefined, Slot | undefined];
  lastBindTs: [number, number];
  /** Bucket i limits traffic *from* peer i. */
  buckets: [TokenBucket, TokenBucket];
}

interface AddressEntry {
  session: Session;
  index: 0 | 1;
}

function addressKey(a: RelayAddress): string {
  return `${a.hostname}|${a.port}`;
}

function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

function emptyDrops(): Record<DropKind, number> {
  const drops = {} as Record<DropKind, number>;
  for (const k of DROP_KINDS) drops[k] = 0;
  return drops;
}

/** The relay's bindings and forwarding rules. Never throws from `handle`. */
export class BindingTable {
  readonly #relayId: string;
  #leaseKey: LeasePublicKey;
  readonly #idleMs: number;
  readonly #freshMs: number;
  readonly #skewMs: number;
  readonly #maxSessions: number;
  readonly #burstMs: number;
  readonly #minBurst: number;
  readonly #sweepMs: number;
  readonly #bindBucket: TokenBucket;
  readonly #sessions = new Map<string, Session>();
  readonly #byDigest = new Map<string, Session>();
  readonly #byAddress = new Map<string, AddressEntry>();
  #nextSweep: number | undefined;
  /** Counters (live; copy with {@linkcode BindingTable.snapshotCounters}). */
  readonly counters: RelayCounters = {
    datagramsIn: 0,
    bytesIn: 0,
    forwardedPackets: 0,
    forwardedBytes: 0,
    replies: 0,
    replyBytes: 0,
    bindsAccepted: 0,
    bindingsExpired: 0,
    sessionsExpired: 0,
    drops: emptyDrops(),
  };

  /**
   * @param options relay id, lease key and limits.
   * @param nowMs the current time (ms since the Unix epoch: leases carry wall-clock times).
   * @throws {RangeError} if the idle timeout is not more than twice the bind freshness
   *   (the replay defence relies on it, see docs/RELAY.md).
   */
  constructor(options: BindingTableOptions, nowMs: number) {
    this.#relayId = options.relayId;
    this.#leaseKey = options.leasePublicKey;
    this.#idleMs = options.idleTimeoutMs ?? 30_000;
    this.#freshMs = options.bindFreshnessMs ?? 10_000;
    this.#skewMs = options.leaseClockSkewMs ?? DEFAULT_LEASE_CLOCK_SKEW_MS;
    this.#maxSessions = options.maxSessions ?? 10_000;
    this.#burstMs = options.bandwidthBurstMs ?? 250;
    this.#minBurst = options.minBurstBytes ?? 65_536;
    this.#sweepMs = options.sweepIntervalMs ?? 1_000;
    if (!(this.#idleMs > 2 * this.#freshMs)) {
      throw new RangeError("idleTimeoutMs must exceed 2 × bindFreshnessMs");
    }
    this.#bindBucket = new TokenBucket(
      options.bindVerifyPerSecond ?? 500,
      options.bindVerifyBurst ?? 500,
      nowMs,
    );
  }

  /** Replaces the lease verification key (the gateway rotated it). Bound sessions stay. */
  setLeasePublicKey(key: LeasePublicKey): void {
    this.#leaseKey = key;
    this.#byDigest.clear();
  }

  /** Sessions held. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Peer bindings held (addresses the relay forwards from). */
  get boundPeerCount(): number {
    return this.#byAddress.size;
  }

  /** Sessions with both peers bound. */
  get readySessionCount(): number {
    let n = 0;
    for (const s of this.#sessions.values()) if (s.slots[0] && s.slots[1]) n++;
    return n;
  }

  /** A deep copy of the counters. */
  snapshotCounters(): RelayCounters {
    return { ...this.counters, drops: { ...this.counters.drops } };
  }

  /** The whole table as plain data (for tests and debugging). */
  describe(): SessionView[] {
    return [...this.#sessions.values()].map((s) => ({
      sessionId: s.sessionId,
      peers: [s.claims.peers[0], s.claims.peers[1]],
      slots: [
        s.slots[0]
          ? { address: { ...s.slots[0].address }, lastSeenMs: s.slots[0].lastSeenMs }
          : null,
        s.slots[1]
          ? { address: { ...s.slots[1].address }, lastSeenMs: s.slots[1].lastSeenMs }
          : null,
      ],
      lastBindTimestampMs: [s.lastBindTs[0], s.lastBindTs[1]],
      expiresAtMs: s.claims.expiresAt.getTime(),
      bandwidthBps: s.claims.bandwidthBps,
    }));
  }

  /**
   * Handles one datagram.
   *
   * @param bytes the datagram (forwarded as is: the caller must not reuse the buffer
   *   before the forward is sent).
   * @param from its source address.
   * @param nowMs the time of arrival, ms since the Unix epoch.
   */
  handle(bytes: Uint8Array, from: RelayAddress, nowMs: number): HandleResult {
    this.counters.datagramsIn++;
    this.counters.bytesIn += bytes.length;
    try {
      if (bytes.length === 0) return this.#drop("Malformed");
      const first = bytes[0];
      if (first >= 0xc0) return this.#data(bytes, from, nowMs);
      if (first === BIND_REQUEST) return this.#bind(bytes, from, nowMs);
      if (first >= 0x40 && first <= 0x4f) return this.#drop("Malformed");
      return this.#drop("ForeignProtocol");
    } catch {
      // Nothing above should throw; if it does, the datagram is junk to us.
      return this.#drop("Malformed");
    }
  }

  /** When {@linkcode BindingTable.handleTimeout} next has work, or undefined if never. */
  pollTimeout(): number | undefined {
    return this.#sessions.size === 0 ? undefined : this.#nextSweep;
  }

  /** Expires idle bindings and sessions whose lease ran out. */
  handleTimeout(nowMs: number): void {
    if (this.#nextSweep === undefined || nowMs < this.#nextSweep) return;
    for (const s of this.#sessions.values()) {
      if (nowMs >= s.validUntilMs) {
        this.#removeSession(s);
        this.counters.sessionsExpired++;
        continue;
      }
      for (const i of [0, 1] as const) {
        const slot = s.slots[i];
        if (slot && nowMs - slot.lastSeenMs >= this.#idleMs) {
          this.#byAddress.delete(slot.key);
          s.slots[i] = undefined;
          this.counters.bindingsExpired++;
        }
      }
      if (!s.slots[0] && !s.slots[1]) this.#removeSession(s);
    }
    this.#nextSweep = this.#sessions.size === 0 ? undefined : nowMs + this.#sweepMs;
  }

  #drop(kind: DropKind): HandleResult {
    this.counters.drops[kind]++;
    return { drop: kind };
  }

  #data(bytes: Uint8Array, from: RelayAddress, nowMs: number): HandleResult {
    const entry = this.#byAddress.get(addressKey(from));
    if (entry === undefined) return this.#drop("UnboundSource");
    const s = entry.session;
    if (nowMs >= s.validUntilMs) return this.#drop("SessionExpired");
    const self = s.slots[entry.index]!;
    const other = s.slots[entry.index === 0 ? 1 : 0];
    // Traffic from the peer keeps its binding alive, forwarded or not.
    self.lastSeenMs = nowMs;
    if (other === undefined) return this.#drop("PeerNotBound");
    if (!s.buckets[entry.index].take(bytes.length, nowMs)) return this.#drop("BandwidthExceeded");
    this.counters.forwardedPackets++;
    this.counters.forwardedBytes += bytes.length;
    return { forward: { to: other.address, bytes } };
  }

  #refuse(kind: BindErrorKind, to: RelayAddress, ts: number, nonce: Uint8Array): HandleResult {
    this.counters.drops[kind]++;
    const bytes = encodeBindError(kind, ts, nonce);
    this.counters.replies++;
    this.counters.replyBytes += bytes.length;
    return { drop: kind, reply: { to: { ...to }, bytes } };
  }

  #bind(bytes: Uint8Array, from: RelayAddress, nowMs: number): HandleResult {
    const req = decodeBindRequest(bytes);
    if (req === undefined) return this.#drop("Malformed");
    const { timestampMs: ts, nonce } = req;
    // Cheap checks before any signature work.
    if (Math.abs(ts - nowMs) > this.#freshMs) return this.#refuse("BindStale", from, ts, nonce);
    if (!this.#bindBucket.take(1, nowMs)) return this.#drop("BindRateLimited");

    const digestBytes = leaseHash(req.leaseBytes);
    const digest = hex(digestBytes);
    let claims: LeaseClaims;
    const cached = this.#byDigest.get(digest);
    if (cached !== undefined) {
      claims = cached.claims;
      if (nowMs + this.#skewMs < claims.notBefore.getTime()) {
        return this.#refuse("LeaseNotYetValid", from, ts, nonce);
      }
      if (nowMs >= cached.validUntilMs) return this.#refuse("LeaseExpired", from, ts, nonce);
    } else {
      const r = verifyLease(req.lease, this.#leaseKey, {
        relayId: this.#relayId,
        now: new Date(nowMs),
        clockSkewMs: this.#skewMs,
      });
      if (!r.ok) return this.#refuse(r.kind, from, ts, nonce);
      claims = r.claims;
    }

    const peerText = encodePeerKey(req.peerKey);
    const index = claims.peers[0] === peerText ? 0 : claims.peers[1] === peerText ? 1 : -1;
    if (index === -1) return this.#refuse("PeerNotInLease", from, ts, nonce);
    if (!verifyBindSignature(req, digestBytes)) {
      return this.#refuse("BadPeerSignature", from, ts, nonce);
    }

    let session = this.#sessions.get(claims.sessionId);
    let renewal = false;
    if (session !== undefined && session.digest !== digest) {
      const same = session.claims.peers[0] === claims.peers[0] &&
        session.claims.peers[1] === claims.peers[1];
      if (!same) return this.#refuse("SessionConflict", from, ts, nonce);
      renewal = true;
    }
    if (session === undefined && this.#sessions.size >= this.#maxSessions) {
      return this.#refuse("TableFull", from, ts, nonce);
    }
    if (session !== undefined && ts <= session.lastBindTs[index]) {
      return this.#refuse("BindReplayed", from, ts, nonce);
    }
    const key = addressKey(from);
    const owner = this.#byAddress.get(key);
    if (owner !== undefined && (owner.session !== session || owner.index !== index)) {
      return this.#refuse("AddressInUse", from, ts, nonce);
    }

    // Accepted: from here on the table changes.
    if (session === undefined) {
      session = this.#newSession(claims, digest, nowMs);
    } else if (renewal) {
      this.#byDigest.delete(session.digest);
      session.digest = digest;
      session.claims = claims;
      session.validUntilMs = claims.expiresAt.getTime() + this.#skewMs;
      const { rate, burst } = this.#bucketShape(claims.bandwidthBps);
      for (const b of session.buckets) b.reconfigure(rate, burst);
      this.#byDigest.set(digest, session);
    }
    const old = session.slots[index];
    if (old !== undefined && old.key !== key) this.#byAddress.delete(old.key);
    session.slots[index] = {
      key,
      address: { hostname: from.hostname, port: from.port },
      lastSeenMs: nowMs,
    };
    this.#byAddress.set(key, { session, index });
    session.lastBindTs[index] = ts;
    this.counters.bindsAccepted++;
    this.#nextSweep ??= nowMs + this.#sweepMs;

    const ack = encodeBindAck({
      state: session.slots[0] && session.slots[1] ? BindState.Ready : BindState.WaitingForPeer,
      timestampMs: ts,
      nonce,
      idleTimeoutMs: this.#idleMs,
    });
    this.counters.replies++;
    this.counters.replyBytes += ack.length;
    return { reply: { to: { hostname: from.hostname, port: from.port }, bytes: ack } };
  }

  #bucketShape(bandwidthBps: number): { rate: number; burst: number } {
    const rate = bandwidthBps / 8;
    return { rate, burst: Math.max(this.#minBurst, (rate * this.#burstMs) / 1000) };
  }

  #newSession(claims: LeaseClaims, digest: string, nowMs: number): Session {
    const { rate, burst } = this.#bucketShape(claims.bandwidthBps);
    const session: Session = {
      sessionId: claims.sessionId,
      digest,
      claims,
      validUntilMs: claims.expiresAt.getTime() + this.#skewMs,
      slots: [undefined, undefined],
      lastBindTs: [0, 0],
      buckets: [new TokenBucket(rate, burst, nowMs), new TokenBucket(rate, burst, nowMs)],
    };
    this.#sessions.set(claims.sessionId, session);
    this.#byDigest.set(digest, session);
    return session;
  }

  #removeSession(s: Session): void {
    for (const slot of s.slots) if (slot) this.#byAddress.delete(slot.key);
    s.slots = [undefined, undefined];
    this.#sessions.delete(s.sessionId);
    if (this.#byDigest.get(s.digest) === s) this.#byDigest.delete(s.digest);
  }
}
