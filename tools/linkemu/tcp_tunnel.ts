/**
 * A kernel TCP flow across the link emulator: an IP-in-UDP tunnel on TUN
 * devices between two network namespaces, whose datagrams cross the
 * emulator as one more flow, through the same shared `up` and `down` links
 * (the same queues) as every other flow.
 *
 * ```
 *  namespace S (sender)                  root namespace                     namespace R (receiver)
 *  tcp_bulk source ── tun 10.56.0.1 ─fd─> TunTunnel S ─UDP─> emulator flow ─UDP─> TunTunnel R ─fd─> tun 10.56.0.2 ── tcp_bulk sink
 *                 <─────────── ACKs, the other direction of the same flow ───────────
 * ```
 *
 * The kernel's TCP (CUBIC, chosen on the source's socket) runs end to end; the only
 * thing added is encapsulation: each IP packet is one datagram, and the
 * emulator counts its length (IP + TCP headers + payload) against the
 * bottleneck, as a real link would. Both TUN devices are created here (in the
 * root namespace, by ffi/native/tun.c) and moved into their namespaces; the
 * forwarding threads keep their fds. The emulator forwards down only to a
 * listen-side peer it has heard, so the listen-side end sends hellos
 * (1-byte datagrams, never written to a device) until the target side
 * answers; {@linkcode TcpTunnel.connect} waits for that.
 *
 * Which end sits where is `senderSide`: "target" when the flow's data must
 * cross the emulator's `down` link (Wavry's race layout, host = target),
 * "listen" when it must cross `up` (the WebRTC layout).
 *
 * Namespaces are named by tests/support/netns.ts's convention
 * (`wv-<pid>-<hex>-tcps`/`-tcpr`), so `sweepStaleNetns` removes a crashed
 * run's leftovers; TUN devices vanish with the fds that hold them.
 *
 * @module
 */
import { TunTunnel, type TunTunnelStats } from "../../edge/tun_tunnel.ts";
import { destroyNetns, NETNS_PREFIX, run, sweepStaleNetns } from "../../tests/support/netns.ts";
import { Subprocess } from "../process/subprocess.ts";

/** The sender's tunnel address (namespace S). */
export const TCP_SENDER_IP = "10.56.0.1";
/** The receiver's tunnel address (namespace R). */
export const TCP_RECEIVER_IP = "10.56.0.2";
/** The sink's TCP port. */
export const TCP_PORT = 5001;

const BULK = new URL("./tcp_bulk.ts", import.meta.url).pathname;

/** Options of {@linkcode TcpTunnel.create}. */
export interface TcpTunnelOptions {
  /** Which side of the emulator flow the TCP sender is on (see the module doc). */
  senderSide: "target" | "listen";
  /** TUN MTU: the largest IP packet, so the largest datagram (default 1500). */
  mtu?: number;
  /** The source socket's congestion control (TCP_CONGESTION; default "cubic"). */
  congestionControl?: string;
  /** SCHED_FIFO priority of the forwarding threads, 0 = off (default 60: under the emulator's 70). */
  realtimePriority?: number;
}

/** One reading of the sink's byte counter. */
export interface GoodputSample {
  /** `performance.timeOrigin + performance.now()` in the sink, ms. */
  t: number;
  /** Bytes received so far. */
  total: number;
}

/** What {@linkcode parseBulkLine} makes of one line of tcp_bulk.ts. */
export type BulkEvent =
  | { ev: "ready" }
  | { ev: "bytes"; t: number; total: number }
  | { ev: "done"; total?: number; written?: number }
  | { ev: "connected"; connectMs: number; congestion: string }
  | { ev: "invalid"; line: string };

const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);

/** Parses one stdout line of tcp_bulk.ts; anything else is `{ev: "invalid"}` (never throws). */
export function parseBulkLine(line: string): BulkEvent {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    return { ev: "invalid", line };
  }
  if (typeof o !== "object" || o === null) return { ev: "invalid", line };
  const r = o as Record<string, unknown>;
  switch (r.ev) {
    case "ready":
      return { ev: "ready" };
    case "bytes":
      return finite(r.t) && finite(r.total) && r.total >= 0
        ? { ev: "bytes", t: r.t, total: r.total }
        : { ev: "invalid", line };
    case "connected":
      return finite(r.connectMs) && r.connectMs >= 0 && typeof r.congestion === "string"
        ? { ev: "connected", connectMs: r.connectMs, congestion: r.congestion }
        : { ev: "invalid", line };
    case "done":
      return {
        ev: "done",
        ...(finite(r.total) ? { total: r.total } : {}),
        ...(finite(r.written) ? { written: r.written } : {}),
      };
    default:
      return { ev: "invalid", line };
  }
}

