import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import fc from "fast-check";
import {
  candidatePriority,
  hostCandidate,
  pairPriority,
  parseOffer,
  toOffer,
} from "./candidate.ts";
import { IceAgent, type IceEvent } from "./agent.ts";
import { IcePeerSim, SIM_RELAY, type SimNatSpec } from "./sim_nat.ts";
import { encodeStun, newTransactionId, StunClass, StunMethod } from "../stun/message.ts";

const EIM: SimNatSpec = { mapping: "endpoint", filtering: "addressPort" }; // Linux MASQUERADE
const RESTRICTED: SimNatSpec = { mapping: "endpoint", filtering: "address" };
const FULL_CONE: SimNatSpec = { mapping: "endpoint", filtering: "endpoint" };
const SYMMETRIC: SimNatSpec = { mapping: "addressPort", filtering: "addressPort" };

function selected(events: IceEvent[]) {
  const e = events.find((e) => e.type === "selected");
  return e?.type === "selected" ? e : undefined;
}

function failed(events: IceEvent[]) {
  const e = events.find((e) => e.type === "failed");
  return e?.type === "failed" ? e : undefined;
}

function connect(opts: ConstructorParameters<typeof IcePeerSim>[0], runMs = 12_000): IcePeerSim {
  const sim = new IcePeerSim(opts);
  sim.gather();
  sim.exchange();
  sim.run(runMs);
  return sim;
}

/** Both selected the same path: A's remote is B's local as seen by A and vice versa. */
function assertSamePath(sim: IcePeerSim): void {
  const a = selected(sim.eventsA)!, b = selected(sim.eventsB)!;
  assert(a && b, "both sides selected a pair");
  assertEquals(a.pair.relayed, b.pair.relayed);
  if (!a.pair.relayed) {
    assertEquals(a.pair.remote.address, b.pair.local.address);
    assertEquals(b.pair.remote.address, a.pair.local.address);
  }
}

Deno.test("candidate priority and pair priority follow RFC 8445 §5.1.2 / §6.1.2.3", () => {
  assertEquals(candidatePriority("host"), 126 * 2 ** 24 + 65535 * 256 + 255);
  assertEquals(candidatePriority("relay", 0), 255);
  assert(candidatePriority("host") > candidatePriority("prflx"));
  assert(candidatePriority("prflx") > candidatePriority("srflx"));
  assert(candidatePriority("srflx") > candidatePriority("relay"));
  // G > D sets the low bit; the formula is symmetric otherwise.
  assertEquals(pairPriority(10, 5), (5n << 32n) + 20n + 1n);
  assertEquals(pairPriority(5, 10), (5n << 32n) + 20n);
  const max = 0xffffffff;
  assertEquals(pairPriority(max, max), (BigInt(max) << 32n) + 2n * BigInt(max));
});

Deno.test("parseOffer: round-trips a candidate and refuses bad ones with a kind", () => {
  const c = hostCandidate({ hostname: "10.0.0.2", port: 5000, family: "IPv4" });
  const back = parseOffer(JSON.parse(JSON.stringify(toOffer(c))));
  assert(back.ok);
  assertEquals(back.value.address, c.address);
  assertEquals(back.value.priority, c.priority);
  const bad: [unknown, string][] = [
    [null, "BadType"],
    [{ ...toOffer(c), type: "turn" }, "BadType"],
    [{ ...toOffer(c), ip: "example.com" }, "BadAddress"],
    [{ ...toOffer(c), port: 0 }, "BadPort"],
    [{ ...toOffer(c), port: 1.5 }, "BadPort"],
    [{ ...toOffer(c), priority: 2 ** 32 }, "BadPriority"],
    [{ ...toOffer(c), foundation: "a b" }, "BadFoundation"],
    [{ ...toOffer(c), foundation: "x".repeat(33) }, "BadFoundation"],
  ];
  for (const [v, kind] of bad) {
    const r = parseOffer(v);
    assert(!r.ok && r.error.kind === kind, `${JSON.stringify(v)} → ${kind}`);
  }
  fc.assert(fc.property(fc.anything(), (v) => {
    const r = parseOffer(v);
    return typeof r.ok === "boolean";
  }));
});

Deno.test("public ↔ public: the host pair is selected by both", () => {
  const sim = connect({});
  assertSamePath(sim);
  const a = selected(sim.eventsA)!;
  assertEquals(a.pair.local.type, "host");
  assertEquals(a.pair.remote.type, "host");
  assertEquals(sim.a.state, "connected");
  assertEquals(sim.b.state, "connected");
  assert(a.at < 200, `selected after ${a.at} ms`);
});

Deno.test("EIM ↔ EIM (port-restricted filtering, like MASQUERADE): direct server-reflexive pair", () => {
  const sim = connect({ natA: EIM, natB: EIM });
  assertSamePath(sim);
  const a = selected(sim.eventsA)!, b = selected(sim.eventsB)!;
  assertEquals(a.pair.relayed, false);
  assertEquals(a.pair.remote.address.hostname, "203.0.113.102");
  assertEquals(b.pair.remote.address.hostname, "203.0.113.101");
  assert(a.at < 1000, `selected after ${a.at} ms`);
});

