/**
 * Wavry's cryptography: Noise_XX with Ed25519 identity binding, RIFT packet
 * protection (ChaCha20-Poly1305, anti-replay, rekeying), identities and their
 * key files, and PASETO v4.public relay leases.
 *
 * @module
 */
export {
  type Aead,
  type AeadBackend,
  createAead,
  DEFAULT_AEAD_BACKEND,
  nonceFromCounter,
} from "./aead.ts";
export * from "./replay.ts";
export {
  DEFAULT_TRANSPORT_CONFIG,
  deriveLaneKeys,
  MAX_PACKET_NUMBER,
  MEDIA_LANE_LABEL,
  type OpenErrorKind,
  type OpenResult,
  PacketProtector,
  type SealResult,
  type TransportConfig,
  type TransportKeys,
  type TransportStats,
} from "./transport.ts";
export * from "./noise.ts";
export * from "./handshake.ts";
export * from "./identity.ts";
export * from "./identity_file.ts";
export * from "./lease.ts";
