/**
 * RIFT's handshake: Noise_XX_25519_ChaChaPoly_BLAKE2s plus identity binding.
 *
 * Each side has a long-term Ed25519 identity and a separate X25519 Noise
 * static key. In messages 2 and 3 the sender proves that its identity owns
 * its Noise static key *for this transcript* by signing
 * `"RIFT-v1 identity binding" || noise_static_public_key || h`, where `h` is
 * the Noise handshake hash just before the payload is encrypted.
 *
 * Sans-IO and synchronous: bytes in, bytes out, errors as values with a
 * kind. A refused message leaves the state exactly as it was. The wire
 * format is specified in docs/HANDSHAKE.md.
 *
 * @module
 */

import {
  IDENTITY_PUBLIC_KEY_LENGTH,
  IDENTITY_SIGNATURE_LENGTH,
  type IdentityKeyPair,
  signWithIdentity,
  verifyIdentitySignature,
} from "./identity.ts";
import { generateX25519KeyPair, NoiseHandshake, type X25519KeyPair } from "./noise.ts";

/** The RIFT protocol version carried in the prologue. */
export const RIFT_PROTOCOL_VERSION = 1;

/** Longest opaque extension a handshake message may carry. */
export const RIFT_MAX_EXTENSION_LENGTH = 512;

/** ASCII label that starts every identity-binding signature (24 bytes). */
export const RIFT_IDENTITY_BINDING_LABEL = "RIFT-v1 identity binding";

const LABEL_BYTES = new TextEncoder().encode(RIFT_IDENTITY_BINDING_LABEL);
/** identity_public_key (32) || signature (64). */
const PROOF_LENGTH = IDENTITY_PUBLIC_KEY_LENGTH + IDENTITY_SIGNATURE_LENGTH;
/** Message 1 payload: initiator_connection_id u32. */
const MSG1_PAYLOAD_LENGTH = 4;

/**
 * The Noise prologue for a RIFT version: ASCII "RIFT" then one version byte.
 *
 * @param version protocol version, 0-255.
 * @returns the 5 prologue bytes.
 */
export function riftPrologue(version: number = RIFT_PROTOCOL_VERSION): Uint8Array {
  return Uint8Array.of(0x52, 0x49, 0x46, 0x54, version);
}

/** What went wrong with a received handshake message. */
export type HandshakeErrorKind =
  | "Malformed"
  | "Unauthenticated"
  | "BadIdentityProof"
  | "PeerNotAllowed"
  | "UnexpectedMessage";

/** A refused handshake message: a kind for metrics and a detail for logs. */
export interface HandshakeError {
  /** Category, stable for metrics and tests. */
  kind: HandshakeErrorKind;
  /** Human-readable explanation. */
  detail: string;
}

/** Result of {@link RiftHandshake.readNext}. */
export type RiftReadResult = { ok: true } | { ok: false; error: HandshakeError };

/** Options for {@link RiftHandshake.initiator} / {@link RiftHandshake.responder}. */
export interface RiftHandshakeOptions {
  /** This side's long-term Ed25519 identity. */
  identity: IdentityKeyPair;
  /** Noise static X25519 key; default a fresh one per handshake. */
  staticKeyPair?: X25519KeyPair;
  /** Randomness for generated keys; default WebCrypto. */
  random?: (n: number) => Uint8Array;
  /** This side's connection id (u32), sent to the peer. */
  localConnectionId: number;
  /** Decides whether the peer's Ed25519 identity is acceptable; default accepts any. */
  acceptPeer?: (peerIdentity: Uint8Array) => boolean;
  /** Opaque application bytes sent in message 2 or 3 (at most 512). */
  extension?: Uint8Array;
  /** Protocol version in the prologue; default {@link RIFT_PROTOCOL_VERSION}. */
  version?: number;
}

/** The bytes an identity signs to bind itself to a Noise static key and transcript. */
function bindingMessage(noiseStaticPublicKey: Uint8Array, handshakeHash: Uint8Array): Uint8Array {
  const out = new Uint8Array(
    LABEL_BYTES.length + noiseStaticPublicKey.length + handshakeHash.length,
  );
  out.set(LABEL_BYTES, 0);
  out.set(noiseStaticPublicKey, LABEL_BYTES.length);
  out.set(handshakeHash, LABEL_BYTES.length + noiseStaticPublicKey.length);
  return out;
}