Deno.test("EIM ↔ EIM, B learns A's candidates 300 ms late: A's first checks are filtered, retransmissions connect", () => {
  const sim = new IcePeerSim({ natA: EIM, natB: EIM });
  sim.gather();
  sim.b.setRemoteCredentials(sim.a.localCredentials);
  sim.a.setRemoteCredentials(sim.b.localCredentials);
  for (const c of sim.b.localCandidates) sim.a.addRemoteCandidate(c);
  sim.run(300, false);
  assertEquals(sim.a.state, "checking");
  assert(sim.filtered > 0, "A's checks hit B's NAT filter");
  for (const c of sim.a.localCandidates) sim.b.addRemoteCandidate(c);
  sim.run(10_000);
  assertSamePath(sim);
  assertEquals(selected(sim.eventsA)!.pair.relayed, false);
});

Deno.test("EIM ↔ symmetric with port-restricted filtering: no direct pair, failed at the direct bound", () => {
  const sim = connect({ natA: EIM, natB: SYMMETRIC });
  const fa = failed(sim.eventsA), fb = failed(sim.eventsB);
  assert(fa && fb, "both fail");
  assertEquals(selected(sim.eventsA), undefined);
  const bound = sim.a.timing.directBoundMs;
  assert(fa.at >= bound && fa.at <= bound + 100, `A failed at ${fa.at} ms`);
  assertEquals(sim.delivered, 0, "not one check crossed between the peers");
});

Deno.test("restricted-cone ↔ symmetric: direct through a peer-reflexive candidate", () => {
  const sim = connect({ natA: RESTRICTED, natB: SYMMETRIC });
  assertSamePath(sim);
  const a = selected(sim.eventsA)!;
  // B's port toward A is new: A learns it from B's check (peer-reflexive).
  assertEquals(a.pair.remote.type, "prflx");
  assert(sim.a.counters.peerReflexive >= 1);
  assertEquals(a.pair.relayed, false);
});

Deno.test("full-cone ↔ symmetric: direct", () => {
  const sim = connect({ natA: FULL_CONE, natB: SYMMETRIC });
  assertSamePath(sim);
  assertEquals(selected(sim.eventsA)!.pair.relayed, false);
});

Deno.test("symmetric ↔ symmetric: fails without a relay", () => {
  const sim = connect({ natA: SYMMETRIC, natB: SYMMETRIC });
  assert(failed(sim.eventsA) && failed(sim.eventsB));
  assertEquals(sim.delivered, 0);
});

Deno.test("symmetric ↔ symmetric with a relay: the relay pair, not before the direct bound", () => {
  const sim = connect({ natA: SYMMETRIC, natB: SYMMETRIC, relay: true });
  assertSamePath(sim);
  const a = selected(sim.eventsA)!, b = selected(sim.eventsB)!;
  assertEquals(a.pair.relayed, true);
  assertEquals(a.pair.sendTo, SIM_RELAY);
  const bound = sim.a.timing.directBoundMs;
  assert(a.at >= bound && a.at < bound + 300, `relay selected at ${a.at} ms`);
  assert(b.at >= bound);
});

Deno.test("EIM ↔ EIM with a relay available: the direct pair wins", () => {
  const sim = connect({ natA: EIM, natB: EIM, relay: true });
  assertSamePath(sim);
  const a = selected(sim.eventsA)!;
  assertEquals(a.pair.relayed, false);
  assert(a.at < 1000);
});

Deno.test("30 % loss of check packets: EIM ↔ EIM still connects, for 20 seeds", () => {
  for (let seed = 1; seed <= 20; seed++) {
    const sim = connect({ natA: EIM, natB: EIM, peerLoss: 0.3, seed });
    assertSamePath(sim);
    const a = selected(sim.eventsA)!;
    assert(a.at < sim.a.timing.directBoundMs, `seed ${seed}: selected at ${a.at} ms`);
  }
});

Deno.test("role conflict: both controlling or both controlled settle on one controller and one pair", () => {
  for (const role of ["controlling", "controlled"] as const) {
    const sim = connect({
      natA: EIM,
      natB: EIM,
      agentA: { role, tieBreaker: 5n },
      agentB: { role, tieBreaker: 9n },
    });
    assertSamePath(sim);
    // The larger tie-breaker (B) ends controlling.
    assertEquals(sim.b.role, "controlling", `start ${role}`);
    assertEquals(sim.a.role, "controlled", `start ${role}`);
    assert(sim.a.counters.roleSwitches + sim.b.counters.roleSwitches >= 1);
  }
});

