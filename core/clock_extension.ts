/**
 * The host's clock relation, sent to the client inside the encrypted
 * handshake extension: CLOCK_MONOTONIC minus `performance.now()` in the host
 * process, in µs. With the session's PING/PONG clock offset it lets the client
 * convert the host's capture and encode timestamps into its own clock.
 *
 * Layout: `version u8 (1) || mono_minus_perf_us f64 (big-endian)`, 9 bytes.
 *
 * @module
 */

const VERSION = 1;
/** Length of the extension. */
export const CLOCK_EXTENSION_LENGTH = 9;

/** Encodes the host's CLOCK_MONOTONIC − performance.now() (µs). */
export function encodeClockExtension(monoMinusPerfUs: number): Uint8Array {
  const out = new Uint8Array(CLOCK_EXTENSION_LENGTH);
  out[0] = VERSION;
  new DataView(out.buffer).setFloat64(1, monoMinusPerfUs);
  return out;
}

/** Decodes it; undefined for anything else (an older or foreign host). */
export function decodeClockExtension(bytes: Uint8Array): number | undefined {
  if (bytes.length !== CLOCK_EXTENSION_LENGTH || bytes[0] !== VERSION) return undefined;
  const value = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getFloat64(1);
  return Number.isFinite(value) ? value : undefined;
}
