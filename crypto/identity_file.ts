/**
 * Identity key files: the on-disk form of an Ed25519 identity.
 *
 * This module is the one edge of `crypto/` that touches the file system
 * ({@linkcode loadOrCreateIdentity} and {@linkcode saveIdentity}); everything
 * else in `crypto/` is pure. The format functions
 * ({@linkcode encodeIdentityFile}, {@linkcode parseIdentityFile}) are pure and
 * return errors as values.
 *
 * File format (UTF-8, line-oriented, `\n` or `\r\n` line ends):
 *
 * ```text
 * # Wavry identity key. Keep secret. Anyone with this file can act as this identity.
 * wavry-identity-v1
 * public: <base64url, no padding, 32-byte Ed25519 public key>
 * secret: <base64url, no padding, 32-byte Ed25519 seed>
 * ```
 *
 * Blank lines and lines starting with `#` are ignored anywhere. The first
 * other line must be exactly `wavry-identity-v1`; then `public:` and `secret:`
 * must each appear exactly once (either order); any other line is an error.
 * The public key must be the one the seed derives. Files are created with
 * mode 0600 in a directory created with mode 0700, and files readable or
 * writable by group or others are refused.
 *
 * Key pairs returned here hide the secret from `console.log`, `Deno.inspect`,
 * `JSON.stringify` and `String()`: both the key pair object and its
 * `secretKey` bytes print as redacted.
 *
 * @module
 */

import { identityFromSeed, type IdentityKeyPair } from "./identity.ts";

export type { IdentityKeyPair };

/** The version line of the format. */
export const IDENTITY_FILE_MAGIC = "wavry-identity-v1";

/** Why {@linkcode parseIdentityFile} rejected a text. */
export type IdentityFileErrorKind =
  | "IdentityFileMalformed"
  | "IdentityFileMismatch";

/** Result of {@linkcode parseIdentityFile}. */
export type IdentityFileParseResult =
  | { ok: true; identity: IdentityKeyPair }
  | { ok: false; kind: IdentityFileErrorKind; detail: string };

/**
 * Thrown by the file functions (the I/O edge) when a file cannot be used.
 * `kind` adds "IdentityFilePermissions" for files open to group or others.
 */
export class IdentityFileError extends Error {
  /** What went wrong. */
  readonly kind: IdentityFileErrorKind | "IdentityFilePermissions";
  /** The file concerned. */
  readonly path: string;

  /** Creates the error; `message` should say how to fix it. */
  constructor(
    kind: IdentityFileErrorKind | "IdentityFilePermissions",
    path: string,
    message: string,
  ) {
    super(message);
    this.name = "IdentityFileError";
    this.kind = kind;
    this.path = path;
  }
}

const REDACTED = "[redacted]";
const INSPECT_DENO = Symbol.for("Deno.customInspect");
const INSPECT_NODE = Symbol.for("nodejs.util.inspect.custom");

/**
 * Secret bytes that print as `[redacted]`. It is a real `Uint8Array` (every
 * API taking key bytes accepts it); only its string, JSON and inspect forms
 * are hidden.
 */
class SecretBytes extends Uint8Array {
  override toString(): string {
    return REDACTED;
  }
  override toLocaleString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [INSPECT_DENO](): string {
    return `SecretBytes(${this.length}) ${REDACTED}`;
  }
  [INSPECT_NODE](): string {
    return `SecretBytes(${this.length}) ${REDACTED}`;
  }
}

function b64urlEncode(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function b64urlDecode32(s: string): Uint8Array | undefined {
  // 32 bytes are exactly 43 unpadded base64url characters.
  if (!/^[A-Za-z0-9_-]{43}$/.test(s)) return undefined;
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "=");
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = bin.charCodeAt(i);
  return b64urlEncode(out) === s ? out : undefined; // canonical only
}

/** An identity whose secret does not leak through logging or serialization. */
class ProtectedIdentity implements IdentityKeyPair {
  readonly publicKey: Uint8Array;
  readonly #secret: SecretBytes;

