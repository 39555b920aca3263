/**
 * Real NATs for tests: Linux network namespaces, veth pairs, a bridge and
 * iptables, built by the test itself (as root) and always torn down.
 *
 * ```
 *            public segment 203.0.113.0/24 (bridge br0 in namespace <prefix>pub)
 *    ┌──────────────┬──────────────┬────────────────┬────────────────┐
 *  stun .10(.11)  relay .12 ...  router a .101     router b .102 ...   (one namespace each)
 *                                  │ NAT (iptables)  │ NAT
 *                             10.0.1.0/24       10.0.2.0/24
 *                               host a .2         host b .2
 * ```
 *
 * Every namespace name starts with `wv-<pid>-<4 hex>-`, so topologies built by
 * parallel tests never collide and {@linkcode sweepStaleNetns} can tell a
 * crashed run's leftovers (its pid is gone) from a live one's. Interface
 * names live inside the namespaces (`eth0`, `wan`, `lan`, `br0`, `p<n>`) and
 * never touch the root namespace; so do the iptables rules, which therefore
 * disappear with their router's namespace.
 *
 * A process cannot move one socket into another namespace, so code runs
 * inside one as a subprocess: {@linkcode NetnsTopology.spawnIn} for servers,
 * {@linkcode NetnsTopology.udpSocket} for a UDP socket the test drives.
 *
 * See docs/NETNS.md for what each NAT type measurably does.
 *
 * @module
 */
import { Subprocess } from "../../tools/process/subprocess.ts";
import { Waiters } from "../../tools/process/waiters.ts";

/** Every namespace this harness creates starts with this. */
export const NETNS_PREFIX = "wv-";

/**
 * The NAT a private network sits behind (mapping / filtering, RFC 4787 terms):
 * - `"eim"`: MASQUERADE, port-preserving when the port is free: endpoint-independent
 *   mapping; Linux conntrack filters address-and-port dependently (a port-restricted cone);
 * - `"symmetric"`: MASQUERADE `--random-fully`: a new random port per destination
 *   (address-and-port dependent mapping), same filtering;
 * - `"full-cone"`: `"eim"` plus a DNAT of all inbound UDP to the network's first host:
 *   endpoint-independent filtering;
 * - `"restricted-cone"`: `"eim"` plus a DNAT of inbound UDP only from addresses the
 *   network has sent to (`-m recent`): address-dependent filtering.
 */
export type NatType = "eim" | "symmetric" | "full-cone" | "restricted-cone";

/** The NAT types, in the order the docs describe them. */
export const NAT_TYPES: readonly NatType[] = ["eim", "symmetric", "full-cone", "restricted-cone"];

/** A server on the public segment. */
export interface PublicHostSpec {
  /** How tests refer to it, e.g. "stun". */
  name: string;
  /** Consecutive public addresses it gets (RFC 5780 STUN wants 2); default 1. */
  addresses?: number;
}

/** A private network behind its own NAT router. */
export interface PrivateNetSpec {
  /** How tests refer to it, e.g. "a". */
  name: string;
  nat: NatType;
  /** Hosts on the LAN (10.0.N.2, .3, ...); default 1. The cone DNATs go to the first. */
  hosts?: number;
  /** First three octets of the LAN /24; default `10.0.<index+1>`. Equal LANs are allowed. */
  lan?: string;
  /**
   * Drop new inbound flows addressed to the router itself (`INPUT -i wan
   * --ctstate NEW -j DROP`), as home routers do; default true. With false
   * (a bare router) such a packet is accepted, finds no socket and leaves a
   * conntrack entry behind, whose tuple MASQUERADE then avoids: the host's
   * next flow to that sender gets a new port (docs/NETNS.md, "poisoning").
   */
  firewall?: boolean;
}

/** What {@linkcode NetnsTopology.create} builds. */
export interface TopologyOptions {
  public?: (string | PublicHostSpec)[];
  private?: PrivateNetSpec[];
  /**
   * Seconds an idle UDP mapping lives on every router (conntrack's
   * `nf_conntrack_udp_timeout` and `_stream`); the kernel defaults (30 s / 120 s) otherwise.
   */
  udpTimeoutS?: number;
}

