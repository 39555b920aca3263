/**
 * The STUN server at the edge: {@linkcode StunServerCore} on real UDP
 * sockets. One socket on the primary address, or — given an alternate
 * address — the four sockets of RFC 5780 (primary/alternate IP ×
 * primary/alternate port), so CHANGE-REQUEST is answered from the socket it
 * names. Counters are exported in Prometheus text format via prom-client.
 *
 * Needs `Deno.listenDatagram` (`--unstable-net`, set in deno.json).
 *
 * @module
 */
import client from "prom-client";
import { NativeUdpSocket } from "../edge/native_udp.ts";
import {
  type IpFamily,
  type LocalSocket,
  parseIp,
  type StunDropReason,
  StunServerCore,
  type TransportAddress,
} from "../core/stun/mod.ts";

/** A host and port to bind. */
export interface BindAddress {
  /** IP address literal. With an alternate, a concrete address (not 0.0.0.0 / ::). */
  hostname: string;
  /** UDP port; 0 picks an ephemeral one. */
  port: number;
}

/** Options of {@linkcode StunServer.start}. */
export interface StunServerOptions {
  /** Primary address, e.g. `{ hostname: "0.0.0.0", port: 3478 }`. */
  listen: BindAddress;
  /** Alternate IP and port: enables RFC 5780 mode with four sockets. */
  alternate?: BindAddress;
  /** SOFTWARE attribute value (default "wavry"). */
  software?: string;
  /** Called with the kernel-reported source of every datagram (logging, tests). */
  onDatagram?: (from: TransportAddress, arrivedOn: LocalSocket) => void;
  /** "auto" (default): the shim's batched socket when it loads, else Deno's; "deno": Deno's. */
  socket?: "auto" | "deno";
}

/**
 * Receive calls kept pending per socket: each Deno receive is an async op
 * whose wake-up dominates the cost of a Binding, so several in flight keep
 * the socket drained while the previous datagram is handled.
 */
const RECEIVES_IN_FLIGHT = 4;

function familyOf(hostname: string): IpFamily {
  return hostname.includes(":") ? "IPv6" : "IPv4";
}

/**
 * The transport address of a datagram's source. A dual-stack socket bound to
 * `::` reports IPv4 peers as `::ffff:a.b.c.d`; they get an IPv4
 * XOR-MAPPED-ADDRESS, since that is the address their NAT mapped.
 */
export function sourceAddress(from: Deno.NetAddr): TransportAddress {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(from.hostname);
  if (mapped) return { hostname: mapped[1], port: from.port, family: "IPv4" };
  return { hostname: from.hostname, port: from.port, family: familyOf(from.hostname) };
}

function socketKey(s: LocalSocket): string {
  return `${s.ip}/${s.port}`;
}

/** One server socket: Deno's, or the shim's (batched receives, synchronous sends). */
interface ServerSocket {
  readonly port: number;
  /** One receive call returns many datagrams (the shim's recvmmsg). */
  readonly batched: boolean;
  /** Receives until closed; calls `handle` per datagram. */
  loop(
    handle: (datagram: Uint8Array, from: Deno.NetAddr) => void,
    isClosed: () => boolean,
  ): Promise<void>;
  /** Sends one reply; false when the kernel refused it. */
  send(bytes: Uint8Array, to: { hostname: string; port: number }): Promise<boolean> | boolean;
  close(): void;
}

function denoSocket(conn: Deno.DatagramConn): ServerSocket {
  return {
    port: (conn.addr as Deno.NetAddr).port,
    batched: false,
    async loop(handle, isClosed) {
      while (!isClosed()) {
        let datagram: Uint8Array, addr: Deno.Addr;
        try {
          [datagram, addr] = await conn.receive();
        } catch (e) {
          if (isClosed() || e instanceof Deno.errors.BadResource) return;
          continue; // e.g. ECONNREFUSED from an earlier ICMP error: the socket is fine
        }
        handle(datagram, addr as Deno.NetAddr);
      }
    },
    send: (bytes, to) =>
      conn.send(bytes, { transport: "udp", ...to }).then(() => true, () => false),
    close: () => conn.close(),
  };
}

