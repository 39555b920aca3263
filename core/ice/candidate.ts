/**
 * ICE candidates (RFC 8445 §5.1): types, priorities, foundations, pair
 * priorities, and the validation of candidates that arrive from the peer
 * through signaling (untrusted input: a bad one is a typed error and is not
 * added).
 *
 * Wavry has one component (one UDP flow carries RIFT and STUN), so the
 * component id is always 1.
 *
 * @module
 */

import { err, ok, type Result } from "../result.ts";
import { crc32 } from "../stun/crc32.ts";
import { canonicalIp, parseIp, type TransportAddress } from "../stun/ip.ts";

/** The four candidate types of RFC 8445 §5.1.1. */
export type CandidateType = "host" | "srflx" | "prflx" | "relay";

/** Type preferences (RFC 8445 §5.1.2.2 recommended values). */
export const TYPE_PREFERENCE: Readonly<Record<CandidateType, number>> = Object.freeze({
  host: 126,
  prflx: 110,
  srflx: 100,
  relay: 0,
});

/** The single component Wavry uses. */
export const COMPONENT_ID = 1;

/**
 * Candidate priority (RFC 8445 §5.1.2.1):
 * `2^24 · typePref + 2^8 · localPref + (256 − componentId)`.
 *
 * @param localPreference 0–65535; higher for preferred interfaces (default 65535)
 */
export function candidatePriority(type: CandidateType, localPreference = 65535): number {
  const lp = Math.max(0, Math.min(65535, Math.floor(localPreference)));
  return TYPE_PREFERENCE[type] * 2 ** 24 + lp * 2 ** 8 + (256 - COMPONENT_ID);
}

/**
 * Pair priority (RFC 8445 §6.1.2.3): `2^32·min(G,D) + 2·max(G,D) + (G>D?1:0)`
 * where G is the controlling agent's candidate priority and D the
 * controlled one's. A bigint: the value needs 64 bits.
 */
export function pairPriority(controllingPriority: number, controlledPriority: number): bigint {
  const g = BigInt(controllingPriority), d = BigInt(controlledPriority);
  const min = g < d ? g : d, max = g < d ? d : g;
  return (min << 32n) + 2n * max + (g > d ? 1n : 0n);
}

/**
 * A candidate. Local candidates also carry the socket they belong to and,
 * for relay candidates, the relay server their checks are sent to.
 */
export interface Candidate {
  /** Candidate type. */
  type: CandidateType;
  /** The transport address the peer sends to (and sees as our source). */
  address: TransportAddress;
  /** RFC 8445 §5.1.2 priority (u32). */
  priority: number;
  /** Foundation: equal for candidates of the same type, base IP and server (≤ 32 chars). */
  foundation: string;
  /** Local candidates: the address of the socket it was obtained from (its base). */
  base?: TransportAddress;
  /** Local candidates: which of the caller's sockets (default 0). */
  socketId?: number;
  /**
   * Local relay candidates: where datagrams for this candidate are sent. A
   * blind relay forwards them to the leased peer, so checks of a relay pair
   * go here rather than to the remote candidate's address.
   */
  relayServer?: TransportAddress;
}

/**
 * The foundation of a candidate (RFC 8445 §5.1.1.3): a short hash of type,
 * base IP and, for server-reflexive and relay candidates, the server's IP.
 */
export function candidateFoundation(
  type: CandidateType,
  baseIp: string,
  serverIp = "",
): string {
  const text = `${type}|${canonicalIp(baseIp)}|${serverIp ? canonicalIp(serverIp) : ""}`;
  return crc32(new TextEncoder().encode(text)).toString(16).padStart(8, "0");
}

/** Builds a local host candidate for socket `socketId` bound at `address`. */
export function hostCandidate(
  address: TransportAddress,
  opts: { socketId?: number; localPreference?: number } = {},
): Candidate {
  return {
    type: "host",
    address,
    base: address,
    priority: candidatePriority("host", opts.localPreference),
    foundation: candidateFoundation("host", address.hostname),
    socketId: opts.socketId ?? 0,
  };
}