function checkOptions(opts: RiftHandshakeOptions): void {
  const id = opts.localConnectionId;
  if (!Number.isInteger(id) || id < 0 || id > 0xffff_ffff) {
    throw new RangeError("localConnectionId must be a u32");
  }
  if ((opts.extension?.length ?? 0) > RIFT_MAX_EXTENSION_LENGTH) {
    throw new RangeError(`extension must be at most ${RIFT_MAX_EXTENSION_LENGTH} bytes`);
  }
  const v = opts.version ?? RIFT_PROTOCOL_VERSION;
  if (!Number.isInteger(v) || v < 0 || v > 255) throw new RangeError("version must be a byte");
  if (
    opts.identity.publicKey.length !== IDENTITY_PUBLIC_KEY_LENGTH ||
    opts.identity.secretKey.length !== 32
  ) {
    throw new RangeError("identity must have a 32-byte public key and seed");
  }
}

/** Parsed `identity_public_key || signature || ext_len || ext` tail. */
interface ProofAndExtension {
  identity: Uint8Array;
  signature: Uint8Array;
  extension: Uint8Array;
}

function parseProofAndExtension(body: Uint8Array): ProofAndExtension | string {
  if (body.length < PROOF_LENGTH + 2) return "payload too short for an identity proof";
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const extLength = view.getUint16(PROOF_LENGTH, false);
  if (extLength > RIFT_MAX_EXTENSION_LENGTH) return "extension longer than 512 bytes";
  if (body.length !== PROOF_LENGTH + 2 + extLength) return "payload length does not match ext_len";
  return {
    identity: body.slice(0, IDENTITY_PUBLIC_KEY_LENGTH),
    signature: body.slice(IDENTITY_PUBLIC_KEY_LENGTH, PROOF_LENGTH),
    extension: body.slice(PROOF_LENGTH + 2),
  };
}

function error(kind: HandshakeErrorKind, detail: string): RiftReadResult {
  return { ok: false, error: { kind, detail } };
}

/**
 * One side of a RIFT handshake (three messages: INIT, RESPONSE, FINISH).
 *
 * ```ts
 * const a = RiftHandshake.initiator({ identity: idA, localConnectionId: 1 });
 * const b = RiftHandshake.responder({ identity: idB, localConnectionId: 2 });
 * b.readNext(a.writeNext());  // INIT
 * a.readNext(b.writeNext());  // RESPONSE
 * b.readNext(a.writeNext());  // FINISH
 * const { sendKey, recvKey } = a.transportKeys();
 * ```
 */
export class RiftHandshake {
  /** Which side this is. */
  readonly role: "initiator" | "responder";
  readonly #identity: IdentityKeyPair;
  readonly #connectionId: number;
  readonly #extension: Uint8Array;
  readonly #acceptPeer: (peerIdentity: Uint8Array) => boolean;
  #noise: NoiseHandshake;
  #peerConnectionId: number | undefined;
  #peerIdentity: Uint8Array | undefined;
  #peerExtension: Uint8Array | undefined;