/**
 * The shim's socket: one receive call returns up to 64 queued requests
 * (recvmmsg), and replies go out with a synchronous sendto — Deno's
 * per-datagram async ops were what bounded the server (docs/STUN.md).
 */
function nativeSocket(socket: NativeUdpSocket): ServerSocket {
  return {
    port: socket.localAddr.port,
    batched: true,
    async loop(handle, isClosed) {
      let reuse: ArrayBuffer | undefined;
      while (!isClosed()) {
        let batch;
        try {
          batch = await socket.receiveBatch(64, -1, { reuse });
        } catch {
          if (isClosed() || socket.closed) return;
          continue;
        }
        if (batch.closed) return;
        for (let i = 0; i < batch.count; i++) {
          if (batch.truncated(i)) continue;
          const from = batch.source(i);
          handle(batch.datagram(i), { transport: "udp", hostname: from.hostname, port: from.port });
        }
        reuse = batch.buffer;
      }
    },
    send: (bytes, to) => {
      try {
        return socket.send(bytes, to);
      } catch {
        return false;
      }
    },
    close: () => void socket.close(),
  };
}

/** Binds with the shim when it loads (and `prefer` allows), else with Deno. */
function bindSocket(hostname: string, port: number, prefer: "auto" | "deno"): ServerSocket {
  if (prefer === "auto") {
    try {
      return nativeSocket(NativeUdpSocket.open({ hostname, port }));
    } catch {
      // No shim (or it cannot bind): Deno's socket, which reports a taken port clearly itself.
    }
  }
  return denoSocket(Deno.listenDatagram({ hostname, port, transport: "udp" }));
}

/** A running STUN server. */
export class StunServer {
  /** The sans-IO core (its counters are live). */
  readonly core: StunServerCore;
  /** Prometheus registry with this server's series. */
  readonly registry: client.Registry = new client.Registry();
  readonly #sockets: Map<string, ServerSocket>;
  readonly #loops: Promise<void>[] = [];
  readonly #received: client.Counter<"socket">;
  readonly #responses: client.Counter<"class" | "code">;
  readonly #drops: client.Counter<"reason">;
  readonly #sendErrors: client.Counter;
  #closed = false;
  #sendErrorCount = 0;

  readonly #onDatagram?: (from: TransportAddress, arrivedOn: LocalSocket) => void;