/**
 * Goodput per bin from cumulative samples: for each `binMs` bin from `startMs`
 * (same clock as the samples) to `endMs`, the bytes counted in it (the
 * counter interpolated linearly at the bin edges) as bit/s. Samples must be
 * in time order; bins outside the samples' span count nothing. Throws a
 * RangeError unless `binMs` > 0 and the span is finite.
 */
export function goodputSeries(
  samples: readonly GoodputSample[],
  startMs: number,
  endMs: number,
  binMs: number,
): { t: number; bps: number }[] {
  if (!(binMs > 0) || !Number.isFinite(startMs) || !Number.isFinite(endMs)) {
    throw new RangeError(`goodputSeries: bad span or bin (${startMs}, ${endMs}, ${binMs})`);
  }
  const at = (t: number): number => {
    if (samples.length === 0 || t <= samples[0].t) return samples[0]?.total ?? 0;
    const last = samples[samples.length - 1];
    if (t >= last.t) return last.total;
    let lo = 0, hi = samples.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (samples[mid].t <= t) lo = mid;
      else hi = mid;
    }
    const a = samples[lo], b = samples[hi];
    return b.t === a.t ? b.total : a.total + (b.total - a.total) * (t - a.t) / (b.t - a.t);
  };
  const out: { t: number; bps: number }[] = [];
  for (let t = startMs; t + binMs <= endMs + 1e-9; t += binMs) {
    out.push({ t, bps: (at(t + binMs) - at(t)) * 8 * 1000 / binMs });
  }
  return out;
}