/** Why a harness operation failed. */
export type NetnsErrorKind =
  | "NotRoot"
  | "MissingTool"
  | "CommandFailed"
  | "UnknownName"
  | "Timeout";

/** An error with a kind, so callers can tell "not root" from "ip failed". */
export class NetnsError extends Error {
  /** Set when {@linkcode NetnsTopology.create} failed: the prefix of what it built, then removed. */
  prefix?: string;

  constructor(readonly kind: NetnsErrorKind, message: string) {
    super(`${kind}: ${message}`);
    this.name = "NetnsError";
  }
}

/** One conntrack entry of a router, as "IP:PORT" strings. */
export interface NatMapping {
  /** The private host's address and port. */
  inside: string;
  /** The remote endpoint. */
  remote: string;
  /** The router's public address and port the remote sees. */
  outside: string;
}

/** A datagram a {@linkcode NetnsUdpSocket} received. */
export interface Datagram {
  from: string;
  data: Uint8Array;
  /** `data` as UTF-8. */
  text: string;
}

const PUBLIC_NET = "203.0.113";
const PUBLIC_FIRST = 10;
const ROUTER_FIRST = 101;
const SUPPORT = new URL(".", import.meta.url).pathname;

/** Runs `cmd args` to completion; throws a CommandFailed NetnsError unless it exits 0. */
export async function run(cmd: string, args: string[]): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
      .output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new NetnsError(
        "MissingTool",
        `${cmd} is not installed (apt-get install iproute2 iptables conntrack)`,
      );
    }
    throw e;
  }
  const decoder = new TextDecoder();
  if (!out.success) {
    throw new NetnsError(
      "CommandFailed",
      `${cmd} ${args.join(" ")} exited ${out.code}: ${decoder.decode(out.stderr).trim()}`,
    );
  }
  return decoder.decode(out.stdout);
}

/** Names from `ip netns list` ("name (id: 3)" lines). */
export async function listNetns(): Promise<string[]> {
  const text = await run("ip", ["netns", "list"]);
  return text.split("\n").map((l) => l.trim().split(/\s+/)[0]).filter((n) => n !== "");
}

function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Kills every process inside namespace `ns` and deletes it; a missing namespace is fine. */
export async function destroyNetns(ns: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    let pids: number[] = [];
    try {
      pids = (await run("ip", ["netns", "pids", ns])).split(/\s+/).filter((p) => p !== "").map(
        Number,
      );
    } catch {
      return; // No such namespace (never created, or already gone).
    }
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  await run("ip", ["netns", "del", ns]);
}

/**
 * Deletes namespaces a crashed earlier run left behind: those named
 * `wv-<pid>-...` whose pid no longer runs. Live runs' namespaces are kept.
 * Returns the names it deleted.
 */
export async function sweepStaleNetns(): Promise<string[]> {
  const swept: string[] = [];
  for (const ns of await listNetns()) {
    const m = /^wv-(\d+)-[0-9a-f]{4}-/.exec(ns);
    if (m === null || alive(Number(m[1]))) continue;
    await destroyNetns(ns);
    swept.push(ns);
  }
  return swept;
}

