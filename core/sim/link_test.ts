import assert from "node:assert/strict";
import fc from "fast-check";
import { gilbertElliott, Link, type LinkConfig } from "./link.ts";
import { Rng } from "./rng.ts";
import { parseMahimahiTrace } from "./trace.ts";

const PERFECT: LinkConfig = {
  delayMs: 10,
  jitterMs: 0,
  reorder: false,
  duplicateProbability: 0,
  loss: { kind: "none" },
};

/** A datagram carrying a 32-bit sequence number and the send time, padded to `size`. */
function packet(seq: number, sentAt: number, size = 100): Uint8Array {
  const d = new Uint8Array(size);
  const v = new DataView(d.buffer);
  v.setUint32(0, seq);
  v.setFloat64(4, sentAt);
  return d;
}

function seqOf(d: Uint8Array): number {
  return new DataView(d.buffer, d.byteOffset).getUint32(0);
}

function sentAtOf(d: Uint8Array): number {
  return new DataView(d.buffer, d.byteOffset).getFloat64(4);
}

/** Sends `n` packets, one every `intervalMs`, then drains; returns [seq, arrival] pairs. */
function pump(
  link: Link,
  n: number,
  intervalMs: number,
  size = 100,
): { seq: number; at: number }[] {
  const got: { seq: number; at: number }[] = [];
  const collect = (now: number) => {
    for (const d of link.receive(now)) got.push({ seq: seqOf(d), at: now });
  };
  for (let i = 0; i < n; i++) {
    const now = i * intervalMs;
    // Receive everything due before this send, at its exact arrival time.
    for (let t = link.nextArrival(); t !== undefined && t <= now; t = link.nextArrival()) {
      collect(t);
    }
    link.send(packet(i, now, size), now);
  }
  for (let t = link.nextArrival(); t !== undefined; t = link.nextArrival()) collect(t);
  return got;
}

Deno.test("Link: a perfect link delivers everything after the delay, in order, as copies", () => {
  const link = new Link(PERFECT, new Rng(1));
  const d = packet(7, 0);
  link.send(d, 0);
  d[0] = 0xff; // the link copied it
  assert.equal(link.nextArrival(), 10);
  assert.deepEqual(link.receive(9.99), []);
  const got = link.receive(10);
  assert.equal(got.length, 1);
  assert.equal(seqOf(got[0]), 7);
  assert.equal(link.nextArrival(), undefined);
  const s = link.stats;
  assert.equal(s.sent, 1);
  assert.equal(s.delivered, 1);
  assert.equal(s.bytesDelivered, 100);
  assert.throws(() => link.send(packet(1, 0), 5), /backwards/);
});

Deno.test("Link: same seed gives identical deliveries, another seed does not", () => {
  const cfg: LinkConfig = {
    delayMs: 20,
    jitterMs: 15,
    reorder: true,
    duplicateProbability: 0.05,
    loss: gilbertElliott(0.1, 3),
    rateBps: 2_000_000,
    queueBytes: 20_000,
  };
  const run = (seed: number) => JSON.stringify(pump(new Link(cfg, new Rng(seed)), 5000, 0.3, 200));
  assert.equal(run(99), run(99));
  assert.notEqual(run(99), run(100));
});

Deno.test("Link: Bernoulli loss rate is within statistical bounds over 100k packets", () => {
  const p = 0.05, n = 100_000;
  const link = new Link({ ...PERFECT, delayMs: 0, loss: { kind: "bernoulli", p } }, new Rng(3));
  for (let i = 0; i < n; i++) link.send(packet(i, i), i);
  const s = link.stats;
  const rate = s.lostRandom / n;
  const sigma = Math.sqrt((p * (1 - p)) / n);
  assert.ok(Math.abs(rate - p) < 5 * sigma, `loss rate ${rate}`);
  assert.equal(link.receive(n).length, n - s.lostRandom);
});

Deno.test("Link: Gilbert-Elliott mean loss and mean burst length are within bounds", () => {
  for (const [meanLoss, burst] of [[0.1, 3], [0.02, 1.5], [0.3, 8]]) {
    const n = 200_000;
    const link = new Link(
      { ...PERFECT, delayMs: 0, loss: gilbertElliott(meanLoss, burst) },
      new Rng(11),
    );
    for (let i = 0; i < n; i++) link.send(packet(i, i, 12), i);
    const got = new Set(link.receive(n).map(seqOf));
    let lost = 0, bursts = 0, inBurst = false;
    for (let i = 0; i < n; i++) {
      const isLost = !got.has(i);
      if (isLost) {
        lost++;
        if (!inBurst) bursts++;
      }
      inBurst = isLost;
    }
    const rate = lost / n;
    const meanBurst = lost / bursts;
    assert.ok(
      Math.abs(rate - meanLoss) < 0.1 * meanLoss + 0.002,
      `GE(${meanLoss},${burst}) loss ${rate}`,
    );
    assert.ok(
      Math.abs(meanBurst - burst) < 0.08 * burst,
      `GE(${meanLoss},${burst}) burst ${meanBurst}`,
    );
    assert.equal(link.stats.lostRandom, lost);
  }
});

