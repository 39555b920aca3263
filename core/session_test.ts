import assert from "node:assert/strict";
import fc from "fast-check";
import { type LinkConfig } from "./sim/link.ts";
import { sessionPair } from "./sim/pair.ts";
import { Session } from "./session.ts";
import { CloseCode, maxVideoPayload } from "./frames.ts";
import { generateIdentity } from "../crypto/identity.ts";
import { Rng } from "./sim/rng.ts";
import { decodeHeader, PacketType } from "./wire.ts";

const CLEAN: LinkConfig = {
  delayMs: 10,
  jitterMs: 0,
  reorder: false,
  duplicateProbability: 0,
  loss: { kind: "none" },
};

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("handshake on a clean link: both sides learn each other's identity", () => {
  const pair = sessionPair({ seed: 1, link: CLEAN });
  const done = pair.net.runUntilCondition(
    () =>
      pair.initiator.session.state === "established" &&
      pair.responder.session.state === "established",
    1_000,
  );
  assert.ok(done);
  const [a] = pair.initiator.eventsOf("established");
  const [b] = pair.responder.eventsOf("established");
  assert.deepEqual(a.peerIdentity, pair.identities.responder.publicKey);
  assert.deepEqual(b.peerIdentity, pair.identities.initiator.publicKey);
  // INIT (10 ms), RESPONSE (20 ms), FINISH (30 ms): one and a half round trips.
  assert.equal(pair.net.now, 30);
  assert.equal(pair.initiator.session.peerConnectionId, pair.responder.session.localConnectionId);
  assert.equal(pair.responder.session.peerConnectionId, pair.initiator.session.localConnectionId);
});

Deno.test("control and input messages arrive once, in order; ping measures the RTT", () => {
  const pair = sessionPair({ seed: 2, link: CLEAN });
  pair.net.runUntil(100);
  for (let i = 0; i < 20; i++) {
    assert.ok(pair.initiator.session.sendControl(text(`control ${i}`)));
    assert.ok(pair.responder.session.sendInput(text(`key ${i}`)));
  }
  pair.net.runUntil(2_000);
  assert.deepEqual(
    pair.responder.eventsOf("control").map((e) => str(e.data)),
    Array.from({ length: 20 }, (_, i) => `control ${i}`),
  );
  assert.deepEqual(
    pair.initiator.eventsOf("input").map((e) => str(e.data)),
    Array.from({ length: 20 }, (_, i) => `key ${i}`),
  );
  const rtt = pair.initiator.session.rtt;
  assert.ok(rtt.samples > 0);
  assert.equal(rtt.latestMs, 20);
  // Both clocks are the simulator's: the estimated offset is zero.
  assert.equal(pair.initiator.session.clockOffsetUs, 0);
});

Deno.test("an input event carries the arrival time of the datagram that delivered it", () => {
  const pair = sessionPair({ seed: 2, link: CLEAN });
  pair.net.runUntil(100);
  assert.ok(pair.responder.session.sendInput(text("key")));
  pair.net.runUntil(300);
  const [input] = pair.initiator.eventsOf("input");
  assert.equal(str(input.data), "key");
  // Sent at 100 ms over a 10 ms link.
  assert.equal(input.at, 110);
});

Deno.test("a video frame is split, reassembled and delivered once", () => {
  const pair = sessionPair({ seed: 3, link: CLEAN });
  pair.net.runUntil(100);
  const data = new Rng(9).bytes(50_000);
  pair.initiator.session.sendVideoFrame({ frameId: 7, captureTimeUs: 123, keyframe: true, data });
  pair.net.runUntil(500);
  const frames = pair.responder.eventsOf("video-frame");
  assert.equal(frames.length, 1);
  assert.deepEqual(frames[0].frame.data, data);
  assert.equal(frames[0].frame.keyframe, true);
  assert.equal(frames[0].frame.captureTimeUs, 123);
  // The receiver reported receive times for delay-based congestion control.
  const feedback = pair.initiator.eventsOf("feedback");
  assert.ok(feedback.length > 0);
  const reported = feedback.flatMap((f) => f.report.arrivals).length;
  assert.ok(reported >= Math.ceil(50_000 / pair.initiator.session.maxVideoPayload));
});

