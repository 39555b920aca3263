/**
 * The ICE agent (RFC 8445 as the model), sans-IO: connectivity checks from
 * both sides at once, triggered checks and peer-reflexive candidates,
 * regular nomination by the controlling agent, role conflicts settled by
 * tie-breaker, and consent freshness (RFC 7675) on the selected pair.
 *
 * The caller owns sockets and the clock: it feeds STUN datagrams (first
 * byte 0–3, RFC 7983) to {@linkcode IceAgent.handleDatagram}, sends what
 * {@linkcode IceAgent.pollTransmit} returns, wakes up at
 * {@linkcode IceAgent.pollTimeout} to call {@linkcode IceAgent.handleTimeout},
 * and reads outcomes from {@linkcode IceAgent.pollEvent}. Times are ms on any
 * monotonic origin. One component, one checklist (one data stream). The
 * procedure, timers and bounds are described in `docs/CONNECT.md`.
 *
 * @module
 */

import { err, ok, type Result } from "../result.ts";
import { StunTransaction } from "../stun/client.ts";
import { type TransportAddress } from "../stun/ip.ts";
import {
  type DecodedStun,
  decodeStun,
  encodeStun,
  findAttribute,
  mappedAddressOf,
  newTransactionId,
  shortTermKey,
  type StunAttribute,
  StunClass,
  StunMethod,
  verifyIntegrity,
} from "../stun/message.ts";
import {
  addressKey,
  type Candidate,
  type CandidateError,
  candidateFoundation,
  candidatePriority,
  pairPriority,
} from "./candidate.ts";

/** Agent role (RFC 8445 §6.1.1). */
export type IceRole = "controlling" | "controlled";

/** Agent state. */
export type IceState =
  /** Waiting for remote credentials and candidates. */
  | "new"
  /** Checks running. */
  | "checking"
  /** A pair is selected; consent freshness runs on it. */
  | "connected"
  /** No pair was selected within the bounds. */
  | "failed"
  /** Consent was lost on the selected pair. */
  | "disconnected";

/** Pair states (RFC 8445 §6.1.2.6). */
export type PairState = "frozen" | "waiting" | "inProgress" | "succeeded" | "failed";

/** Timers and bounds of an {@linkcode IceAgent}, ms. */
export interface IceTiming {
  /** Ta: at most one new check per Ta (RFC 8445 §14.2; default 20). */
  taMs: number;
  /** First retransmission timeout of a check (doubling; default 200). */
  checkRtoMs: number;
  /** Transmissions per check (default 5: sent at 0, 200, 600, 1400, 3000 ms). */
  checkRc: number;
  /** After the last transmission wait `checkRm · checkRtoMs` (default 4: gives up at 3800 ms). */
  checkRm: number;
  /**
   * The direct-path bound: a relay pair is nominated only when no direct
   * pair has succeeded this long after checks started (default 4000).
   */
  directBoundMs: number;
  /** Give up (event `failed`) when nothing is selected this long after checks started (default 10000). */
  failBoundMs: number;
  /**
   * The controlling agent nominates the best valid pair at once when no
   * better pair is still being checked, else waits at most this long after
   * the first success for a better one (default 150).
   */
  nominationWaitMs: number;
  /** Consent checks every this long, randomised ±20 % (RFC 7675 §5.1; default 5000). */
  consentIntervalMs: number;
  /** Consent is lost when no check on the selected pair succeeded this long (default 30000). */
  consentTimeoutMs: number;
}

/** The default timing: see {@linkcode IceTiming}. */
export const DEFAULT_ICE_TIMING: Readonly<IceTiming> = Object.freeze({
  taMs: 20,
  checkRtoMs: 200,
  checkRc: 5,
  checkRm: 4,
  directBoundMs: 4000,
  failBoundMs: 10000,
  nominationWaitMs: 150,
  consentIntervalMs: 5000,
  consentTimeoutMs: 30000,
});

/** Options of an {@linkcode IceAgent}. */
export interface IceAgentOptions {
  /** Starting role; the host side is controlled, the client controlling, by convention. */
  role: IceRole;
  /** 64-bit tie-breaker (default random). */
  tieBreaker?: bigint;
  /** Local username fragment (default 8 random ice-chars). */
  ufrag?: string;
  /** Local password (default 24 random ice-chars). */
  pwd?: string;
  /** Timer overrides. */
  timing?: Partial<IceTiming>;
  /** Uniform random in [0, 1) for consent jitter (default `Math.random`). */
  random?: () => number;
  /** Remote candidates accepted at most (default 32; bounds the checklist). */
  maxRemoteCandidates?: number;
}

