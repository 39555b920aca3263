/**
 * RIFT sessions over the deterministic link simulator: heavy loss, bursts,
 * and a man in the middle who flips, truncates, replays and reorders.
 */
import assert from "node:assert/strict";
import { gilbertElliott, type LinkConfig } from "../core/sim/link.ts";
import { type RecordingEndpoint, sessionPair } from "../core/sim/pair.ts";
import { Rng } from "../core/sim/rng.ts";
import type { Direction, Middlebox } from "../core/sim/network.ts";

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** 25 ms each way (50 ms RTT), a little jitter, and 20% random loss in both directions. */
const LOSSY: LinkConfig = {
  delayMs: 25,
  jitterMs: 2,
  reorder: false,
  duplicateProbability: 0,
  loss: { kind: "bernoulli", p: 0.2 },
};

const MESSAGES = 30;

function exchangeControl(
  pair: ReturnType<typeof sessionPair>,
  deadline: number,
): { established: boolean; delivered: number; inOrder: boolean } {
  const established = pair.net.runUntilCondition(
    () =>
      pair.initiator.session.state === "established" &&
      pair.responder.session.state === "established",
    deadline,
  );
  if (!established) return { established, delivered: 0, inOrder: false };
  for (let i = 0; i < MESSAGES; i++) pair.initiator.session.sendControl(text(`m${i}`));
  pair.net.runUntilCondition(
    () => pair.responder.eventsOf("control").length >= MESSAGES,
    pair.net.now + 30_000,
  );
  const got = pair.responder.eventsOf("control").map((e) => str(e.data));
  return {
    established,
    delivered: got.length,
    inOrder: got.every((m, i) => m === `m${i}`),
  };
}

Deno.test("handshake completes and control is delivered at 20% loss, for every seed", () => {
  for (let seed = 1; seed <= 40; seed++) {
    const pair = sessionPair({ seed, link: LOSSY });
    const result = exchangeControl(pair, 15_000);
    assert.ok(result.established, `seed ${seed}: handshake did not complete`);
    assert.equal(result.delivered, MESSAGES, `seed ${seed}`);
    assert.ok(result.inOrder, `seed ${seed}`);
  }
});

Deno.test("handshake completes and control is delivered through Gilbert-Elliott loss bursts", () => {
  const bursty: LinkConfig = { ...LOSSY, loss: gilbertElliott(0.2, 4) };
  for (let seed = 100; seed < 120; seed++) {
    const result = exchangeControl(sessionPair({ seed, link: bursty }), 15_000);
    assert.ok(result.established, `seed ${seed}`);
    assert.equal(result.delivered, MESSAGES, `seed ${seed}`);
    assert.ok(result.inOrder, `seed ${seed}`);
  }
});

/**
 * A hostile middlebox: each datagram may be bit-flipped, truncated, replayed
 * later, or held back (reordered); the genuine copy is forwarded too unless it
 * was the one changed, so a session can still make progress.
 */
class Attacker implements Middlebox {
  readonly modified = new Set<string>();
  readonly genuine = new Set<string>();
  readonly #rng: Rng;
  readonly #seen: Uint8Array[] = [];
  counts = { flipped: 0, truncated: 0, replayed: 0, reordered: 0 };

  constructor(seed: number) {
    this.#rng = new Rng(seed);
  }