Deno.test("a frame missing a fragment is given up at its deadline and a keyframe is requested", () => {
  let dropped = false;
  const pair = sessionPair({
    seed: 4,
    link: CLEAN,
    middlebox: {
      intercept(datagram, direction, now) {
        // Drop exactly one full (video) datagram, after the handshake's padded INIT.
        const full = 52 + maxVideoPayload();
        if (!dropped && now >= 100 && direction === "a->b" && datagram.length === full) {
          dropped = true;
          return { forward: [] };
        }
        return { forward: [datagram] };
      },
    },
  });
  pair.net.runUntil(100);
  pair.initiator.session.sendVideoFrame({
    frameId: 1,
    captureTimeUs: 0,
    keyframe: false,
    data: new Uint8Array(5_000),
  });
  pair.net.runUntil(1_000);
  assert.ok(dropped);
  assert.deepEqual(pair.responder.eventsOf("video-frame-lost").map((e) => e.frameId), [1]);
  assert.equal(pair.initiator.eventsOf("keyframe-request").length, 1);
});

Deno.test("an identity the initiator does not accept ends the handshake with a clear reason", () => {
  const expected = generateIdentity();
  const pair = sessionPair({
    seed: 5,
    link: CLEAN,
    initiatorAccepts: (peer) => peer.every((b, i) => b === expected.publicKey[i]),
  });
  pair.net.runUntil(1_000);
  const [closed] = pair.initiator.eventsOf("closed");
  assert.equal(closed.code, CloseCode.PeerNotAllowed);
  assert.equal(pair.initiator.session.state, "closed");
  assert.equal(pair.initiator.eventsOf("established").length, 0);
});

Deno.test("an identity the responder does not accept is refused", () => {
  const pair = sessionPair({ seed: 6, link: CLEAN, responderAccepts: () => false });
  pair.net.runUntil(1_000);
  const [closed] = pair.responder.eventsOf("closed");
  assert.equal(closed.code, CloseCode.PeerNotAllowed);
  assert.equal(pair.responder.eventsOf("established").length, 0);
});

Deno.test("a handshake that gets no answer times out", () => {
  const pair = sessionPair({
    seed: 7,
    link: CLEAN,
    middlebox: { intercept: () => ({ forward: [] }) },
  });
  pair.net.runUntil(20_000);
  const [closed] = pair.initiator.eventsOf("closed");
  assert.equal(closed.code, CloseCode.HandshakeTimeout);
  // Backoff: 200, 400, 800, then every 1000 ms until 15 s.
  const retransmissions = pair.initiator.session.stats.handshakeRetransmissions;
  assert.ok(retransmissions >= 12 && retransmissions <= 16, `${retransmissions}`);
});

Deno.test("a silent peer is closed after the idle timeout; close reaches the peer", () => {
  let cut = false;
  const pair = sessionPair({
    seed: 8,
    link: CLEAN,
    config: { idleTimeoutMs: 2_000 },
    middlebox: { intercept: (d) => ({ forward: cut ? [] : [d] }) },
  });
  pair.net.runUntil(500);
  cut = true;
  pair.net.runUntil(5_000);
  assert.equal(pair.initiator.eventsOf("closed")[0].code, CloseCode.IdleTimeout);
  assert.equal(pair.responder.eventsOf("closed")[0].code, CloseCode.IdleTimeout);

  const pair2 = sessionPair({ seed: 9, link: CLEAN });
  pair2.net.runUntil(500);
  pair2.initiator.session.close(CloseCode.Normal, "bye", pair2.net.now);
  pair2.net.runUntil(1_000);
  const [closed] = pair2.responder.eventsOf("closed");
  assert.deepEqual(closed, { type: "closed", code: 0, reason: "bye", byPeer: true });
});

Deno.test("the responder never sends more than three times what it received before completion", () => {
  const responder = Session.accept({ identity: generateIdentity() }, 0);
  const initiator = Session.connect({ identity: generateIdentity() }, 0);
  const init = initiator.pollTransmit(0)!;
  assert.equal(init.length, 1200, "INIT is padded to the full datagram");
  let received = 0;
  let sent = 0;
  for (let i = 0; i < 10; i++) {
    responder.handleDatagram(init, i);
    received += init.length;
    for (let d; (d = responder.pollTransmit(i)) !== undefined;) sent += d.length;
  }
  assert.ok(sent > 0 && sent <= 3 * received);
  // A short INIT (not padded) is refused by the header codec's size rules or the padding rule.
  const short = init.subarray(0, 100);
  const fresh = Session.accept({ identity: generateIdentity() }, 0);
  fresh.handleDatagram(short, 0);
  let answer = 0;
  for (let d; (d = fresh.pollTransmit(0)) !== undefined;) answer += d.length;
  assert.ok(answer <= 3 * short.length);
});

