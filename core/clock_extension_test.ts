import assert from "node:assert/strict";
import { decodeClockExtension, encodeClockExtension } from "./clock_extension.ts";

Deno.test("clock extension: round trip; anything else is undefined", () => {
  for (const v of [0, -1.5, 1_732_000_000_123.25, -9e15]) {
    assert.equal(decodeClockExtension(encodeClockExtension(v)), v);
  }
  assert.equal(decodeClockExtension(new Uint8Array(0)), undefined);
  assert.equal(decodeClockExtension(new Uint8Array(9)), undefined); // version 0
  const nan = encodeClockExtension(0);
  new DataView(nan.buffer).setFloat64(1, NaN);
  assert.equal(decodeClockExtension(nan), undefined);
});
