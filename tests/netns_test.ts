/**
 * The real-NAT harness (tests/support/netns.ts) measured against what the
 * theory says each NAT type does: mapping, filtering, hole punching, a
 * flushed mapping, a dead link, and full teardown (also when setup fails
 * halfway, and for a crashed run's leftovers). Needs root, `ip`, `iptables`
 * and `conntrack`; docs/NETNS.md records the figures.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  listNetns,
  mappedAddress,
  NAT_TYPES,
  type NatType,
  NetnsError,
  NetnsTopology,
  type NetnsUdpSocket,
  run,
  sweepStaleNetns,
} from "./support/netns.ts";
import { running } from "./support/leftovers.ts";
import { Subprocess } from "../tools/process/subprocess.ts";

const PORT = 40_000;
const STUN = 3478;
const portOf = (addr: string) => Number(addr.slice(addr.lastIndexOf(":") + 1));
const hostOf = (addr: string) => addr.slice(0, addr.lastIndexOf(":"));

/** Asserts the topology is gone: no namespace, no process it started. */
async function assertTornDown(topo: NetnsTopology, pids: number[]): Promise<void> {
  const left = (await listNetns()).filter((n) => n.startsWith(topo.prefix));
  assert.deepEqual(left, [], "no namespace of the topology survives close()");
  for (const pid of pids) assert.ok(!running(pid), `process ${pid} is gone`);
}

/**
 * Both peers send to the other's mapping every 50 ms (simultaneously) and
 * also answer whatever source they heard the other from (a peer-reflexive
 * address, as ICE does); returns where each heard the other from.
 */
async function punch(
  a: NetnsUdpSocket,
  b: NetnsUdpSocket,
  mappedA: string,
  mappedB: string,
  timeoutMs: number,
): Promise<{ aHeard?: string; bHeard?: string }> {
  let aHeard: string | undefined, bHeard: string | undefined;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && (aHeard === undefined || bHeard === undefined)) {
    await Promise.all([a.send(aHeard ?? mappedB, "punch a"), b.send(bHeard ?? mappedA, "punch b")]);
    const [ra, rb] = await Promise.all([
      a.receive(50, (d) => d.text === "punch b"),
      b.receive(50, (d) => d.text === "punch a"),
    ]);
    aHeard ??= ra?.from;
    bHeard ??= rb?.from;
  }
  return { aHeard, bHeard };
}

Deno.test("mapping: EIM NATs keep one port-preserved mapping for every destination, symmetric ones a new port each", async () => {
  await using topo = await NetnsTopology.create({
    public: [{ name: "stun", addresses: 2 }, "other"],
    private: NAT_TYPES.map((nat, i) => ({ name: `n${i}`, nat })),
  });
  await Promise.all([topo.startUdpEcho("stun", STUN), topo.startUdpEcho("other", STUN)]);
  const servers = [
    `${topo.publicAddr("stun", 0)}:${STUN}`,
    `${topo.publicAddr("stun", 1)}:${STUN}`,
    `${topo.publicAddr("other")}:${STUN}`,
  ];
  for (const [i, nat] of NAT_TYPES.entries()) {
    const socket = await topo.udpSocket(topo.hostNs(`n${i}`), `0.0.0.0:${PORT}`);
    const seen: string[] = [];
    for (const server of servers) seen.push(await mappedAddress(socket, server));
    console.log(`${nat}: ${seen.join(" ")}`);
    for (const s of seen) assert.equal(hostOf(s), topo.routerWanAddr(`n${i}`));
    if (nat === "symmetric") {
      assert.equal(new Set(seen.map(portOf)).size, 3, `${nat}: a new port per destination`);
    } else {
      assert.deepEqual(seen.map(portOf), [PORT, PORT, PORT], `${nat}: one port-preserved mapping`);
    }
    // conntrack agrees with what the servers saw.
    const mappings = await topo.natMappings(`n${i}`);
    assert.deepEqual(
      mappings.map((m) => `${m.remote}=${m.outside}`).sort(),
      servers.map((s, k) => `${s}=${seen[k]}`).sort(),
    );
    await socket.close();
  }
});

