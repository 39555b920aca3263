/**
 * Relay forwarding benchmark, 1200-byte datagrams on loopback, three paths
 * measured in the same run with the same two peers and the same method:
 *
 * - `direct`: peer A → peer B, plain UDP (the baseline);
 * - `relay`: A → our relay (its forwarder worker, `--socket`, default auto = the native
 *   batched socket when the shim loads) → B, after both bind with a lease;
 * - `relay-deno`: the same relay forced onto `Deno.listenDatagram` (the old path), unless
 *   `--no-deno-relay` or the `relay` path already uses it;
 * - `coturn`: A → Debian's `turnserver` (TURN over UDP, anonymous, ChannelData)
 *   → B, if `turnserver` is installed (our own minimal TURN client below).
 *
 * Throughput: a closed loop keeps `--window` datagrams in flight A → B for
 * `--seconds`, so buffers do not overflow and the figure is what the path
 * sustains; a datagram not back within 50 ms frees its window slot. Latency: `--pings`
 * ping-pongs A → B → A through the path, round-trip p50/p99. Paths run in
 * rounds (direct, relay, coturn, direct, …) so drift in machine load hits
 * all alike. Ratios, not absolute figures, are the result on a shared VM.
 *
 * `deno run -A bench/relay.ts [--seconds 2] [--rounds 2] [--window 32] [--pings 500] [--no-coturn]
 *  [--no-deno-relay] [--socket auto|native|deno]`
 *
 * CPU: each round line gives the forwarder's CPU time per delivered datagram (the relay's
 * worker thread, or every thread of `turnserver`, from /proc/…/schedstat) and the bench
 * main thread's (both peers). Second-last line: every figure (`direct_pps`, `relay_vs_direct`, `relay_socket`,
 * `relay_deno_pps`, p50s, …). Last line: `relay_pps=N coturn_pps=N pps_ratio=R relay_p99_us=N
 * coturn_p99_us=N`, where `pps_ratio` = relay / coturn (issue 6's target: ≥ 1.0 with
 * `relay_p99_us` no worse than `coturn_p99_us`).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ed25519 } from "@noble/curves/ed25519.js";
import { generateIdentity } from "../crypto/identity.ts";
import {
  encodePeerKey,
  issueLease,
  leasePublicKeyFromBytes,
  leaseSecretKeyFromSeed,
} from "../crypto/lease.ts";
import { RelayForwarder } from "../relay/forwarder.ts";
import type { RelayAddress } from "../relay/binding_table.ts";
import {
  type ForwarderSocketChoice,
  type ForwarderSocketKind,
  RESIDENCE_BUCKETS_US,
} from "../relay/worker_protocol.ts";
import { decodeBindAck, encodeBindRequest } from "../relay/wire.ts";

const SIZE = 1200;
const LOOPBACK = "127.0.0.1";

/** A raw socket whose datagrams go to a replaceable handler. */
class Peer {
  readonly conn: Deno.DatagramConn;
  readonly address: RelayAddress;
  onDatagram: (bytes: Uint8Array, from: Deno.NetAddr) => void = () => {};
  #closed = false;
  readonly #loop: Promise<void>;

  constructor() {
    const conn = Deno.listenDatagram({ hostname: LOOPBACK, port: 0, transport: "udp" });
    this.conn = conn;
    this.address = { hostname: LOOPBACK, port: (conn.addr as Deno.NetAddr).port };
    this.#loop = (async () => {
      while (!this.#closed) {
        try {
          const [b, from] = await conn.receive();
          this.onDatagram(b, from as Deno.NetAddr);
        } catch (e) {
          if (this.#closed || e instanceof Deno.errors.BadResource) return;
        }
      }
    })();
  }

  send(bytes: Uint8Array, to: RelayAddress): Promise<number> {
    return this.conn.send(bytes, { transport: "udp", hostname: to.hostname, port: to.port });
  }

  /** The next datagram (for set-up exchanges). */
  next(timeoutMs = 2_000): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("timed out waiting for a datagram")), timeoutMs);
      this.onDatagram = (b) => {
        clearTimeout(t);
        this.onDatagram = () => {};
        resolve(b);
      };
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    try {
      this.conn.close();
    } catch { /* closed */ }
    await this.#loop;
  }
}

