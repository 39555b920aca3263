/**
 * Media lane states from a real handshake between two in-memory sessions, with
 * the AEAD backend the stream uses (OpenSSL through the shim when it loads,
 * else node:crypto): what the dataplane benches seal and open with.
 *
 * @module
 */
import { generateIdentity } from "../crypto/identity.ts";
import { Session } from "../core/session.ts";
import type { MediaLaneState } from "../core/media_lane.ts";
import { pumpSessions } from "../core/session_testing.ts";
import { withNativeAead } from "../edge/native_aead.ts";

/** Host and client media lanes of one handshake; the host's FEC parity ratio set to `parityRatio`. */
export function handshakeMediaLanes(
  parityRatio: number,
): { host: MediaLaneState; client: MediaLaneState } {
  const config = withNativeAead({});
  const client = Session.connect({ identity: generateIdentity(), config }, 0);
  const host = Session.accept({ identity: generateIdentity(), config }, 0);
  pumpSessions(client, host, 1);
  const h = host.detachMedia();
  return { host: { ...h, fec: { ...h.fec, parityRatio } }, client: client.detachMedia() };
}