Deno.test("an INIT of an unknown version gets a version negotiation the initiator acts on", () => {
  const responder = Session.accept({ identity: generateIdentity() }, 0);
  const initiator = Session.connect({ identity: generateIdentity() }, 0);
  const init = initiator.pollTransmit(0)!.slice();
  init[0] = 0xc0 | 9; // a future version
  assert.equal(responder.handleDatagram(init, 1), "UnknownVersion");
  const negotiation = responder.pollTransmit(1)!;
  assert.ok(negotiation.length <= init.length);
  // Our initiator speaks v1, which the negotiation lists: so this one is a forgery for it.
  assert.equal(initiator.handleDatagram(negotiation, 2), "ForgedVersionNegotiation");
  assert.equal(initiator.state, "handshaking");
  // A negotiation that lists only other versions ends the attempt with a clear reason.
  const other = negotiation.slice();
  other[other.length - 1] = 7;
  assert.equal(initiator.handleDatagram(other, 3), undefined);
  const closed = initiator.pollEvent();
  assert.equal(closed?.type, "closed");
  assert.equal(closed?.type === "closed" && closed.code, CloseCode.VersionMismatch);
});

Deno.test("arbitrary bytes never throw and never change a session (twin property)", () => {
  // Two identical runs from one seed; one of them also receives garbage. Everything the
  // sessions send and report must be identical: the garbage changed nothing.
  const garbage = fc.array(
    fc.record({
      at: fc.integer({ min: 1, max: 400 }),
      to: fc.constantFrom("a" as const, "b" as const),
      bytes: fc.oneof(
        fc.uint8Array({ maxLength: 1300 }),
        // Near-valid: a RIFT marker, a known type, then noise.
        fc.tuple(fc.integer({ min: 0, max: 5 }), fc.uint8Array({ minLength: 14, maxLength: 1200 }))
          .map(([type, rest]) => new Uint8Array([0xc1, type, ...rest])),
      ),
    }),
    { maxLength: 40 },
  );
  fc.assert(
    fc.property(garbage, (injections) => {
      const run = (inject: boolean) => {
        const pair = sessionPair({ seed: 42, link: { ...CLEAN, jitterMs: 3 } });
        if (inject) {
          for (const g of injections) pair.net.inject(g.to, g.bytes, g.at);
        }
        pair.net.runUntil(50);
        pair.initiator.session.sendControl(text("hello"));
        pair.initiator.session.sendVideoFrame({
          frameId: 1,
          captureTimeUs: 5,
          keyframe: true,
          data: new Uint8Array(3000).fill(7),
        });
        pair.net.runUntil(600);
        const accepted = (e: typeof pair.initiator) =>
          e.verdicts.filter((v) => v.drop === undefined).map((v) => [v.at, [...v.datagram]]);
        return {
          a: pair.initiator.events,
          b: pair.responder.events,
          aAccepted: accepted(pair.initiator),
          bAccepted: accepted(pair.responder),
          injectedAccepted: injections.filter((g) =>
            (g.to === "a" ? pair.initiator : pair.responder).verdicts.some((v) =>
              v.datagram === g.bytes && v.drop === undefined
            )
          ).length,
        };
      };
      const clean = run(false);
      const attacked = run(true);
      assert.equal(attacked.injectedAccepted, 0);
      assert.deepEqual(attacked.a, clean.a);
      assert.deepEqual(attacked.b, clean.b);
      assert.deepEqual(attacked.aAccepted, clean.aAccepted);
      assert.deepEqual(attacked.bAccepted, clean.bAccepted);
    }),
    { numRuns: 60 },
  );
});

Deno.test("every kind of bad datagram is typed and counted", () => {
  const pair = sessionPair({ seed: 10, link: CLEAN });
  pair.net.runUntil(100);
  const s = pair.responder.session;
  const sealed = pair.initiator.session;
  sealed.sendControl(text("x"));
  const genuine = sealed.pollTransmit(100)!;
  const header = decodeHeader(genuine);
  assert.ok(header.ok);
  assert.equal(header.value.type, PacketType.Sealed);

  const flipped = genuine.slice();
  flipped[genuine.length - 1] ^= 1;
  const wrongConnection = genuine.slice();
  wrongConnection[7] ^= 1;
  const oversized = new Uint8Array(1500);
  oversized.set(genuine);
  const unknownType = genuine.slice();
  unknownType[1] = 0x3f;

  assert.equal(s.handleDatagram(new Uint8Array([1, 2, 3]), 101), "NotRift");
  assert.equal(s.handleDatagram(genuine.subarray(0, 10), 101), "Truncated");
  assert.equal(s.handleDatagram(oversized, 101), "Oversized");
  assert.equal(s.handleDatagram(unknownType, 101), "UnknownType");
  assert.equal(s.handleDatagram(wrongConnection, 101), "WrongConnection");
  assert.equal(s.handleDatagram(flipped, 101), "Unauthenticated");
  assert.equal(s.handleDatagram(genuine, 101), undefined);
  assert.equal(s.handleDatagram(genuine, 102), "Replayed");
  const stats = s.stats;
  for (
    const kind of [
      "NotRift",
      "Truncated",
      "Oversized",
      "UnknownType",
      "WrongConnection",
      "Unauthenticated",
      "Replayed",
    ] as const
  ) {
    assert.equal(stats.dropped[kind], 1, kind);
  }
});