/** How a path wraps and unwraps A's and B's datagrams. */
interface Path {
  name: string;
  /** A sends `payload` towards B. */
  aToB: (payload: Uint8Array) => Promise<unknown>;
  /** B sends `payload` towards A. */
  bToA: (payload: Uint8Array) => Promise<unknown>;
  /** The payload inside what A receives. */
  unwrapAtA: (bytes: Uint8Array) => Uint8Array;
  /** CPU time (ns) the forwarder's threads have used so far (relay worker, turnserver process). */
  forwarderCpuNs?: () => number;
  /** Our relay on the native socket: its cumulative residence histogram (ForwarderStats). */
  residence?: () => number[] | undefined;
}

/** The bucket bound under which fraction `q` of the histogram `h` lies (`<N` us, `>=16384`). */
function bucketQuantile(h: number[], q: number): string {
  const total = h.reduce((a, b) => a + b, 0);
  if (total === 0) return "NA";
  let seen = 0;
  for (let i = 0; i < h.length; i++) {
    seen += h[i];
    if (seen >= q * total) {
      const bound = RESIDENCE_BUCKETS_US[i];
      return bound === Infinity ? `>=${RESIDENCE_BUCKETS_US[i - 1]}` : `<${bound}`;
    }
  }
  return "NA";
}

// --- CPU accounting: /proc/<pid>/task/<tid>/schedstat's first field is ns on a CPU ---------

function taskIds(pid: number | "self" = "self"): string[] {
  return [...Deno.readDirSync(`/proc/${pid}/task`)].map((e) => e.name);
}

function cpuNs(pid: number | "self", tids: readonly string[]): number {
  let total = 0;
  for (const tid of tids) {
    try {
      total += Number(Deno.readTextFileSync(`/proc/${pid}/task/${tid}/schedstat`).split(" ")[0]);
    } catch { /* the thread ended */ }
  }
  return total;
}

/** This process's main thread: both bench peers of every path run on it. */
const peersCpuNs = () => cpuNs("self", [String(Deno.pid)]);

async function throughput(path: Path, a: Peer, b: Peer, seconds: number, window: number) {
  const payload = new Uint8Array(SIZE).fill(0x5a);
  payload[0] = 0xc1; // RIFT-looking, so our relay forwards it
  let received = 0;
  let sent = 0;
  let freed = 0; // window slots given back for datagrams presumed lost
  let wake: (() => void) | undefined;
  b.onDatagram = () => {
    received++;
    wake?.();
  };
  a.onDatagram = () => {};
  const end = performance.now() + seconds * 1000;
  let lastProgress = performance.now();
  let lastReceived = 0;
  while (performance.now() < end) {
    // At most one window per turn: sends and receives interleave, so "until the window is
    // full" alone could loop forever without looking at the clock.
    for (let k = 0; k < window && sent - received - freed < window; k++) {
      await path.aToB(payload);
      sent++;
    }
    await new Promise<void>((r) => {
      wake = r;
      setTimeout(r, 5);
    });
    wake = undefined;
    if (received !== lastReceived) {
      lastReceived = received;
      lastProgress = performance.now();
    } else if (performance.now() - lastProgress > 50) {
      freed = sent - received;
      lastProgress = performance.now();
    }
  }
  const elapsed = seconds + (performance.now() - end) / 1000;
  await new Promise((r) => setTimeout(r, 50));
  return { pps: received / elapsed, sent, received };
}

async function latency(path: Path, a: Peer, b: Peer, pings: number): Promise<number[]> {
  const payload = new Uint8Array(SIZE).fill(0x33);
  payload[0] = 0xc1;
  const rtts: number[] = [];
  b.onDatagram = (bytes) => void path.bToA(bytes);
  for (let i = 0; i < pings; i++) {
    const start = performance.now();
    const back = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 200);
      a.onDatagram = (bytes) => {
        if (path.unwrapAtA(bytes).length !== SIZE) return;
        clearTimeout(t);
        resolve(true);
      };
      path.aToB(payload);
    });
    if (back) rtts.push((performance.now() - start) * 1000);
  }
  return rtts.sort((x, y) => x - y);
}

