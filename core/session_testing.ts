/**
 * In-memory helpers for tests and benchmarks that need real sessions without
 * sockets: two `Session`s exchange datagrams directly until neither has
 * anything left to send (a full handshake, or any control exchange).
 *
 * @module
 */
import { generateIdentity } from "../crypto/identity.ts";
import { Session } from "./session.ts";
import { Rng } from "./sim/rng.ts";

/** Moves datagrams both ways between `a` and `b` at time `now` until both are quiet. */
export function pumpSessions(a: Session, b: Session, now: number): void {
  for (let moved = true; moved;) {
    moved = false;
    for (const [from, to] of [[a, b], [b, a]]) {
      for (let d; (d = from.pollTransmit(now)) !== undefined;) {
        to.handleDatagram(d, now);
        moved = true;
      }
    }
  }
}

/**
 * A client and a host session, handshake done in memory at time 1, their keys
 * and identities drawn from `seed` (the same seed gives the same sessions).
 *
 * @throws {Error} if the handshake did not complete (a bug, not a condition).
 */
export function establishedSessions(seed: number): { client: Session; host: Session } {
  const rng = new Rng(seed);
  const random = (n: number) => rng.bytes(n);
  const client = Session.connect({ identity: generateIdentity(random), random }, 0);
  const host = Session.accept({ identity: generateIdentity(random), random }, 0);
  pumpSessions(client, host, 1);
  if (client.state !== "established" || host.state !== "established") {
    throw new Error(`handshake incomplete: client ${client.state}, host ${host.state}`);
  }
  return { client, host };
}
