/**
 * Helpers for the edge tests: reading events with a deadline, a free port,
 * and a hand-driven peer that can vanish without a word.
 *
 * @module
 */

import { Session, type SessionEvent } from "../core/session.ts";
import type { IdentityKeyPair } from "../crypto/identity.ts";
import type { SessionDriver } from "./udp_session.ts";
import type { PeerAddress } from "./udp_socket.ts";

/** Rejects after `ms` unless `promise` settles first; the timer never outlives the call. */
export async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The next event of `type` from `driver` (others are skipped), within `ms`. */
export function nextEvent<T extends SessionEvent["type"]>(
  driver: SessionDriver,
  type: T,
  ms = 5000,
): Promise<Extract<SessionEvent, { type: T }>> {
  return within(
    ms,
    (async () => {
      for await (const event of driver.events()) {
        if (event.type === type) return event as Extract<SessionEvent, { type: T }>;
      }
      throw new Error(`events ended before a "${type}" event`);
    })(),
    `waiting for "${type}"`,
  );
}

/** A loopback UDP port nobody listens on (bound, then released). */
export function unusedUdpPort(): number {
  const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const port = (socket.addr as Deno.NetAddr).port;
  socket.close();
  return port;
}

/**
 * A RIFT peer driven by hand over a raw socket, so a test can make it vanish
 * (stop answering, send nothing) once established.
 */
export class RawPeer {
  /** The hand-driven session. */
  readonly session: Session;
  /** Where it sends. */
  remote: PeerAddress | undefined;
  readonly #socket: Deno.DatagramConn;
  readonly #loop: Promise<void>;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #gone = false;
  readonly #sends = new Set<Promise<void>>();

  /** Starts an initiator toward `remote`, or (no `remote`) a responder waiting for an INIT. */
  constructor(identity: IdentityKeyPair, remote?: PeerAddress) {
    this.#socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    this.remote = remote;
    const now = performance.now();
    this.session = remote === undefined
      ? Session.accept({ identity }, now)
      : Session.connect({ identity }, now);
    this.#loop = this.#receive();
    this.#pump();
  }

  /** The raw socket's address. */
  get addr(): PeerAddress {
    const addr = this.#socket.addr as Deno.NetAddr;
    return { hostname: addr.hostname, port: addr.port };
  }

  /** Stops answering and closes the socket: no CLOSE, nothing. */
  async vanish(): Promise<void> {
    if (this.#gone) return;
    this.#gone = true;
    clearTimeout(this.#timer);
    await Promise.all([...this.#sends]);
    this.#socket.close();
    await this.#loop;
  }

  async #receive(): Promise<void> {
    while (!this.#gone) {
      try {
        const [datagram, from] = await this.#socket.receive();
        const address = from as Deno.NetAddr;
        this.remote ??= { hostname: address.hostname, port: address.port };
        this.session.handleDatagram(datagram, performance.now());
        this.#pump();
      } catch {
        return;
      }
    }
  }

  #pump(): void {
    if (this.#gone) return;
    const now = performance.now();
    for (let d; this.remote !== undefined && (d = this.session.pollTransmit(now)) !== undefined;) {
      const sent = this.#socket.send(d, { transport: "udp", ...this.remote }).then(
        () => {},
        () => {},
      );
      this.#sends.add(sent);
      sent.finally(() => this.#sends.delete(sent));
    }
    while (this.session.pollEvent() !== undefined) { /* not needed */ }
    clearTimeout(this.#timer);
    const at = this.session.pollTimeout();
    if (at !== undefined) {
      this.#timer = setTimeout(() => {
        this.session.handleTimeout(performance.now());
        this.#pump();
      }, Math.max(0, Math.ceil(at - performance.now())));
    }
  }
}