  intercept(datagram: Uint8Array, _direction: Direction, now: number) {
    this.genuine.add(hex(datagram));
    this.#seen.push(datagram.slice());
    const roll = this.#rng.next();
    if (roll < 0.1) {
      const changed = datagram.slice();
      const bit = this.#rng.int(changed.length * 8);
      changed[bit >> 3] ^= 1 << (bit & 7);
      this.#markModified(changed);
      this.counts.flipped++;
      return { forward: [changed] };
    }
    if (roll < 0.2) {
      const changed = datagram.slice(0, this.#rng.int(datagram.length));
      this.#markModified(changed);
      this.counts.truncated++;
      return { forward: [changed] };
    }
    if (roll < 0.3) {
      const old = this.#seen[this.#rng.int(this.#seen.length)];
      this.counts.replayed++;
      return { forward: [datagram], later: [{ at: now + 1 + this.#rng.int(200), datagram: old }] };
    }
    if (roll < 0.4) {
      this.counts.reordered++;
      return { forward: [], later: [{ at: now + 1 + this.#rng.int(60), datagram }] };
    }
    return { forward: [datagram] };
  }

  #markModified(changed: Uint8Array) {
    this.modified.add(hex(changed));
  }
}

function acceptedForgeries(endpoint: RecordingEndpoint, attacker: Attacker): string[] {
  const bad: string[] = [];
  for (const v of endpoint.verdicts) {
    const h = hex(v.datagram);
    if (v.drop !== undefined || !attacker.modified.has(h) || attacker.genuine.has(h)) continue;
    // HANDSHAKE_INIT is unauthenticated by nature (Noise XX message 1). A changed INIT only
    // starts a responder attempt that can never complete; it is checked below by outcome.
    if (v.datagram[1] === 0x01) continue;
    bad.push(`${v.at}: ${h.slice(0, 40)}…`);
  }
  return bad;
}

function acceptedSealedReplays(endpoint: RecordingEndpoint): number {
  const seen = new Set<string>();
  let replays = 0;
  for (const v of endpoint.verdicts) {
    if (v.drop !== undefined || v.datagram[1] !== 0x04) continue;
    const h = hex(v.datagram);
    if (seen.has(h)) replays++;
    seen.add(h);
  }
  return replays;
}

Deno.test("a man in the middle never gets a changed packet accepted and never stalls the session", () => {
  for (let seed = 1; seed <= 15; seed++) {
    const attacker = new Attacker(1000 + seed);
    const pair = sessionPair({
      seed,
      link: { ...LOSSY, loss: { kind: "none" } },
      middlebox: attacker,
    });
    const result = exchangeControl(pair, 15_000);
    for (let i = 0; i < MESSAGES; i++) pair.responder.session.sendInput(text(`k${i}`));
    pair.net.runUntil(pair.net.now + 10_000);

    assert.ok(result.established, `seed ${seed}: handshake stalled`);
    assert.equal(result.delivered, MESSAGES, `seed ${seed}: control stalled`);
    assert.ok(result.inOrder, `seed ${seed}`);
    assert.deepEqual(
      pair.initiator.eventsOf("input").map((e) => str(e.data)),
      Array.from({ length: MESSAGES }, (_, i) => `k${i}`),
      `seed ${seed}: input stalled or changed`,
    );
    // Each side completed the handshake with the genuine peer.
    assert.deepEqual(pair.initiator.session.peerIdentity, pair.identities.responder.publicKey);
    assert.deepEqual(pair.responder.session.peerIdentity, pair.identities.initiator.publicKey);
    assert.deepEqual(acceptedForgeries(pair.initiator, attacker), [], `seed ${seed}`);
    assert.deepEqual(acceptedForgeries(pair.responder, attacker), [], `seed ${seed}`);
    assert.equal(acceptedSealedReplays(pair.initiator), 0);
    assert.equal(acceptedSealedReplays(pair.responder), 0);
    assert.ok(attacker.counts.flipped > 0 && attacker.counts.replayed > 0);
    const dropped = Object.values(pair.responder.session.stats.dropped).reduce((a, b) => a + b, 0);
    assert.ok(dropped > 0, "the attack was noticed and counted");
  }
});

Deno.test("sessions keep talking across many rekeys on a lossy, reordering link", () => {
  const pair = sessionPair({
    seed: 77,
    link: { ...LOSSY, loss: { kind: "bernoulli", p: 0.05 }, jitterMs: 15, reorder: true },
    // A packet-count rekey every 16 packets: a new key phase every second (the minimum interval).
    config: { transport: { rekeyAfterPackets: 16 } },
  });
  const result = exchangeControl(pair, 15_000);
  assert.ok(result.established);
  for (let i = 0; i < 200; i++) pair.responder.session.sendInput(text(`k${i}`));
  for (let f = 1; f <= 30; f++) {
    pair.initiator.session.sendVideoFrame({
      frameId: f,
      captureTimeUs: f,
      keyframe: false,
      data: new Uint8Array(3_000).fill(f),
    });
  }
  pair.net.runUntil(pair.net.now + 20_000);
  assert.equal(result.delivered, MESSAGES);
  assert.equal(pair.initiator.eventsOf("input").length, 200);
  const frames = pair.responder.eventsOf("video-frame").length;
  const lost = pair.responder.eventsOf("video-frame-lost").length;
  assert.equal(frames + lost, 30, "every frame is delivered or reported lost");
  assert.ok(frames > 15, `${frames} frames of 30 through 5% loss without FEC`);
  assert.equal(pair.responder.session.state, "established");
  const dropped = pair.initiator.session.stats.dropped;
  assert.equal(dropped.Unauthenticated ?? 0, 0, "no packet fell between key phases");
});