const pct = (sorted: number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

// --- our relay ---------------------------------------------------------------------------

async function relayPath(
  a: Peer,
  b: Peer,
  name: string,
  socket: ForwarderSocketChoice,
): Promise<{ path: Path; stop: () => Promise<void>; socket: ForwarderSocketKind }> {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const ida = generateIdentity();
  const idb = generateIdentity();
  const now = Date.now();
  const lease = issueLease(leaseSecretKeyFromSeed(seed), {
    sessionId: "bench",
    peers: [encodePeerKey(ida.publicKey), encodePeerKey(idb.publicKey)],
    relayId: "bench-relay",
    notBefore: new Date(now - 1000),
    expiresAt: new Date(now + 3600_000),
    bandwidthBps: 100e9,
    issuer: "bench",
  });
  const before = new Set(taskIds());
  const relay = await RelayForwarder.start({
    hostname: LOOPBACK,
    port: 0,
    table: {
      relayId: "bench-relay",
      leasePublicKey: leasePublicKeyFromBytes(ed25519.getPublicKey(seed)),
    },
    socket,
    statsIntervalMs: 50,
  });
  // The forwarder is the one new "worker-N" thread (Deno names worker threads so).
  const workerTids = taskIds().filter((t) =>
    !before.has(t) && Deno.readTextFileSync(`/proc/self/task/${t}/comm`).startsWith("worker-")
  );
  for (const [peer, id] of [[a, ida], [b, idb]] as const) {
    const ack = peer.next();
    await peer.send(encodeBindRequest(lease, id, Date.now()), relay.address);
    if (decodeBindAck(await ack) === undefined) throw new Error("relay did not ack the binding");
  }
  const to = relay.address;
  return {
    path: {
      name,
      aToB: (p) => a.send(p, to),
      bToA: (p) => b.send(p, to),
      unwrapAtA: (x) => x,
      forwarderCpuNs: () => cpuNs("self", workerTids),
      residence: relay.socket === "native" ? () => relay.stats?.residenceUs : undefined,
    },
    stop: async () => {
      const s = await relay.stop();
      if (s !== undefined) {
        // Datagrams per receive call: how much the native socket's batching bought.
        console.log(
          `${name}: ${s.counters.datagramsIn} datagrams in ${s.receiveCalls} receive calls ` +
            `(${(s.counters.datagramsIn / Math.max(1, s.receiveCalls)).toFixed(2)} per call), ` +
            `send errors ${s.sendErrors}`,
        );
      }
    },
    socket: relay.socket,
  };
}

// --- coturn: a minimal anonymous TURN client (RFC 8656 Allocate + ChannelBind, ChannelData) ---

const MAGIC = 0x2112a442;

function stunMessage(type: number, attrs: [number, Uint8Array][]): Uint8Array {
  const body = attrs.reduce((n, [, v]) => n + 4 + Math.ceil(v.length / 4) * 4, 0);
  const out = new Uint8Array(20 + body);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, type);
  dv.setUint16(2, body);
  dv.setUint32(4, MAGIC);
  crypto.getRandomValues(out.subarray(8, 20));
  let off = 20;
  for (const [t, v] of attrs) {
    dv.setUint16(off, t);
    dv.setUint16(off + 2, v.length);
    out.set(v, off + 4);
    off += 4 + Math.ceil(v.length / 4) * 4;
  }
  return out;
}

function xorAddress(a: RelayAddress): Uint8Array {
  const v = new Uint8Array(8);
  const dv = new DataView(v.buffer);
  v[1] = 0x01;
  dv.setUint16(2, a.port ^ (MAGIC >>> 16));
  const ip = a.hostname.split(".").map(Number);
  dv.setUint32(4, (((ip[0] << 24) | (ip[1] << 16) | (ip[2] << 8) | ip[3]) ^ MAGIC) >>> 0);
  return v;
}

function findAttr(msg: Uint8Array, type: number): Uint8Array | undefined {
  const dv = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  for (let off = 20; off + 4 <= msg.length;) {
    const t = dv.getUint16(off);
    const len = dv.getUint16(off + 2);
    if (t === type) return msg.subarray(off + 4, off + 4 + len);
    off += 4 + Math.ceil(len / 4) * 4;
  }
  return undefined;
}