  constructor(publicKey: Uint8Array, seed: Uint8Array) {
    this.publicKey = Uint8Array.from(publicKey);
    this.#secret = new SecretBytes(seed);
  }

  get secretKey(): Uint8Array {
    return this.#secret;
  }

  toString(): string {
    return `IdentityKeyPair(public: ${b64urlEncode(this.publicKey)}, secret: ${REDACTED})`;
  }

  toJSON(): { publicKey: string; secretKey: string } {
    return { publicKey: b64urlEncode(this.publicKey), secretKey: REDACTED };
  }

  [INSPECT_DENO](): string {
    return this.toString();
  }

  [INSPECT_NODE](): string {
    return this.toString();
  }
}

/**
 * Wraps a key pair so that its secret is hidden from `console.log`,
 * `Deno.inspect`, `JSON.stringify` and `String()`. The bytes are copied.
 * Does not check that the public key matches the seed.
 */
export function protectIdentity(id: IdentityKeyPair): IdentityKeyPair {
  return new ProtectedIdentity(id.publicKey, id.secretKey);
}

/**
 * Renders an identity in the file format above (with a warning comment and a
 * trailing newline).
 *
 * @throws {RangeError} if either key is not 32 bytes.
 */
export function encodeIdentityFile(id: IdentityKeyPair): string {
  if (id.publicKey.length !== 32 || id.secretKey.length !== 32) {
    throw new RangeError("identity keys must be 32 bytes each");
  }
  return [
    "# Wavry identity key. Keep secret. Anyone with this file can act as this identity.",
    IDENTITY_FILE_MAGIC,
    `public: ${b64urlEncode(id.publicKey)}`,
    `secret: ${b64urlEncode(id.secretKey)}`,
    "",
  ].join("\n");
}

/**
 * Parses an identity file. Never throws. Details never contain key material.
 *
 * @returns the (protected) key pair, or "IdentityFileMalformed" for text not
 *   in the format, or "IdentityFileMismatch" if the public key is not the one
 *   the seed derives.
 */
export function parseIdentityFile(text: string): IdentityFileParseResult {
  const malformed = (detail: string): IdentityFileParseResult => ({
    ok: false,
    kind: "IdentityFileMalformed",
    detail,
  });
  if (typeof text !== "string") return malformed("not text");
  if (text.length > 64 * 1024) return malformed("file too large");
  const lines = text.split("\n");
  let sawMagic = false;
  let publicText: string | undefined;
  let secretText: string | undefined;
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n].endsWith("\r") ? lines[n].slice(0, -1) : lines[n];
    const where = `line ${n + 1}`;
    if (line.trim() === "" || line.startsWith("#")) continue;
    if (!sawMagic) {
      if (line !== IDENTITY_FILE_MAGIC) {
        return malformed(`${where}: expected "${IDENTITY_FILE_MAGIC}"`);
      }
      sawMagic = true;
      continue;
    }
    const m = /^(public|secret):[ \t]*(\S*)[ \t]*$/.exec(line);
    if (!m) return malformed(`${where}: expected "public: ..." or "secret: ..."`);
    if (m[1] === "public") {
      if (publicText !== undefined) return malformed(`${where}: duplicate public`);
      publicText = m[2];
    } else {
      if (secretText !== undefined) return malformed(`${where}: duplicate secret`);
      secretText = m[2];
    }
  }
  if (!sawMagic) return malformed(`missing "${IDENTITY_FILE_MAGIC}" line`);
  if (publicText === undefined) return malformed("missing public line");
  if (secretText === undefined) return malformed("missing secret line");
  const publicKey = b64urlDecode32(publicText);
  if (!publicKey) return malformed("public is not 32 bytes of base64url");
  const seed = b64urlDecode32(secretText);
  if (!seed) return malformed("secret is not 32 bytes of base64url");
  const derived = identityFromSeed(seed);
  let diff = 0;
  for (let i = 0; i < 32; i++) diff |= derived.publicKey[i] ^ publicKey[i];
  seed.fill(0);
  if (diff !== 0) {
    derived.secretKey.fill(0);
    return {
      ok: false,
      kind: "IdentityFileMismatch",
      detail: "public key does not match the secret seed",
    };
  }
  const identity = new ProtectedIdentity(derived.publicKey, derived.secretKey);
  derived.secretKey.fill(0);
  return { ok: true, identity };
}