/** Username fragment and password (RFC 8445 §5.3). */
export interface IceCredentials {
  /** Username fragment, 4–256 ice-chars. */
  ufrag: string;
  /** Password, 22–256 ice-chars. */
  pwd: string;
}

/** One datagram to send. */
export interface IceTransmit {
  /** Which of the caller's sockets sends it. */
  socketId: number;
  /** Destination. */
  to: TransportAddress;
  /** The STUN message. */
  bytes: Uint8Array;
}

/** The pair ICE settled on. */
export interface SelectedPair {
  /** The socket to use. */
  socketId: number;
  /** Our candidate as the peer sees it (host, srflx, prflx or relay). */
  local: Candidate;
  /** The peer's candidate. */
  remote: Candidate;
  /** Where to send datagrams for the peer (the relay server for a relay pair). */
  sendTo: TransportAddress;
  /** Whether the pair goes through a relay. */
  relayed: boolean;
  /** Round trip of the check that validated it, ms. */
  rttMs: number;
}

/** What {@linkcode IceAgent.pollEvent} reports. */
export type IceEvent =
  | { type: "selected"; pair: SelectedPair; at: number }
  | { type: "failed"; reason: string; at: number }
  | { type: "consentLost"; pair: SelectedPair; at: number }
  | { type: "roleChanged"; role: IceRole; at: number };

/** Why a datagram was not used. */
export type IceDropReason =
  | "NotStun"
  | "Malformed"
  | "NotBinding"
  | "Indication"
  | "BadUsername"
  | "BadIntegrity"
  | "MissingPriority"
  | "UnknownTransaction"
  | "UnknownSocket"
  | "RoleConflict"
  | "Closed";

/** Counters of one agent. */
export interface IceCounters {
  /** Check requests started (not counting retransmissions). */
  checksStarted: number;
  /** Requests sent including retransmissions. */
  requestsSent: number;
  /** Valid check requests received (and answered). */
  requestsReceived: number;
  /** Success responses to our checks. */
  successes: number;
  /** Consent checks (RFC 7675) answered on the selected pair. */
  consentSuccesses: number;
  /** Checks that timed out or failed. */
  checkFailures: number;
  /** Triggered checks queued. */
  triggered: number;
  /** Peer-reflexive candidates learnt (local + remote). */
  peerReflexive: number;
  /** Role switches after a conflict. */
  roleSwitches: number;
  /** Datagrams dropped, by reason. */
  drops: Partial<Record<IceDropReason, number>>;
}

interface Pair {
  id: number;
  local: Candidate;
  remote: Candidate;
  sendTo: TransportAddress;
  socketId: number;
  priority: bigint;
  state: PairState;
  foundation: string;
  inFlight: number;
  /** After success: our candidate as the peer saw it. */
  validLocal?: Candidate;
  rttMs: number;
  /** Controlled side: the peer nominated it; select on success. */
  nominateOnSuccess: boolean;
}

interface Check {
  pair: Pair;
  tx: StunTransaction;
  useCandidate: boolean;
  consent: boolean;
  /** Our role when the request was sent. */
  role: IceRole;
}

function randomIceChars(n: number): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  let out = "";
  for (const b of bytes) out += alphabet[b & 63];
  return out;
}

function randomTieBreaker(): bigint {
  const b = crypto.getRandomValues(new Uint8Array(8));
  return new DataView(b.buffer).getBigUint64(0);
}

const CRED_CHARS = /^[A-Za-z0-9+/]+$/;

/** Validates credentials received from the peer. */
export function checkCredentials(c: unknown): Result<IceCredentials, CandidateError> {
  const v = c as Record<string, unknown> | null;
  if (
    typeof v !== "object" || v === null || typeof v.ufrag !== "string" ||
    typeof v.pwd !== "string" || v.ufrag.length < 4 || v.ufrag.length > 256 ||
    v.pwd.length < 22 || v.pwd.length > 256 || !CRED_CHARS.test(v.ufrag) ||
    !CRED_CHARS.test(v.pwd)
  ) {
    return err({ kind: "BadCredentials", detail: "ufrag 4–256 / pwd 22–256 ice-chars expected" });
  }
  return ok({ ufrag: v.ufrag, pwd: v.pwd });
}