function randomTag(): string {
  return [...crypto.getRandomValues(new Uint8Array(2))].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

interface PublicNode {
  ns: string;
  addrs: string[];
}

interface PrivateNet {
  spec: PrivateNetSpec;
  router: string;
  wan: string;
  lanPrefix: string;
  hosts: string[];
}

/**
 * A built topology. Create it with {@linkcode NetnsTopology.create}; always
 * `await close()` it (or `await using`), which stops everything started in it
 * and deletes its namespaces, and is safe to call twice.
 */
export class NetnsTopology implements AsyncDisposable {
  /** The namespace-name prefix, `wv-<pid>-<hex>-`. */
  readonly prefix: string;
  readonly #created: string[] = [];
  readonly #public = new Map<string, PublicNode>();
  readonly #private = new Map<string, PrivateNet>();
  readonly #children: Subprocess[] = [];
  readonly #sockets = new Set<NetnsUdpSocket>();
  #closed: Promise<void> | undefined;

  private constructor() {
    this.prefix = `${NETNS_PREFIX}${Deno.pid}-${randomTag()}-`;
  }

  /**
   * Sweeps stale leftovers, then builds the topology; on any failure halfway
   * it tears down what it built and rethrows.
   */
  static async create(options: TopologyOptions): Promise<NetnsTopology> {
    if (Deno.uid() !== 0) throw new NetnsError("NotRoot", "network namespaces need root");
    await sweepStaleNetns();
    const topology = new NetnsTopology();
    try {
      await topology.#build(options);
    } catch (e) {
      await topology.close().catch(() => {});
      if (e instanceof NetnsError) e.prefix = topology.prefix;
      throw e;
    }
    return topology;
  }

  async #addNetns(role: string): Promise<string> {
    const ns = `${this.prefix}${role}`;
    this.#created.push(ns); // Before creating: a half-made namespace is still deleted.
    await run("ip", ["netns", "add", ns]);
    await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
    return ns;
  }

  /** A veth from the bridge (port `port`) to `ns`'s `ifname` with `cidr` on it. */
  async #plugPublic(pub: string, port: string, ns: string, ifname: string, cidrs: string[]) {
    await run("ip", [
      "-n",
      pub,
      "link",
      "add",
      port,
      "type",
      "veth",
      "peer",
      "name",
      ifname,
      "netns",
      ns,
    ]);
    await run("ip", ["-n", pub, "link", "set", port, "master", "br0", "up"]);
    for (const cidr of cidrs) await run("ip", ["-n", ns, "addr", "add", cidr, "dev", ifname]);
    await run("ip", ["-n", ns, "link", "set", ifname, "up"]);
  }

  async #build(options: TopologyOptions): Promise<void> {
    const publicSpecs = (options.public ?? []).map((p) =>
      typeof p === "string" ? { name: p, addresses: 1 } : { addresses: 1, ...p }
    );
    const privateSpecs = options.private ?? [];
    const names = [...publicSpecs.map((p) => p.name), ...privateSpecs.map((p) => p.name)];
    for (const name of names) {
      if (!/^[a-z0-9]{1,12}$/.test(name) || names.indexOf(name) !== names.lastIndexOf(name)) {
        throw new NetnsError("UnknownName", `node names must be unique [a-z0-9]{1,12}: ${name}`);
      }
    }
    const pub = await this.#addNetns("pub");
    await run("ip", ["-n", pub, "link", "add", "br0", "type", "bridge"]);
    await run("ip", ["-n", pub, "link", "set", "br0", "up"]);
    let next = PUBLIC_FIRST, port = 0;
    for (const spec of publicSpecs) {
      const ns = await this.#addNetns(`s-${spec.name}`);
      const addrs = Array.from({ length: spec.addresses }, (_, i) => `${PUBLIC_NET}.${next + i}`);
      next += spec.addresses;
      if (next >= ROUTER_FIRST) throw new NetnsError("UnknownName", "too many public addresses");
      await this.#plugPublic(pub, `p${port++}`, ns, "eth0", addrs.map((a) => `${a}/24`));
      this.#public.set(spec.name, { ns, addrs });
    }
    for (const [index, spec] of privateSpecs.entries()) {
      const router = await this.#addNetns(`r-${spec.name}`);
      const wan = `${PUBLIC_NET}.${ROUTER_FIRST + index}`;
      const lanPrefix = spec.lan ?? `10.0.${index + 1}`;
      await this.#plugPublic(pub, `p${port++}`, router, "wan", [`${wan}/24`]);
      await run("ip", ["-n", router, "link", "add", "lan", "type", "bridge"]);
      await run("ip", ["-n", router, "addr", "add", `${lanPrefix}.1/24`, "dev", "lan"]);
      await run("ip", ["-n", router, "link", "set", "lan", "up"]);
      const hosts: string[] = [];
      for (let h = 0; h < (spec.hosts ?? 1); h++) {
        const host = await this.#addNetns(`h-${spec.name}${h}`);
        await run("ip", [
          "-n",
          router,
          "link",
          "add",
          `l${h}`,
          "type",
          "veth",
          "peer",
          "name",
          "eth0",
          "netns",
          host,
        ]);
        await run("ip", ["-n", router, "link", "set", `l${h}`, "master", "lan", "up"]);
        await run("ip", ["-n", host, "addr", "add", `${lanPrefix}.${h + 2}/24`, "dev", "eth0"]);
        await run("ip", ["-n", host, "link", "set", "eth0", "up"]);
        await run("ip", ["-n", host, "route", "add", "default", "via", `${lanPrefix}.1`]);
        hosts.push(host);
      }
      const net: PrivateNet = { spec, router, wan, lanPrefix, hosts };
      this.#private.set(spec.name, net);
      await this.#configureNat(net, options.udpTimeoutS);
    }
  }

  async #configureNat(net: PrivateNet, udpTimeoutS: number | undefined): Promise<void> {
    const { router, spec } = net;
    const inRouter = (cmd: string, ...args: string[]) =>
      run("ip", ["netns", "exec", router, cmd, ...args]);
    await inRouter("sysctl", "-qw", "net.ipv4.ip_forward=1");
    if (udpTimeoutS !== undefined) {
      await inRouter("sysctl", "-qw", `net.netfilter.nf_conntrack_udp_timeout=${udpTimeoutS}`);
      await inRouter(
        "sysctl",
        "-qw",
        `net.netfilter.nf_conntrack_udp_timeout_stream=${udpTimeoutS}`,
      );
    }
    const masquerade = ["-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"];
    if (spec.nat === "symmetric") masquerade.push("--random-fully");
    await inRouter("iptables", ...masquerade);
    if (spec.firewall ?? true) {
      await inRouter(
        "iptables",
        ...["-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"],
      );
    }
    const first = `${net.lanPrefix}.2`;
    if (spec.nat === "full-cone") {
      await inRouter(
        "iptables",
        ...["-t", "nat", "-A", "PREROUTING", "-i", "wan", "-p", "udp"],
        ...["-j", "DNAT", "--to-destination", first],
      );
    } else if (spec.nat === "restricted-cone") {
      // Remember every address the LAN sends to; let new inbound flows in only from those.
      await inRouter(
        "iptables",
        ...["-A", "FORWARD", "-o", "wan", "-m", "recent", "--name", "wvout", "--rdest", "--set"],
      );
      await inRouter(
        "iptables",
        ...["-t", "nat", "-A", "PREROUTING", "-i", "wan", "-p", "udp"],
        ...["-m", "recent", "--name", "wvout", "--rsource", "--rcheck"],
        ...["-j", "DNAT", "--to-destination", first],
      );
    }
  }

  #publicNode(name: string): PublicNode {
    const node = this.#public.get(name);
    if (node === undefined) throw new NetnsError("UnknownName", `no public host ${name}`);
    return node;
  }

  #net(name: string): PrivateNet {
    const net = this.#private.get(name);
    if (net === undefined) throw new NetnsError("UnknownName", `no private network ${name}`);
    return net;
  }

  /** Every namespace this topology created (for leak checks). */
  get namespaces(): readonly string[] {
    return [...this.#created];
  }

  /** The public segment's bridge namespace. */
  get publicSegment(): string {
    return `${this.prefix}pub`;
  }

  /** Namespace of public host `name`. */
  publicNs(name: string): string {
    return this.#publicNode(name).ns;
  }

  /** The `index`-th public address of public host `name` (no port). */
  publicAddr(name: string, index = 0): string {
    const addr = this.#publicNode(name).addrs[index];
    if (addr === undefined) throw new NetnsError("UnknownName", `${name} has no address #${index}`);
    return addr;
  }

  /** Namespace of host `index` on private network `net`. */
  hostNs(net: string, index = 0): string {
    const ns = this.#net(net).hosts[index];
    if (ns === undefined) throw new NetnsError("UnknownName", `${net} has no host #${index}`);
    return ns;
  }

  /** Private (LAN) address of host `index` on `net`. */
  hostAddr(net: string, index = 0): string {
    this.hostNs(net, index);
    return `${this.#net(net).lanPrefix}.${index + 2}`;
  }

  /** Namespace of `net`'s NAT router. */
  routerNs(net: string): string {
    return this.#net(net).router;
  }

  /** Public (WAN) address of `net`'s router: what NATed packets come from. */
  routerWanAddr(net: string): string {
    return this.#net(net).wan;
  }

  /** The LAN address of `net`'s router (its hosts' default gateway). */
  routerLanAddr(net: string): string {
    return `${this.#net(net).lanPrefix}.1`;
  }

  /** The NAT type of `net`. */
  natType(net: string): NatType {
    return this.#net(net).spec.nat;
  }

  /** Runs `cmd args` inside `ns` to completion and returns its stdout (throws unless exit 0). */
  exec(ns: string, cmd: string, args: string[]): Promise<string> {
    this.#owned(ns);
    return run("ip", ["netns", "exec", ns, cmd, ...args]);
  }

  #owned(ns: string): void {
    if (!this.#created.includes(ns)) {
      throw new NetnsError("UnknownName", `${ns} is not a namespace of this topology`);
    }
  }

  /**
   * Starts `cmd args` inside `ns` as a managed child (stdout/stderr read as
   * lines); it is killed at {@linkcode close} if still running.
   */
  spawnIn(
    ns: string,
    cmd: string,
    args: string[],
    options: { name?: string; env?: Record<string, string>; cwd?: string } = {},
  ): Subprocess {
    this.#owned(ns);
    if (this.#closed !== undefined) throw new NetnsError("UnknownName", "topology is closed");
    const child = new Subprocess(
      options.name ?? `${cmd} in ${ns}`,
      "ip",
      ["netns", "exec", ns, cmd, ...args],
      { env: options.env, cwd: options.cwd },
    );
    this.#children.push(child);
    return child;
  }

  /** Starts `deno run <flags> script args` inside `ns` (flags default `-A`); see {@linkcode spawnIn}. */
  spawnDeno(
    ns: string,
    script: string,
    args: string[] = [],
    options: { flags?: string[]; name?: string; env?: Record<string, string>; cwd?: string } = {},
  ): Subprocess {
    return this.spawnIn(ns, Deno.execPath(), [
      "run",
      ...(options.flags ?? ["-A"]),
      script,
      ...args,
    ], {
      name: options.name ?? `${script} in ${ns}`,
      env: options.env,
      cwd: options.cwd,
    });
  }

  /**
   * Starts the UDP echo server (tests/support/netns_udp_echo.ts) in public
   * host `name` on `port` of each of its addresses; resolves once bound.
   * Each reply is JSON `{"observed":"IP:PORT",...}`: see {@linkcode mappedAddress}.
   */
  async startUdpEcho(name: string, port: number, timeoutMs = 10_000): Promise<Subprocess> {
    const node = this.#publicNode(name);
    const child = this.spawnDeno(
      node.ns,
      `${SUPPORT}netns_udp_echo.ts`,
      node.addrs.map((a) => `${a}:${port}`),
      { flags: ["--no-config", "--unstable-net", "--allow-net"], name: `udp echo on ${name}` },
    );
    await child.waitForLine((l) => l.startsWith("ready "), timeoutMs);
    return child;
  }

  /**
   * A UDP socket bound to `bind` ("IP:PORT", default any address, any port)
   * inside `ns`, driven from this test (tests/support/netns_udp_probe.ts);
   * closed at {@linkcode close} if the test has not closed it.
   */
  async udpSocket(ns: string, bind = "0.0.0.0:0", timeoutMs = 10_000): Promise<NetnsUdpSocket> {
    this.#owned(ns);
    const socket = new NetnsUdpSocket(ns, bind, () => this.#sockets.delete(socket));
    this.#sockets.add(socket);
    await socket.ready(timeoutMs);
    return socket;
  }

  /**
   * Drops every NAT mapping on `net`'s router (`conntrack -F` in its
   * namespace: conntrack tables are per namespace). The rules stay; the next
   * packet makes a new mapping.
   */
  async flushNat(net: string): Promise<void> {
    await this.exec(this.routerNs(net), "conntrack", ["-F"]);
  }

  /**
   * `net`'s router's current UDP mappings, from conntrack: the flows its LAN
   * started (entries for unsolicited inbound packets are not mappings and
   * are left out).
   */
  async natMappings(net: string): Promise<NatMapping[]> {
    const lan = `${this.#net(net).lanPrefix}.`;
    const text = await run("ip", [
      "netns",
      "exec",
      this.routerNs(net),
      "conntrack",
      "-L",
      "-p",
      "udp",
    ]);
    const out: NatMapping[] = [];
    for (const line of text.split("\n")) {
      const f = [...line.matchAll(/(src|dst|sport|dport)=(\S+)/g)].map((m) => m[2]);
      if (f.length < 8 || !f[0].startsWith(lan)) continue;
      // Original direction: src dst sport dport; reply direction: src dst sport dport.
      out.push({
        inside: `${f[0]}:${f[2]}`,
        remote: `${f[1]}:${f[3]}`,
        outside: `${f[5]}:${f[7]}`,
      });
    }
    return out;
  }

  /** The namespace and interface that connect `ns` to the rest (router: `wan`). */
  #uplink(ns: string): string {
    this.#owned(ns);
    if ([...this.#private.values()].some((n) => n.router === ns)) return "wan";
    if (ns === this.publicSegment) throw new NetnsError("UnknownName", "the segment has no link");
    return "eth0";
  }

  /**
   * Takes `ns`'s uplink down: a router's WAN (its whole network goes
   * offline), or a host's / public server's `eth0`. Packets to it are lost.
   */
  async killLink(ns: string): Promise<void> {
    await run("ip", ["-n", ns, "link", "set", this.#uplink(ns), "down"]);
  }

  /** Brings the uplink {@linkcode killLink} took down back up (and a host's default route). */
  async restoreLink(ns: string): Promise<void> {
    await run("ip", ["-n", ns, "link", "set", this.#uplink(ns), "up"]);
    for (const net of this.#private.values()) {
      const i = net.hosts.indexOf(ns);
      if (i >= 0) {
        await run("ip", ["-n", ns, "route", "replace", "default", "via", `${net.lanPrefix}.1`]);
      }
    }
  }

  /**
   * Stops every socket and child started here (SIGTERM, then SIGKILL after
   * 2 s), kills anything else left inside the namespaces and deletes them.
   * Idempotent. Throws (after doing all of it) if a namespace survived.
   */
  close(): Promise<void> {
    this.#closed ??= this.#teardown();
    return this.#closed;
  }

  async #teardown(): Promise<void> {
    await Promise.allSettled([...this.#sockets].map((s) => s.close()));
    await Promise.allSettled(this.#children.map(async (child) => {
      child.kill("SIGTERM");
      await child.finish(2_000);
    }));
    const errors: string[] = [];
    for (const ns of [...this.#created].reverse()) {
      await destroyNetns(ns).catch((e) => errors.push(`${ns}: ${(e as Error).message}`));
    }
    const left = (await listNetns()).filter((n) => n.startsWith(this.prefix));
    if (left.length > 0 || errors.length > 0) {
      throw new NetnsError(
        "CommandFailed",
        `teardown left ${left.join(", ") || "nothing"}; ${errors.join("; ")}`,
      );
    }
  }

  /** Same as {@linkcode close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/**
 * A UDP socket living in another namespace (a netns_udp_probe.ts child),
 * sending and receiving on the test's behalf. Received datagrams queue up
 * until {@linkcode receive} takes them.
 */
export class NetnsUdpSocket {
  /** The namespace it lives in. */
  readonly ns: string;
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #queue: Datagram[] = [];
  readonly #errors: string[] = [];
  readonly #waiters = new Waiters();
  readonly #onClose: () => void;
  readonly #pumped: Promise<void>;
  #local: string | undefined;
  #ended = false;
  #closing: Promise<void> | undefined;

  /** Use {@linkcode NetnsTopology.udpSocket}. */
  constructor(ns: string, bind: string, onClose: () => void) {
    this.ns = ns;
    this.#onClose = onClose;
    this.#child = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        ns,
        Deno.execPath(),
        "run",
        "--no-config",
        "--unstable-net",
        "--allow-net",
        `${SUPPORT}netns_udp_probe.ts`,
        bind,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#pumped = this.#pump();
  }

  async #pump(): Promise<void> {
    let buffer = "";
    try {
      for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          this.#line(buffer.slice(0, newline));
          buffer = buffer.slice(newline + 1);
        }
        this.#waiters.notify();
      }
    } catch {
      // The child went away.
    }
    this.#ended = true;
    this.#waiters.notify();
  }

  #line(line: string): void {
    if (line.startsWith("ready ")) {
      this.#local = line.slice(6).trim();
      return;
    }
    try {
      const event = JSON.parse(line) as { ev: string; from: string; data: string; message: string };
      if (event.ev === "recv") {
        const data = Uint8Array.from(atob(event.data), (c) => c.charCodeAt(0));
        this.#queue.push({ from: event.from, data, text: new TextDecoder().decode(data) });
      } else if (event.ev === "error") this.#errors.push(event.message);
    } catch {
      this.#errors.push(`unparsable probe line: ${line}`);
    }
  }

  #until(done: () => boolean, timeoutMs: number): Promise<boolean> {
    return this.#waiters.wait(
      () => done() || (this.#ended ? false : undefined),
      timeoutMs,
      () => false,
    );
  }

  /** Resolves once the socket is bound. */
  async ready(timeoutMs: number): Promise<void> {
    if (!await this.#until(() => this.#local !== undefined, timeoutMs)) {
      await this.close();
      throw new NetnsError(
        "Timeout",
        `UDP probe in ${this.ns} did not bind within ${timeoutMs} ms`,
      );
    }
  }

  /** The bound local address, e.g. "0.0.0.0:40000". */
  get local(): string {
    return this.#local ?? "";
  }

  /** The bound local port. */
  get port(): number {
    return Number(this.local.slice(this.local.lastIndexOf(":") + 1));
  }

  /** Send errors the socket reported (ICMP unreachable surfaces as these), oldest first. */
  get errors(): readonly string[] {
    return this.#errors;
  }

  /** Sends one datagram to `to` ("IP:PORT"); strings go as UTF-8. */
  async send(to: string, data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const line = JSON.stringify({ op: "send", to, data: toBase64(bytes) }) + "\n";
    await this.#writer.write(new TextEncoder().encode(line));
  }

  /**
   * Takes the oldest queued datagram matching `filter` (default any), waiting
   * up to `timeoutMs`; undefined if none came.
   */
  async receive(
    timeoutMs: number,
    filter: (d: Datagram) => boolean = () => true,
  ): Promise<Datagram | undefined> {
    let found = -1;
    await this.#until(() => (found = this.#queue.findIndex(filter)) >= 0, timeoutMs);
    return found >= 0 ? this.#queue.splice(found, 1)[0] : undefined;
  }

  /** Drops every queued datagram. */
  clear(): void {
    this.#queue.length = 0;
  }

  /** Closes the socket and reaps its process; idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#writer.close().catch(() => {});
      const timer = setTimeout(() => {
        try {
          this.#child.kill("SIGKILL");
        } catch {
          // Already exited.
        }
      }, 2_000);
      await this.#child.status;
      clearTimeout(timer);
      await this.#pumped;
      this.#onClose();
    })();
    return this.#closing;
  }
}

/**
 * Asks the echo server at `echo` ("IP:PORT") what source address it sees for
 * `socket`: the NAT mapping toward that server. Retries every 200 ms until
 * `timeoutMs`; throws a Timeout NetnsError if no answer comes.
 */
export async function mappedAddress(
  socket: NetnsUdpSocket,
  echo: string,
  timeoutMs = 3_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await socket.send(echo, "whoami");
    const reply = await socket.receive(200, (d) => d.from === echo);
    if (reply !== undefined) return (JSON.parse(reply.text) as { observed: string }).observed;
  }
  throw new NetnsError("Timeout", `no answer from echo server ${echo} within ${timeoutMs} ms`);
}
