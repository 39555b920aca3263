/**
 * A plain UDP socket with a receive queue and timeouts, for the relay's
 * tests and benchmark (not part of the public surface).
 *
 * @module
 */

import type { RelayAddress } from "./binding_table.ts";

/** One received datagram. */
export interface Received {
  /** Bytes. */
  bytes: Uint8Array;
  /** Source. */
  from: RelayAddress;
}

/** A UDP socket on loopback whose datagrams are queued for `next()`. */
export class TestPeer {
  /** Bound address. */
  readonly address: RelayAddress;
  readonly #conn: Deno.DatagramConn;
  readonly #queue: Received[] = [];
  #waiter: (() => void) | undefined;
  #closed = false;
  readonly #loop: Promise<void>;

  constructor(hostname = "127.0.0.1", port = 0) {
    this.#conn = Deno.listenDatagram({ hostname, port, transport: "udp" });
    const a = this.#conn.addr as Deno.NetAddr;
    this.address = { hostname: a.hostname, port: a.port };
    this.#loop = this.#receive();
  }

  async #receive(): Promise<void> {
    while (!this.#closed) {
      try {
        const [bytes, from] = await this.#conn.receive();
        const f = from as Deno.NetAddr;
        this.#queue.push({ bytes, from: { hostname: f.hostname, port: f.port } });
        this.#waiter?.();
      } catch (e) {
        if (this.#closed || e instanceof Deno.errors.BadResource) return;
        // ICMP errors surface here on some systems; keep reading.
      }
    }
  }

  /** Datagrams waiting in the queue. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Sends a datagram (awaits the kernel). */
  async send(bytes: Uint8Array, to: RelayAddress): Promise<void> {
    await this.#conn.send(bytes, { transport: "udp", hostname: to.hostname, port: to.port });
  }

  /** The next datagram, or undefined after `timeoutMs` without one. */
  async next(timeoutMs = 1_000): Promise<Received | undefined> {
    const deadline = performance.now() + timeoutMs;
    while (this.#queue.length === 0) {
      const left = deadline - performance.now();
      if (left <= 0 || this.#closed) return undefined;
      let t: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
        t = setTimeout(resolve, left);
      });
      clearTimeout(t);
      this.#waiter = undefined;
    }
    return this.#queue.shift();
  }

  /** Closes the socket and ends the receive loop. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    this.#waiter?.();
    await this.#loop;
  }
}