  private constructor(
    core: StunServerCore,
    sockets: Map<string, ServerSocket>,
    onDatagram?: (from: TransportAddress, arrivedOn: LocalSocket) => void,
  ) {
    this.core = core;
    this.#onDatagram = onDatagram;
    this.#sockets = sockets;
    const registers = [this.registry];
    this.#received = new client.Counter({
      name: "wavry_stun_datagrams_received_total",
      help: "Datagrams received, by server socket",
      labelNames: ["socket"],
      registers,
    });
    this.#responses = new client.Counter({
      name: "wavry_stun_responses_total",
      help: "Responses sent, by class and error code (0 for success)",
      labelNames: ["class", "code"],
      registers,
    });
    this.#drops = new client.Counter({
      name: "wavry_stun_drops_total",
      help: "Datagrams dropped without a reply, by reason",
      labelNames: ["reason"],
      registers,
    });
    this.#sendErrors = new client.Counter({
      name: "wavry_stun_send_errors_total",
      help: "Replies the kernel refused to send",
      registers,
    });
    for (const [key, socket] of sockets) {
      // Deno's socket keeps several receive ops pending; the native one batches instead.
      const loops = socket.batched ? 1 : RECEIVES_IN_FLIGHT;
      for (let i = 0; i < loops; i++) this.#loops.push(this.#receiveLoop(key, socket));
    }
  }

  /**
   * Binds the socket(s) and starts answering.
   *
   * @throws if an address is not an IP literal, the alternate is not
   * concrete or not of the primary's family, or a bind fails.
   */
  static start(opts: StunServerOptions): StunServer {
    if (typeof Deno.listenDatagram !== "function") {
      throw new Error("Deno.listenDatagram is unavailable: run with --unstable-net");
    }
    const { listen, alternate } = opts;
    for (const a of [listen, alternate]) {
      if (a && !parseIp(a.hostname)) throw new Error(`"${a.hostname}" is not an IP address`);
    }
    const family = familyOf(listen.hostname);
    const bind = (hostname: string, port: number) =>
      bindSocket(hostname, port, opts.socket ?? "auto");
    const port = (c: ServerSocket) => c.port;
    const sockets = new Map<string, ServerSocket>();
    try {
      const primary = bind(listen.hostname, listen.port);
      sockets.set("primary/primary", primary);
      const p1 = port(primary);
      let alt: TransportAddress | undefined;
      if (alternate) {
        const wildcard = (h: string) => /^(0\.0\.0\.0|::)$/.test(h);
        if (wildcard(listen.hostname) || wildcard(alternate.hostname)) {
          throw new Error("RFC 5780 mode needs concrete primary and alternate IPs, not a wildcard");
        }
        if (familyOf(alternate.hostname) !== family) {
          throw new Error("the alternate address must be of the primary's family");
        }
        const altBoth = bind(alternate.hostname, alternate.port);
        sockets.set("alternate/alternate", altBoth);
        const p2 = port(altBoth);
        sockets.set("primary/alternate", bind(listen.hostname, p2));
        sockets.set("alternate/primary", bind(alternate.hostname, p1));
        alt = { hostname: alternate.hostname, port: p2, family };
      }
      const core = new StunServerCore({
        primary: { hostname: listen.hostname, port: p1, family },
        alternate: alt,
        software: opts.software,
      });
      return new StunServer(core, sockets, opts.onDatagram);
    } catch (e) {
      for (const c of sockets.values()) c.close();
      throw e;
    }
  }

  /** The primary address (with the real port when bound to 0). */
  get address(): TransportAddress {
    return this.core.addressOf({ ip: "primary", port: "primary" });
  }

  /** The alternate address (RFC 5780 mode only). */
  get alternateAddress(): TransportAddress | undefined {
    return this.core.rfc5780
      ? this.core.addressOf({ ip: "alternate", port: "alternate" })
      : undefined;
  }

  #receiveLoop(key: string, socket: ServerSocket): Promise<void> {
    const [ip, port] = key.split("/") as ["primary" | "alternate", "primary" | "alternate"];
    const arrivedOn: LocalSocket = { ip, port };
    return socket.loop(
      (datagram, from) => this.#onRequest(key, arrivedOn, datagram, from),
      () => this.#closed,
    );
  }

  #onRequest(key: string, arrivedOn: LocalSocket, datagram: Uint8Array, from: Deno.NetAddr): void {
    {
      this.#received.inc({ socket: key });
      const source = sourceAddress(from);
      try {
        this.#onDatagram?.(source, arrivedOn);
      } catch {
        // an observer must not stop the server
      }
      const action = this.core.handle(datagram, source, arrivedOn);
      if (action.action === "drop") {
        this.#drops.inc({ reason: action.reason satisfies StunDropReason });
        return;
      }
      this.#responses.inc({
        class: action.errorCode === 0 ? "success" : "error",
        code: String(action.errorCode),
      });
      const out = this.#sockets.get(socketKey(action.sendFrom));
      if (!out) return;
      const failed = () => {
        this.#sendErrorCount++;
        this.#sendErrors.inc();
      };
      // Not awaited: one slow send must not stall the receive loop; failures are counted.
      const sent = out.send(action.bytes, { hostname: action.to.hostname, port: action.to.port });
      if (sent === false) failed();
      else if (sent !== true) sent.then((ok) => ok || failed());
    }
  }

  /** Replies the kernel refused to send (unreachable destination, full buffer, ...). */
  get sendErrors(): number {
    return this.#sendErrorCount;
  }

  /** The Prometheus text exposition of this server's counters. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** Closes every socket and waits for the receive loops to end. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of this.#sockets.values()) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    await Promise.all(this.#loops);
  }
}
