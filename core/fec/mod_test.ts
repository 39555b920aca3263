import assert from "node:assert/strict";
import { FecScheme } from "../frames.ts";
import { codecFor, reedSolomonCodec, xorCodec } from "./mod.ts";

Deno.test("mod: codecFor picks the scheme's codec, both share one shape", () => {
  assert.equal(codecFor(FecScheme.Xor), xorCodec);
  assert.equal(codecFor(FecScheme.ReedSolomon), reedSolomonCodec);
  assert.equal(xorCodec.maxParity(10), 1);
  assert.equal(reedSolomonCodec.maxParity(35), 220);
  const data = [Uint8Array.of(1, 2, 3), Uint8Array.of(4, 5)];
  for (const codec of [xorCodec, reedSolomonCodec]) {
    const parity = codec.encodeParity(data, 1);
    const got = codec.reconstruct([data[0], undefined, parity[0]], 2);
    assert.deepEqual(got, [data[0], Uint8Array.of(4, 5, 0)]);
  }
});
