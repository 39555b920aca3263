/**
 * One end of an IP-in-UDP tunnel: a TUN device whose IP packets go out as UDP
 * datagrams (one packet, one datagram) to a fixed loopback address, and whose
 * incoming datagrams are written back into the device. The forwarding runs in
 * a native thread (`ffi/native/tun.c`), so no JS event loop is on the path.
 *
 * Create it in the root namespace, move the device elsewhere with
 * `ip link set <name> netns <ns>` (the tunnel keeps working), then
 * {@linkcode TunTunnel.start} it once the far address is known.
 *
 * @module
 */
import { ErrorBuffer } from "../ffi/errors.ts";
import { tunNative, TUNNEL_COUNTERS } from "../ffi/tun.ts";

/** Counters of one tunnel end (see `ffi/native/tun.c`). */
export type TunTunnelStats = Record<typeof TUNNEL_COUNTERS[number], number>;

/** The IPv4 literal `a.b.c.d` as a u32 whose memory layout is network order (little-endian host). */
function ipv4NetworkOrder(ip: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (m === null || m.slice(1).some((o) => Number(o) > 255)) {
    throw new RangeError(`not an IPv4 literal: ${ip}`);
  }
  const b = m.slice(1).map(Number);
  // The shim stores this u32 as-is into sin_addr: bytes in memory must be a, b, c, d.
  return new DataView(Uint8Array.from(b).buffer).getUint32(0, true);
}

/** A TUN device plus UDP socket plus forwarding thread. Close it to delete the device. */
export class TunTunnel {
  /** The TUN device's name. */
  readonly device: string;
  /** The local UDP port (on 127.0.0.1) datagrams for this end must be sent to. */
  readonly port: number;
  readonly #handle: bigint;
  readonly #err = new ErrorBuffer();
  #closed = false;
  #realtime = false;

  private constructor(device: string, port: number, handle: bigint) {
    this.device = device;
    this.port = port;
    this.#handle = handle;
  }

  /** Creates TUN device `name` (≤ 15 bytes) and the UDP socket. Needs CAP_NET_ADMIN. */
  static open(name: string): TunTunnel {
    const n = tunNative();
    const err = new ErrorBuffer();
    const outName = new Uint8Array(16);
    const fd = err.check(
      "tun.open",
      n.wavry_tun_open(
        new TextEncoder().encode(name + "\0"),
        outName,
        err.reset(),
        err.bytes.length,
      ),
    );
    const port = new Int32Array(1);
    const handle = new BigInt64Array(1);
    err.check(
      "tun.create",
      n.wavry_tunnel_create(fd, port, handle, err.reset(), err.bytes.length),
    );
    const end = outName.indexOf(0);
    return new TunTunnel(new TextDecoder().decode(outName.subarray(0, end)), port[0], handle[0]);
  }

  /**
   * Starts forwarding to `to` (an IPv4 loopback address). `hello`: send a
   * 1-byte datagram every 200 ms until the far side answers (for the emulator's
   * listen side, which only replies to a peer it has heard). `realtimePriority`
   * > 0 asks for SCHED_FIFO. Returns whether the thread got it.
   */
  start(
    to: { hostname: string; port: number },
    options: { hello?: boolean; realtimePriority?: number } = {},
  ): boolean {
    if (this.#closed) throw new RangeError("tunnel closed");
    const got = this.#err.check(
      "tun.start",
      tunNative().wavry_tunnel_start(
        this.#handle,
        ipv4NetworkOrder(to.hostname),
        to.port,
        options.hello ? 1 : 0,
        options.realtimePriority ?? 0,
        this.#err.reset(),
        this.#err.bytes.length,
      ),
    );
    this.#realtime = got === 1;
    return this.#realtime;
  }

  /** Whether the forwarding thread runs under SCHED_FIFO. */
  get realtime(): boolean {
    return this.#realtime;
  }

  /** Counters (all zero after close). */
  stats(): TunTunnelStats {
    const out = new Float64Array(TUNNEL_COUNTERS.length);
    if (!this.#closed) {
      this.#err.check(
        "tun.stats",
        tunNative().wavry_tunnel_stats(
          this.#handle,
          out,
          this.#err.reset(),
          this.#err.bytes.length,
        ),
      );
    }
    return Object.fromEntries(TUNNEL_COUNTERS.map((k, i) => [k, out[i]])) as TunTunnelStats;
  }

  /** Stops the thread and closes the device (the kernel deletes it) and the socket. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    tunNative().wavry_tunnel_close(this.#handle, this.#err.reset(), this.#err.bytes.length);
  }
}