function txKey(id: Uint8Array): string {
  let s = "";
  for (const b of id) s += b.toString(16).padStart(2, "0");
  return s;
}

/**
 * One ICE agent for one peer. See the module documentation for the calling
 * convention, and `docs/CONNECT.md` for the procedure.
 */
export class IceAgent {
  /** Counters (live object). */
  readonly counters: IceCounters = {
    checksStarted: 0,
    requestsSent: 0,
    requestsReceived: 0,
    successes: 0,
    consentSuccesses: 0,
    checkFailures: 0,
    triggered: 0,
    peerReflexive: 0,
    roleSwitches: 0,
    drops: {},
  };
  /** Our tie-breaker. */
  readonly tieBreaker: bigint;
  readonly #local: IceCredentials;
  readonly #localKey: Uint8Array;
  #remote: IceCredentials | undefined;
  #remoteKey: Uint8Array | undefined;
  #role: IceRole;
  #state: IceState = "new";
  readonly #timing: IceTiming;
  readonly #random: () => number;
  readonly #maxRemote: number;
  readonly #locals: Candidate[] = [];
  readonly #remotes: Candidate[] = [];
  readonly #pairs: Pair[] = [];
  readonly #pairByKey = new Map<string, Pair>();
  #nextPairId = 0;
  readonly #triggered: Pair[] = [];
  readonly #checks = new Map<string, Check>();
  readonly #outbox: IceTransmit[] = [];
  readonly #events: IceEvent[] = [];
  #startedAt: number | undefined;
  #nextCheckAt = -Infinity;
  #firstSuccessAt: number | undefined;
  #nominating: Pair | undefined;
  #selected: Pair | undefined;
  #selectedInfo: SelectedPair | undefined;
  #lastConsent = 0;
  #nextConsentAt = Infinity;

