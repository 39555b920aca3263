/**
 * ICE across real Linux NAT routers (tests/support/netns.ts): a STUN server
 * on the public segment, two peers (tests/support/ice_peer.ts) on private
 * networks behind NAT routers; this test moves their offers (the gateway's
 * job later). Needs root, `ip`, `iptables`, `conntrack`. docs/CONNECT.md
 * records the outcomes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type NatType, NetnsTopology } from "./support/netns.ts";
import { IcePeerProcess, type PeerEvent } from "./support/ice_peer_process.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const STUN_PORT = 3478;
const PEER_PORT = 40000;
/** The agent's default direct-path bound (IceTiming.directBoundMs), ms. */
const DIRECT_BOUND_MS = 4000;

interface Run {
  topo: NetnsTopology;
  a: IcePeerProcess;
  b: IcePeerProcess;
  outA: PeerEvent;
  outB: PeerEvent;
  offerA: PeerEvent;
  offerB: PeerEvent;
}

/** Starts the STUN server in the public namespace `stun`; prefers `./wavry stun` when present. */
async function startStun(topo: NetnsTopology): Promise<void> {
  const listen = `${topo.publicAddr("stun")}:${STUN_PORT}`;
  let main = false;
  try {
    main = Deno.statSync(`${ROOT}relay/stun_main.ts`).isFile;
  } catch {
    main = false;
  }
  const child = main
    ? topo.spawnDeno(topo.publicNs("stun"), `${ROOT}relay/stun_main.ts`, ["--listen", listen], {
      cwd: ROOT,
    })
    : topo.spawnDeno(topo.publicNs("stun"), `${ROOT}tests/support/ice_stun_server.ts`, [listen], {
      cwd: ROOT,
    });
  await child.waitForLine((l) => l.startsWith("ready ") || l.includes("listening"), 20_000);
}

/**
 * Builds the topology, starts both peers, exchanges offers, and waits for
 * each peer's outcome (`selected` or `failed`). The caller closes everything.
 */
async function connectAcross(
  natA: NatType,
  natB: NatType,
  body: (r: Run) => Promise<void>,
  extraArgs: string[] = [],
) {
  await using topo = await NetnsTopology.create({
    public: ["stun"],
    private: [{ name: "a", nat: natA }, { name: "b", nat: natB }],
  });
  await startStun(topo);
  const stun = `${topo.publicAddr("stun")}:${STUN_PORT}`;
  const bind = `0.0.0.0:${PEER_PORT}`;
  await using a = new IcePeerProcess(
    `peer a (${natA})`,
    ["--role", "controlling", "--stun", stun, "--bind", bind, ...extraArgs],
    topo.hostNs("a"),
  );
  await using b = new IcePeerProcess(
    `peer b (${natB})`,
    ["--role", "controlled", "--stun", stun, "--bind", bind, ...extraArgs],
    topo.hostNs("b"),
  );
  const [offerA, offerB] = await Promise.all([
    a.next((e) => e.ev === "offer", 30_000),
    b.next((e) => e.ev === "offer", 30_000),
  ]);
  await Promise.all([
    a.send({ op: "remote", offer: offerB.offer }),
    b.send({ op: "remote", offer: offerA.offer }),
  ]);
  const done = (e: PeerEvent) => e.ev === "selected" || e.ev === "failed";
  const [outA, outB] = await Promise.all([a.next(done, 20_000), b.next(done, 20_000)]);
  console.log(
    `${natA} ↔ ${natB}: a ${outA.ev} in ${Math.round(outA.elapsedMs)} ms` +
      (outA.pair
        ? ` (${outA.pair.local.type} ${fmt(outA.pair.local.address)} → ${outA.pair.remote.type} ${
          fmt(outA.pair.remote.address)
        })`
        : ` (${outA.reason})`) +
      `; b ${outB.ev} in ${Math.round(outB.elapsedMs)} ms` +
      (outB.pair
        ? ` (${outB.pair.local.type} ${fmt(outB.pair.local.address)} → ${outB.pair.remote.type} ${
          fmt(outB.pair.remote.address)
        })`
        : ` (${outB.reason})`),
  );
  await body({ topo, a, b, outA, outB, offerA, offerB });
}

// deno-lint-ignore no-explicit-any
const fmt = (a: any) => `${a.hostname}:${a.port}`;

/** Host listens, client connects: a RIFT handshake and `count` control messages echoed. */
async function riftOver(r: Run, count = 5): Promise<PeerEvent> {
  await r.b.send({ op: "listen" });
  await r.a.send({ op: "connect", count });
  const done = await r.a.next((e) => e.ev === "riftDone" || e.ev === "error", 20_000);
  assert.equal(done.ev, "riftDone", JSON.stringify(done));
  console.log(
    `RIFT over the selected pair: handshake + ${done.echoed}/${done.sent} control echoes in ${
      Math.round(done.ms)
    } ms`,
  );
  await r.b.next((e) => e.ev === "accepted", 5000);
  return done;
}

