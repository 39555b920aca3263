/**
 * PASETO v4.public sign and verify on WebCrypto Ed25519, for the gateway's
 * session tokens (the hot path: one signature per login, one verification
 * per authenticated request).
 *
 * Why not `paseto-ts` as in crypto/lease.ts: on this VM its pure-JS Ed25519
 * took 23 ms to sign and 41 ms to verify one token, against about 1.7 ms for
 * a WebCrypto verification (measured while building this; see
 * docs/SIGNALING.md). The format is the same: tokens from either verify with
 * the other (tested in paseto_test.ts).
 *
 * v4.public (PASETO spec, Version 4): `m2 = PAE("v4.public.", m, f, i)`,
 * `sig = Ed25519(sk, m2)`, token `v4.public.` + base64url(m || sig), plus
 * `.` + base64url(f) when a footer is present. Tokens here have no footer.
 *
 * @module
 */

const HEADER = "v4.public.";
const enc = new TextEncoder();

/** PASETO Pre-Authentication Encoding: LE64(count) then LE64(len) || piece for each piece. */
export function pae(pieces: Uint8Array[]): Uint8Array {
  const total = 8 + pieces.reduce((n, p) => n + 8 + p.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(pieces.length), true);
  let off = 8;
  for (const p of pieces) {
    // The spec clears the top bit of each length; lengths here are far below 2^63.
    view.setBigUint64(off, BigInt(p.length), true);
    off += 8;
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function b64url(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function unb64url(s: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return undefined;
  let bin: string;
  try {
    bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "==".slice(0, (4 - s.length % 4) % 4));
  } catch {
    return undefined;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return b64url(out) === s ? out : undefined;
}

/** A v4.public key pair imported into WebCrypto. */
export interface V4Keys {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

/**
 * Imports a PASERK `k4.secret.` key (seed || public key, as crypto/lease.ts
 * builds it) into WebCrypto.
 *
 * @throws {TypeError} if the key is not a well-formed `k4.secret.` key.
 */
export async function importV4Keys(paserkSecret: string): Promise<V4Keys> {
  const raw = paserkSecret.startsWith("k4.secret.")
    ? unb64url(paserkSecret.slice("k4.secret.".length))
    : undefined;
  if (!raw || raw.length !== 64) throw new TypeError("not a k4.secret. key");
  const d = b64url(raw.subarray(0, 32));
  const x = b64url(raw.subarray(32));
  const privateKey = await crypto.subtle.importKey(
    "jwk",
    { kty: "OKP", crv: "Ed25519", d, x },
    { name: "Ed25519" },
    false,
    ["sign"],
  );
  const publicKey = await crypto.subtle.importKey(
    "raw",
    raw.slice(32) as BufferSource,
    { name: "Ed25519" },
    true,
    ["verify"],
  );
  return { privateKey, publicKey };
}

/** Signs `payload` (UTF-8 text) as a footer-less v4.public token with implicit assertion `assertion`. */
export async function signV4Public(
  key: CryptoKey,
  payload: string,
  assertion: string,
): Promise<string> {
  const m = enc.encode(payload);
  const m2 = pae([enc.encode(HEADER), m, new Uint8Array(0), enc.encode(assertion)]);
  const sig = new Uint8Array(
    await crypto.subtle.sign({ name: "Ed25519" }, key, m2 as BufferSource),
  );
  const body = new Uint8Array(m.length + 64);
  body.set(m);
  body.set(sig, m.length);
  return HEADER + b64url(body);
}

/**
 * Verifies a footer-less v4.public token; returns the payload text, or
 * undefined for any failure (tokens with a footer are refused). Never throws.
 */
export async function verifyV4Public(
  key: CryptoKey,
  token: string,
  assertion: string,
): Promise<string | undefined> {
  if (typeof token !== "string" || !token.startsWith(HEADER)) return undefined;
  const body = unb64url(token.slice(HEADER.length));
  if (!body || body.length < 64) return undefined;
  const m = body.subarray(0, body.length - 64);
  const sig = body.subarray(body.length - 64);
  const m2 = pae([enc.encode(HEADER), m, new Uint8Array(0), enc.encode(assertion)]);
  try {
    const ok = await crypto.subtle.verify(
      { name: "Ed25519" },
      key,
      sig as BufferSource,
      m2 as BufferSource,
    );
    return ok ? new TextDecoder("utf-8", { fatal: true }).decode(m) : undefined;
  } catch {
    return undefined;
  }
}