Deno.test("consent freshness: checks keep going, and the peer vanishing loses consent after 30 s", () => {
  const sim = connect({ natA: EIM, natB: EIM });
  assertSamePath(sim);
  const startedAt = sim.now;
  sim.run(20_000, false);
  assertEquals(sim.a.state, "connected");
  assert(sim.a.counters.consentSuccesses >= 3, "consent checks succeeded");
  // Timers only wake the agents when there is work: no busy polling in 20 s.
  assert(sim.iterations < 200, `${sim.iterations} wake-ups`);
  // B's process is gone: a fresh agent without credentials answers nothing.
  const cut = sim.now;
  // deno-lint-ignore no-explicit-any
  (sim as any).b = new IceAgent({ role: "controlled" });
  sim.run(40_000, false);
  const lost = sim.eventsA.find((e) => e.type === "consentLost");
  assert(lost, "consent lost");
  assertEquals(sim.a.state, "disconnected");
  assert(
    lost.at - cut <= 30_000 + 100 && lost.at - cut >= 24_000,
    `lost ${lost.at - cut} ms after cut`,
  );
  assert(lost.at > startedAt);
});

Deno.test("fast-check: garbage and forged STUN never throw and never change the selected pair", () => {
  const sim = connect({ natA: EIM, natB: EIM });
  assertSamePath(sim);
  const before = JSON.stringify(sim.a.selectedPair);
  const attacker = { hostname: "192.0.2.66", port: 6666, family: "IPv4" as const };
  const forged = (cls: number, attrs: Parameters<typeof encodeStun>[0]["attributes"]) =>
    encodeStun({
      method: StunMethod.Binding,
      messageClass: cls as 0,
      transactionId: newTransactionId(),
      attributes: attrs,
    }, { fingerprint: true });
  const ufragA = sim.a.localCredentials.ufrag;
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.uint8Array({ minLength: 20, maxLength: 200 }).map((b) => {
          b[0] &= 3;
          b.set([0x21, 0x12, 0xa4, 0x42], 4);
          return b;
        }),
        fc.constantFrom(StunClass.Request, StunClass.SuccessResponse, StunClass.ErrorResponse).map(
          (cls) =>
            forged(cls, [
              { kind: "Username", value: `${ufragA}:evil` },
              { kind: "Priority", priority: 1 },
              { kind: "UseCandidate" },
              { kind: "IceControlling", tieBreaker: 2n ** 64n - 1n },
              { kind: "XorMappedAddress", address: attacker },
            ]),
        ),
      ),
      fc.boolean(),
      (bytes, fromPeer) => {
        const from = fromPeer ? selected(sim.eventsA)!.pair.sendTo : attacker;
        sim.a.handleDatagram(bytes, from, 0, sim.now);
        sim.a.handleTimeout(sim.now);
        while (sim.a.pollTransmit(sim.now));
        return JSON.stringify(sim.a.selectedPair) === before && sim.a.role === "controlling" &&
          sim.a.state === "connected";
      },
    ),
    { numRuns: 2000 },
  );
  assert((sim.a.counters.drops.BadIntegrity ?? 0) > 0, "forged requests were refused");
});

Deno.test("garbage injected during the checks does not stop EIM ↔ EIM from connecting", () => {
  let n = 0;
  const sim = connect({
    natA: EIM,
    natB: EIM,
    inject: () => {
      const bytes = crypto.getRandomValues(new Uint8Array(40));
      bytes[0] &= 3;
      return [{
        to: n++ % 2 ? "A" : "B",
        from: { hostname: "192.0.2.1", port: 9, family: "IPv4" },
        bytes,
      }];
    },
  });
  assertSamePath(sim);
});

Deno.test("unauthenticated requests get no response and no state; bad remote input is refused", () => {
  const agent = new IceAgent({ role: "controlled" });
  agent.addLocalCandidate(hostCandidate({ hostname: "10.0.0.1", port: 1, family: "IPv4" }));
  const req = encodeStun({
    method: StunMethod.Binding,
    messageClass: StunClass.Request,
    transactionId: newTransactionId(),
    attributes: [{ kind: "Username", value: `${agent.localCredentials.ufrag}:x` }, {
      kind: "Priority",
      priority: 5,
    }],
  }, { integrityKey: new TextEncoder().encode("wrong password 123456789"), fingerprint: true });
  assertEquals(
    agent.handleDatagram(req, { hostname: "10.0.0.9", port: 9, family: "IPv4" }, 0, 0),
    false,
  );
  assertEquals(agent.pollTransmit(0), undefined);
  assertEquals(agent.remoteCandidates.length, 0);
  assertEquals(agent.counters.drops.BadIntegrity, 1);
  const creds = agent.setRemoteCredentials({ ufrag: "ab", pwd: "short" });
  assert(!creds.ok && creds.error.kind === "BadCredentials");
  assertEquals(agent.state, "new");
  // RIFT bytes (first byte ≥ 0xC0) are not the agent's business.
  assertEquals(
    agent.handleDatagram(new Uint8Array([0xc1, 1, 2, 3]), {
      hostname: "10.0.0.9",
      port: 9,
      family: "IPv4",
    }),
    false,
  );
  assertEquals(agent.counters.drops.NotStun, 1);
});