Deno.test("gilbertElliott: parameters follow the documented formula and reject impossible ones", () => {
  const m = gilbertElliott(0.2, 4);
  assert.equal(m.kind, "gilbert-elliott");
  if (m.kind !== "gilbert-elliott") return;
  assert.equal(m.pBadToGood, 0.25);
  assert.ok(Math.abs(m.pGoodToBad - 0.0625) < 1e-12);
  assert.equal(m.lossInBad, 1);
  assert.equal(m.lossInGood, 0);
  assert.throws(() => gilbertElliott(1, 2), RangeError);
  assert.throws(() => gilbertElliott(0.1, 0.5), RangeError);
  assert.throws(() => gilbertElliott(0.9, 1), RangeError); // needs pGoodToBad = 9
});

Deno.test("Link: rate limit gives throughput ≈ rateBps; queue delay grows, then the full queue drops (counted) and drains", () => {
  const rateBps = 1_000_000, size = 1000, queueBytes = 64 * 1024;
  const link = new Link({ ...PERFECT, rateBps, queueBytes }, new Rng(4));
  const serMs = (size * 8 * 1000) / rateBps; // 8 ms per packet
  const delays: number[] = [];
  const arrivals: number[] = [];
  const recv = (now: number) => {
    for (const d of link.receive(now)) {
      delays.push(now - sentAtOf(d) - PERFECT.delayMs);
      arrivals.push(now);
    }
  };
  // Offer 2 Mbit/s for 2 s: twice the bottleneck rate.
  for (let now = 0; now < 2000; now += 4) {
    recv(now);
    link.send(packet(now / 4, now, size), now);
  }
  for (let t = link.nextArrival(); t !== undefined; t = link.nextArrival()) recv(t);
  const s = link.stats;
  assert.ok(s.droppedQueue > 0, "the overflowing queue drops");
  assert.equal(s.delivered + s.droppedQueue, s.sent);
  // The queue delay grows while the queue fills...
  const fill = Math.floor(queueBytes / size) - 2;
  for (let i = 1; i < fill; i++) assert.ok(delays[i] > delays[i - 1], `delay ${i} grows`);
  // ...and is capped by the queue size once it overflows.
  const cap = (queueBytes * 8 * 1000) / rateBps;
  assert.ok(Math.max(...delays) <= cap + serMs, `max delay ${Math.max(...delays)}`);
  assert.ok(s.maxQueueDelayMs > cap * 0.9 && s.maxQueueDelayMs <= cap + serMs);
  // Throughput over the saturated period is the bottleneck rate.
  const t0 = arrivals[0], t1 = arrivals[arrivals.length - 1];
  const bps = ((arrivals.length - 1) * size * 8 * 1000) / (t1 - t0);
  assert.ok(Math.abs(bps - rateBps) / rateBps < 0.01, `throughput ${bps}`);
  // Once the sender stops, the queue drains and a new packet sees only its serialization time.
  assert.equal(link.queuedBytes, 0);
  const later = 10_000;
  link.send(packet(1, later, size), later);
  assert.equal(link.nextArrival(), later + serMs + PERFECT.delayMs);
});

Deno.test("Link: queuedBytes follows the backlog and defaults to a 64 KiB limit", () => {
  const link = new Link({ ...PERFECT, rateBps: 8_000 }, new Rng(1)); // 1 byte per ms
  for (let i = 0; i < 100; i++) link.send(new Uint8Array(1000), 0);
  assert.equal(link.queuedBytes, 65_000);
  assert.equal(link.stats.droppedQueue, 35);
  link.receive(1000);
  assert.equal(link.queuedBytes, 64_000);
});

Deno.test("Link: reorder=false never reorders, even with large jitter; reorder=true does", () => {
  const base = { ...PERFECT, jitterMs: 50 };
  const inOrder = pump(new Link({ ...base, reorder: false }, new Rng(5)), 10_000, 1);
  assert.equal(inOrder.length, 10_000);
  for (let i = 1; i < inOrder.length; i++) {
    assert.ok(inOrder[i].seq > inOrder[i - 1].seq);
    assert.ok(inOrder[i].at >= inOrder[i - 1].at);
  }
  const mixed = pump(new Link({ ...base, reorder: true }, new Rng(5)), 10_000, 1);
  let overtaken = 0;
  for (let i = 1; i < mixed.length; i++) if (mixed[i].seq < mixed[i - 1].seq) overtaken++;
  assert.ok(overtaken > 1000, `reordered ${overtaken}`);
});

