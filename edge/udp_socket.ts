/**
 * One bound UDP socket with a receive loop, fire-and-forget sends that are
 * still tracked (so closing waits for them), and counters.
 *
 * @module
 */

/** A UDP peer: an IP address (or name) and a port. */
export interface PeerAddress {
  /** IPv4/IPv6 address or host name. */
  hostname: string;
  /** UDP port. */
  port: number;
}

/** Counters of one UDP socket. */
export interface SocketCounters {
  /** Datagrams read from the socket. */
  datagramsReceived: number;
  /** Bytes read from the socket. */
  bytesReceived: number;
  /** Datagrams handed to the kernel (in order, one at a time). */
  datagramsSent: number;
  /** Bytes handed to the kernel. */
  bytesSent: number;
  /** Sends the kernel refused (unreachable, buffer full, ...). */
  sendErrors: number;
  /** Receive calls that failed without the socket being closed. */
  receiveErrors: number;
  /** Exceptions thrown by the datagram handler (caught; the loop goes on). */
  handlerExceptions: number;
}

/** Called for every datagram read; `now` is `performance.now()` at arrival. */
export type DatagramHandler = (datagram: Uint8Array, from: PeerAddress, now: number) => void;

/** Throws a clear error when this Deno runs without UDP (`--unstable-net`). */
export function assertUdpAvailable(): void {
  if (typeof Deno.listenDatagram !== "function") {
    throw new Error(
      'Deno.listenDatagram is unavailable: run with --unstable-net (or "unstable": ["net"] in deno.json)',
    );
  }
}

/** The key a peer address is demultiplexed by. */
export function addressKey(address: PeerAddress): string {
  return `${address.hostname}|${address.port}`;
}

/** `host:port`, with brackets around IPv6 addresses, for messages. */
export function formatAddress(address: PeerAddress): string {
  return address.hostname.includes(":")
    ? `[${address.hostname}]:${address.port}`
    : `${address.hostname}:${address.port}`;
}

/** A bound UDP socket; create with {@linkcode UdpSocket.bind}, then {@linkcode UdpSocket.start}. */
export class UdpSocket {
  /** Counters (live object; copy it to keep a snapshot). */
  readonly counters: SocketCounters = {
    datagramsReceived: 0,
    bytesReceived: 0,
    datagramsSent: 0,
    bytesSent: 0,
    sendErrors: 0,
    receiveErrors: 0,
    handlerExceptions: 0,
  };
  /** The address the socket is bound to (the real port when bound to port 0). */
  readonly addr: PeerAddress;
  readonly #conn: Deno.DatagramConn;
  readonly #sendQueue: { datagram: Uint8Array; to: PeerAddress; onError?: (e: unknown) => void }[] =
    [];
  #sending: Promise<void> | undefined;
  #loop: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #closed = false;

  private constructor(conn: Deno.DatagramConn) {
    this.#conn = conn;
    const addr = conn.addr as Deno.NetAddr;
    this.addr = { hostname: addr.hostname, port: addr.port };
  }

  /** Binds a UDP socket on `hostname:port` (port 0: an ephemeral port). */
  static bind(hostname: string, port: number): UdpSocket {
    assertUdpAvailable();
    return new UdpSocket(Deno.listenDatagram({ hostname, port, transport: "udp" }));
  }

  /** Whether {@linkcode UdpSocket.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Queues a datagram and returns at once. Datagrams leave in the order they
   * were queued (Deno's concurrent send ops would otherwise reorder them); a
   * refusal by the kernel is counted and reported to `onError`. Never throws.
   */
  send(datagram: Uint8Array, to: PeerAddress, onError?: (error: unknown) => void): void {
    if (this.#closed) return;
    this.#sendQueue.push({ datagram, to, onError });
    this.#sending ??= this.#sendLoop();
  }

  async #sendLoop(): Promise<void> {
    for (let next; (next = this.#sendQueue.shift()) !== undefined;) {
      if (this.#closed) break;
      this.counters.datagramsSent++;
      this.counters.bytesSent += next.datagram.length;
      try {
        await this.#conn.send(next.datagram, {
          transport: "udp",
          hostname: next.to.hostname,
          port: next.to.port,
        });
      } catch (error) {
        this.counters.sendErrors++;
        try {
          next.onError?.(error);
        } catch {
          // a failing error handler must not stop the queue
        }
      }
    }
    this.#sendQueue.length = 0;
    this.#sending = undefined;
  }

  /** Starts the receive loop; every datagram goes to `handler`, whose exceptions are counted. */
  start(handler: DatagramHandler): void {
    if (this.#loop !== undefined) throw new Error("UdpSocket already started");
    this.#loop = this.#receiveLoop(handler);
  }

  async #receiveLoop(handler: DatagramHandler): Promise<void> {
    while (!this.#closed) {
      let received: [Uint8Array, Deno.Addr];
      try {
        received = await this.#conn.receive();
      } catch (error) {
        if (this.#closed || error instanceof Deno.errors.BadResource) return;
        // e.g. ECONNREFUSED left behind by an ICMP error: the socket itself is fine.
        this.counters.receiveErrors++;
        continue;
      }
      const [datagram, from] = received;
      const now = performance.now();
      this.counters.datagramsReceived++;
      this.counters.bytesReceived += datagram.length;
      const address = from as Deno.NetAddr;
      try {
        handler(datagram, { hostname: address.hostname, port: address.port }, now);
      } catch {
        this.counters.handlerExceptions++;
      }
    }
  }

  /** Waits for sends in flight, then closes the socket and ends the receive loop. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // Let queued sends (a CLOSE frame, typically) reach the kernel first.
    while (this.#sending !== undefined) await this.#sending;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    await this.#loop;
  }
}
