import assert from "node:assert/strict";
import fc from "fast-check";
import { verifyLease } from "../crypto/lease.ts";
import { type GatewayClient, GatewayError, SignalingChannel } from "./client.ts";
import { parsePeerMessage, type PeerMessage } from "./schema.ts";
import { snapshotKv } from "./store.ts";
import { metricValue, newClient, startTestGateway, type TestGateway } from "./test_support.ts";

const CANDIDATES = [
  {
    kind: "host" as const,
    address: "192.168.1.20",
    port: 40000,
    priority: 2130706431,
    foundation: "h1",
  },
  {
    kind: "srflx" as const,
    address: "203.0.113.7",
    port: 51000,
    priority: 1694498815,
    foundation: "s1",
  },
];

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof GatewayError, String(e));
    assert.equal(e.code, code, e.message);
    return;
  }
  assert.fail(`expected ${code}`);
}

/** A host and a user it allows, both connected. */
async function pair(gw: TestGateway) {
  const host = await gw.peer("den-pc", "host");
  const user = await gw.peer("phone", "user");
  await host.allowClient(user.publicKey);
  const hostSig = await host.openSignaling();
  const userSig = await user.openSignaling();
  return { host, user, hostSig, userSig };
}

Deno.test("signaling: connect, offer, answer and outcome between a host and an allowed client", async () => {
  const gw = await startTestGateway();
  try {
    const { host, user, hostSig, userSig } = await pair(gw);
    assert.deepEqual(await user.listHosts(), [{
      publicKey: host.publicKey,
      name: "den-pc",
      online: true,
    }]);
    assert.deepEqual((await host.listAllowed()).map((a) => a.clientKey), [user.publicKey]);

    userSig.send({ type: "connect", to: host.publicKey, ref: "c1" });
    const connecting = await userSig.receiveType("connecting");
    assert.equal(connecting.ref, "c1");
    const connect = await hostSig.receiveType("connect");
    assert.equal(connect.sessionId, connecting.sessionId);
    assert.equal(connect.from, user.publicKey);
    assert.equal(connect.fromName, "phone");
    assert.equal(connect.needRelay, false);

    userSig.send({
      type: "offer",
      sessionId: connect.sessionId,
      candidates: CANDIDATES,
      ref: "o1",
    });
    assert.deepEqual(await userSig.receive(), { type: "ack", of: "offer", ref: "o1" });
    const offer = await hostSig.receiveType("offer");
    assert.deepEqual(offer.candidates, CANDIDATES);
    assert.equal(offer.from, user.publicKey);

    hostSig.send({ type: "answer", sessionId: connect.sessionId, candidates: [CANDIDATES[1]] });
    const answer = await userSig.receiveType("answer");
    assert.deepEqual(answer.candidates, [CANDIDATES[1]]);
    assert.equal(answer.from, host.publicKey);

    userSig.send({ type: "outcome", sessionId: connect.sessionId, result: "direct" });
    const outcome = await hostSig.receiveType("outcome");
    assert.equal(outcome.result, "direct");

    const m = await (await fetch(`${gw.url}/metrics`)).text();
    for (const t of ["connect", "offer", "answer", "outcome"]) {
      assert.equal(metricValue(m, `wavry_gateway_signaling_messages_total{type="${t}"}`), 1, t);
    }
    assert.equal(metricValue(m, 'wavry_gateway_connected_peers{kind="host"}'), 1);
    assert.equal(metricValue(m, 'wavry_gateway_connected_peers{kind="user"}'), 1);
    assert.equal(metricValue(m, 'wavry_gateway_connection_outcomes_total{result="direct"}'), 1);

    // The host goes away: it is listed offline and a connect is refused.
    await hostSig.close();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await user.listHosts())[0].online, false);
    userSig.send({ type: "connect", to: host.publicKey, ref: "c2" });
    const err = await userSig.receive();
    assert.equal(err.type === "error" && err.code, "PeerOffline");
    await userSig.close();
  } finally {
    await gw.stop();
  }
});