  /** Creates an agent; add candidates and the peer's credentials to start checking. */
  constructor(options: IceAgentOptions) {
    this.#role = options.role;
    this.tieBreaker = options.tieBreaker ?? randomTieBreaker();
    this.#local = {
      ufrag: options.ufrag ?? randomIceChars(8),
      pwd: options.pwd ?? randomIceChars(24),
    };
    this.#localKey = shortTermKey(this.#local.pwd);
    this.#timing = { ...DEFAULT_ICE_TIMING, ...options.timing };
    this.#random = options.random ?? Math.random;
    this.#maxRemote = options.maxRemoteCandidates ?? 32;
  }

  /** Our credentials, to send to the peer with our candidates. */
  get localCredentials(): IceCredentials {
    return { ...this.#local };
  }

  /** Current role. */
  get role(): IceRole {
    return this.#role;
  }

  /** Current state. */
  get state(): IceState {
    return this.#state;
  }

  /** The timing in use. */
  get timing(): Readonly<IceTiming> {
    return this.#timing;
  }

  /** The selected pair, once connected. */
  get selectedPair(): SelectedPair | undefined {
    return this.#selectedInfo;
  }

  /** Local candidates, including peer-reflexive ones learnt from checks. */
  get localCandidates(): readonly Candidate[] {
    return this.#locals;
  }

  /** Remote candidates, including peer-reflexive ones. */
  get remoteCandidates(): readonly Candidate[] {
    return this.#remotes;
  }

  /** A snapshot of the checklist, highest priority first (for stats and tests). */
  pairs(): { local: Candidate; remote: Candidate; state: PairState; priority: bigint }[] {
    return this.#pairs.map((p) => ({
      local: p.validLocal ?? p.local,
      remote: p.remote,
      state: p.state,
      priority: p.priority,
    }));
  }

  /**
   * Adds one of our candidates. Host and relay candidates form pairs;
   * server-reflexive ones are only advertised (their checks leave from
   * their base, RFC 8445 §6.1.2.4).
   */
  addLocalCandidate(c: Candidate): void {
    const cand: Candidate = { ...c, socketId: c.socketId ?? 0, base: c.base ?? c.address };
    if (
      this.#locals.some((l) =>
        l.type === cand.type && addressKey(l.address) === addressKey(cand.address)
      )
    ) {
      return;
    }
    this.#locals.push(cand);
    if (cand.type === "host" || cand.type === "relay") {
      for (const r of this.#remotes) this.#formPair(cand, r);
    }
  }

  /**
   * Sets the peer's credentials (from signaling). Checks start on the next
   * call with a time once there is a pair.
   */
  setRemoteCredentials(creds: IceCredentials): Result<void, CandidateError> {
    const checked = checkCredentials(creds);
    if (!checked.ok) return checked;
    this.#remote = checked.value;
    this.#remoteKey = shortTermKey(checked.value.pwd);
    return ok(undefined);
  }

  /** Adds a candidate of the peer (validate signaling input with `parseOffer` first). */
  addRemoteCandidate(c: Candidate): Result<void, CandidateError> {
    if (this.#remotes.some((r) => addressKey(r.address) === addressKey(c.address))) {
      return ok(undefined);
    }
    if (this.#remotes.length >= this.#maxRemote) {
      return err({
        kind: "TooManyCandidates",
        detail: `more than ${this.#maxRemote} remote candidates`,
      });
    }
    const cand: Candidate = {
      type: c.type,
      address: c.address,
      priority: c.priority,
      foundation: c.foundation,
    };
    this.#remotes.push(cand);
    for (const l of this.#locals) {
      if (l.type === "host" || l.type === "relay") this.#formPair(l, cand);
    }
    return ok(undefined);
  }

  /**
   * Offers a datagram received on socket `socketId` from `from`. Only STUN
   * Binding messages concern the agent; everything else is counted and
   * ignored. Never throws, and nothing that fails authentication changes
   * any state. Returns whether the datagram was used.
   */
  handleDatagram(
    bytes: Uint8Array,
    from: TransportAddress,
    socketId = 0,
    now = 0,
  ): boolean {
    if (bytes.length === 0 || bytes[0] > 3) return this.#drop("NotStun");
    const decoded = decodeStun(bytes);
    if (!decoded.ok) return this.#drop(decoded.error.kind === "NotStun" ? "NotStun" : "Malformed");
    const msg = decoded.value;
    if (msg.method !== StunMethod.Binding) return this.#drop("NotBinding");
    this.#begin(now);
    switch (msg.messageClass) {
      case StunClass.Request:
        return this.#onRequest(bytes, msg, from, socketId, now);
      case StunClass.SuccessResponse:
      case StunClass.ErrorResponse:
        return this.#onResponse(bytes, msg, from, socketId, now);
      default:
        return this.#drop("Indication");
    }
  }

  /** The next datagram to send at `now`, or `undefined`. Call until `undefined`. */
  pollTransmit(now: number): IceTransmit | undefined {
    this.#begin(now);
    const queued = this.#outbox.shift();
    if (queued) return queued;
    for (const check of this.#checks.values()) {
      const bytes = check.tx.pollTransmit(now);
      if (bytes) {
        this.counters.requestsSent++;
        return { socketId: check.pair.socketId, to: check.pair.sendTo, bytes };
      }
    }
    if (this.#state !== "checking" || !this.#remote || now < this.#nextCheckAt) return undefined;
    const pair = this.#nextPairToCheck();
    if (!pair) return undefined;
    this.#nextCheckAt = now + this.#timing.taMs;
    const useCandidate = this.#role === "controlling" && this.#nominating === pair;
    const check = this.#startCheck(pair, now, useCandidate, false);
    const bytes = check.tx.pollTransmit(now)!;
    this.counters.requestsSent++;
    return { socketId: pair.socketId, to: pair.sendTo, bytes };
  }

  /** When the agent next needs {@linkcode handleTimeout} (and `pollTransmit`), or `undefined`. */
  pollTimeout(): number | undefined {
    let t = Infinity;
    if (this.#outbox.length > 0) return -Infinity;
    for (const c of this.#checks.values()) t = Math.min(t, c.tx.pollTimeout() ?? Infinity);
    if (this.#state === "checking" && this.#startedAt !== undefined) {
      if (this.#remote && this.#hasCheckWork()) t = Math.min(t, this.#nextCheckAt);
      t = Math.min(t, this.#startedAt + this.#timing.failBoundMs);
      if (
        this.#firstSuccessAt !== undefined && this.#role === "controlling" && !this.#nominating
      ) {
        t = Math.min(
          t,
          Math.max(
            this.#firstSuccessAt + this.#timing.nominationWaitMs,
            this.#relayOnly() ? this.#startedAt + this.#timing.directBoundMs : -Infinity,
          ),
        );
      }
      if (this.#allFailed()) t = Math.min(t, this.#startedAt + this.#timing.directBoundMs);
    }
    if (this.#state === "connected") {
      t = Math.min(t, this.#nextConsentAt, this.#lastConsent + this.#timing.consentTimeoutMs);
    }
    return t === Infinity ? undefined : t;
  }

  /** Advances timers: check timeouts, nomination, bounds, consent. */
  handleTimeout(now: number): void {
    this.#begin(now);
    for (const [key, c] of this.#checks) {
      c.tx.handleTimeout(now);
      if (c.tx.state === "timedOut") {
        this.#checks.delete(key);
        this.#checkFailed(c);
      }
    }
    if (this.#state === "checking" && this.#startedAt !== undefined) {
      this.#maybeNominate(now);
      const elapsed = now - this.#startedAt;
      if (elapsed >= this.#timing.failBoundMs) {
        this.#fail(now, `no pair selected within ${this.#timing.failBoundMs} ms`);
      } else if (elapsed >= this.#timing.directBoundMs && this.#allFailed()) {
        this.#fail(now, `every candidate pair failed (${this.#pairs.length} pairs)`);
      }
    } else if (this.#state === "connected" && this.#selected) {
      if (now - this.#lastConsent >= this.#timing.consentTimeoutMs) {
        this.#state = "disconnected";
        this.#nextConsentAt = Infinity;
        this.#checks.clear();
        this.#events.push({ type: "consentLost", pair: this.#selectedInfo!, at: now });
      } else if (now >= this.#nextConsentAt) {
        this.#startCheck(this.#selected, now, false, true);
        this.#scheduleConsent(now);
      }
    }
  }

  /** The next event, or `undefined`. */
  pollEvent(): IceEvent | undefined {
    return this.#events.shift();
  }

  // ---------------------------------------------------------------- internals

  #drop(reason: IceDropReason): false {
    this.counters.drops[reason] = (this.counters.drops[reason] ?? 0) + 1;
    return false;
  }

  #begin(now: number): void {
    if (this.#state === "new" && this.#remote && this.#pairs.length > 0) {
      this.#state = "checking";
      this.#startedAt = now;
    }
  }

  #formPair(local: Candidate, remote: Candidate): Pair | undefined {
    if (local.address.family !== remote.address.family) return undefined;
    // A blind relay only reaches the leased peer's relay candidate; direct
    // sockets never reach a relay candidate without a lease.
    if ((local.type === "relay") !== (remote.type === "relay")) return undefined;
    const sendTo = local.type === "relay" ? local.relayServer ?? local.address : remote.address;
    const key = `${local.socketId ?? 0}|${local.type === "relay" ? "r" : "d"}|${
      addressKey(sendTo)
    }`;
    const priority = this.#pairPriority(local, remote);
    const existing = this.#pairByKey.get(key);
    if (existing) {
      // Redundant pair (same socket, same destination): keep the higher one (RFC 8445 §6.1.2.4).
      if (priority > existing.priority && existing.state !== "succeeded") {
        existing.local = local;
        existing.remote = remote;
        existing.priority = priority;
        this.#sortPairs();
      }
      return existing;
    }
    const pair: Pair = {
      id: this.#nextPairId++,
      local,
      remote,
      sendTo,
      socketId: local.socketId ?? 0,
      priority,
      state: "frozen",
      foundation: `${local.foundation}:${remote.foundation}`,
      inFlight: 0,
      rttMs: -1,
      nominateOnSuccess: false,
    };
    // The first pair of each foundation starts Waiting (RFC 8445 §6.1.2.6).
    if (!this.#pairs.some((p) => p.foundation === pair.foundation)) pair.state = "waiting";
    this.#pairs.push(pair);
    this.#pairByKey.set(key, pair);
    this.#sortPairs();
    return pair;
  }

  #pairPriority(local: Candidate, remote: Candidate): bigint {
    return this.#role === "controlling"
      ? pairPriority(local.priority, remote.priority)
      : pairPriority(remote.priority, local.priority);
  }

  #sortPairs(): void {
    this.#pairs.sort((
      a,
      b,
    ) => (a.priority > b.priority ? -1 : a.priority < b.priority ? 1 : a.id - b.id));
  }

  #hasCheckWork(): boolean {
    return this.#triggered.length > 0 ||
      this.#pairs.some((p) => p.state === "waiting" || p.state === "frozen") ||
      (this.#nominating !== undefined && this.#nominating.inFlight === 0);
  }

  #nextPairToCheck(): Pair | undefined {
    const t = this.#triggered.shift();
    if (t) return t;
    const waiting = this.#pairs.find((p) => p.state === "waiting");
    if (waiting) return waiting;
    const frozen = this.#pairs.find((p) => p.state === "frozen");
    return frozen;
  }

  #startCheck(pair: Pair, now: number, useCandidate: boolean, consent: boolean): Check {
    const local = pair.local;
    const attributes: StunAttribute[] = [
      { kind: "Username", value: `${this.#remote!.ufrag}:${this.#local.ufrag}` },
      // PRIORITY: what a peer-reflexive candidate learnt from this check would get (§7.2.2).
      { kind: "Priority", priority: candidatePriority("prflx", (local.priority >>> 8) & 0xffff) },
      this.#role === "controlling"
        ? { kind: "IceControlling", tieBreaker: this.tieBreaker }
        : { kind: "IceControlled", tieBreaker: this.tieBreaker },
    ];
    if (useCandidate) attributes.push({ kind: "UseCandidate" });
    const request = encodeStun({
      method: StunMethod.Binding,
      messageClass: StunClass.Request,
      transactionId: newTransactionId(),
      attributes,
    }, { integrityKey: this.#remoteKey, fingerprint: true });
    const tx = new StunTransaction(request, pair.sendTo, now, {
      rto: this.#timing.checkRtoMs,
      rc: this.#timing.checkRc,
      rm: this.#timing.checkRm,
    });
    const check: Check = { pair, tx, useCandidate, consent, role: this.#role };
    this.#checks.set(txKey(tx.transactionId), check);
    if (!consent) {
      this.counters.checksStarted++;
      pair.inFlight++;
      if (pair.state !== "succeeded") pair.state = "inProgress";
    }
    return check;
  }

  #checkFailed(c: Check): void {
    this.counters.checkFailures++;
    if (c.consent) return; // consent has its own deadline
    c.pair.inFlight = Math.max(0, c.pair.inFlight - 1);
    if (c.pair.inFlight === 0 && c.pair.state !== "succeeded") c.pair.state = "failed";
    if (this.#nominating === c.pair && c.useCandidate) {
      // A nomination that got no answer: that pair no longer works.
      this.#nominating = undefined;
      if (c.pair.inFlight === 0) c.pair.state = "failed";
    }
  }

  #allFailed(): boolean {
    return this.#pairs.length > 0 && this.#triggered.length === 0 &&
      this.#pairs.every((p) => p.state === "failed");
  }

  #relayOnly(): boolean {
    return !this.#pairs.some((p) => p.state === "succeeded" && p.local.type !== "relay");
  }

  #trigger(pair: Pair): void {
    if (this.#state !== "checking" && this.#state !== "new") return;
    if (this.#triggered.includes(pair)) return;
    if (pair.state === "frozen" || pair.state === "failed") pair.state = "waiting";
    this.#triggered.push(pair);
    this.counters.triggered++;
  }

  /** The best valid pair the controlling agent may nominate now, if any. */
  #maybeNominate(now: number): void {
    if (this.#role !== "controlling" || this.#nominating || this.#selected) return;
    if (this.#startedAt === undefined) return;
    const valid = this.#pairs.filter((p) => p.state === "succeeded");
    if (valid.length === 0) return;
    const direct = valid.filter((p) => p.local.type !== "relay");
    const allowRelay = now - this.#startedAt >= this.#timing.directBoundMs;
    const candidates = direct.length > 0 ? direct : allowRelay ? valid : [];
    if (candidates.length === 0) return;
    const best = candidates.reduce((
      a,
      b,
    ) => (this.#validPriority(b) > this.#validPriority(a) ? b : a));
    const betterPending = this.#pairs.some((p) =>
      p.priority > best.priority && p.local.type !== "relay" &&
      (p.state === "waiting" || p.state === "inProgress" || p.state === "frozen")
    );
    if (betterPending && now < (this.#firstSuccessAt ?? now) + this.#timing.nominationWaitMs) {
      return;
    }
    this.#nominating = best;
    // The nomination is a new check with USE-CANDIDATE, sent at the next Ta slot (first in line).
    this.#triggered.unshift(best);
  }

  #validPriority(p: Pair): bigint {
    return p.validLocal ? this.#pairPriority(p.validLocal, p.remote) : p.priority;
  }

  #select(pair: Pair, now: number): void {
    if (this.#selected) return;
    this.#selected = pair;
    this.#state = "connected";
    this.#triggered.length = 0;
    // Stop checking: only consent checks run from now on.
    for (const [key, c] of this.#checks) if (!c.consent) this.#checks.delete(key);
    const local = pair.validLocal ?? pair.local;
    this.#selectedInfo = {
      socketId: pair.socketId,
      local,
      remote: pair.remote,
      sendTo: pair.sendTo,
      relayed: pair.local.type === "relay",
      rttMs: pair.rttMs,
    };
    this.#lastConsent = now;
    this.#scheduleConsent(now);
    this.#events.push({ type: "selected", pair: this.#selectedInfo, at: now });
  }

  #scheduleConsent(now: number): void {
    const jitter = 0.8 + 0.4 * this.#random();
    this.#nextConsentAt = now + this.#timing.consentIntervalMs * jitter;
  }

  #fail(now: number, reason: string): void {
    this.#state = "failed";
    this.#checks.clear();
    this.#triggered.length = 0;
    this.#events.push({ type: "failed", reason, at: now });
  }

  #switchRole(now: number): void {
    this.#role = this.#role === "controlling" ? "controlled" : "controlling";
    this.counters.roleSwitches++;
    for (const p of this.#pairs) p.priority = this.#pairPriority(p.local, p.remote);
    this.#sortPairs();
    this.#nominating = undefined;
    this.#events.push({ type: "roleChanged", role: this.#role, at: now });
  }

  /** The local base candidate that a datagram on `socketId` from `from` belongs to. */
  #localFor(socketId: number, from: TransportAddress): Candidate | undefined {
    const relay = this.#locals.find((l) =>
      l.type === "relay" && (l.socketId ?? 0) === socketId && l.relayServer &&
      addressKey(l.relayServer) === addressKey(from)
    );
    if (relay) return relay;
    let best: Candidate | undefined;
    for (const l of this.#locals) {
      if (l.type !== "host" || (l.socketId ?? 0) !== socketId) continue;
      if (l.address.family !== from.family) continue;
      if (!best || l.priority > best.priority) best = l;
    }
    return best;
  }

  #onRequest(
    bytes: Uint8Array,
    msg: DecodedStun,
    from: TransportAddress,
    socketId: number,
    now: number,
  ): boolean {
    const username = findAttribute(msg, "Username")?.value;
    if (!username || !username.startsWith(`${this.#local.ufrag}:`)) {
      return this.#drop("BadUsername");
    }
    if (!verifyIntegrity(bytes, msg, this.#localKey)) return this.#drop("BadIntegrity");
    const priority = findAttribute(msg, "Priority")?.priority;
    if (priority === undefined || priority === 0) return this.#drop("MissingPriority");
    const local = this.#localFor(socketId, from);
    if (!local) return this.#drop("UnknownSocket");

    // Role conflict (RFC 8445 §7.3.1.1).
    const theirControlling = findAttribute(msg, "IceControlling");
    const theirControlled = findAttribute(msg, "IceControlled");
    if (this.#role === "controlling" && theirControlling) {
      if (this.tieBreaker >= theirControlling.tieBreaker) {
        this.#reply(msg, from, socketId, 487);
        return this.#drop("RoleConflict");
      }
      this.#switchRole(now);
    } else if (this.#role === "controlled" && theirControlled) {
      if (this.tieBreaker >= theirControlled.tieBreaker) {
        this.#switchRole(now);
      } else {
        this.#reply(msg, from, socketId, 487);
        return this.#drop("RoleConflict");
      }
    }
    this.counters.requestsReceived++;
    this.#reply(msg, from, socketId, 0);

    // The source as a remote candidate: a known one, or peer-reflexive (§7.3.1.3).
    let remote = local.type === "relay"
      ? this.#remotes.find((r) => r.type === "relay")
      : this.#remotes.find((r) => addressKey(r.address) === addressKey(from));
    if (!remote) {
      if (local.type === "relay") return true;
      if (this.#remotes.length >= this.#maxRemote) return true;
      remote = {
        type: "prflx",
        address: from,
        priority,
        foundation: candidateFoundation("prflx", from.hostname, addressKey(from)),
      };
      this.#remotes.push(remote);
      this.counters.peerReflexive++;
    }
    const pair = this.#formPair(local, remote);
    if (!pair || this.#state === "failed" || this.#state === "disconnected") return true;
    if (this.#state === "new") this.#begin(now);
    const useCandidate = findAttribute(msg, "UseCandidate") !== undefined;
    if (useCandidate && this.#role === "controlled") {
      if (pair.state === "succeeded") this.#select(pair, now);
      else pair.nominateOnSuccess = true;
    }
    // Triggered check (§7.3.1.4): a pair already valid needs none.
    if (pair.state !== "succeeded" && this.#state === "checking") this.#trigger(pair);
    return true;
  }

  #reply(msg: DecodedStun, to: TransportAddress, socketId: number, errorCode: number): void {
    const attributes: StunAttribute[] = errorCode === 0
      ? [{ kind: "XorMappedAddress", address: to }]
      : [{ kind: "ErrorCode", code: errorCode, reason: "Role Conflict" }];
    const bytes = encodeStun({
      method: StunMethod.Binding,
      messageClass: errorCode === 0 ? StunClass.SuccessResponse : StunClass.ErrorResponse,
      transactionId: msg.transactionId,
      attributes,
    }, { integrityKey: this.#localKey, fingerprint: true });
    this.#outbox.push({ socketId, to, bytes });
  }

  #onResponse(
    bytes: Uint8Array,
    msg: DecodedStun,
    from: TransportAddress,
    socketId: number,
    now: number,
  ): boolean {
    const key = txKey(msg.transactionId);
    const check = this.#checks.get(key);
    if (!check) return this.#drop("UnknownTransaction");
    if (!this.#remoteKey || !verifyIntegrity(bytes, msg, this.#remoteKey)) {
      return this.#drop("BadIntegrity");
    }
    if (!check.tx.handleResponse(bytes, now)) return this.#drop("Malformed");
    this.#checks.delete(key);
    const pair = check.pair;
    if (check.consent) {
      if (msg.messageClass === StunClass.SuccessResponse && pair === this.#selected) {
        this.#lastConsent = now;
        this.counters.consentSuccesses++;
      }
      return true;
    }
    pair.inFlight = Math.max(0, pair.inFlight - 1);
    // Non-symmetric source: the check fails (RFC 8445 §7.2.5.2.1).
    if (addressKey(from) !== addressKey(pair.sendTo) || socketId !== pair.socketId) {
      this.#checkFailed({ ...check, pair });
      return true;
    }
    if (msg.messageClass === StunClass.ErrorResponse) {
      const code = findAttribute(msg, "ErrorCode")?.code;
      if (code === 487) {
        // Role conflict (§7.2.5.1): take the other role (unless a request already
        // made us switch), then retry the pair as a triggered check.
        if (check.role === this.#role) this.#switchRole(now);
        if (pair.state !== "succeeded") pair.state = "waiting";
        this.#trigger(pair);
        return true;
      }
      this.counters.checkFailures++;
      if (pair.inFlight === 0 && pair.state !== "succeeded") pair.state = "failed";
      if (this.#nominating === pair) this.#nominating = undefined;
      return true;
    }
    const mapped = mappedAddressOf(msg);
    if (!mapped) {
      this.#checkFailed({ ...check, pair });
      return true;
    }
    this.counters.successes++;
    // Our candidate as the peer saw it: a known local one, or a new peer-reflexive one (§7.2.5.3.1).
    let local = this.#locals.find((l) =>
      (l.socketId ?? 0) === pair.socketId && addressKey(l.address) === addressKey(mapped)
    );
    if (!local) {
      const base = pair.local.base ?? pair.local.address;
      local = {
        type: "prflx",
        address: mapped,
        base,
        priority: candidatePriority("prflx", (pair.local.priority >>> 8) & 0xffff),
        foundation: candidateFoundation("prflx", base.hostname, addressKey(mapped)),
        socketId: pair.socketId,
      };
      this.#locals.push(local);
      this.counters.peerReflexive++;
    }
    const firstSuccess = pair.state !== "succeeded";
    pair.state = "succeeded";
    pair.validLocal = local;
    pair.rttMs = check.tx.rttMs;
    this.#firstSuccessAt ??= now;
    if (firstSuccess) {
      // Unfreeze pairs of the same foundation (§7.2.5.3.3).
      for (const p of this.#pairs) {
        if (p.state === "frozen" && p.foundation === pair.foundation) p.state = "waiting";
      }
    }
    if (this.#role === "controlling" && check.useCandidate) this.#select(pair, now);
    else if (this.#role === "controlled" && pair.nominateOnSuccess) this.#select(pair, now);
    else this.#maybeNominate(now);
    return true;
  }
}
