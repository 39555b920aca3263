import assert from "node:assert/strict";
import { frameRecordsOf } from "./rfc8867.ts";

const at = (entries: [number, number][]) =>
  new Map(entries.map(([id, sendMs]) => [id, { sendMs, recvMs: sendMs + 40 }]));

Deno.test("frameRecordsOf: a frame id never completed is a lost frame between its neighbours", () => {
  const r = frameRecordsOf(at([[0, 0], [1, 1000 / 60], [3, 3000 / 60]]), 60);
  assert.equal(r.missing, 1);
  assert.equal(r.notEncoded, 0);
  assert.equal(r.frames.length, 4);
  const lost = r.frames.filter((f) => f.recvMs === undefined);
  assert.equal(lost.length, 1);
  assert.ok(Math.abs(lost[0].sendMs - 2000 / 60) < 1e-9);
});

Deno.test("frameRecordsOf: capture slots the host did not encode count as lost too", () => {
  // Frame-rate lowering to 20 fps: consecutive ids, three 60 fps slots apart.
  const r = frameRecordsOf(at([[0, 0], [1, 50], [2, 100]]), 60);
  assert.equal(r.missing, 0);
  assert.equal(r.notEncoded, 4);
  assert.equal(r.frames.filter((f) => f.recvMs === undefined).length, 4);
  assert.equal(r.frames.filter((f) => f.recvMs !== undefined).length, 3);
});
