/**
 * In-memory helpers for tests and benchmarks that need real sessions without
 * sockets: two `Session`s exchange datagrams directly until neither has
 * anything left to send (a full handshake, or any control exchange).
 *
 * @module
 */
import type { Session } from "./session.ts";

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