function tag(): string {
  return [...crypto.getRandomValues(new Uint8Array(2))].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** Counters of both tunnel ends. */
export interface TcpTunnelStats {
  sender: TunTunnelStats;
  receiver: TunTunnelStats;
  /** Whether the forwarding threads run under SCHED_FIFO. */
  realtime: boolean;
}

/**
 * The two namespaces, the two tunnel ends and (after {@linkcode start}) the
 * bulk TCP flow. Always `await close()` it (or `await using`).
 */
export class TcpTunnel implements AsyncDisposable {
  /** The sender's namespace. */
  readonly senderNs: string;
  /** The receiver's namespace. */
  readonly receiverNs: string;
  readonly #options: Required<TcpTunnelOptions>;
  readonly #namespaces: string[] = [];
  readonly #ends: TunTunnel[] = [];
  readonly #children: Subprocess[] = [];
  #sender?: TunTunnel;
  #receiver?: TunTunnel;
  #sink?: Subprocess;
  #source?: Subprocess;
  #realtime = false;
  #closed?: Promise<void>;

  private constructor(options: TcpTunnelOptions) {
    this.#options = {
      mtu: 1500,
      congestionControl: "cubic",
      realtimePriority: 60,
      ...options,
    };
    const prefix = `${NETNS_PREFIX}${Deno.pid}-${tag()}-`;
    this.senderNs = `${prefix}tcps`;
    this.receiverNs = `${prefix}tcpr`;
  }

  /**
   * Builds both namespaces and tunnel ends (root only). On failure it removes
   * what it built and rethrows.
   */
  static async create(options: TcpTunnelOptions): Promise<TcpTunnel> {
    if (Deno.uid() !== 0) throw new Error("TcpTunnel needs root (namespaces, TUN devices)");
    await sweepStaleNetns();
    const t = new TcpTunnel(options);
    try {
      await t.#build();
    } catch (e) {
      await t.close().catch(() => {});
      throw e;
    }
    return t;
  }

  async #build(): Promise<void> {
    const id = `${tag()}${Deno.pid % 100000}`;
    const sides: [string, string, string, string][] = [
      [this.senderNs, `wt${id}s`, TCP_SENDER_IP, TCP_RECEIVER_IP],
      [this.receiverNs, `wt${id}r`, TCP_RECEIVER_IP, TCP_SENDER_IP],
    ];
    for (const [ns, dev, local, peer] of sides) {
      this.#namespaces.push(ns); // before creating: a half-made namespace is still deleted
      await run("ip", ["netns", "add", ns]);
      await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
      const end = TunTunnel.open(dev);
      this.#ends.push(end);
      await run("ip", ["link", "set", end.device, "netns", ns]);
      await run("ip", ["-n", ns, "link", "set", end.device, "mtu", String(this.#options.mtu)]);
      await run("ip", ["-n", ns, "addr", "add", local, "peer", peer, "dev", end.device]);
      await run("ip", ["-n", ns, "link", "set", end.device, "up"]);
    }
    [this.#sender, this.#receiver] = this.#ends;
  }

  /** The tunnel end that sits on the emulator's target side. */
  get #targetEnd(): TunTunnel {
    return this.#options.senderSide === "target" ? this.#sender! : this.#receiver!;
  }

  /** The tunnel end that sits on the emulator's listen side. */
  get #listenEnd(): TunTunnel {
    return this.#options.senderSide === "target" ? this.#receiver! : this.#sender!;
  }

  /** The emulator flow's target: the target-side end's UDP socket. */
  get target(): { hostname: string; port: number } {
    return { hostname: "127.0.0.1", port: this.#targetEnd.port };
  }

  /**
   * Starts both ends against the emulator flow (its listen and upstream
   * addresses) and waits until the listen side's hello has crossed the
   * emulator (so it knows its peer), up to `timeoutMs`.
   */
  async connect(
    flow: {
      listenAddr: { hostname: string; port: number };
      upstreamAddr: { hostname: string; port: number };
    },
    timeoutMs = 5_000,
  ): Promise<void> {
    const prio = this.#options.realtimePriority;
    const a = this.#targetEnd.start(flow.upstreamAddr, { realtimePriority: prio });
    const b = this.#listenEnd.start(flow.listenAddr, { hello: true, realtimePriority: prio });
    this.#realtime = a && b;
    const deadline = performance.now() + timeoutMs;
    while (this.#targetEnd.stats().ignored === 0) {
      if (performance.now() > deadline) {
        throw new Error(`tunnel: no hello crossed the emulator within ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * Starts the sink (receiver namespace) and the source (sender namespace),
   * which writes for `seconds`. Resolves once connected, with the handshake
   * time (one round trip with empty queues, ms).
   */
  async start(
    seconds: number,
    timeoutMs = 15_000,
  ): Promise<{ connectMs: number; congestion: string }> {
    const deno = Deno.execPath();
    const flags = ["run", "--no-config", "--allow-net", "--allow-ffi"];
    const sink = this.#spawn(this.receiverNs, "tcp sink", [
      deno,
      ...flags,
      BULK,
      "sink",
      `${TCP_RECEIVER_IP}:${TCP_PORT}`,
    ]);
    this.#sink = sink;
    await sink.waitForLine((l) => parseBulkLine(l).ev === "ready", timeoutMs);
    const source = this.#spawn(this.senderNs, "tcp source", [
      deno,
      ...flags,
      BULK,
      "source",
      `${TCP_RECEIVER_IP}:${TCP_PORT}`,
      String(seconds),
      this.#options.congestionControl,
    ]);
    this.#source = source;
    const line = await source.waitForLine((l) => parseBulkLine(l).ev === "connected", timeoutMs);
    const e = parseBulkLine(line) as { connectMs: number; congestion: string };
    return { connectMs: e.connectMs, congestion: e.congestion };
  }

  #spawn(ns: string, name: string, cmd: string[]): Subprocess {
    const child = new Subprocess(name, "ip", ["netns", "exec", ns, ...cmd]);
    this.#children.push(child);
    return child;
  }

  /** The sink's byte counter readings so far (empty before {@linkcode start}). */
  samples(): GoodputSample[] {
    const out: GoodputSample[] = [];
    for (const l of this.#sink?.stdout ?? []) {
      const e = parseBulkLine(l);
      if (e.ev === "bytes") out.push({ t: e.t, total: e.total });
    }
    return out;
  }

  /** Counters of both ends. */
  stats(): TcpTunnelStats {
    return {
      sender: this.#sender!.stats(),
      receiver: this.#receiver!.stats(),
      realtime: this.#realtime,
    };
  }

  /** TCP_INFO of the source's socket as `ss -tin` prints it (rtt, cwnd, retrans...). */
  async tcpInfo(): Promise<string> {
    return (await run("ip", ["netns", "exec", this.senderNs, "ss", "-tin", "state", "established"]))
      .trim();
  }

  /**
   * Stops the flow (SIGTERM, then SIGKILL after 2 s), closes the tunnel ends
   * (the devices go with them) and deletes the namespaces. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await Promise.allSettled(this.#children.map(async (c) => {
        c.kill("SIGTERM");
        await c.finish(2_000);
      }));
      for (const end of this.#ends) end.close();
      const errors: string[] = [];
      for (const ns of this.#namespaces) {
        await destroyNetns(ns).catch((e) => errors.push(`${ns}: ${(e as Error).message}`));
      }
      if (errors.length > 0) throw new Error(`TcpTunnel teardown: ${errors.join("; ")}`);
    })();
    return this.#closed;
  }

  /** Same as {@linkcode close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
