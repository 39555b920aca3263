/**
 * A UDP relay between two ends, for media that must cross the emulator
 * "the wrong way" (RFC 8867 5.3's backward stream).
 *
 * The link emulator carries a flow's "up" direction from the peer that spoke
 * last on its listen socket to its target. Wavry's client always speaks first
 * and its host only answers, so a host whose media must go "up" cannot sit on
 * the listen side by itself. Two relays put it there:
 *
 * ```
 * host B <-> hostSide ==listen socket==> emulator (up) ==upstream socket==> clientSide <-> client B
 * ```
 *
 * `hostSide` (fixed end: the emulator's listen socket; other end: host B)
 * speaks first, one priming datagram, so the emulator learns it as the flow's
 * peer; `clientSide` (fixed end: the emulator's upstream socket, set once the
 * emulator runs; other end: whoever sends, client B) is the flow's target. Each relay forwards
 * whole datagrams unchanged between its one socket's two ends, on the thread
 * that runs it (loopback only, the backward stream's extra hop).
 *
 * @module
 */

/** A UDP address. */
export interface Addr {
  hostname: string;
  port: number;
}

/** A running relay. */
export interface UdpRelay {
  /** Where the relay's socket is bound. */
  readonly addr: Addr;
  /** Datagrams forwarded so far. */
  forwarded(): number;
  /** Sets (or moves) the fixed end. */
  setFixed(fixed: Addr): void;
  /** Closes the socket. */
  close(): void;
}

/**
 * Relays between a fixed end and an other end: datagrams from `fixed` go to
 * the other end, every other datagram goes to `fixed`. The other end is
 * `other` when given, else whoever sent last from elsewhere. Datagrams with
 * nowhere to go yet are dropped. With `prime`, sends one zero byte to
 * `fixed` first (so the emulator learns this socket as its flow's peer).
 */
export function startUdpRelay(
  opts: { fixed?: Addr; other?: Addr; prime?: boolean } = {},
): UdpRelay {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const local = conn.addr as Deno.NetAddr;
  let fixed = opts.fixed;
  let other: Addr | undefined = opts.other;
  let forwarded = 0;
  let closed = false;
  const same = (a: Deno.NetAddr, b: Addr | undefined) =>
    b !== undefined && a.port === b.port && a.hostname === b.hostname;
  (async () => {
    try {
      if (opts.prime && fixed) await conn.send(new Uint8Array(1), { transport: "udp", ...fixed });
      for (;;) {
        const [data, from] = await conn.receive();
        const a = from as Deno.NetAddr;
        let to: Addr | undefined;
        if (same(a, fixed)) to = other;
        else {
          if (opts.other === undefined) other = { hostname: a.hostname, port: a.port };
          to = fixed;
        }
        if (to === undefined) continue;
        await conn.send(data, { transport: "udp", ...to });
        forwarded++;
      }
    } catch (error) {
      if (!closed) console.error(`udp relay ${local.port}: ${(error as Error).message}`);
    }
  })();
  return {
    addr: { hostname: local.hostname, port: local.port },
    forwarded: () => forwarded,
    setFixed: (f) => fixed = f,
    close: () => {
      if (closed) return;
      closed = true;
      conn.close();
    },
  };
}
