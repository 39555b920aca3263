/**
 * Identity proof and session tokens.
 *
 * - What a peer signs: {@linkcode challengeMessage}, a domain-separated byte
 *   string binding the purpose (login or register), the gateway's id, the
 *   peer's key and the single-use nonce (and, for registration, the kind and
 *   name), so a signature made for one purpose, gateway or nonce is worthless
 *   for any other.
 * - How the gateway checks it: WebCrypto Ed25519 ({@linkcode verifyEd25519}),
 *   after refusing non-canonical and small-order keys.
 * - Session tokens: PASETO v4.public, signed with the gateway's key (the same
 *   key that signs leases) under the implicit assertion
 *   {@linkcode SESSION_ASSERTION}. A lease has no implicit assertion, so a
 *   session token never verifies as a lease and a lease never verifies as a
 *   session token. Tokens are stateless: any instance holding the public key
 *   checks them without KV. Signed and checked with WebCrypto (paseto.ts).
 *
 * @module
 */
import { decodeIdentityPublicKey } from "../crypto/identity.ts";
import { signV4Public, type V4Keys, verifyV4Public } from "./paseto.ts";
import type { PeerKind } from "./schema.ts";

/** Implicit assertion of session tokens (PASETO §"implicit assertions"). */
export const SESSION_ASSERTION = "wavry-gateway-session-v1";
/** First field of every signed challenge message. */
export const CHALLENGE_DOMAIN = "wavry-gateway-challenge-v1";

/** What a signed challenge is for. */
export type ChallengePurpose = "login" | "register";

/** The fields bound into a challenge signature. */
export interface ChallengeFields {
  purpose: ChallengePurpose;
  /** The gateway's id (`issuer`), so a signature for one gateway is useless at another. */
  gatewayId: string;
  publicKey: string;
  nonce: string;
  /** Registration only. */
  kind?: PeerKind;
  /** Registration only. */
  name?: string;
}

/**
 * The bytes a peer signs: the UTF-8 fields joined by NUL, starting with
 * {@linkcode CHALLENGE_DOMAIN}. Names cannot contain NUL (the schema refuses
 * control characters), so the encoding is unambiguous.
 */
export function challengeMessage(f: ChallengeFields): Uint8Array {
  const parts = [CHALLENGE_DOMAIN, f.purpose, f.gatewayId, f.publicKey, f.nonce];
  if (f.purpose === "register") parts.push(f.kind ?? "", f.name ?? "");
  return new TextEncoder().encode(parts.join("\0"));
}

function b64urlToBytes(s: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return undefined;
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "==".slice(0, (4 - s.length % 4) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return bytesToB64url(out) === s ? out : undefined;
}

/** Base64url without padding. */
export function bytesToB64url(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Checks an Ed25519 signature with WebCrypto. The key must be the canonical
 * base64url encoding of a point of large order (`decodeIdentityPublicKey`).
 * Never throws.
 */
export async function verifyEd25519(
  publicKey: string,
  message: Uint8Array,
  signature: string,
): Promise<boolean> {
  const key = decodeIdentityPublicKey(publicKey);
  const sig = b64urlToBytes(signature);
  if (!key || !sig || sig.length !== 64) return false;
  try {
    const k = await crypto.subtle.importKey(
      "raw",
      key as BufferSource,
      { name: "Ed25519" },
      false,
      [
        "verify",
      ],
    );
    return await crypto.subtle.verify(
      { name: "Ed25519" },
      k,
      sig as BufferSource,
      message as BufferSource,
    );
  } catch {
    return false;
  }
}

/** Random base64url of `n` bytes. */
export function randomB64url(n: number): string {
  return bytesToB64url(crypto.getRandomValues(new Uint8Array(n)));
}

/** What a session token says. */
export interface SessionClaims {
  /** The peer's identity key. */
  peer: string;
  kind: PeerKind;
  /** Expiry, ms since the epoch. */
  expiresAt: number;
}

/**
 * Signs a session token: PASETO v4.public with payload
 * `{iss, sub, knd, iat, exp, jti}` (dates ISO 8601) and the implicit assertion
 * {@linkcode SESSION_ASSERTION}.
 *
 * @param keys the gateway's key pair, imported with `importV4Keys`.
 */
export function issueSessionToken(
  keys: V4Keys,
  issuer: string,
  claims: SessionClaims,
  nowMs: number,
): Promise<string> {
  const payload = JSON.stringify({
    iss: issuer,
    sub: claims.peer,
    knd: claims.kind,
    iat: new Date(nowMs).toISOString(),
    exp: new Date(claims.expiresAt).toISOString(),
    jti: randomB64url(12),
  });
  return signV4Public(keys.privateKey, payload, SESSION_ASSERTION);
}

/**
 * Checks a session token: signature (with the session assertion), issuer,
 * claim types and expiry against `nowMs`. Never throws; resolves to
 * undefined for any failure.
 */
export async function verifySessionToken(
  token: unknown,
  keys: Pick<V4Keys, "publicKey">,
  issuer: string,
  nowMs: number,
): Promise<SessionClaims | undefined> {
  if (typeof token !== "string" || token.length > 4096) return undefined;
  const text = await verifyV4Public(keys.publicKey, token, SESSION_ASSERTION);
  if (text === undefined) return undefined;
  let p: Record<string, unknown>;
  try {
    p = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (p === null || typeof p !== "object") return undefined;
  if (p.iss !== issuer || typeof p.sub !== "string" || typeof p.exp !== "string") return undefined;
  if (p.knd !== "user" && p.knd !== "host" && p.knd !== "relay") return undefined;
  const exp = Date.parse(p.exp);
  if (!Number.isFinite(exp) || nowMs >= exp) return undefined;
  return { peer: p.sub, kind: p.knd, expiresAt: exp };
}
