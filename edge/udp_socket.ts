/**
 * One bound UDP socket with a receive loop, fire-and-forget sends that are
 * still tracked (so closing waits for them), and counters.
 *
 * Two backends: Deno's own socket (`UdpSocket.bind`), and a native socket
 * opened through the FFI shim (`UdpSocket.native`) whose descriptor other
 * workers can share, so the media lane is sent from another thread on the
 * same port (edge/native_udp.ts).
 *
 * @module
 */
import type { NativeUdpSocket } from "./native_udp.ts";
import { monotonicMicros } from "../ffi/library.ts";

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
  /** The native socket, when this one is backed by the FFI shim (share its `fd` with workers). */
  readonly native: NativeUdpSocket | undefined;
  readonly #conn: Deno.DatagramConn | undefined;
  readonly #sendQueue: { datagram: Uint8Array; to: PeerAddress; onError?: (e: unknown) => void }[] =
    [];
  #sending: Promise<void> | undefined;
  #loop: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #closed = false;
  #wokeUs = 0;
  #wokeMs = 0;

  private constructor(conn: Deno.DatagramConn | undefined, native: NativeUdpSocket | undefined) {
    this.#conn = conn;
    this.native = native;
    if (conn !== undefined) {
      const addr = conn.addr as Deno.NetAddr;
      this.addr = { hostname: addr.hostname, port: addr.port };
    } else {
      this.addr = { ...native!.localAddr };
    }
  }

  /** Binds a UDP socket on `hostname:port` (port 0: an ephemeral port). */
  static bind(hostname: string, port: number): UdpSocket {
    assertUdpAvailable();
    return new UdpSocket(Deno.listenDatagram({ hostname, port, transport: "udp" }), undefined);
  }

  /**
   * Wraps a native socket (opened here or attached from another worker).
   * Closing this UdpSocket closes the native one (for an attached one: lets go of it).
   */
  static native(socket: NativeUdpSocket): UdpSocket {
    return new UdpSocket(undefined, socket);
  }

  /**
   * When the receive loop last got datagrams back from the kernel, in
   * CLOCK_MONOTONIC µs (0 before the first). Read inside a datagram handler,
   * or in a microtask it queued, it is the wake-up time of the batch that
   * delivered that datagram: the next batch is awaited only after them.
   */
  get lastWakeMicros(): number {
    return this.#wokeUs;
  }

  /**
   * The same moment as {@linkcode UdpSocket.lastWakeMicros} on this thread's
   * `performance.now()` (ms): the pair maps a handler's `now` back onto
   * CLOCK_MONOTONIC exactly (`lastWakeMicros + (now − lastWakePerfMs) × 1000`).
   */
  get lastWakePerfMs(): number {
    return this.#wokeMs;
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
    if (this.native !== undefined) {
      // A native send never blocks (nonblocking socket): it happens now, in call order.
      this.#sendNative(this.native, datagram, to, onError);
      return;
    }
    this.#sendQueue.push({ datagram, to, onError });
    this.#sending ??= this.#sendLoop();
  }

  #sendNative(
    native: NativeUdpSocket,
    datagram: Uint8Array,
    to: PeerAddress,
    onError?: (error: unknown) => void,
  ): void {
    this.counters.datagramsSent++;
    this.counters.bytesSent += datagram.length;
    let error: unknown;
    try {
      if (native.send(datagram, to)) return;
      error = new Error(
        `send to ${formatAddress(to)} refused (errno ${native.counters.lastSendErrno})`,
      );
    } catch (thrown) {
      error = thrown;
    }
    this.counters.sendErrors++;
    try {
      onError?.(error);
    } catch {
      // a failing error handler must not break the caller
    }
  }

  async #sendLoop(): Promise<void> {
    for (let next; (next = this.#sendQueue.shift()) !== undefined;) {
      if (this.#closed) break;
      this.counters.datagramsSent++;
      this.counters.bytesSent += next.datagram.length;
      try {
        await this.#conn!.send(next.datagram, {
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
    if (this.native !== undefined) return await this.#nativeReceiveLoop(this.native, handler);
    const conn = this.#conn!;
    while (!this.#closed) {
      let received: [Uint8Array, Deno.Addr];
      try {
        received = await conn.receive();
      } catch (error) {
        if (this.#closed || error instanceof Deno.errors.BadResource) return;
        // e.g. ECONNREFUSED left behind by an ICMP error: the socket itself is fine.
        this.counters.receiveErrors++;
        continue;
      }
      const [datagram, from] = received;
      const now = performance.now();
      this.#wokeUs = monotonicMicros();
      this.#wokeMs = now;
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

  async #nativeReceiveLoop(native: NativeUdpSocket, handler: DatagramHandler): Promise<void> {
    let reuse: ArrayBuffer | undefined;
    while (!this.#closed) {
      let batch;
      try {
        batch = await native.receiveBatch(64, -1, { reuse });
      } catch {
        if (this.#closed || native.closed) return;
        this.counters.receiveErrors++;
        continue;
      }
      if (batch.closed) return;
      this.#wokeUs = monotonicMicros();
      this.#wokeMs = performance.now();
      // Kernel receive times (SO_TIMESTAMPNS on CLOCK_MONOTONIC), moved onto this thread's
      // performance.now(): how long this thread took to wake up is not network delay, and
      // congestion control must not read it as a queue.
      const monoMinusPerfMs = this.#wokeUs / 1000 - this.#wokeMs;
      for (let i = 0; i < batch.count; i++) {
        const now = batch.receivedAtMicros(i) / 1000 - monoMinusPerfMs;
        if (batch.truncated(i)) {
          this.counters.receiveErrors++;
          continue;
        }
        // The handler may keep the bytes (a queued handshake): give it its own copy.
        const datagram = batch.datagram(i).slice();
        this.counters.datagramsReceived++;
        this.counters.bytesReceived += datagram.length;
        try {
          handler(datagram, batch.source(i), now);
        } catch {
          this.counters.handlerExceptions++;
        }
      }
      reuse = batch.buffer;
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
      this.#conn?.close();
    } catch {
      // already closed
    }
    await this.native?.close();
    await this.#loop;
  }
}
