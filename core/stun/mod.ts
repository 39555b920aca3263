/**
 * STUN (RFC 8489) for Wavry, sans-IO: the message codec with the RFC 5780
 * and ICE attributes, the server core behind `./wavry stun`, a Binding
 * client for server-reflexive candidates and the RFC 5780 NAT behaviour
 * discovery. STUN shares a UDP socket with RIFT by first byte (RFC 7983):
 * see {@linkcode isStunPacket} and `docs/STUN.md`.
 *
 * @module
 */
export * from "./ip.ts";
export * from "./crc32.ts";
export * from "./message.ts";
export * from "./server.ts";
export * from "./client.ts";
export * from "./discovery.ts";