Deno.test("filtering: which unsolicited senders reach a host that has talked to one server", async () => {
  await using topo = await NetnsTopology.create({
    public: ["stun", "other"],
    private: NAT_TYPES.map((nat, i) => ({ name: `n${i}`, nat })),
  });
  await topo.startUdpEcho("stun", STUN);
  // Same address as the server the host talked to but another port; and another address.
  const samePortless = await topo.udpSocket(
    topo.publicNs("stun"),
    `${topo.publicAddr("stun")}:3479`,
  );
  const otherAddress = await topo.udpSocket(
    topo.publicNs("other"),
    `${topo.publicAddr("other")}:3479`,
  );
  const expected: Record<NatType, { sameAddress: boolean; otherAddress: boolean }> = {
    "eim": { sameAddress: false, otherAddress: false }, // address-and-port dependent
    "symmetric": { sameAddress: false, otherAddress: false },
    "full-cone": { sameAddress: true, otherAddress: true }, // endpoint independent
    "restricted-cone": { sameAddress: true, otherAddress: false }, // address dependent
  };
  for (const [i, nat] of NAT_TYPES.entries()) {
    const socket = await topo.udpSocket(topo.hostNs(`n${i}`), `0.0.0.0:${PORT}`);
    const mapped = await mappedAddress(socket, `${topo.publicAddr("stun")}:${STUN}`);
    await samePortless.send(mapped, "same address, other port");
    await otherAddress.send(mapped, "other address");
    const got = { sameAddress: false, otherAddress: false };
    for (let d; (d = await socket.receive(300)) !== undefined;) {
      if (d.text === "same address, other port") got.sameAddress = true;
      if (d.text === "other address") got.otherAddress = true;
    }
    console.log(`${nat}: ${JSON.stringify(got)}`);
    assert.deepEqual(got, expected[nat], nat);
    await socket.close();
  }
});

Deno.test("hole punching with simultaneous sends: works where theory says, fails where it says not", async () => {
  const cases: { a: NatType; b: NatType; works: boolean }[] = [
    { a: "eim", b: "eim", works: true },
    { a: "symmetric", b: "symmetric", works: false },
    { a: "eim", b: "symmetric", works: false },
    { a: "restricted-cone", b: "symmetric", works: true },
    { a: "full-cone", b: "symmetric", works: true },
  ];
  // Each case in its own topology, all at once: parallel topologies must not collide.
  await Promise.all(cases.map(async ({ a, b, works }) => {
    await using topo = await NetnsTopology.create({
      public: ["stun"],
      private: [{ name: "a", nat: a }, { name: "b", nat: b }],
    });
    await topo.startUdpEcho("stun", STUN);
    const stun = `${topo.publicAddr("stun")}:${STUN}`;
    const [sa, sb] = await Promise.all([
      topo.udpSocket(topo.hostNs("a"), `0.0.0.0:${PORT}`),
      topo.udpSocket(topo.hostNs("b"), `0.0.0.0:${PORT}`),
    ]);
    const [ma, mb] = await Promise.all([mappedAddress(sa, stun), mappedAddress(sb, stun)]);
    const heard = await punch(sa, sb, ma, mb, works ? 3_000 : 1_500);
    console.log(`${a} <-> ${b}: ${JSON.stringify(heard)}`);
    if (works) {
      assert.equal(hostOf(heard.aHeard ?? ""), topo.routerWanAddr("b"), `${a}/${b}: a hears b`);
      assert.equal(hostOf(heard.bHeard ?? ""), topo.routerWanAddr("a"), `${a}/${b}: b hears a`);
    } else {
      assert.deepEqual(heard, { aHeard: undefined, bHeard: undefined }, `${a}/${b}: no path`);
    }
  }));
});

