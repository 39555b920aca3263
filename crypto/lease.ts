/**
 * Relay leases: PASETO v4.public tokens (Ed25519) that the gateway issues when
 * two peers have no direct path, and that a blind relay verifies offline with
 * the gateway's public key. Signing and verification use `paseto-ts`; claim
 * checks are done here against a caller-supplied time (no clock reads), so the
 * relay stays deterministic under test. See docs/LEASE.md.
 *
 * Keys are PASERK strings, the form `paseto-ts` takes: `k4.secret.<base64url
 * of seed||public key>` and `k4.public.<base64url of public key>`. Use
 * {@linkcode leaseSecretKeyFromSeed} and {@linkcode leasePublicKeyFromBytes}
 * to build them from raw Ed25519 keys (for example an identity key pair).
 *
 * @module
 */

import { ed25519 } from "@noble/curves/ed25519.js";
import { sign, verify } from "paseto-ts/v4";
import { PasetoSignatureInvalid } from "paseto-ts/lib/errors";

/** A gateway signing key in PASERK `k4.secret.` form. */
export type LeaseSecretKey = string;
/** A gateway verification key in PASERK `k4.public.` form. */
export type LeasePublicKey = string;

/** What a lease grants. */
export interface LeaseClaims {
  /** Session id (`sid`): the session the relay may forward for. */
  sessionId: string;
  /** The two peers (`peers`): base64url (no padding) Ed25519 identity public keys. */
  peers: [string, string];
  /** Relay id (`rid`): the only relay that may honour this lease. */
  relayId: string;
  /** Start of validity (`nbf`). */
  notBefore: Date;
  /** End of validity (`exp`), exclusive. */
  expiresAt: Date;
  /** Bandwidth cap (`bw`) in bits per second for the session through the relay. */
  bandwidthBps: number;
  /** Issuing gateway id (`iss`). */
  issuer: string;
  /** Issue time (`iat`); defaults to {@linkcode LeaseClaims.notBefore} when issuing. */
  issuedAt?: Date;
}

/** Why a lease was refused. */
export type LeaseErrorKind =
  | "LeaseMalformed"
  | "LeaseForged"
  | "LeaseExpired"
  | "LeaseNotYetValid"
  | "LeaseWrongRelay";

/** Result of {@linkcode verifyLease}. */
export type LeaseVerifyResult =
  | { ok: true; claims: LeaseClaims }
  | { ok: false; kind: LeaseErrorKind; detail: string };

/** Options of {@linkcode verifyLease}. */
export interface LeaseVerifyOptions {
  /** Id of the verifying relay; must equal the lease's `rid`. */
  relayId: string;
  /** Current time. */
  now: Date;
  /** Tolerated clock difference with the gateway (ms); default {@linkcode DEFAULT_LEASE_CLOCK_SKEW_MS}. */
  clockSkewMs?: number;
}

/** Default tolerated clock skew between gateway and relay: 30 s. */
export const DEFAULT_LEASE_CLOCK_SKEW_MS = 30_000;
/** Longest token {@linkcode verifyLease} will look at, in characters. */
export const MAX_LEASE_TOKEN_LENGTH = 4096;

const TOKEN_PREFIX = "v4.public.";
const B64URL = /^[A-Za-z0-9_-]*$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/;