Deno.test("signaling: clients the host has not authorised cannot connect or join its sessions", async () => {
  const gw = await startTestGateway();
  try {
    const { host, user, hostSig, userSig } = await pair(gw);
    const stranger = await gw.peer("stranger", "user");
    const sSig = await stranger.openSignaling();
    sSig.send({ type: "connect", to: host.publicKey, ref: "x" });
    const e1 = await sSig.receive();
    assert.ok(e1.type === "error" && e1.code === "NotAuthorized" && e1.ref === "x");
    userSig.send({ type: "connect", to: host.publicKey });
    const { sessionId } = await userSig.receiveType("connecting");
    await hostSig.receiveType("connect");
    sSig.send({ type: "offer", sessionId, candidates: CANDIDATES, ref: "y" });
    const e2 = await sSig.receive();
    assert.ok(e2.type === "error" && e2.code === "UnknownSession" && e2.ref === "y");
    // Withdrawing the authorisation refuses the next connect.
    await host.disallowClient(user.publicKey);
    userSig.send({ type: "connect", to: host.publicKey });
    const e3 = await userSig.receive();
    assert.ok(e3.type === "error" && e3.code === "NotAuthorized");
    // Before auth, only auth and ping are accepted.
    const raw = await SignalingChannel.open(gw.url);
    raw.send({ type: "ping", ref: "p" });
    assert.deepEqual(await raw.receive(), { type: "pong", ref: "p" });
    raw.send({ type: "connect", to: host.publicKey });
    const e4 = await raw.receive();
    assert.ok(e4.type === "error" && e4.code === "Unauthenticated");
    raw.send({ type: "auth", token: "v4.public.nope" });
    const e5 = await raw.receive();
    assert.ok(e5.type === "error" && e5.code === "Unauthenticated");
    for (const s of [raw, sSig, hostSig, userSig]) await s.close();
  } finally {
    await gw.stop();
  }
});

Deno.test("signaling: malformed messages each get an error reply and leave KV byte-for-byte unchanged", async () => {
  // Presence refresh off for the test's duration, so nothing writes KV on a timer.
  const gw = await startTestGateway({
    presenceRefreshMs: 3_600_000,
    signalingLimit: {
      perAddress: { burst: 1e6, perSecond: 1e6 },
      perIdentity: { burst: 1e6, perSecond: 1e6 },
    },
  });
  try {
    const { host, user, hostSig, userSig } = await pair(gw);
    userSig.send({ type: "connect", to: host.publicKey });
    const { sessionId } = await userSig.receiveType("connecting");
    await hostSig.receiveType("connect");
    const stranger = await gw.peer("stranger", "user");
    const sSig = await stranger.openSignaling();
    const pre = await SignalingChannel.open(gw.url);
    const before = await snapshotKv(gw.kv);

    const handmade: string[] = [
      "",
      "not json",
      "{",
      "null",
      "[]",
      "42",
      '"offer"',
      "{}",
      '{"type":"offer"}',
      '{"type":"nope"}',
      `{"type":"offer","sessionId":"${sessionId}","candidates":[{"kind":"bogus","address":"1.2.3.4","port":1,"priority":1,"foundation":"f"}]}`,
      `{"type":"offer","sessionId":"${sessionId}","candidates":[{"kind":"host","address":"1.2.3.4","port":0,"priority":1,"foundation":"f"}]}`,
      `{"type":"offer","sessionId":"${sessionId}","candidates":[],"extra":true}`,
      `{"type":"answer","sessionId":"../../etc","candidates":[]}`,
      `{"type":"connect","to":"short"}`,
      `{"type":"outcome","sessionId":"${sessionId}","result":"maybe"}`,
      `{"type":"relay_request"}`,
      JSON.stringify({ type: "ping", pad: "x".repeat(20_000) }),
      `{"type":"offer","sessionId":"no-such-session","candidates":[]}`,
      `{"type":"connect","to":"${stranger.publicKey}"}`,
      `{"type":"auth","token":"again"}`,
    ];
    const check = async (ch: SignalingChannel, text: string) => {
      ch.sendRaw(text);
      const reply = await ch.receive();
      assert.equal(reply.type, "error", `${text.slice(0, 80)} -> ${JSON.stringify(reply)}`);
      if (reply.type === "error") {
        assert.ok(reply.code.length > 0 && reply.message.length > 0);
      }
    };
    for (const text of handmade) await check(userSig, text);
    // The stranger trying the real session and a socket that never authenticated.
    await check(sSig, JSON.stringify({ type: "offer", sessionId, candidates: CANDIDATES }));
    await check(sSig, JSON.stringify({ type: "outcome", sessionId, result: "failed" }));
    await check(pre, JSON.stringify({ type: "offer", sessionId, candidates: CANDIDATES }));

    // Generated junk: anything that does not parse as a peer message.
    const junk = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.json({ maxDepth: 3 }),
      fc.record({
        type: fc.constantFrom("offer", "answer", "connect", "outcome", "relay_request"),
        sessionId: fc.oneof(fc.constant(sessionId), fc.string({ maxLength: 80 })),
        candidates: fc.array(fc.anything({ maxDepth: 2 }), { maxLength: 3 }),
        result: fc.anything({ maxDepth: 1 }),
        x: fc.anything({ maxDepth: 1 }),
      }, { requiredKeys: ["type", "x"] }).map((o) => JSON.stringify(o)),
    ).filter((s) => !parsePeerMessage(s).ok);
    const samples = fc.sample(junk, { numRuns: 300, seed: 6 });
    for (const text of samples) await check(userSig, text);

    assert.equal(await snapshotKv(gw.kv), before, "KV changed");
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    assert.ok(metricValue(m, 'wavry_gateway_refusals_total{kind="bad_message"}') >= 300);
    assert.ok(
      metricValue(m, 'wavry_gateway_errors_total{code="BadMessage"}') +
          metricValue(m, 'wavry_gateway_errors_total{code="BadJson"}') >= 300,
    );
    assert.equal(metricValue(m, 'wavry_gateway_errors_total{code="TooLarge"}'), 1);
    for (const s of [pre, sSig, hostSig, userSig]) await s.close();
    void user;
  } finally {
    await gw.stop();
  }
});

