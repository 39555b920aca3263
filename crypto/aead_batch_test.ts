import assert from "node:assert/strict";
import { type AeadBatch, createAead } from "./aead.ts";
import { checkBatchBackend } from "./aead_batch_testing.ts";

for (const backend of ["noble", "node"] as const) {
  Deno.test(`aead ${backend}: sealBatch equals N single seals; openBatch rejects only the tampered packet`, () => {
    checkBatchBackend(backend, 60);
  });
}

Deno.test("aead: sealBatch refuses packets outside the buffer or bad counters, before writing", () => {
  const aead = createAead(new Uint8Array(32), "node");
  const buffer = new Uint8Array(100);
  const batch = (offset: number, length: number, counter: number): AeadBatch => ({
    buffer,
    offsets: Int32Array.of(0, offset),
    lengths: Int32Array.of(40, length),
    counters: Float64Array.of(0, counter),
    count: 2,
  });
  assert.throws(() => aead.sealBatch(batch(50, 60, 1), 16), RangeError);
  assert.throws(() => aead.sealBatch(batch(50, 20, 1), 16), RangeError);
  assert.throws(() => aead.sealBatch(batch(50, 40, -1), 16), RangeError);
  assert.throws(() => aead.sealBatch(batch(50, 40, 2 ** 53), 16), RangeError);
  assert.deepEqual(buffer, new Uint8Array(100));
});

Deno.test("aead: openBatch skips packets that do not fit their buffers instead of throwing", () => {
  const aead = createAead(new Uint8Array(32), "node");
  const ok = Uint8Array.of(1, 1);
  const n = aead.openBatch(
    {
      buffer: new Uint8Array(64),
      offsets: Int32Array.of(0, 40),
      lengths: Int32Array.of(10, 40),
      counters: Float64Array.of(0, 1),
      count: 2,
    },
    0,
    new Uint8Array(64),
    Int32Array.of(0, 0),
    ok,
  );
  assert.equal(n, 0);
  assert.deepEqual(ok, Uint8Array.of(0, 0));
});
