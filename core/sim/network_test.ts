import assert from "node:assert/strict";
import { Link, type LinkConfig } from "./link.ts";
import { type Middlebox, type SimEndpoint, SimNetwork } from "./network.ts";
import { Rng } from "./rng.ts";

const PING = 1, PONG = 2;

/** Sends `count` pings one after another, retransmitting each every `rtoMs` until its pong arrives. */
class Pinger implements SimEndpoint {
  seq = 0;
  pongs: { seq: number; at: number }[] = [];
  received: Uint8Array[] = [];
  sends = 0;
  #deadline: number | undefined;
  #outbox: Uint8Array[] = [];
  constructor(
    readonly count: number,
    readonly rtoMs: number,
    readonly random: Rng,
    start = 0,
  ) {
    this.#deadline = count > 0 ? start : undefined;
  }
  get done(): boolean {
    return this.seq >= this.count;
  }
  #queuePing(now: number): void {
    const d = new Uint8Array(16);
    d[0] = PING;
    d[1] = this.seq;
    d.set(this.random.bytes(14), 2); // endpoints draw their randomness from the simulator
    this.#outbox.push(d);
    this.sends++;
    this.#deadline = now + this.rtoMs;
  }
  handleDatagram(d: Uint8Array, now: number): void {
    this.received.push(d);
    if (d[0] !== PONG || d[1] !== this.seq || this.done) return;
    this.pongs.push({ seq: d[1], at: now });
    this.seq++;
    if (this.done) this.#deadline = undefined;
    else this.#queuePing(now);
  }
  pollTransmit(): Uint8Array | undefined {
    return this.#outbox.shift();
  }
  pollTimeout(): number | undefined {
    return this.#deadline;
  }
  handleTimeout(now: number): void {
    if (this.#deadline !== undefined && now >= this.#deadline) this.#queuePing(now);
  }
}

/** Answers every ping with a pong carrying the same sequence number; has no timers. */
class Ponger implements SimEndpoint {
  received: { at: number; data: Uint8Array }[] = [];
  #outbox: Uint8Array[] = [];
  handleDatagram(d: Uint8Array, now: number): void {
    this.received.push({ at: now, data: d });
    if (d[0] === PING) this.#outbox.push(Uint8Array.of(PONG, d[1]));
  }
  pollTransmit(): Uint8Array | undefined {
    return this.#outbox.shift();
  }
  pollTimeout(): number | undefined {
    return undefined;
  }
  handleTimeout(): void {}
}

const LINK: LinkConfig = {
  delayMs: 25,
  jitterMs: 5,
  reorder: false,
  duplicateProbability: 0,
  loss: { kind: "none" },
};

function setup(
  seed: number,
  link: LinkConfig = LINK,
  middlebox?: Middlebox,
  count = 20,
): { net: SimNetwork; a: Pinger; b: Ponger; aToB: Link; bToA: Link } {
  const rng = new Rng(seed);
  const a = new Pinger(count, 100, rng.fork());
  const b = new Ponger();
  const aToB = new Link(link, rng.fork());
  const bToA = new Link(link, rng.fork());
  const net = new SimNetwork({ a, b, aToB, bToA, middlebox });
  return { net, a, b, aToB, bToA };
}

Deno.test("SimNetwork: ping-pong over lossy links completes and the event loop terminates", () => {
  const lossy = { ...LINK, loss: { kind: "bernoulli", p: 0.3 } as const };
  const { net, a, b, aToB } = setup(1, lossy, undefined, 50);
  const events = net.runUntil(Infinity);
  assert.ok(a.done, "all pings answered");
  assert.equal(a.pongs.length, 50);
  assert.ok(events > 0);
  assert.ok(a.sends > 50, "losses forced retransmissions");
  assert.ok(aToB.stats.lostRandom > 0);
  assert.ok(b.received.length >= 50);
  // Nothing pending: a second run does nothing and time stays put.
  const t = net.now;
  assert.equal(net.runUntil(Infinity), 0);
  assert.equal(net.now, t);
  // Each pong takes at least one round trip.
  for (let i = 1; i < a.pongs.length; i++) {
    assert.ok(a.pongs[i].at - a.pongs[i - 1].at >= 2 * LINK.delayMs);
  }
});