function readXorAddress(v: Uint8Array): RelayAddress {
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  const port = dv.getUint16(2) ^ (MAGIC >>> 16);
  const ip = (dv.getUint32(4) ^ MAGIC) >>> 0;
  return { hostname: [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join("."), port };
}

async function coturnPath(a: Peer, b: Peer): Promise<{ path: Path; stop: () => Promise<void> }> {
  const probe = Deno.listenDatagram({ hostname: LOOPBACK, port: 0, transport: "udp" });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const child = new Deno.Command("turnserver", {
    args: [
      "-n",
      "--no-auth",
      "--listening-ip=127.0.0.1",
      `--listening-port=${port}`,
      "--relay-ip=127.0.0.1",
      "--allow-loopback-peers",
      "--no-tls",
      "--no-dtls",
      "--no-cli",
      "--min-port=49152",
      "--max-port=65535",
      "--log-file=stdout",
      "--no-stdout-log",
      "--realm=bench",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
  };
  try {
    const server = { hostname: LOOPBACK, port };
    let response: Uint8Array | undefined;
    const transport = new Uint8Array([17, 0, 0, 0]);
    for (let i = 0; i < 40 && response === undefined; i++) {
      const r = a.next(250).catch(() => undefined);
      await a.send(stunMessage(0x0003, [[0x0019, transport]]), server); // Allocate
      response = await r;
    }
    if (response === undefined) throw new Error("turnserver did not answer Allocate");
    if (new DataView(response.buffer, response.byteOffset).getUint16(0) !== 0x0103) {
      throw new Error(
        `Allocate failed (type 0x${response[0].toString(16)}${response[1].toString(16)})`,
      );
    }
    const relayed = readXorAddress(findAttr(response, 0x0016)!);
    const channel = 0x4000;
    const chattr = new Uint8Array([channel >> 8, channel & 255, 0, 0]);
    const bound = a.next();
    await a.send(stunMessage(0x0009, [[0x000c, chattr], [0x0012, xorAddress(b.address)]]), server);
    const cb = await bound;
    if (new DataView(cb.buffer, cb.byteOffset).getUint16(0) !== 0x0109) {
      throw new Error("ChannelBind failed");
    }
    const framed = new Uint8Array(4 + SIZE);
    framed[0] = channel >> 8;
    framed[1] = channel & 255;
    framed[2] = SIZE >> 8;
    framed[3] = SIZE & 255;
    return {
      path: {
        name: "coturn",
        aToB: (p) => {
          framed.set(p, 4);
          return a.send(framed, server);
        },
        bToA: (p) => b.send(p, relayed),
        unwrapAtA: (x) => x.subarray(4, 4 + ((x[2] << 8) | x[3])),
        forwarderCpuNs: () => cpuNs(child.pid, taskIds(child.pid)),
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

function direct(a: Peer, b: Peer): Path {
  return {
    name: "direct",
    aToB: (p) => a.send(p, b.address),
    bToA: (p) => b.send(p, a.address),
    unwrapAtA: (x) => x,
  };
}

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: "string", default: "2" },
      rounds: { type: "string", default: "2" },
      window: { type: "string", default: "32" },
      pings: { type: "string", default: "500" },
      "no-coturn": { type: "boolean", default: false },
      "no-deno-relay": { type: "boolean", default: false },
      socket: { type: "string", default: "auto" },
    },
  });
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  const window = Number(values.window);
  const pings = Number(values.pings);
  const socket = values.socket as ForwarderSocketChoice;
  if (!["auto", "native", "deno"].includes(socket)) throw new Error("--socket auto|native|deno");

  // One pair of peers per path, so a binding or a TURN channel never sees another path's traffic.
  const peers: Peer[] = [];
  const pair = () => {
    const p = [new Peer(), new Peer()] as const;
    peers.push(...p);
    return p;
  };
  const stops: (() => Promise<void>)[] = [];
  try {
    const paths: { path: Path; a: Peer; b: Peer }[] = [];
    const [da, db] = pair();
    paths.push({ path: direct(da, db), a: da, b: db });
    const [ra, rb] = pair();
    const relay = await relayPath(ra, rb, "relay", socket);
    stops.push(relay.stop);
    paths.push({ path: relay.path, a: ra, b: rb });
    let haveDenoRelay = false;
    if (!values["no-deno-relay"] && relay.socket !== "deno") {
      const [xa, xb] = pair();
      const old = await relayPath(xa, xb, "relay-deno", "deno");
      stops.push(old.stop);
      paths.push({ path: old.path, a: xa, b: xb });
      haveDenoRelay = true;
    }
    let haveCoturn = false;
    if (!values["no-coturn"]) {
      try {
        const [ca, cb] = pair();
        const coturn = await coturnPath(ca, cb);
        stops.push(coturn.stop);
        paths.push({ path: coturn.path, a: ca, b: cb });
        haveCoturn = true;
      } catch (e) {
        console.error(`coturn skipped: ${(e as Error).message}`);
      }
    }

    const pps: Record<string, number[]> = {};
    const rtts: Record<string, number[]> = {};
    const fwdCpu: Record<string, number[]> = {};
    const residence: Record<string, number[]> = {};
    const peerCpu: Record<string, number[]> = {};
    for (let round = 0; round < rounds; round++) {
      for (const { path, a, b } of paths) {
        const fwd0 = path.forwarderCpuNs?.() ?? NaN;
        const peers0 = peersCpuNs();
        const t = await throughput(path, a, b, seconds, window);
        const fwdUs = ((path.forwarderCpuNs?.() ?? NaN) - fwd0) / 1000 / t.received;
        const peersUs = (peersCpuNs() - peers0) / 1000 / t.received;
        (pps[path.name] ??= []).push(t.pps);
        (fwdCpu[path.name] ??= []).push(fwdUs);
        (peerCpu[path.name] ??= []).push(peersUs);
        const settle = () => new Promise((r) => setTimeout(r, 120)); // a fresh stats post
        if (path.residence) await settle();
        const h0 = path.residence?.();
        const l = await latency(path, a, b, pings);
        if (path.residence) await settle();
        const h1 = path.residence?.();
        const pingResidence = h0 && h1 ? h1.map((x, i) => x - h0[i]) : undefined;
        if (pingResidence) {
          (residence[path.name] ??= pingResidence.map(() => 0)).forEach((_, i, acc) =>
            acc[i] += pingResidence[i]
          );
        }
        (rtts[path.name] ??= []).push(...l);
        console.log(
          `round ${round + 1} ${path.name.padEnd(10)} ${Math.round(t.pps)} pps ` +
            `(${t.received}/${t.sent} delivered), rtt p50 ${Math.round(pct(l, 0.5))} us ` +
            `p99 ${Math.round(pct(l, 0.99))} us (${l.length}/${pings} pings); CPU per ` +
            `datagram: forwarder ${fwdUs.toFixed(2)} us, both peers ${peersUs.toFixed(2)} us` +
            (pingResidence
              ? `; in-relay time of pings p50 ${bucketQuantile(pingResidence, 0.5)} us p99 ${
                bucketQuantile(pingResidence, 0.99)
              } us`
              : ""),
        );
      }
    }
    // Stop the relays now: their final counters print before the result lines.
    for (const stop of stops.splice(0)) await stop();
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const r = (name: string) => Math.round(mean(pps[name] ?? [NaN]));
    const sorted = (name: string) => (rtts[name] ?? []).sort((x, y) => x - y);
    const p = (name: string, q: number) => Math.round(pct(sorted(name), q));
    console.log(`command: deno run -A bench/relay.ts ${args.join(" ")}`.trim());
    const ratio = (x: number, y: number) => (x / y).toFixed(3);
    const na = (have: boolean, v: () => string | number) => have ? String(v()) : "NA";
    console.log(
      [
        `relay_socket=${relay.socket}`,
        `direct_pps=${r("direct")}`,
        `relay_vs_direct=${ratio(r("relay"), r("direct"))}`,
        `relay_deno_pps=${na(haveDenoRelay, () => r("relay-deno"))}`,
        `relay_vs_relay_deno=${na(haveDenoRelay, () => ratio(r("relay"), r("relay-deno")))}`,
        `relay_deno_vs_coturn=${
          na(haveDenoRelay && haveCoturn, () => ratio(r("relay-deno"), r("coturn")))
        }`,
        `relay_p50_us=${p("relay", 0.5)}`,
        `coturn_p50_us=${na(haveCoturn, () => p("coturn", 0.5))}`,
        `direct_p99_us=${p("direct", 0.99)}`,
        `relay_deno_p99_us=${na(haveDenoRelay, () => p("relay-deno", 0.99))}`,
        `relay_cpu_us=${mean(fwdCpu.relay).toFixed(2)}`,
        `relay_deno_cpu_us=${na(haveDenoRelay, () => mean(fwdCpu["relay-deno"]).toFixed(2))}`,
        `coturn_cpu_us=${na(haveCoturn, () => mean(fwdCpu.coturn).toFixed(2))}`,
        `peers_cpu_us_direct=${mean(peerCpu.direct).toFixed(2)}`,
        `relay_ping_residence_p50_us=${
          residence.relay ? bucketQuantile(residence.relay, 0.5) : "NA"
        }`,
        `relay_ping_residence_p99_us=${
          residence.relay ? bucketQuantile(residence.relay, 0.99) : "NA"
        }`,
      ].join(" "),
    );
    console.log(
      `relay_pps=${r("relay")} coturn_pps=${na(haveCoturn, () => r("coturn"))} pps_ratio=${
        na(haveCoturn, () => ratio(r("relay"), r("coturn")))
      } relay_p99_us=${p("relay", 0.99)} coturn_p99_us=${na(haveCoturn, () => p("coturn", 0.99))}`,
    );
  } finally {
    for (const stop of stops) await stop();
    await Promise.all(peers.map((x) => x.close()));
  }
}

if (import.meta.main) await main(Deno.args);
