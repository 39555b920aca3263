/**
 * Wavry: latency-first remote desktop and game streaming over RIFT, an
 * encrypted UDP protocol.
 *
 * This entry point is the protocol library: the sans-IO RIFT core (wire
 * format, session state machine) and its cryptography (Noise_XX with Ed25519
 * identities, packet protection, relay leases). The deterministic link
 * simulator used by the tests is exported as `@wavry/wavry/sim`.
 *
 * @example
 * ```ts
 * import { generateIdentity, Session } from "@wavry/wavry";
 *
 * const client = Session.connect({ identity: generateIdentity() }, performance.now());
 * const firstDatagram = client.pollTransmit(performance.now()); // HANDSHAKE_INIT, for a UDP socket
 * ```
 *
 * @module
 */
export * from "./core/mod.ts";
export * from "./crypto/mod.ts";

/** Version of this library. */
export const WAVRY_VERSION: string = "0.1.0";