/** Builds a server-reflexive candidate: `mapped` as learnt from STUN server `server` via `base`. */
export function srflxCandidate(
  mapped: TransportAddress,
  base: TransportAddress,
  server: TransportAddress,
  opts: { socketId?: number; localPreference?: number } = {},
): Candidate {
  return {
    type: "srflx",
    address: mapped,
    base,
    priority: candidatePriority("srflx", opts.localPreference),
    foundation: candidateFoundation("srflx", base.hostname, server.hostname),
    socketId: opts.socketId ?? 0,
  };
}

/**
 * Builds a relay candidate: `relayed` is the address the peer sees our
 * relayed datagrams come from, `relayServer` where we send them (for
 * Wavry's blind relay both are the relay's address).
 */
export function relayCandidate(
  relayed: TransportAddress,
  relayServer: TransportAddress,
  base: TransportAddress,
  opts: { socketId?: number; localPreference?: number } = {},
): Candidate {
  return {
    type: "relay",
    address: relayed,
    base,
    priority: candidatePriority("relay", opts.localPreference),
    foundation: candidateFoundation("relay", base.hostname, relayServer.hostname),
    socketId: opts.socketId ?? 0,
    relayServer,
  };
}

/** A candidate as exchanged through signaling (JSON-safe). */
export interface CandidateOffer {
  /** Candidate type. */
  type: CandidateType;
  /** IP literal. */
  ip: string;
  /** UDP port. */
  port: number;
  /** u32 priority. */
  priority: number;
  /** Foundation (1–32 ice-chars). */
  foundation: string;
}

/** Why a candidate or credential from the peer was refused. */
export type CandidateErrorKind =
  | "BadType"
  | "BadAddress"
  | "BadPort"
  | "BadPriority"
  | "BadFoundation"
  | "BadCredentials"
  | "TooManyCandidates";

/** A refused candidate: kind to count, detail for logs. */
export interface CandidateError {
  /** Error class. */
  kind: CandidateErrorKind;
  /** Human-readable explanation. */
  detail: string;
}

/** The signaling form of a candidate. */
export function toOffer(c: Candidate): CandidateOffer {
  return {
    type: c.type,
    ip: c.address.hostname,
    port: c.address.port,
    priority: c.priority,
    foundation: c.foundation,
  };
}

const ICE_CHARS = /^[A-Za-z0-9+/]+$/;

/**
 * Validates a candidate received from the peer (any JSON value). Never
 * throws: a wrong field is a {@linkcode CandidateError}.
 */
export function parseOffer(value: unknown): Result<Candidate, CandidateError> {
  if (typeof value !== "object" || value === null) {
    return err({ kind: "BadType", detail: "candidate is not an object" });
  }
  const v = value as Record<string, unknown>;
  if (v.type !== "host" && v.type !== "srflx" && v.type !== "prflx" && v.type !== "relay") {
    return err({ kind: "BadType", detail: `unknown candidate type ${String(v.type)}` });
  }
  if (typeof v.ip !== "string" || v.ip.length > 64) {
    return err({ kind: "BadAddress", detail: "ip is not a string" });
  }
  const ip = parseIp(v.ip);
  if (!ip) return err({ kind: "BadAddress", detail: `${v.ip} is not an IP literal` });
  if (typeof v.port !== "number" || !Number.isInteger(v.port) || v.port < 1 || v.port > 65535) {
    return err({ kind: "BadPort", detail: `port ${String(v.port)} out of 1..65535` });
  }
  if (
    typeof v.priority !== "number" || !Number.isInteger(v.priority) || v.priority < 1 ||
    v.priority > 0xffffffff
  ) {
    return err({ kind: "BadPriority", detail: `priority ${String(v.priority)} is not a u32 > 0` });
  }
  if (
    typeof v.foundation !== "string" || v.foundation.length > 32 || !ICE_CHARS.test(v.foundation)
  ) {
    return err({ kind: "BadFoundation", detail: "foundation is not 1–32 ice-chars" });
  }
  return ok({
    type: v.type,
    address: {
      hostname: canonicalIp(v.ip),
      port: v.port,
      family: ip.length === 4 ? "IPv4" : "IPv6",
    },
    priority: v.priority,
    foundation: v.foundation,
  });
}

/** The key a transport address is compared by. */
export function addressKey(a: TransportAddress): string {
  return `${canonicalIp(a.hostname)}|${a.port}`;
}