Deno.test("signaling: the per-identity and per-address rate limits trigger and are counted", async () => {
  const gw = await startTestGateway({
    signalingLimit: {
      perIdentity: { burst: 5, perSecond: 0.001 },
      perAddress: { burst: 1000, perSecond: 0.001 },
    },
  });
  try {
    const user = await gw.peer("phone", "user");
    // The auth frame is limited per address only: the identity is not known before it.
    const sig = await user.openSignaling();
    const replies = [];
    for (let i = 0; i < 8; i++) {
      sig.send({ type: "ping", ref: `p${i}` });
      replies.push(await sig.receive());
    }
    assert.equal(replies.filter((r) => r.type === "pong").length, 5);
    const limited = replies.filter((r) => r.type === "error" && r.code === "RateLimited");
    assert.equal(limited.length, 3);
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    assert.equal(
      metricValue(m, 'wavry_gateway_refusals_total{kind="rate_limit_signaling_identity"}'),
      3,
    );
    await sig.close();
  } finally {
    await gw.stop();
  }
  const gw2 = await startTestGateway({
    signalingLimit: { perAddress: { burst: 3, perSecond: 0.001 } },
  });
  try {
    const raw = await SignalingChannel.open(gw2.url);
    for (let i = 0; i < 3; i++) {
      raw.send({ type: "ping" });
      assert.equal((await raw.receive()).type, "pong");
    }
    raw.sendRaw("junk"); // limited before it is even parsed
    const r = await raw.receive();
    assert.ok(r.type === "error" && r.code === "RateLimited");
    const m = await (await fetch(`${gw2.url}/metrics`)).text();
    assert.equal(
      metricValue(m, 'wavry_gateway_refusals_total{kind="rate_limit_signaling_address"}'),
      1,
    );
    await raw.close();
  } finally {
    await gw2.stop();
  }
});

Deno.test("pairing: a code shown on the host is single-use and expires", async () => {
  const gw = await startTestGateway({ pairingTtlMs: 60_000 });
  try {
    const host = await gw.peer("den-pc", "host");
    const a = await gw.peer("a", "user");
    const b = await gw.peer("b", "user");
    const { code } = await host.requestPairingCode();
    assert.match(code, /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/);
    // Typed in lower case without the dash: still the same code.
    const r = await a.redeemPairingCode(code.toLowerCase().replace("-", ""));
    assert.deepEqual(r, { hostKey: host.publicKey, hostName: "den-pc" });
    assert.deepEqual((await a.listHosts()).map((h) => h.publicKey), [host.publicKey]);
    const allowed = await host.listAllowed();
    assert.equal(allowed[0].clientKey, a.publicKey);
    assert.equal(allowed[0].via, "pairing");
    await rejects(b.redeemPairingCode(code), "PairingCodeInvalid");
    assert.deepEqual(await b.listHosts(), []);
    const second = await host.requestPairingCode();
    gw.advance(60_001);
    await rejects(b.redeemPairingCode(second.code), "PairingCodeInvalid");
    // Only hosts hand out codes.
    await rejects(a.requestPairingCode(), "Forbidden");
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    assert.equal(metricValue(m, 'wavry_gateway_refusals_total{kind="pairing_code_invalid"}'), 2);
  } finally {
    await gw.stop();
  }
});