Deno.test("stats count packets this side received and lost", () => {
  let n = 0;
  const pair = sessionPair({
    seed: 11,
    link: CLEAN,
    middlebox: {
      // Drop every fifth sealed packet from the initiator once established.
      intercept: (d, direction, now) =>
        direction === "a->b" && now >= 100 && d[1] === 0x04 && ++n % 5 === 0
          ? { forward: [] }
          : { forward: [d] },
    },
  });
  pair.net.runUntil(100);
  pair.initiator.session.sendVideoFrame({
    frameId: 1,
    captureTimeUs: 0,
    keyframe: true,
    data: new Uint8Array(100 * maxVideoPayload()),
  });
  pair.net.runUntil(1_000);
  const stats = pair.responder.session.stats;
  assert.ok(stats.packetsLost >= 19 && stats.packetsLost <= 22, `lost ${stats.packetsLost}`);
  assert.ok(stats.packetsReceived >= 80, `received ${stats.packetsReceived}`);
});

Deno.test("FEC: a lost fragment is rebuilt from parity, without a deadline or a keyframe request", () => {
  let dropped = 0;
  const pair = sessionPair({
    seed: 12,
    link: CLEAN,
    config: { fec: { parityRatio: 0.1, scheme: 1, maxGroup: 64 } },
    middlebox: {
      // Drop two full video datagrams of the first frame (a full one is 52 bytes over its payload).
      intercept: (d, direction, now) =>
        direction === "a->b" && now >= 100 && d.length === 52 + maxVideoPayload() &&
          dropped < 2 && ++dropped > 0
          ? { forward: [] }
          : { forward: [d] },
    },
  });
  pair.net.runUntil(100);
  const data = new Rng(5).bytes(30 * maxVideoPayload() - 17);
  pair.initiator.session.sendVideoFrame({ frameId: 9, captureTimeUs: 77, keyframe: false, data });
  pair.net.runUntil(1_000);
  assert.equal(dropped, 2);
  const [got] = pair.responder.eventsOf("video-frame");
  assert.deepEqual(got.frame.data, data);
  assert.equal(pair.responder.eventsOf("video-frame-lost").length, 0);
  assert.equal(pair.initiator.eventsOf("keyframe-request").length, 0);
  assert.equal(pair.responder.session.stats.fecRecoveries, 2);
});

Deno.test("FEC: a frame lost whole (its one fragment) is rebuilt from parity alone", () => {
  const data = new Rng(6).bytes(300);
  let dropped = 0;
  const pair = sessionPair({
    seed: 13,
    link: CLEAN,
    config: { fec: { parityRatio: 0.1, scheme: 1, maxGroup: 64 } },
    middlebox: {
      // The frame's only fragment (52 bytes over its payload); its parity is 8 bytes longer.
      intercept: (d, direction, now) =>
        direction === "a->b" && now >= 100 && d.length === 52 + data.length && ++dropped > 0
          ? { forward: [] }
          : { forward: [d] },
    },
  });
  pair.net.runUntil(100);
  pair.initiator.session.sendVideoFrame({ frameId: 3, captureTimeUs: 55, keyframe: true, data });
  pair.net.runUntil(1_000);
  assert.equal(dropped, 1);
  const [got] = pair.responder.eventsOf("video-frame");
  assert.deepEqual(got.frame.data, data);
  assert.equal(got.frame.captureTimeUs, 55);
  assert.equal(got.frame.keyframe, true);
  assert.equal(pair.responder.eventsOf("video-frame-lost").length, 0);
  assert.equal(pair.initiator.eventsOf("keyframe-request").length, 0);
  assert.equal(pair.responder.session.stats.fecRecoveries, 1);
});