function b64urlEncode(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function b64urlDecode(s: string): Uint8Array | undefined {
  if (!B64URL.test(s) || s.length % 4 === 1) return undefined;
  let bin: string;
  try {
    bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    return undefined;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  // Canonical form only: re-encoding must give the same text.
  return b64urlEncode(out) === s ? out : undefined;
}

function isPeerKey(s: unknown): s is string {
  return typeof s === "string" && b64urlDecode(s)?.length === 32;
}

/**
 * Builds the PASERK `k4.secret.` key `paseto-ts` signs with from a 32-byte
 * Ed25519 seed. If `publicKey` is given it must match the seed.
 *
 * @throws {RangeError} on wrong lengths or a public key that does not match.
 */
export function leaseSecretKeyFromSeed(
  seed: Uint8Array,
  publicKey?: Uint8Array,
): LeaseSecretKey {
  if (seed.length !== 32) throw new RangeError("Ed25519 seed must be 32 bytes");
  const derived = ed25519.getPublicKey(seed);
  if (publicKey !== undefined) {
    if (
      publicKey.length !== 32 || b64urlEncode(publicKey) !== b64urlEncode(derived)
    ) {
      throw new RangeError("public key does not match the Ed25519 seed");
    }
  }
  const full = new Uint8Array(64);
  full.set(seed, 0);
  full.set(derived, 32);
  return `k4.secret.${b64urlEncode(full)}`;
}

/**
 * Builds the PASERK `k4.public.` key `paseto-ts` verifies with from a raw
 * 32-byte Ed25519 public key.
 *
 * @throws {RangeError} if the key is not 32 bytes.
 */
export function leasePublicKeyFromBytes(publicKey: Uint8Array): LeasePublicKey {
  if (publicKey.length !== 32) {
    throw new RangeError("Ed25519 public key must be 32 bytes");
  }
  return `k4.public.${b64urlEncode(publicKey)}`;
}

/** Encodes a raw 32-byte Ed25519 public key the way `peers` carries it. */
export function encodePeerKey(publicKey: Uint8Array): string {
  if (publicKey.length !== 32) {
    throw new RangeError("Ed25519 public key must be 32 bytes");
  }
  return b64urlEncode(publicKey);
}

function checkDate(name: string, d: Date): void {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) {
    throw new TypeError(`${name} must be a valid Date`);
  }
}

/**
 * Signs a lease with the gateway's key. The payload's claims are, in order:
 * `iss, sid, peers, rid, bw, iat, nbf, exp` (dates as ISO 8601 UTC strings).
 * Signing is deterministic (Ed25519), so equal inputs give equal tokens.
 *
 * @param gatewaySecretKey PASERK `k4.secret.` key (see {@linkcode leaseSecretKeyFromSeed}).
 * @param claims what the lease grants.
 * @returns a `v4.public.` token without footer.
 * @throws {TypeError} on invalid claims (issuing is the gateway's own input,
 *   so a bad claim is a programmer error) or an invalid key.
 */
export function issueLease(
  gatewaySecretKey: LeaseSecretKey,
  claims: LeaseClaims,
): string {
  const { sessionId, peers, relayId, issuer, bandwidthBps } = claims;
  if (typeof sessionId !== "string" || sessionId.length === 0) {
    throw new TypeError("sessionId must be a non-empty string");
  }
  if (typeof relayId !== "string" || relayId.length === 0) {
    throw new TypeError("relayId must be a non-empty string");
  }
  if (typeof issuer !== "string" || issuer.length === 0) {
    throw new TypeError("issuer must be a non-empty string");
  }
  if (
    !Array.isArray(peers) || peers.length !== 2 || !isPeerKey(peers[0]) ||
    !isPeerKey(peers[1])
  ) {
    throw new TypeError(
      "peers must be two base64url Ed25519 public keys (32 bytes each)",
    );
  }
  if (!Number.isFinite(bandwidthBps) || bandwidthBps <= 0) {
    throw new TypeError("bandwidthBps must be a positive finite number");
  }
  checkDate("notBefore", claims.notBefore);
  checkDate("expiresAt", claims.expiresAt);
  const issuedAt = claims.issuedAt ?? claims.notBefore;
  checkDate("issuedAt", issuedAt);
  if (claims.expiresAt.getTime() <= claims.notBefore.getTime()) {
    throw new TypeError("expiresAt must be after notBefore");
  }
  const payload = JSON.stringify({
    iss: issuer,
    sid: sessionId,
    peers: [peers[0], peers[1]],
    rid: relayId,
    bw: bandwidthBps,
    iat: issuedAt.toISOString(),
    nbf: claims.notBefore.toISOString(),
    exp: claims.expiresAt.toISOString(),
  });
  // paseto-ts would validate exp/nbf/iat against the wall clock; time is our
  // caller's input, so its validation and defaults are turned off.
  return sign(gatewaySecretKey, payload, {
    addExp: false,
    addIat: false,
    validatePayload: false,
  });
}

function fail(kind: LeaseErrorKind, detail: string): LeaseVerifyResult {
  return { ok: false, kind, detail };
}

function parseDateClaim(v: unknown): Date | undefined {
  if (typeof v !== "string" || !ISO_DATE.test(v)) return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/**
 * Verifies a lease offline. Order of checks: token shape (LeaseMalformed),
 * signature (LeaseForged), claim types (LeaseMalformed), relay id
 * (LeaseWrongRelay), then validity period with `clockSkewMs` tolerance
 * (LeaseNotYetValid, LeaseExpired). Never throws.
 *
 * @param token the `v4.public.` lease.
 * @param gatewayPublicKey PASERK `k4.public.` key (see {@linkcode leasePublicKeyFromBytes}).
 * @param opts the verifying relay's id and the current time.
 */
export function verifyLease(
  token: string,
  gatewayPublicKey: LeasePublicKey,
  opts: LeaseVerifyOptions,
): LeaseVerifyResult {
  try {
    return verifyLeaseUnsafe(token, gatewayPublicKey, opts);
  } catch (e) {
    // Defence in depth: nothing below should throw, but never let it escape.
    return fail("LeaseMalformed", `unexpected error: ${String(e)}`);
  }
}

function verifyLeaseUnsafe(
  token: string,
  gatewayPublicKey: LeasePublicKey,
  opts: LeaseVerifyOptions,
): LeaseVerifyResult {
  if (typeof token !== "string") return fail("LeaseMalformed", "not a string");
  if (token.length > MAX_LEASE_TOKEN_LENGTH) {
    return fail("LeaseMalformed", "token too long");
  }
  if (!token.startsWith(TOKEN_PREFIX)) {
    return fail("LeaseMalformed", "not a v4.public token");
  }
  const body = token.slice(TOKEN_PREFIX.length);
  if (body.includes(".")) {
    return fail("LeaseMalformed", "leases carry no footer");
  }
  const raw = b64urlDecode(body);
  if (raw === undefined) return fail("LeaseMalformed", "body is not base64url");
  if (raw.length <= 64) return fail("LeaseMalformed", "body too short");
  if (
    typeof gatewayPublicKey !== "string" ||
    !gatewayPublicKey.startsWith("k4.public.") ||
    b64urlDecode(gatewayPublicKey.slice("k4.public.".length))?.length !== 32
  ) {
    return fail("LeaseMalformed", "gateway public key is not a k4.public key");
  }

  let payload: Record<string, unknown>;
  try {
    const result = verify(gatewayPublicKey, token, { validatePayload: false });
    payload = result.payload as Record<string, unknown>;
  } catch (e) {
    if (e instanceof PasetoSignatureInvalid) {
      return fail("LeaseForged", "signature does not verify");
    }
    return fail(
      "LeaseMalformed",
      e instanceof Error ? e.message : "unparseable token",
    );
  }
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    return fail("LeaseMalformed", "payload is not a JSON object");
  }

  const { iss, sid, peers, rid, bw } = payload;
  if (typeof iss !== "string") return fail("LeaseMalformed", "bad iss");
  if (typeof sid !== "string" || sid.length === 0) {
    return fail("LeaseMalformed", "bad sid");
  }
  if (typeof rid !== "string") return fail("LeaseMalformed", "bad rid");
  if (
    !Array.isArray(peers) || peers.length !== 2 || !isPeerKey(peers[0]) ||
    !isPeerKey(peers[1])
  ) {
    return fail("LeaseMalformed", "bad peers");
  }
  if (typeof bw !== "number" || !Number.isFinite(bw) || bw <= 0) {
    return fail("LeaseMalformed", "bad bw");
  }
  const nbf = parseDateClaim(payload.nbf);
  const exp = parseDateClaim(payload.exp);
  const iat = parseDateClaim(payload.iat);
  if (!nbf || !exp || !iat) {
    return fail("LeaseMalformed", "bad nbf/exp/iat");
  }

  if (rid !== opts.relayId) {
    return fail("LeaseWrongRelay", `lease is for relay ${JSON.stringify(rid)}`);
  }
  const skew = opts.clockSkewMs ?? DEFAULT_LEASE_CLOCK_SKEW_MS;
  const now = opts.now.getTime();
  if (!Number.isFinite(now) || !(skew >= 0)) {
    return fail("LeaseMalformed", "invalid now or clockSkewMs");
  }
  if (now + skew < nbf.getTime()) {
    return fail("LeaseNotYetValid", `valid from ${nbf.toISOString()}`);
  }
  if (now - skew >= exp.getTime()) {
    return fail("LeaseExpired", `expired at ${exp.toISOString()}`);
  }
  return {
    ok: true,
    claims: {
      sessionId: sid,
      peers: [peers[0], peers[1]],
      relayId: rid,
      notBefore: nbf,
      expiresAt: exp,
      bandwidthBps: bw,
      issuer: iss,
      issuedAt: iat,
    },
  };
}