Deno.test("SimNetwork: same seed gives an identical run; another seed does not", () => {
  const run = (seed: number) => {
    const cfg: LinkConfig = {
      ...LINK,
      jitterMs: 30,
      reorder: true,
      duplicateProbability: 0.05,
      loss: { kind: "bernoulli", p: 0.2 },
    };
    const { net, a, b } = setup(seed, cfg, undefined, 40);
    net.runUntil(60_000);
    return JSON.stringify({
      trace: net.trace,
      pongs: a.pongs,
      atB: b.received.map((r) => [r.at, Array.from(r.data)]),
      atA: a.received.map((d) => Array.from(d)),
      now: net.now,
    });
  };
  assert.equal(run(7), run(7));
  assert.notEqual(run(7), run(8));
});

Deno.test("SimNetwork: runUntil advances the clock to `until` and stops at it", () => {
  const { net, a } = setup(2);
  net.runUntil(1);
  assert.equal(net.now, 1);
  assert.equal(a.pongs.length, 0);
  net.runUntil(56); // one round trip is 50..60 ms
  assert.equal(net.now, 56);
  net.runUntil(10_000);
  assert.ok(a.done);
  assert.equal(net.now, 10_000);
});

Deno.test("SimNetwork: runUntilCondition stops as soon as the predicate holds, or at the deadline", () => {
  const { net, a } = setup(3);
  assert.equal(net.runUntilCondition(() => a.pongs.length >= 3, 10_000), true);
  assert.equal(a.pongs.length, 3);
  assert.equal(net.now, a.pongs[2].at);
  assert.equal(net.runUntilCondition(() => false, 20_000), false);
  assert.equal(net.now, 20_000);
  assert.ok(a.done);
});

Deno.test("SimNetwork: the middlebox can drop (retransmission recovers)", () => {
  let dropped = 0;
  const dropFirstThree: Middlebox = {
    intercept(d, direction) {
      if (direction === "a->b" && dropped < 3) {
        dropped++;
        return { forward: [] };
      }
      return { forward: [d] };
    },
  };
  const { net, a, b } = setup(4, { ...LINK, jitterMs: 0 }, dropFirstThree, 1);
  net.runUntil(Infinity);
  assert.ok(a.done);
  assert.equal(a.sends, 4);
  assert.equal(b.received.length, 1);
  assert.equal(b.received[0].at, 300 + LINK.delayMs); // the 4th try, sent at 300 ms
  const drops = net.trace.filter((t) => t.fate === "dropped-by-middlebox");
  assert.deepEqual(drops.map((t) => [t.at, t.direction]), [[0, "a->b"], [100, "a->b"], [
    200,
    "a->b",
  ]]);
});

Deno.test("SimNetwork: the middlebox can modify and duplicate", () => {
  const tamper: Middlebox = {
    intercept(d, direction) {
      if (direction !== "a->b") return { forward: [d] };
      const changed = d.slice();
      changed[15] ^= 0xff;
      return { forward: [changed, changed] };
    },
  };
  const { net, a, b } = setup(5, LINK, tamper, 1);
  const sent: Uint8Array[] = [];
  const inner = a.pollTransmit.bind(a);
  a.pollTransmit = () => {
    const d = inner();
    if (d) sent.push(d.slice());
    return d;
  };
  net.runUntil(Infinity);
  assert.equal(b.received.length, 2);
  const expected = sent[0].slice();
  expected[15] ^= 0xff;
  assert.deepEqual(b.received[0].data, expected);
  assert.deepEqual(b.received[1].data, expected);
  assert.equal(a.pongs.length, 1);
});

