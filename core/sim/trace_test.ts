import assert from "node:assert/strict";
import { DeliveryTrace, parseMahimahiTrace, traceOutages } from "./trace.ts";

const TRACES = new URL("../../../shared/traces/", import.meta.url);

/** Reads a shared trace; fails (never skips) with a clear message if it is missing. */
async function readSharedTrace(name: string): Promise<string> {
  const url = new URL(name, TRACES);
  try {
    return await Deno.readTextFile(url);
  } catch (e) {
    throw new Error(
      `cannot read trace ${url.pathname}: the shared traces must sit at ../shared/traces next to the repository (${
        (e as Error).message
      })`,
    );
  }
}

Deno.test("parseMahimahiTrace: a single '1' is a 12 Mbit/s link", () => {
  const t = parseMahimahiTrace("1\n");
  assert.equal(t.periodMs, 1);
  assert.equal(t.meanCapacityBps, 12_000_000);
  assert.equal(t.nextOpportunity(0), 1);
  assert.equal(t.nextOpportunity(0.5), 1);
  assert.equal(t.nextOpportunity(1), 2);
  assert.equal(t.nextOpportunity(41.2), 42);
});

Deno.test("DeliveryTrace: repeated timestamps are separate opportunities and the trace wraps", () => {
  const t = parseMahimahiTrace("0\n2\n2\n5\n");
  assert.equal(t.periodMs, 5);
  assert.equal(t.opportunitiesPerPeriod, 4);
  const times = Array.from({ length: 10 }, (_, i) => t.opportunityTime(i));
  assert.deepEqual(times, [0, 2, 2, 5, 5, 7, 7, 10, 10, 12]);
  assert.equal(t.opportunityIndexAfter(-1), 0);
  assert.equal(t.opportunityIndexAfter(0), 1);
  assert.equal(t.opportunityIndexAfter(2), 3);
  assert.equal(t.opportunityIndexAfter(4.9), 3);
  assert.equal(t.opportunityIndexAfter(5), 5);
  assert.equal(t.nextOpportunity(7), 10);
});

Deno.test("parseMahimahiTrace: rejects malformed input", () => {
  assert.throws(() => parseMahimahiTrace(""), /no entries/);
  assert.throws(() => parseMahimahiTrace("1\nx\n", "t"), /t:2/);
  assert.throws(() => parseMahimahiTrace("5\n3\n"), /back in time/);
  assert.throws(() => parseMahimahiTrace("0\n0\n"), /nonzero/);
  assert.throws(() => new DeliveryTrace([]), RangeError);
});

Deno.test("parseMahimahiTrace: mean capacity of the shared cellular traces matches the README", async () => {
  const att = parseMahimahiTrace(
    await readSharedTrace("ATT-LTE-driving-2016.down"),
  );
  assert.ok(
    Math.abs(att.meanCapacityBps / 1e6 - 4.56) < 0.005,
    `ATT ${att.meanCapacityBps}`,
  );
  assert.ok(Math.abs(att.periodMs - 120_002) < 1);
  const tmo = parseMahimahiTrace(await readSharedTrace("TMobile-LTE-short.down"));
  assert.ok(
    Math.abs(tmo.meanCapacityBps / 1e6 - 16.70) < 0.005,
    `TMobile ${tmo.meanCapacityBps}`,
  );
});

Deno.test("traceOutages: gaps over the threshold, the longest gap, seconds under the floor", () => {
  // 1 s of one opportunity per ms, then nothing until 2500, then 1 per 10 ms until 4000.
  const times: number[] = [];
  for (let t = 1; t <= 1000; t++) times.push(t);
  for (let t = 2500; t <= 4000; t += 10) times.push(t);
  const o = traceOutages(new DeliveryTrace(times), 4000, 100, 1_000_000);
  assert.equal(o.longestGapMs, 1500);
  assert.equal(o.gapTotalMs, 1500, "the 10 ms steps are under the threshold");
  // Second 0: 999 opportunities (12 Mbit/s); 1: one (t = 1000); 2: 50; 3: 100 (1.2 Mbit/s).
  assert.equal(o.secondsBelowFloor, 2);
  assert.equal(o.meanBps, ((1000 + 150) * 12_000) / 4);
});