Deno.test("Link: duplicates are delivered and counted", () => {
  const n = 50_000, p = 0.1;
  const link = new Link({ ...PERFECT, duplicateProbability: p }, new Rng(6));
  const got = pump(link, n, 1);
  const s = link.stats;
  assert.equal(s.delivered, n + s.duplicated);
  assert.equal(got.length, s.delivered);
  const sigma = Math.sqrt((p * (1 - p)) / n);
  assert.ok(Math.abs(s.duplicated / n - p) < 5 * sigma, `dup rate ${s.duplicated / n}`);
});

Deno.test("Link: datagrams over the MTU are dropped and counted", () => {
  const link = new Link({ ...PERFECT, mtu: 1200 }, new Rng(1));
  link.send(new Uint8Array(1200), 0);
  link.send(new Uint8Array(1201), 0);
  assert.equal(link.receive(100).length, 1);
  assert.equal(link.stats.droppedMtu, 1);
});

Deno.test("Link: a one-line trace '1' is a 12 Mbit/s bottleneck, one datagram per opportunity", () => {
  const link = new Link(
    { ...PERFECT, delayMs: 0, trace: parseMahimahiTrace("1"), queueBytes: 1e9 },
    new Rng(1),
  );
  for (let i = 0; i < 5; i++) link.send(new Uint8Array(100), 0);
  link.send(new Uint8Array(3000), 0); // needs two opportunities
  const times: number[] = [];
  for (let t = link.nextArrival(); t !== undefined; t = link.nextArrival()) {
    for (const _ of link.receive(t)) times.push(t);
  }
  assert.deepEqual(times, [1, 2, 3, 4, 5, 7]);
});

Deno.test("Link: a trace-driven link delivers about the trace's capacity", async () => {
  const url = new URL("../../../shared/traces/ATT-LTE-driving-2016.down", import.meta.url);
  let text: string;
  try {
    text = await Deno.readTextFile(url);
  } catch (e) {
    throw new Error(
      `cannot read trace ${url.pathname}; ../shared/traces must sit next to the repository (${
        (e as Error).message
      })`,
    );
  }
  const trace = parseMahimahiTrace(text);
  // Saturate for one full period: a 15 MB backlog at t=0 (the trace peaks far above
  // any steady sender's rate), then 1500-byte packets at 12 Mbit/s.
  const link = new Link({ ...PERFECT, trace, queueBytes: 100_000_000 }, new Rng(1));
  const period = trace.periodMs;
  for (let i = 0; i < 10_000; i++) link.send(new Uint8Array(1500), 0);
  let delivered = 0;
  for (let now = 0; now < period; now++) {
    delivered += link.receive(now).length;
    link.send(new Uint8Array(1500), now);
  }
  delivered += link.receive(period + PERFECT.delayMs).length;
  const bps = (delivered * 1500 * 8 * 1000) / period;
  assert.ok(
    Math.abs(bps - trace.meanCapacityBps) / trace.meanCapacityBps < 0.02,
    `delivered ${bps} vs capacity ${trace.meanCapacityBps}`,
  );
  assert.ok(Math.abs(bps / 1e6 - 4.56) < 0.1);
});

Deno.test("Link: conservation and ordering hold for random configurations (property)", () => {
  fc.assert(
    fc.property(
      fc.record({
        seed: fc.integer(),
        delayMs: fc.double({ min: 0, max: 100, noNaN: true }),
        jitterMs: fc.double({ min: 0, max: 50, noNaN: true }),
        p: fc.double({ min: 0, max: 0.5, noNaN: true }),
        dup: fc.double({ min: 0, max: 0.3, noNaN: true }),
        rate: fc.option(fc.integer({ min: 100_000, max: 10_000_000 }), { nil: undefined }),
        queue: fc.integer({ min: 1500, max: 100_000 }),
        mtu: fc.option(fc.integer({ min: 100, max: 1500 }), { nil: undefined }),
      }),
      ({ seed, delayMs, jitterMs, p, dup, rate, queue, mtu }) => {
        const rng = new Rng(seed);
        const link = new Link({
          delayMs,
          jitterMs,
          reorder: false,
          duplicateProbability: dup,
          loss: { kind: "bernoulli", p },
          rateBps: rate,
          queueBytes: queue,
          mtu,
        }, rng.fork());
        let lastAt = -Infinity, lastSeq = -1, now = 0;
        for (let i = 0; i < 300; i++) {
          now += rng.next() * 3;
          for (const d of link.receive(now)) {
            const s = seqOf(d);
            if (s < lastSeq) return false;
            lastSeq = s;
          }
          const at = link.nextArrival();
          if (at !== undefined) {
            if (at < lastAt) return false;
            lastAt = at;
          }
          link.send(packet(i, now, 20 + rng.int(1480)), now);
        }
        link.receive(Infinity);
        const s = link.stats;
        return s.sent + s.duplicated ===
            s.delivered + s.lostRandom + s.droppedQueue + s.droppedMtu &&
          link.queuedBytes === 0;
      },
    ),
    { numRuns: 100 },
  );
});
