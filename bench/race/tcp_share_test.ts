import assert from "node:assert/strict";
import fc from "fast-check";
import type { PacketRecord } from "./metrics.ts";
import { tcpFigures, type TcpRun } from "./tcp_share.ts";

const run = (forward: PacketRecord[], goodput: { t: number; bps: number }[] = []): TcpRun => ({
  forward,
  goodput,
  connectedAtMs: 0,
  handshakeMs: 100,
});

Deno.test("tcpFigures: rates, share and series over the window", () => {
  // TCP: 1500 bytes every 10 ms delivered (1.2 Mbit/s); media: 1000 bytes every 10 ms (0.8).
  const tcp = Array.from(
    { length: 300 },
    (_, i) => ({ sendMs: i * 10, recvMs: i * 10 + 5, bytes: 1500 }),
  );
  const media = Array.from(
    { length: 300 },
    (_, i) => ({ sendMs: i * 10, recvMs: i * 10 + 5, bytes: 1000 }),
  );
  const lost = { sendMs: 100, bytes: 1500 }; // never delivered: not counted
  const f = tcpFigures(
    media,
    run([...tcp, lost], [{ t: 0, bps: 1e6 }, { t: 1000, bps: 2e6 }]),
    0,
    3000,
  );
  assert.ok(Math.abs(f.tcpBps - 1.2e6) < 1e-6);
  assert.ok(Math.abs(f.mediaShare - 0.4) < 1e-12);
  assert.equal(f.goodputBps, 1.5e6);
  assert.equal(f.series.length, 3);
  for (const b of f.series) assert.ok(Math.abs(b.bps - 1.2e6) < 1e-6);
  assert.throws(() => tcpFigures(media, run(tcp), 10, 10), RangeError);
  assert.ok(Number.isNaN(tcpFigures([], run([]), 0, 1000).mediaShare));
});

Deno.test("tcpFigures: share in [0, 1], series bytes add up to the total (property)", () => {
  const rec = fc.record({
    sendMs: fc.integer({ min: 0, max: 5000 }),
    recvMs: fc.option(fc.integer({ min: 0, max: 6000 }), { nil: undefined }),
    bytes: fc.integer({ min: 1, max: 1500 }),
  });
  fc.assert(
    fc.property(fc.array(rec), fc.array(rec), fc.integer({ min: 1, max: 5000 }), (m, t, bin) => {
      const f = tcpFigures(m, run(t), 0, 5000, bin);
      if (!Number.isNaN(f.mediaShare)) assert.ok(f.mediaShare >= 0 && f.mediaShare <= 1);
      const fromSeries = f.series.reduce((a, b, i) => {
        const w = Math.min(bin, 5000 - i * bin);
        return a + b.bps * w / 8000;
      }, 0);
      assert.ok(Math.abs(fromSeries - f.tcpBps * 5 / 8) < 1e-6 * Math.max(1, fromSeries));
    }),
  );
});