Deno.test("SimNetwork: the middlebox can delay datagrams and release them later", () => {
  const hold: Middlebox = {
    intercept(d, direction, now) {
      if (direction === "a->b") return { forward: [], later: [{ at: now + 500, datagram: d }] };
      return { forward: [d] };
    },
  };
  const { net, a, b } = setup(6, { ...LINK, jitterMs: 0 }, hold, 1);
  net.runUntil(Infinity);
  // The first ping is held for 500 ms; retransmissions at 100..500 ms are held too.
  assert.equal(b.received[0].at, 500 + LINK.delayMs);
  assert.ok(a.done);
  assert.equal(a.pongs[0].at, 500 + 2 * LINK.delayMs);
  assert.equal(net.trace.filter((t) => t.fate === "dropped-by-middlebox").length, 0);
});

Deno.test("SimNetwork: inject delivers a datagram to a side at a given time", () => {
  const { net, b } = setup(7, LINK, undefined, 0);
  net.inject("b", Uint8Array.of(9, 9), 42);
  net.runUntil(41);
  assert.equal(b.received.length, 0);
  net.runUntil(Infinity);
  assert.deepEqual(b.received.map((r) => [r.at, Array.from(r.data)]), [[42, [9, 9]]]);
  assert.throws(() => net.inject("a", Uint8Array.of(1), 10), RangeError);
});

Deno.test("SimNetwork: the busy-loop guard fires for an endpoint whose timer never advances", () => {
  const stuck: SimEndpoint = {
    handleDatagram() {},
    pollTransmit: () => undefined,
    pollTimeout: () => 5,
    handleTimeout() {},
  };
  const net = new SimNetwork({
    a: stuck,
    b: new Ponger(),
    aToB: new Link(LINK, new Rng(1)),
    bToA: new Link(LINK, new Rng(2)),
    maxEventsPerInstant: 1000,
  });
  assert.throws(() => net.runUntil(100), /busy loop.*t=5 ms.*timer of endpoint a/);
});

Deno.test("SimNetwork: an overdue timer fires at the current time, never in the past", () => {
  const fired: number[] = [];
  let deadline: number | undefined = 3;
  const late: SimEndpoint = {
    handleDatagram() {},
    pollTransmit: () => undefined,
    pollTimeout: () => deadline,
    handleTimeout(now) {
      fired.push(now);
      deadline = undefined;
    },
  };
  const net = new SimNetwork({
    a: late,
    b: new Ponger(),
    aToB: new Link(LINK, new Rng(1)),
    bToA: new Link(LINK, new Rng(2)),
    startTime: 10,
  });
  net.runUntil(20);
  assert.deepEqual(fired, [10]);
});

Deno.test("SimNetwork: the wire trace is bounded and records losses", () => {
  const rng = new Rng(8);
  const lossy = { ...LINK, loss: { kind: "bernoulli", p: 0.5 } as const };
  const a = new Pinger(30, 100, rng.fork());
  const net = new SimNetwork({
    a,
    b: new Ponger(),
    aToB: new Link(lossy, rng.fork()),
    bToA: new Link(lossy, rng.fork()),
    traceLimit: 10,
  });
  net.runUntil(Infinity);
  const trace = net.trace;
  assert.equal(trace.length, 10);
  for (let i = 1; i < trace.length; i++) {
    assert.ok(trace[i].at >= trace[i - 1].at);
  }
  const full = setup(8, lossy, undefined, 30);
  full.net.runUntil(Infinity);
  const lost = full.net.trace.filter((t) => t.fate === "lost").length;
  assert.equal(lost, full.aToB.stats.lostRandom + full.bToA.stats.lostRandom);
  const delivered = full.net.trace.filter((t) => t.fate === "delivered").length;
  assert.equal(delivered, full.aToB.stats.delivered + full.bToA.stats.delivered);
});