Deno.test("ICE across NATs 1: eim ↔ eim selects the direct pair; RIFT runs over it", async () => {
  await connectAcross("eim", "eim", async (r) => {
    assert.equal(r.outA.ev, "selected");
    assert.equal(r.outB.ev, "selected");
    assert.equal(r.outA.pair.relayed, false);
    // A talks to B's router's public address on B's (preserved) port, and vice versa.
    assert.deepEqual(fmt(r.outA.pair.remote.address), `${r.topo.routerWanAddr("b")}:${PEER_PORT}`);
    assert.deepEqual(fmt(r.outB.pair.remote.address), `${r.topo.routerWanAddr("a")}:${PEER_PORT}`);
    assert.equal(r.outA.pair.local.type, "srflx");
    assert.ok(r.outA.elapsedMs < DIRECT_BOUND_MS, `selected after ${r.outA.elapsedMs} ms`);
    const done = await riftOver(r, 5);
    assert.equal(done.echoed, 5, "every control message came back");
  });
});

Deno.test("ICE across NATs 2: eim ↔ symmetric finds no direct pair and fails at the bound", async () => {
  await connectAcross("eim", "symmetric", (r) => {
    // b's port toward a is new and random; a's router filters by address and port, and
    // b's router drops a's checks to the port b used toward STUN: nothing crosses.
    assert.equal(r.outA.ev, "failed");
    assert.equal(r.outB.ev, "failed");
    for (const o of [r.outA, r.outB]) {
      assert.ok(
        o.elapsedMs >= DIRECT_BOUND_MS - 100 && o.elapsedMs < DIRECT_BOUND_MS + 1000,
        `failed after ${o.elapsedMs} ms`,
      );
    }
    return Promise.resolve();
  });
});

Deno.test("ICE across NATs 2b: restricted-cone ↔ symmetric: direct through b's peer-reflexive port", async () => {
  await connectAcross("restricted-cone", "symmetric", async (r) => {
    assert.equal(r.outA.ev, "selected");
    assert.equal(r.outB.ev, "selected");
    // a learns b's port toward it only from b's check: a peer-reflexive candidate.
    assert.equal(r.outA.pair.remote.type, "prflx");
    assert.equal(r.outA.pair.remote.address.hostname, r.topo.routerWanAddr("b"));
    assert.notEqual(r.outA.pair.remote.address.port, r.offerB.srflx.port);
    const done = await riftOver(r, 5);
    assert.equal(done.echoed, 5);
  });
});

Deno.test("ICE across NATs 3: symmetric ↔ symmetric: no direct pair within the bound (relay needed)", async () => {
  await connectAcross("symmetric", "symmetric", (r) => {
    assert.equal(r.outA.ev, "failed");
    assert.equal(r.outB.ev, "failed");
    assert.ok(r.outA.elapsedMs < DIRECT_BOUND_MS + 1000, `failed after ${r.outA.elapsedMs} ms`);
    return Promise.resolve();
  });
});

/** The peer's counters, asked for now (events are kept, so match the newest). */
async function stats(p: IcePeerProcess): Promise<PeerEvent> {
  const before = p.events.length;
  await p.send({ op: "stats" });
  return await p.next((e) => e.ev === "stats" && p.events.indexOf(e) >= before, 5000);
}

Deno.test("ICE across NATs 1b: eim ↔ eim, both routers' mappings flushed: consent and RIFT carry on", async () => {
  await connectAcross("eim", "eim", async (r) => {
    assert.equal(r.outA.ev, "selected");
    await Promise.all([r.topo.flushNat("a"), r.topo.flushNat("b")]);
    const [a0, b0] = await Promise.all([stats(r.a), stats(r.b)]);
    // Consent checks every 0.8–1.2 s: after 4 s each side has had several answered.
    await new Promise((done) => setTimeout(done, 4000));
    const [a1, b1] = await Promise.all([stats(r.a), stats(r.b)]);
    console.log(
      `after the flush: consent answered a ${
        a1.agent.consentSuccesses - a0.agent.consentSuccesses
      }, b ${b1.agent.consentSuccesses - b0.agent.consentSuccesses} in 4 s`,
    );
    assert.equal(a1.state, "connected");
    assert.equal(b1.state, "connected");
    assert.ok(a1.agent.consentSuccesses > a0.agent.consentSuccesses, "a's consent renewed");
    assert.ok(b1.agent.consentSuccesses > b0.agent.consentSuccesses, "b's consent renewed");
    // The eim routers gave port 40000 back: the selected pair still carries RIFT.
    const mapped = await r.topo.natMappings("a");
    assert.ok(mapped.some((m) => m.outside.endsWith(`:${PEER_PORT}`)), JSON.stringify(mapped));
    const done = await riftOver(r, 5);
    assert.equal(done.echoed, 5);
  }, ["--consent-interval", "1000"]);
});