Deno.test("flushing a NAT drops its mappings: inbound stops until the host sends again", async () => {
  for (const nat of ["eim", "symmetric"] as const) {
    await using topo = await NetnsTopology.create({
      public: ["stun"],
      private: [{ name: "a", nat }, { name: "b", nat: "full-cone" }],
    });
    await topo.startUdpEcho("stun", STUN);
    const stun = `${topo.publicAddr("stun")}:${STUN}`;
    const a = await topo.udpSocket(topo.hostNs("a"), `0.0.0.0:${PORT}`);
    const b = await topo.udpSocket(topo.hostNs("b"), `0.0.0.0:${PORT}`);
    const before = await mappedAddress(a, stun);
    const mb = await mappedAddress(b, stun);
    await a.send(mb, "a1");
    const toB = (await b.receive(1_000, (d) => d.text === "a1"))?.from;
    assert.ok(toB !== undefined, `${nat}: b hears a`);
    await b.send(toB, "b1");
    assert.ok(await a.receive(1_000, (d) => d.text === "b1"), `${nat}: a hears b back`);

    await topo.flushNat("a");
    assert.deepEqual(await topo.natMappings("a"), [], `${nat}: conntrack is empty`);
    await b.send(toB, "b2");
    assert.equal(await a.receive(500, (d) => d.text === "b2"), undefined, `${nat}: inbound stops`);

    const after = await mappedAddress(a, stun);
    console.log(`${nat}: mapping to stun ${before} -> after flush ${after}`);
    if (nat === "eim") assert.equal(after, before, "port preservation gives the same port back");
    else assert.notEqual(after, before, "symmetric: a new random port");
    await a.send(mb, "a2");
    const again = (await b.receive(1_000, (d) => d.text === "a2"))?.from;
    console.log(`${nat}: mapping to b ${toB} -> after flush ${again}`);
    assert.ok(again !== undefined, `${nat}: a reaches b again`);
    if (nat === "eim") assert.equal(again, toB, "eim: the same mapping comes back");
    await b.send(again, "b3");
    assert.ok(await a.receive(1_000, (d) => d.text === "b3"), `${nat}: and b reaches a again`);
  }
});

Deno.test("iptables -t nat -F does not drop mappings (the nat table only sees a flow's first packet); conntrack -F does", async () => {
  await using topo = await NetnsTopology.create({
    public: ["stun"],
    private: [{ name: "a", nat: "symmetric" }],
  });
  await topo.startUdpEcho("stun", STUN);
  const stun = `${topo.publicAddr("stun")}:${STUN}`;
  const socket = await topo.udpSocket(topo.hostNs("a"), `0.0.0.0:${PORT}`);
  const before = await mappedAddress(socket, stun);
  await topo.exec(topo.routerNs("a"), "iptables", ["-t", "nat", "-F"]);
  assert.doesNotMatch(await topo.exec(topo.routerNs("a"), "iptables", ["-t", "nat", "-S"]), /MASQ/);
  assert.equal(await mappedAddress(socket, stun), before, "the flow is still translated");
  // A new flow is not translated any more: its private source cannot be answered.
  const fresh = await topo.udpSocket(topo.hostNs("a"), `0.0.0.0:${PORT + 1}`);
  await assert.rejects(mappedAddress(fresh, stun, 600), (e: NetnsError) => e.kind === "Timeout");
  await topo.flushNat("a");
  await assert.rejects(mappedAddress(socket, stun, 600), (e: NetnsError) => e.kind === "Timeout");
});

Deno.test("a bare router (no WAN firewall) is poisoned by an early unsolicited packet: a new port toward that peer", async () => {
  await using topo = await NetnsTopology.create({
    public: ["stun"],
    // b is a full cone only so that it can see which port a's packets come from.
    private: [{ name: "a", nat: "eim", firewall: false }, { name: "b", nat: "full-cone" }],
  });
  await topo.startUdpEcho("stun", STUN);
  const stun = `${topo.publicAddr("stun")}:${STUN}`;
  const a = await topo.udpSocket(topo.hostNs("a"), `0.0.0.0:${PORT}`);
  const b = await topo.udpSocket(topo.hostNs("b"), `0.0.0.0:${PORT}`);
  const ma = await mappedAddress(a, stun), mb = await mappedAddress(b, stun);
  // b's packet reaches a's router before a has sent to b: no mapping, dropped, but remembered.
  await b.send(ma, "early");
  assert.equal(await a.receive(300), undefined);
  await a.send(mb, "late");
  const from = (await b.receive(1_000, (d) => d.text === "late"))?.from;
  console.log(`a's mapping: to stun ${ma}, to b ${from}`);
  assert.equal(hostOf(from ?? ""), topo.routerWanAddr("a"));
  assert.notEqual(portOf(from ?? ""), portOf(ma), "MASQUERADE avoided the remembered tuple");
  assert.equal(await mappedAddress(a, stun), ma, "toward stun the mapping is unchanged");
});

