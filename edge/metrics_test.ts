import assert from "node:assert/strict";
import { StreamMetrics } from "./metrics.ts";

Deno.test("metrics: stage percentiles, rates over the last second, Prometheus text", async () => {
  const m = new StreamMetrics("client");
  for (let i = 1; i <= 100; i++) m.stage("decode", i / 10);
  m.stage("decode", -1); // ignored
  for (let i = 0; i < 60; i++) m.frame(10_000, 1000 + i * 16);
  m.frame(10_000, 3000); // a second later: the earlier frames leave the window
  m.dropped(2);
  m.transport(12.5, 0.01);
  const s = m.snapshot(3000);
  assert.equal(s.stages.decode?.count, 100);
  assert.equal(s.stages.decode?.p50, 5);
  assert.equal(s.stages.decode?.p99, 9.9);
  assert.equal(s.fps, 1);
  assert.equal(s.bitrateBps, 80_000);
  assert.equal(s.framesDropped, 2);
  assert.equal(s.rttMs, 12.5);
  const text = await m.prometheus();
  assert.match(text, /wavry_stage_latency_ms_bucket\{.*stage="decode".*\}/);
  assert.match(text, /wavry_frames_dropped_total\{role="client"\} 2/);
  assert.match(text, /wavry_rtt_ms\{role="client"\} 12.5/);
});

Deno.test("metrics: the path in use is one labelled gauge series at 1", async () => {
  const m = new StreamMetrics("client");
  assert.equal(m.pathKind, undefined);
  assert.doesNotMatch(await m.prometheus(), /wavry_path\{/);
  m.path("srflx");
  assert.match(await m.prometheus(), /^wavry_path\{[^}]*path="srflx"[^}]*\} 1$/m);
  m.path("relay");
  const text = await m.prometheus();
  assert.match(text, /^wavry_path\{[^}]*path="relay"[^}]*\} 1$/m);
  assert.doesNotMatch(text, /path="srflx"/, "the old path's series is gone");
  assert.equal(m.pathKind, "relay");
});