  private constructor(role: "initiator" | "responder", opts: RiftHandshakeOptions) {
    checkOptions(opts);
    this.role = role;
    this.#identity = opts.identity;
    this.#connectionId = opts.localConnectionId;
    this.#extension = Uint8Array.from(opts.extension ?? []);
    this.#acceptPeer = opts.acceptPeer ?? (() => true);
    this.#noise = new NoiseHandshake({
      initiator: role === "initiator",
      prologue: riftPrologue(opts.version ?? RIFT_PROTOCOL_VERSION),
      staticKeyPair: opts.staticKeyPair ?? generateX25519KeyPair(opts.random),
      random: opts.random,
    });
  }

  /**
   * The side that sends INIT (message 1).
   *
   * @param opts identity, connection id and policy.
   * @returns a handshake whose first step is {@link writeNext}.
   * @throws RangeError for invalid options (programming error).
   */
  static initiator(opts: RiftHandshakeOptions): RiftHandshake {
    return new RiftHandshake("initiator", opts);
  }

  /**
   * The side that answers INIT with RESPONSE (message 2).
   *
   * @param opts identity, connection id and policy.
   * @returns a handshake whose first step is {@link readNext}.
   * @throws RangeError for invalid options (programming error).
   */
  static responder(opts: RiftHandshakeOptions): RiftHandshake {
    return new RiftHandshake("responder", opts);
  }

  /** true once all three messages are done and the peer's proof verified. */
  get isComplete(): boolean {
    return this.#noise.isComplete;
  }

  /** true when {@link writeNext} is the next step. */
  get isMyTurnToWrite(): boolean {
    return this.#noise.isMyTurnToWrite;
  }

  /** The peer's connection id, once its message carrying it was accepted. */
  get peerConnectionId(): number | undefined {
    return this.#peerConnectionId;
  }

  /** The peer's Ed25519 identity, set once its proof verified and was accepted. */
  get peerIdentity(): Uint8Array | undefined {
    return this.#peerIdentity?.slice();
  }

  /** The peer's extension bytes, set with {@link peerIdentity}. */
  get peerExtension(): Uint8Array | undefined {
    return this.#peerExtension?.slice();
  }

  /** The Noise handshake hash; after completion a unique channel binding. */
  get handshakeHash(): Uint8Array {
    return this.#noise.handshakeHash;
  }

  /**
   * Produce this side's next message: INIT (initiator), RESPONSE (responder,
   * after reading INIT) or FINISH (initiator, after reading RESPONSE). The
   * result is the Noise message, carried as the body of RIFT packet type
   * 0x01, 0x02 or 0x03 respectively.
   *
   * @returns the message bytes.
   * @throws Error when it is not this side's turn (programming error).
   */
  writeNext(): Uint8Array {
    if (!this.#noise.isMyTurnToWrite) throw new Error("RiftHandshake: not our turn to write");
    if (this.role === "initiator" && this.#peerConnectionId === undefined) {
      const payload = new Uint8Array(MSG1_PAYLOAD_LENGTH);
      new DataView(payload.buffer).setUint32(0, this.#connectionId, false);
      return this.#noise.writeMessage(payload);
    }
    const prefix = this.role === "responder" ? 4 : 0;
    const staticKey = this.#noise.localStaticPublicKey;
    return this.#noise.writeMessage((h) => {
      const ext = this.#extension;
      const payload = new Uint8Array(prefix + PROOF_LENGTH + 2 + ext.length);
      const view = new DataView(payload.buffer);
      if (prefix) view.setUint32(0, this.#connectionId, false);
      payload.set(this.#identity.publicKey, prefix);
      payload.set(
        signWithIdentity(this.#identity, bindingMessage(staticKey, h)),
        prefix + IDENTITY_PUBLIC_KEY_LENGTH,
      );
      view.setUint16(prefix + PROOF_LENGTH, ext.length, false);
      payload.set(ext, prefix + PROOF_LENGTH + 2);
      return payload;
    });
  }

  /**
   * Read the peer's next message (INIT for a responder, then FINISH;
   * RESPONSE for an initiator).
   *
   * @param message the Noise message (RIFT packet body).
   * @returns `{ ok: true }`, or the error. On error the state is unchanged,
   *   so a forged packet cannot spoil a handshake the genuine peer can still
   *   complete. Never throws on bad input.
   */
  readNext(message: Uint8Array): RiftReadResult {
    if (this.#noise.isComplete || this.#noise.isMyTurnToWrite) {
      return error("UnexpectedMessage", "not expecting a handshake message now");
    }
    const trial = this.#noise.clone();
    const r = trial.tryReadMessage(message);
    if (!r.ok) return error(r.reason, r.detail);
    const payload = r.payload;

    if (this.role === "responder" && this.#peerConnectionId === undefined) {
      // INIT: the initiator's connection id and nothing else.
      if (payload.length !== MSG1_PAYLOAD_LENGTH) {
        return error("Malformed", "INIT payload must be exactly 4 bytes");
      }
      this.#noise = trial;
      this.#peerConnectionId = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(
        0,
        false,
      );
      return { ok: true };
    }

    // RESPONSE (initiator reading) starts with the responder's connection id.
    const prefix = this.role === "initiator" ? 4 : 0;
    if (payload.length < prefix) return error("Malformed", "payload too short");
    const parsed = parseProofAndExtension(payload.subarray(prefix));
    if (typeof parsed === "string") return error("Malformed", parsed);

    const remoteStatic = trial.remoteStaticPublicKey;
    if (!remoteStatic) return error("Malformed", "no remote static key");
    const signed = bindingMessage(remoteStatic, r.handshakeHashBeforePayload);
    if (!verifyIdentitySignature(parsed.identity, signed, parsed.signature)) {
      return error(
        "BadIdentityProof",
        "identity signature does not cover this static key and transcript",
      );
    }
    let allowed: boolean;
    try {
      allowed = this.#acceptPeer(parsed.identity.slice()) === true;
    } catch {
      allowed = false;
    }
    if (!allowed) return error("PeerNotAllowed", "peer identity refused by policy");

    this.#noise = trial;
    if (prefix) {
      this.#peerConnectionId = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(
        0,
        false,
      );
    }
    this.#peerIdentity = parsed.identity;
    this.#peerExtension = parsed.extension;
    return { ok: true };
  }

  /**
   * The transport keys from this side's point of view (Noise Split: the
   * initiator sends with k1, the responder with k2).
   *
   * @returns `{ sendKey, recvKey }`, 32 bytes each.
   * @throws Error before completion (programming error).
   */
  transportKeys(): { sendKey: Uint8Array; recvKey: Uint8Array } {
    if (!this.isComplete) throw new Error("RiftHandshake: transportKeys() before completion");
    return this.#noise.split();
  }
}