Deno.test("relays: heartbeat registers, silence drops, ids belong to their identity", async () => {
  const gw = await startTestGateway({ relayTtlMs: 10_000 });
  try {
    const relay = await gw.peer("relay-1", "relay");
    const user = await gw.peer("u", "user");
    const hb = {
      relayId: "relay-eu-1",
      address: "198.51.100.4:3478",
      load: 0.25,
      capacityBps: 1e9,
    };
    const r = await relay.relayHeartbeat(hb);
    assert.equal(r.ttlMs, 10_000);
    assert.equal(r.leaseKey, (await relay.leaseKey()).publicKey);
    const listed = await user.listRelays();
    assert.equal(listed.length, 1);
    assert.equal(listed[0].relayId, "relay-eu-1");
    assert.equal(listed[0].load, 0.25);
    let m = await (await fetch(`${gw.url}/metrics`)).text();
    assert.equal(metricValue(m, "wavry_gateway_live_relays"), 1);
    gw.advance(5_000);
    await relay.relayHeartbeat({ ...hb, load: 0.5 });
    gw.advance(9_000);
    assert.equal((await user.listRelays()).length, 1, "kept alive by the second heartbeat");
    gw.advance(1_001);
    assert.deepEqual(await user.listRelays(), []);
    m = await (await fetch(`${gw.url}/metrics`)).text();
    assert.equal(metricValue(m, "wavry_gateway_live_relays"), 0);

    // Only relays send heartbeats; another relay identity cannot take the id; bad bodies refused.
    await rejects(user.relayHeartbeat(hb), "Forbidden");
    // The heartbeat loop a relay runs: immediately, then every period, until stopped.
    let beats = 0;
    const stop = relay.keepRelayAlive(() => {
      beats++;
      return { ...hb, load: 0.1 };
    }, 20);
    await new Promise((r) => setTimeout(r, 110));
    stop();
    assert.ok(beats >= 3, `only ${beats} heartbeats`);
    assert.equal((await user.listRelays())[0].load, 0.1);
    const other = await gw.peer("relay-2", "relay");
    await relay.relayHeartbeat(hb);
    await rejects(other.relayHeartbeat(hb), "RelayIdTaken");
    await rejects(relay.relayHeartbeat({ ...hb, load: 1.5 }), "BadMessage");
    await rejects(relay.relayHeartbeat({ ...hb, address: "nowhere" }), "BadMessage");
  } finally {
    await gw.stop();
  }
});