Deno.test("killLink takes a network offline, restoreLink brings it back; udpTimeoutS expires idle mappings", async () => {
  await using topo = await NetnsTopology.create({
    public: ["stun"],
    private: [{ name: "a", nat: "eim" }],
    udpTimeoutS: 1,
  });
  await topo.startUdpEcho("stun", STUN);
  const stun = `${topo.publicAddr("stun")}:${STUN}`;
  for (const ns of [topo.routerNs("a"), topo.hostNs("a"), topo.publicNs("stun")]) {
    const socket = await topo.udpSocket(topo.hostNs("a"));
    await mappedAddress(socket, stun);
    await topo.killLink(ns);
    await assert.rejects(mappedAddress(socket, stun, 600), (e: NetnsError) => e.kind === "Timeout");
    await topo.restoreLink(ns);
    await mappedAddress(socket, stun, 3_000);
    await socket.close();
  }
  assert.ok((await topo.natMappings("a")).length > 0);
  const started = Date.now();
  while ((await topo.natMappings("a")).length > 0) {
    assert.ok(Date.now() - started < 5_000, "mappings expire after udpTimeoutS");
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log(`idle mappings gone ${Date.now() - started} ms after the last packet check`);
});

Deno.test("teardown: close() removes namespaces, rules and processes; a failed setup and a crashed run leave nothing", async () => {
  const rootRules = await run("iptables-save", []);
  let failedPrefix: string | undefined;

  const topo = await NetnsTopology.create({
    public: ["stun"],
    private: [{ name: "a", nat: "eim" }],
  });
  const echo = await topo.startUdpEcho("stun", STUN);
  const sleeper = topo.spawnIn(topo.hostNs("a"), "sleep", ["60"]);
  const socket = await topo.udpSocket(topo.hostNs("a"));
  const nat = await topo.exec(topo.routerNs("a"), "iptables", ["-t", "nat", "-S", "POSTROUTING"]);
  assert.match(nat, /MASQUERADE/);
  assert.equal(topo.namespaces.length, 4);
  await topo.close();
  await topo.close(); // idempotent
  await assertTornDown(topo, [echo.pid, sleeper.pid]);
  await assert.rejects(socket.send("203.0.113.10:1", "x")); // its process is gone
  assert.equal(
    await run("iptables-save", []),
    rootRules,
    "the root namespace's rules are untouched",
  );

  // A setup that fails halfway (an invalid LAN prefix for the second network) cleans up.
  await assert.rejects(
    NetnsTopology.create({
      public: ["stun"],
      private: [{ name: "a", nat: "eim" }, { name: "b", nat: "eim", lan: "10.0.999" }],
    }),
    (e: NetnsError) => {
      failedPrefix = e.prefix;
      return e.kind === "CommandFailed";
    },
  );
  assert.match(failedPrefix ?? "", /^wv-\d+-[0-9a-f]{4}-$/);
  assert.deepEqual(
    (await listNetns()).filter((n) => n.startsWith(failedPrefix!)),
    [],
    "a failed setup leaves no namespace",
  );

  // A crashed run's leftovers (its pid no longer runs), with a process inside, are swept.
  const dead = new Subprocess("true", "true", []);
  await dead.status;
  const stale = `wv-${dead.pid}-beef-pub`;
  await run("ip", ["netns", "add", stale]);
  const inside = new Subprocess("stale sleeper", "ip", ["netns", "exec", stale, "sleep", "60"]);
  try {
    assert.ok((await sweepStaleNetns()).includes(stale));
    assert.ok(!(await listNetns()).includes(stale));
    const { killed } = await inside.finish(2_000);
    assert.equal(killed, false, "the sweeper killed the process inside");
  } finally {
    inside.kill("SIGKILL");
    await inside.status;
    await run("ip", ["netns", "del", stale]).catch(() => {});
  }
});
