import assert from "node:assert/strict";
import { case51, case56, cellularCase } from "./cases.ts";
import { linkConfigFor, LinkEmulatorMissing, packetRecords, traceCapacity } from "./link.ts";
import { DeliveryTrace } from "../../core/sim/trace.ts";

Deno.test("link: a schedule becomes rateBps + rateSchedule + queueMs + delay", async () => {
  const c = case51(10);
  const cfg = await linkConfigFor(c.forward, c);
  assert.equal(cfg.delayMs, 50);
  assert.equal(cfg.queueMs, 300);
  assert.equal(cfg.rateBps, 10e6);
  assert.deepEqual(cfg.rateSchedule, [
    { atMs: 40_000, bps: 25e6 },
    { atMs: 60_000, bps: 6e6 },
    { atMs: 80_000, bps: 10e6 },
  ]);
  const flat = case56(1);
  const f = await linkConfigFor(flat.forward, flat);
  assert.equal(f.rateBps, 2e6);
  assert.equal(f.rateSchedule, undefined);
  // No backward bottleneck: only the delay.
  assert.deepEqual(await linkConfigFor(undefined, c), { delayMs: 50 });
});

Deno.test("link: a cellular case loads its Mahimahi trace", async () => {
  const c = cellularCase("Verizon-LTE-short", 5.03e6, 5.95e6);
  const cfg = await linkConfigFor(c.forward, c);
  assert.ok(cfg.trace instanceof DeliveryTrace);
  assert.equal(cfg.queueMs, 1000);
  assert.equal(cfg.delayMs, 20);
});

Deno.test("link: the packet log maps to the race's clock, by direction and flow", () => {
  const log = [
    { dir: "up" as const, flow: 0, bytes: 1200, inAt: 100, fate: "delivered", outAt: 160 },
    { dir: "up" as const, flow: 1, bytes: 1000, inAt: 101, fate: "dropped-queue" },
    { dir: "down" as const, flow: 0, bytes: 80, inAt: 102, fate: "delivered", outAt: 150 },
    { dir: "up" as const, flow: 2, bytes: 900, inAt: 103, fate: "delivered", outAt: 170 },
  ];
  // Emulator's 0 is 40 ms before the race's epoch.
  const r = packetRecords(log, "up", [0, 1], 1_000_000, 1_000_040);
  assert.deepEqual(r, [
    { sendMs: 60, recvMs: 120, bytes: 1200 },
    { sendMs: 61, recvMs: undefined, bytes: 1000 },
  ]);
  assert.equal(packetRecords(log, "down", [0], 0, 0).length, 1);
});

Deno.test("link: the missing-emulator error says so", () => {
  assert.match(new LinkEmulatorMissing("x").message, /^link emulator missing/);
});

Deno.test("link: trace capacity: a line of 1 is 12 Mbit/s; the Verizon trace averages its README mean", async () => {
  assert.equal(traceCapacity("1\n")(12345), 12e6);
  const cap = traceCapacity("5\n5\n10\n", 10);
  assert.equal(cap(3), 3 * 1500 * 8 * 100);
  assert.equal(cap(13), 3 * 1500 * 8 * 100); // repeats after 10 ms
  assert.throws(() => traceCapacity("x\n"), RangeError);
  const v = traceCapacity(await Deno.readTextFile("/work/shared/traces/Verizon-LTE-short.down"));
  let sum = 0;
  for (let t = 0; t < 140_000; t += 100) sum += v(t);
  const mean = sum / 1400;
  assert.ok(Math.abs(mean - 5.03e6) / 5.03e6 < 0.02, `mean ${mean}`);
});
