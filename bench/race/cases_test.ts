import assert from "node:assert/strict";
import { allCases, capacityAt, capacityChanges, case51, case53, compressTime } from "./cases.ts";

Deno.test("cases: ids are unique, every RFC case exists at x1 and x10, traces exist", async () => {
  const cs = allCases();
  const ids = cs.map((c) => c.id);
  assert.equal(new Set(ids).size, ids.length);
  for (const s of ["5.1", "5.2", "5.3", "5.6"]) {
    assert.ok(ids.includes(`${s}-x1`) && ids.includes(`${s}-x10`), s);
  }
  for (const c of cs) {
    for (const cap of [c.forward, c.backward]) {
      if (cap?.kind === "trace") assert.ok((await Deno.stat(cap.path)).isFile, cap.path);
    }
  }
});

Deno.test("cases: 5.1 follows RFC 8867 (1, 2.5, 0.6, 1 Mbit/s at 0/40/60/80 s), x10 scales capacity only", () => {
  const a = case51(1), b = case51(10);
  assert.deepEqual(
    [0, 39_999, 40_000, 60_000, 80_000, 99_000].map((t) => capacityAt(a.forward, t)),
    [
      1e6,
      1e6,
      2.5e6,
      0.6e6,
      1e6,
      1e6,
    ],
  );
  assert.equal(capacityAt(b.forward, 45_000), 25e6);
  assert.equal(b.oneWayDelayMs, a.oneWayDelayMs);
  assert.equal(b.queueMs, 300);
  assert.equal(a.durationMs, 100_000);
  assert.deepEqual(capacityChanges(a.forward).map((c) => [c.atMs, c.toBps < c.fromBps]), [
    [40_000, false],
    [60_000, true],
    [80_000, false],
  ]);
});

Deno.test("cases: 5.3 congests the backward link too and carries media both ways", () => {
  const c = case53(1);
  assert.ok(c.backwardMedia);
  assert.equal(capacityAt(c.backward!, 50_000), 0.8e6);
  assert.equal(capacityAt(c.forward, 50_000), 0.5e6);
});

Deno.test("cases: compressTime divides times, keeps capacities and delays; rejects < 1", () => {
  const c = compressTime(case51(1), 4);
  assert.equal(c.durationMs, 25_000);
  assert.equal(capacityAt(c.forward, 10_000), 2.5e6);
  assert.equal(c.oneWayDelayMs, 50);
  assert.equal(c.id, "5.1-x1/t4");
  assert.throws(() => compressTime(case51(1), 0.5), RangeError);
});

Deno.test("cases: 360p60 at the RFC's scale and on the traces, 720p60 at x10", () => {
  const byId = new Map(allCases().map((c) => [c.id, c.picture]));
  assert.deepEqual(byId.get("5.1-x1"), { width: 640, height: 360, fps: 60 });
  assert.deepEqual(byId.get("5.2-x10"), { width: 1280, height: 720, fps: 60 });
  assert.equal(byId.get("cell-Verizon-LTE-short")!.width, 640);
  assert.equal(byId.get("cell-TMobile-LTE-short")!.width, 640);
  assert.equal(byId.get("cell-TMobile-UMTS-driving")!.width, 640);
});
