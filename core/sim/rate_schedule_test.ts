import assert from "node:assert/strict";
import fc from "fast-check";
import { rateAt, serializationEndMs, validateRateSchedule } from "./rate_schedule.ts";
import { Link, type LinkConfig } from "./link.ts";
import { Rng } from "./rng.ts";

const PERFECT: LinkConfig = {
  delayMs: 0,
  jitterMs: 0,
  reorder: false,
  duplicateProbability: 0,
  loss: { kind: "none" },
};

Deno.test("validateRateSchedule: rejects empty, unordered, negative and zero-rate steps", () => {
  assert.throws(() => validateRateSchedule([]), RangeError);
  assert.throws(() => validateRateSchedule([{ atMs: 5, bps: 1 }, { atMs: 5, bps: 2 }]), RangeError);
  assert.throws(() => validateRateSchedule([{ atMs: -1, bps: 1 }]), RangeError);
  assert.throws(() => validateRateSchedule([{ atMs: 0, bps: 0 }]), RangeError);
  assert.throws(() => validateRateSchedule([{ atMs: 0, bps: NaN }]), RangeError);
  assert.deepEqual(validateRateSchedule([{ atMs: 0, bps: 8 }]), [{ atMs: 0, bps: 8 }]);
});

Deno.test("rateAt: the last step at or before t, the first (or `before`) ahead of it", () => {
  const s = [{ atMs: 10, bps: 100 }, { atMs: 20, bps: 200 }];
  assert.equal(rateAt(s, 0), 100);
  assert.equal(rateAt(s, 0, 50), 50);
  assert.equal(rateAt(s, 10), 100);
  assert.equal(rateAt(s, 19.9), 100);
  assert.equal(rateAt(s, 20), 200);
  assert.equal(rateAt(s, 1e9), 200);
});

Deno.test("serializationEndMs: crosses steps, integrating the rate", () => {
  // 1000 bit/s until 10 ms (10 bits), then 2000 bit/s: 30 bits end at 10 + 20/2 = 20 ms.
  const s = [{ atMs: 0, bps: 1000 }, { atMs: 10, bps: 2000 }];
  assert.equal(serializationEndMs(s, 0, 5), 5);
  assert.ok(Math.abs(serializationEndMs(s, 0, 30) - 20) < 1e-9);
});

Deno.test("serializationEndMs: bits sent equal the integral of the rate (property)", () => {
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 1e6 })), {
      minLength: 1,
      maxLength: 8,
    }),
    fc.double({ min: 0, max: 300, noNaN: true }),
    fc.double({ min: 0, max: 1e5, noNaN: true }),
    (raw, start, bits) => {
      let t = 0;
      const steps = raw.map(([gap, bps]) => ({ atMs: t += gap, bps }));
      const end = serializationEndMs(steps, start, bits);
      assert.ok(end >= start);
      // Integrate numerically over the step boundaries.
      let sent = 0;
      const cuts = [start, ...steps.map((s) => s.atMs).filter((x) => x > start && x < end), end];
      for (let i = 0; i + 1 < cuts.length; i++) {
        sent += (rateAt(steps, cuts[i]) * (cuts[i + 1] - cuts[i])) / 1000;
      }
      assert.ok(Math.abs(sent - bits) <= 1e-6 * Math.max(1, bits));
    },
  ));
});

Deno.test("Link: a rate schedule changes how fast the queue drains", () => {
  // 1200-byte packets: 1 ms each at 9.6 Mbit/s, 2 ms at 4.8 Mbit/s from 100 ms on.
  const link = new Link(
    {
      ...PERFECT,
      rateSchedule: [{ atMs: 0, bps: 9.6e6 }, { atMs: 100, bps: 4.8e6 }],
      queueBytes: 1e9,
    },
    new Rng(1),
  );
  for (let i = 0; i < 200; i++) link.send(new Uint8Array(1200), 0);
  const times: number[] = [];
  for (let t = link.nextArrival(); t !== undefined; t = link.nextArrival()) {
    for (const _ of link.receive(t)) times.push(t);
  }
  assert.equal(times.length, 200);
  assert.ok(Math.abs(times[99] - 100) < 1e-9);
  assert.ok(Math.abs(times[100] - 102) < 1e-9);
  assert.ok(Math.abs(times[199] - 300) < 1e-9);
});

Deno.test("Link: queueMs drops exactly the packets that would wait longer than the limit", () => {
  // 1 ms per packet; a 10 ms queue keeps 10 of a burst of 30.
  const link = new Link({ ...PERFECT, rateBps: 9.6e6, queueMs: 10 }, new Rng(1));
  const fates = Array.from({ length: 30 }, () => link.send(new Uint8Array(1200), 0));
  assert.equal(fates.filter((f) => f === "queued").length, 10);
  assert.equal(link.stats.droppedQueue, 20);
  // Time frees the queue again.
  assert.equal(link.send(new Uint8Array(1200), 5), "queued");
});

Deno.test("Link: tags and timelines come back with each arrival", () => {
  const link = new Link({ ...PERFECT, delayMs: 5, rateBps: 8000 }, new Rng(1));
  assert.equal(link.send(new Uint8Array(10), 0, 3), "queued");
  assert.equal(link.send(new Uint8Array(10), 1, 4), "queued");
  const got = link.receiveArrivals(100);
  assert.deepEqual(got.map((a) => [a.tag, a.sentAt, a.departAt, a.at]), [
    [3, 0, 10, 15],
    [4, 1, 20, 25],
  ]);
});
