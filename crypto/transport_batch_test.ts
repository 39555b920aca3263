import assert from "node:assert/strict";
import fc from "fast-check";
import type { AeadBatch } from "./aead.ts";
import { HEADER_LENGTH, PacketProtector, TAG_LENGTH } from "./transport.ts";

const keys = { sendKey: new Uint8Array(32).fill(1), recvKey: new Uint8Array(32).fill(1) };

function header(pn: number, phase: 0 | 1, out: Uint8Array, at: number): void {
  out.fill(0, at, at + HEADER_LENGTH);
  out[at] = 0xc1;
  out[at + 2] = phase;
  new DataView(out.buffer, out.byteOffset).setUint32(at + 12, pn);
}

function layout(sizes: number[]): AeadBatch {
  const offsets = new Int32Array(sizes.length), lengths = new Int32Array(sizes.length);
  let at = 0;
  sizes.forEach((s, i) => {
    offsets[i] = at;
    lengths[i] = HEADER_LENGTH + s + TAG_LENGTH;
    at += lengths[i];
  });
  const buffer = new Uint8Array(at);
  sizes.forEach((s, i) =>
    buffer.fill(i + 1, offsets[i] + HEADER_LENGTH, offsets[i] + HEADER_LENGTH + s)
  );
  return {
    buffer,
    offsets,
    lengths,
    counters: new Float64Array(sizes.length),
    count: sizes.length,
  };
}

Deno.test("transport: sealBatch gives the datagrams of N seal calls, key updates included", () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 9 }), {
        minLength: 1,
        maxLength: 6,
      }),
      fc.integer({ min: 1, max: 7 }),
      fc.constantFrom(0, 5),
      (batches, rekeyAfterPackets, minRekeyIntervalMs) => {
        const config = { rekeyAfterPackets, minRekeyIntervalMs, backend: "node" as const };
        const single = new PacketProtector(keys, 0, config);
        const batched = new PacketProtector(keys, 0, config);
        const receiver = new PacketProtector(keys, 0, config);
        batches.forEach((sizes, b) => {
          const now = b * 3;
          const batch = layout(sizes);
          const r = batched.sealBatch(header, batch, now);
          assert.equal(r.sealed, sizes.length);
          sizes.forEach((_, i) => {
            const at = batch.offsets[i];
            const plaintext = layout(sizes).buffer.subarray(
              at + HEADER_LENGTH,
              at + batch.lengths[i] - TAG_LENGTH,
            );
            const s = single.seal((pn, phase, out) => header(pn, phase, out, 0), plaintext, now);
            assert.ok(s.ok);
            assert.equal(batch.counters[i], s.packetNumber);
            assert.equal(r.firstPacketNumber + i, s.packetNumber);
            const datagram = batch.buffer.subarray(at, at + batch.lengths[i]);
            assert.deepEqual(datagram, s.datagram);
            // And the receiver opens it, following the key phase.
            const opened = receiver.open(
              datagram.subarray(0, HEADER_LENGTH),
              s.packetNumber,
              (datagram[2] & 1) as 0 | 1,
              datagram.subarray(HEADER_LENGTH),
              now,
            );
            assert.ok(opened.ok);
            opened.commit();
          });
        });
        assert.deepEqual(batched.stats, single.stats);
      },
    ),
    { numRuns: 80 },
  );
});

Deno.test("transport: sealBatch stops at packet-number exhaustion instead of reusing a nonce", () => {
  const p = new PacketProtector(keys, 0, { maxPacketNumber: 2, backend: "node" });
  const batch = layout([1, 1, 1, 1, 1]);
  assert.deepEqual(p.sealBatch(header, batch, 0), { sealed: 3, firstPacketNumber: 0 });
  assert.deepEqual(p.sealBatch(header, layout([1]), 0), { sealed: 0, firstPacketNumber: 3 });
});

Deno.test("transport: openCurrentBatch + commitCurrent accept, reject tampered, replayed and duplicate packets", () => {
  const sender = new PacketProtector(keys, 0, { backend: "node" });
  const receiver = new PacketProtector(keys, 0, { backend: "node" });
  const batch = layout([10, 20, 30, 40]);
  sender.sealBatch(header, batch, 0);
  // pn 1 arrives early and is committed; pn 2 is tampered with; pn 3 comes twice.
  const early = receiver.open(
    batch.buffer.subarray(batch.offsets[1], batch.offsets[1] + HEADER_LENGTH),
    1,
    0,
    batch.buffer.subarray(batch.offsets[1] + HEADER_LENGTH, batch.offsets[2]),
    0,
  );
  assert.ok(early.ok);
  early.commit();
  const buffer = batch.buffer.slice();
  buffer[batch.offsets[2] + 20] ^= 1;
  const offsets = Int32Array.of(...batch.offsets, batch.offsets[3]);
  const lengths = Int32Array.of(...batch.lengths, batch.lengths[3]);
  const counters = Float64Array.of(0, 1, 2, 3, 3);
  const run: AeadBatch = { buffer, offsets, lengths, counters, count: 5 };
  const dst = new Uint8Array(buffer.length);
  const ok = new Uint8Array(5).fill(1);
  const kinds: (string | undefined)[] = [];
  assert.equal(receiver.receivePhase, 0);
  receiver.openCurrentBatch(run, dst, offsets, ok, kinds as never);
  assert.deepEqual([...ok], [1, 0, 0, 1, 1]);
  assert.deepEqual(kinds, [undefined, "Replayed", "Unauthenticated", undefined, undefined]);
  assert.deepEqual(dst.subarray(offsets[0], offsets[0] + 10), new Uint8Array(10).fill(1));
  assert.equal(receiver.commitCurrent(0, 0), undefined);
  assert.equal(receiver.commitCurrent(3, 0), undefined);
  assert.equal(receiver.commitCurrent(3, 0), "Replayed");
  assert.equal(receiver.replayKind(2), undefined);
  assert.equal(receiver.replayKind(0), "Replayed");
  assert.equal(receiver.stats.opened, 3);
});
