/**
 * Property check of the batch AEAD contract, shared by the backends' tests
 * (crypto/aead_batch_test.ts for the TypeScript ones, edge/native_aead_test.ts
 * for the native one). Test support only.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { type AeadBackend, type AeadBatch, createAead, nonceFromCounter } from "./aead.ts";

/** Packets of random plaintext lengths, laid out back to back after an 8-byte gap. */
export const packetsArbitrary = fc.record({
  key: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  adLength: fc.integer({ min: 0, max: 24 }),
  packets: fc.array(
    fc.record({
      ad: fc.uint8Array({ minLength: 24, maxLength: 24 }),
      plaintext: fc.uint8Array({ maxLength: 1300 }),
      counter: fc.maxSafeNat(),
    }),
    { minLength: 1, maxLength: 12 },
  ),
});

/** One generated case. */
export type Packets = typeof packetsArbitrary extends fc.Arbitrary<infer T> ? T : never;

/** The batch of `p` (plaintext in place, tag room zeroed). */
export function layout(p: Packets): AeadBatch {
  const n = p.packets.length;
  const offsets = new Int32Array(n), lengths = new Int32Array(n), counters = new Float64Array(n);
  let at = 8;
  for (let i = 0; i < n; i++) {
    offsets[i] = at;
    lengths[i] = p.adLength + p.packets[i].plaintext.length + 16;
    counters[i] = p.packets[i].counter;
    at += lengths[i];
  }
  const buffer = new Uint8Array(at + 8);
  p.packets.forEach((q, i) => {
    buffer.set(q.ad.subarray(0, p.adLength), offsets[i]);
    buffer.set(q.plaintext, offsets[i] + p.adLength);
  });
  return { buffer, offsets, lengths, counters, count: n };
}

/** Checks the batch contract of one backend. */
export function checkBatchBackend(backend: AeadBackend, numRuns: number): void {
  fc.assert(
    fc.property(packetsArbitrary, (p) => {
      const aead = createAead(p.key, backend);
      const batch = layout(p);
      aead.sealBatch(batch, p.adLength);
      // Byte for byte what N single seals give, and nothing outside the packets touched.
      p.packets.forEach((q, i) => {
        const ad = q.ad.subarray(0, p.adLength);
        const single = aead.seal(nonceFromCounter(q.counter), q.plaintext, ad);
        const at = batch.offsets[i];
        assert.deepEqual(batch.buffer.subarray(at, at + p.adLength), ad);
        assert.deepEqual(
          batch.buffer.subarray(at + p.adLength, at + batch.lengths[i]),
          single,
        );
      });
      assert.deepEqual(batch.buffer.subarray(0, 8), new Uint8Array(8));
      // Open into a separate buffer, with one packet in the middle tampered with.
      const bad = Math.floor(p.packets.length / 2);
      const tampered = batch.buffer.slice();
      tampered[batch.offsets[bad] + batch.lengths[bad] - 1] ^= 0x40;
      const dst = new Uint8Array(batch.buffer.length);
      const ok = new Uint8Array(p.packets.length).fill(1);
      const opened = aead.openBatch(
        { ...batch, buffer: tampered },
        p.adLength,
        dst,
        batch.offsets,
        ok,
      );
      assert.equal(opened, p.packets.length - 1);
      p.packets.forEach((q, i) => {
        assert.equal(ok[i], i === bad ? 0 : 1, `packet ${i}`);
        const plain = dst.subarray(batch.offsets[i], batch.offsets[i] + q.plaintext.length);
        if (i === bad) assert.deepEqual(plain, new Uint8Array(q.plaintext.length));
        else assert.deepEqual(plain, q.plaintext);
      });
      // In place, skipping packet 0: it is left alone, the rest open.
      const inPlace = batch.buffer.slice();
      const ok2 = new Uint8Array(p.packets.length).fill(1);
      ok2[0] = 0;
      const dstOffsets = batch.offsets.map((o) => o + p.adLength);
      aead.openBatch({ ...batch, buffer: inPlace }, p.adLength, inPlace, dstOffsets, ok2);
      assert.equal(ok2[0], 0);
      assert.deepEqual(
        inPlace.subarray(batch.offsets[0], batch.offsets[0] + batch.lengths[0]),
        batch.buffer.subarray(batch.offsets[0], batch.offsets[0] + batch.lengths[0]),
      );
      p.packets.forEach((q, i) => {
        if (i === 0) return;
        assert.equal(ok2[i], 1);
        const at = dstOffsets[i];
        assert.deepEqual(inPlace.subarray(at, at + q.plaintext.length), q.plaintext);
      });
    }),
    { numRuns },
  );
}
