import assert from "node:assert/strict";
import fc from "fast-check";
import { type MediaEvent, MediaReceiver, MediaSender } from "./media_lane.ts";
import { establishedSessions } from "./session_testing.ts";
import { Rng } from "./sim/rng.ts";
import { FecScheme } from "./frames.ts";

/** Media lane states of a real handshake, with a short rekey interval so key phases change. */
function lanes(seed: number) {
  const { client, host } = establishedSessions(seed);
  const h = host.detachMedia(), c = client.detachMedia();
  const transport = { rekeyAfterPackets: 40, minRekeyIntervalMs: 0 };
  return {
    host: {
      ...h,
      transport: { ...h.transport, ...transport },
      fec: { parityRatio: 0.2, scheme: FecScheme.ReedSolomon, maxGroup: 8 },
    },
    client: { ...c, transport: { ...c.transport, ...transport } },
  };
}

function events(r: MediaReceiver): MediaEvent[] {
  const out: MediaEvent[] = [];
  for (let e; (e = r.pollEvent()) !== undefined;) out.push(e);
  return out;
}

Deno.test("media lane: pollTransmitBatch seals the same datagrams as pollTransmit, within its budget", () => {
  const { host } = lanes(1);
  const a = new MediaSender(host, 0), b = new MediaSender(host, 0);
  a.recordSentPackets();
  b.recordSentPackets();
  const data = new Rng(3).bytes(20_000);
  for (const s of [a, b]) {
    s.sendAudio(1, 5, Uint8Array.of(9, 9));
    s.sendVideoFrame({ frameId: 1, captureTimeUs: 7, keyframe: true, data });
  }
  const singles: Uint8Array[] = [];
  for (let d; (d = a.pollTransmit(10)) !== undefined;) singles.push(d);
  const batched: Uint8Array[] = [];
  for (;;) {
    // The budget is spent while below 2500 bytes (the last datagram overshoots), as a pacer expects.
    const batch = b.pollTransmitBatch(10, 8, 2500);
    if (batch.count === 0) break;
    assert.ok(batch.count <= 8);
    let before = 0;
    for (let i = 0; i < batch.count - 1; i++) before += batch.lengths[i];
    assert.ok(before < 2500);
    let at = 0;
    for (let i = 0; i < batch.count; i++) {
      batched.push(batch.bytes.slice(at, at + batch.lengths[i]));
      at += batch.lengths[i];
    }
  }
  assert.deepEqual(batched, singles);
  assert.deepEqual(b.takeSent(), a.takeSent());
  assert.deepEqual(b.stats, a.stats);
});

Deno.test("media lane: handleBatch equals handleDatagram one by one, under loss, duplicates, reordering, forgery and key updates", () => {
  const { host, client } = lanes(2);
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 2 ** 30 }),
      fc.integer({ min: 1, max: 40 }),
      (seed, batchSize) => {
        const rng = new Rng(seed);
        const sender = new MediaSender(host, 0);
        const datagrams: Uint8Array[] = [];
        for (let f = 0; f < 6; f++) {
          sender.sendVideoFrame({
            frameId: f,
            captureTimeUs: f * 1000,
            keyframe: f === 0,
            data: rng.bytes(1 + Math.floor(rng.next() * 12_000)),
          });
          if (f % 2 === 0) sender.sendAudio(f, f, rng.bytes(3));
          for (let d; (d = sender.pollTransmit(f)) !== undefined;) datagrams.push(d);
        }
        // Damage the stream: drop, duplicate, swap neighbours, flip a bit, add junk.
        const stream: Uint8Array[] = [];
        for (const d of datagrams) {
          const x = rng.next();
          if (x < 0.08) continue;
          if (x < 0.14) stream.push(d, d);
          else if (x < 0.2 && stream.length > 0) stream.splice(stream.length - 1, 0, d);
          else if (x < 0.25) {
            const bad = d.slice();
            bad[Math.floor(rng.next() * bad.length)] ^= 1 << Math.floor(rng.next() * 8);
            stream.push(bad);
          } else if (x < 0.27) stream.push(rng.bytes(Math.floor(rng.next() * 60)));
          else stream.push(d);
        }
        const one = new MediaReceiver(client, 0);
        const many = new MediaReceiver(client, 0);
        let acceptedOne = 0;
        stream.forEach((d, i) => {
          if (one.handleDatagram(d, 10 + i) === undefined) acceptedOne++;
        });
        // Batches in one buffer with gaps between datagrams, as a receive buffer has.
        let acceptedMany = 0;
        for (let first = 0; first < stream.length; first += batchSize) {
          const part = stream.slice(first, first + batchSize);
          const offsets: number[] = [], lengths: number[] = [], times: number[] = [];
          let at = 3;
          for (let i = 0; i < part.length; i++) {
            offsets.push(at);
            lengths.push(part[i].length);
            times.push(10 + first + i);
            at += part[i].length + 5;
          }
          const buffer = new Uint8Array(at);
          part.forEach((d, i) => buffer.set(d, offsets[i]));
          acceptedMany += many.handleBatch(buffer, offsets, lengths, part.length, times);
          buffer.fill(0xee); // the caller may reuse its buffer at once
        }
        assert.ok(acceptedOne > 0);
        assert.equal(acceptedMany, acceptedOne);
        assert.deepEqual(many.stats, one.stats);
        assert.deepEqual(many.takeArrivals(), one.takeArrivals());
        assert.deepEqual(events(many), events(one));
        many.handleTimeout(1e6);
        one.handleTimeout(1e6);
        assert.deepEqual(events(many), events(one));
      },
    ),
    { numRuns: 40 },
  );
});