Deno.test("leases: the least-loaded live relay, issued to both peers, verifiable with /v1/lease-key", async () => {
  const gw = await startTestGateway({ relayTtlMs: 10_000, leaseBandwidthBps: 20_000_000 });
  try {
    const { host, user, hostSig, userSig } = await pair(gw);
    // No relay yet: a relay request is refused with NoRelay, and the connect still goes through.
    userSig.send({ type: "connect", to: host.publicKey, needRelay: true, ref: "c" });
    const c1 = await userSig.receiveType("connecting");
    const noRelay = await userSig.receive();
    assert.ok(noRelay.type === "error" && noRelay.code === "NoRelay" && noRelay.ref === "c");
    await hostSig.receiveType("connect");

    const r1 = await gw.peer("r1", "relay");
    const r2 = await gw.peer("r2", "relay");
    const r3 = await gw.peer("r3", "relay");
    await r1.relayHeartbeat({
      relayId: "busy",
      address: "198.51.100.1:4000",
      load: 0.9,
      capacityBps: 1e9,
    });
    await r2.relayHeartbeat({
      relayId: "idle",
      address: "198.51.100.2:4000",
      load: 0.1,
      capacityBps: 1e7,
    });
    await r3.relayHeartbeat({
      relayId: "stale",
      address: "198.51.100.3:4000",
      load: 0,
      capacityBps: 1e9,
    });
    gw.advance(6_000);
    await r1.relayHeartbeat({
      relayId: "busy",
      address: "198.51.100.1:4000",
      load: 0.9,
      capacityBps: 1e9,
    });
    await r2.relayHeartbeat({
      relayId: "idle",
      address: "198.51.100.2:4000",
      load: 0.1,
      capacityBps: 1e7,
    });
    gw.advance(6_000); // "stale" is now silent for 12 s > 10 s

    // Either peer may ask: here the host does, for the session the client opened.
    hostSig.send({ type: "relay_request", sessionId: c1.sessionId });
    const hostLease = await hostSig.receiveType("lease");
    const userLease = await userSig.receiveType("lease");
    assert.deepEqual(hostLease, userLease);
    assert.equal(hostLease.relayId, "idle");
    assert.equal(hostLease.relayAddress, "198.51.100.2:4000");
    assert.equal(hostLease.bandwidthBps, 1e7, "capped by the relay's capacity");

    const { publicKey } = await user.leaseKey();
    const v = verifyLease(hostLease.token, publicKey, {
      relayId: "idle",
      now: new Date(Date.now() + 12_000),
    });
    assert.ok(v.ok, JSON.stringify(v));
    assert.equal(v.claims.sessionId, c1.sessionId);
    assert.deepEqual(v.claims.peers, [host.publicKey, user.publicKey]);
    assert.equal(v.claims.issuer, "test-gateway");
    assert.equal(v.claims.bandwidthBps, 1e7);
    const wrong = verifyLease(hostLease.token, publicKey, { relayId: "busy", now: new Date() });
    assert.ok(!wrong.ok && wrong.kind === "LeaseWrongRelay");
    const late = verifyLease(hostLease.token, publicKey, {
      relayId: "idle",
      now: new Date(Date.parse(hostLease.expiresAt) + 60_000),
    });
    assert.ok(!late.ok && late.kind === "LeaseExpired");
    // A session token is signed by the same key but never verifies as a lease.
    const asLease = verifyLease(user.token!, publicKey, { relayId: "idle", now: new Date() });
    assert.ok(!asLease.ok && asLease.kind === "LeaseForged");
    // ... and a lease is no session token.
    const hostToken = host.token;
    host.autoRelogin = false;
    host.token = hostLease.token;
    await rejects(host.listAllowed(), "Unauthenticated");
    host.token = hostToken;

    // A connect that says a relay is needed gets the lease at once, on both sides.
    userSig.send({ type: "connect", to: host.publicKey, needRelay: true });
    const c2 = await userSig.receiveType("connecting");
    const l2 = await userSig.receiveType("lease");
    const hc = await hostSig.receiveType("connect");
    assert.equal(hc.needRelay, true);
    const hl2 = await hostSig.receiveType("lease");
    assert.equal(l2.sessionId, c2.sessionId);
    assert.equal(hl2.token, l2.token);
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    assert.equal(metricValue(m, "wavry_gateway_leases_issued_total"), 2);
    for (const s of [hostSig, userSig]) await s.close();
  } finally {
    await gw.stop();
  }
});

Deno.test("presence: refreshed while connected, gone after the socket closes", async () => {
  const gw = await startTestGateway({ presenceRefreshMs: 100 });
  try {
    const { host, user, hostSig, userSig } = await pair(gw);
    const vs0 = (await gw.kv.get(["gw", "presence", host.publicKey])).versionstamp;
    await new Promise((r) => setTimeout(r, 450)); // beyond the 300 ms record lifetime
    const p = await gw.kv.get(["gw", "presence", host.publicKey]);
    assert.ok(p.versionstamp !== null && p.versionstamp !== vs0, "rewritten by the refresh");
    assert.equal((await user.listHosts())[0].online, true);
    await hostSig.close();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await gw.kv.get(["gw", "presence", host.publicKey])).versionstamp, null);
    await userSig.close();
  } finally {
    await gw.stop();
  }
});

/** Keeps the linter from flagging the helper types as unused in some runs. */
export type _Unused = GatewayClient | PeerMessage | typeof newClient;