function parentDir(path: string): string {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  if (i < 0) return ".";
  return i === 0 ? path.slice(0, 1) : path.slice(0, i);
}

async function ensureParentDir(path: string): Promise<void> {
  await Deno.mkdir(parentDir(path), { recursive: true, mode: 0o700 });
}

function tempPathFor(path: string): string {
  const rand = b64urlEncode(crypto.getRandomValues(new Uint8Array(9)));
  return `${path}.tmp-${rand}`;
}

async function writeNewFile(path: string, text: string): Promise<void> {
  const file = await Deno.open(path, {
    write: true,
    createNew: true,
    mode: 0o600,
  });
  try {
    const data = new TextEncoder().encode(text);
    let off = 0;
    while (off < data.length) off += await file.write(data.subarray(off));
    await file.sync();
  } finally {
    file.close();
  }
  // mode at creation is filtered by the umask, which can only remove bits;
  // set it explicitly anyway so the result never depends on the environment.
  if (Deno.build.os !== "windows") await Deno.chmod(path, 0o600);
}

/**
 * Writes `id` to `path` (replacing any existing file atomically via a
 * temporary file and rename), with mode 0600, creating the parent directory
 * with mode 0700 if needed.
 */
export async function saveIdentity(
  path: string,
  id: IdentityKeyPair,
): Promise<void> {
  const text = encodeIdentityFile(id);
  await ensureParentDir(path);
  const tmp = tempPathFor(path);
  try {
    await writeNewFile(tmp, text);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

async function loadIdentity(path: string): Promise<IdentityKeyPair> {
  const info = await Deno.stat(path);
  if (!info.isFile) {
    throw new IdentityFileError(
      "IdentityFileMalformed",
      path,
      `identity file ${path} is not a regular file`,
    );
  }
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(3, "0");
    throw new IdentityFileError(
      "IdentityFilePermissions",
      path,
      `identity file ${path} has mode ${mode}: it must not be accessible to ` +
        `group or others. Fix it with: chmod 600 ${path}`,
    );
  }
  const parsed = parseIdentityFile(await Deno.readTextFile(path));
  if (!parsed.ok) {
    throw new IdentityFileError(
      parsed.kind,
      path,
      `identity file ${path} is unusable: ${parsed.detail}`,
    );
  }
  return parsed.identity;
}

/**
 * Loads the identity stored at `path`, or creates a fresh one there if no
 * file exists (mode 0600; parent directory created with mode 0700). Safe
 * against concurrent creators: the file appears atomically and the loser of a
 * race loads the winner's identity.
 *
 * @throws {IdentityFileError} if the file is open to group or others
 *   ("IdentityFilePermissions"), malformed, or its keys do not match.
 * @throws {Deno.errors.PermissionDenied} and other I/O errors as they occur.
 */
export async function loadOrCreateIdentity(
  path: string,
): Promise<IdentityKeyPair> {
  try {
    return await loadIdentity(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const fresh = identityFromSeed(seed);
  seed.fill(0);
  const identity = protectIdentity(fresh);
  fresh.secretKey.fill(0);
  await ensureParentDir(path);
  const tmp = tempPathFor(path);
  try {
    await writeNewFile(tmp, encodeIdentityFile(identity));
    // link() fails if `path` appeared meanwhile, unlike rename().
    await Deno.link(tmp, path);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return await loadIdentity(path);
    throw e;
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
  return identity;
}
