import assert from "node:assert/strict";
import fc from "fast-check";
import {
  encodeParity,
  encodeParityPacked,
  reconstruct,
  registerRsEncodeKernel,
} from "../core/fec/reed_solomon.ts";
import { useNativeFec } from "./native_fec.ts";

Deno.test("native RS kernel: parity equals the TypeScript loop's; any m losses still rebuild", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 0, max: 10 }),
      fc.integer({ min: 0, max: 1300 }),
      fc.integer(),
      (k, m, len, seed) => {
        let x = seed >>> 0;
        const data = Array.from(
          { length: k },
          () => Uint8Array.from({ length: len }, () => (x = (x * 1103515245 + 12345) >>> 0) >>> 24),
        );
        registerRsEncodeKernel(undefined);
        const expected = encodeParity(data, m);
        assert.ok(useNativeFec(), "the shim's fec module loads (./wavry builds it)");
        try {
          const parity = encodeParity(data, m);
          assert.deepEqual(parity.map((p) => [...p]), expected.map((p) => [...p]));
          // Lose the first m data shards: the native parity rebuilds them.
          const shards: (Uint8Array | undefined)[] = [...data, ...parity];
          for (let i = 0; i < Math.min(m, k); i++) shards[i] = undefined;
          const rebuilt = reconstruct(shards, k);
          assert.ok(rebuilt !== undefined);
          for (let i = 0; i < k; i++) assert.deepEqual([...rebuilt[i]], [...data[i]]);
        } finally {
          registerRsEncodeKernel(undefined);
        }
      },
    ),
    { numRuns: 150 },
  );
});

Deno.test("native RS kernel: encodeParityPacked equals encodeParity over the same shards", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 64 }),
      fc.integer({ min: 0, max: 8 }),
      fc.integer({ min: 0, max: 1300 }),
      fc.integer(),
      (k, m, len, seed) => {
        let x = seed >>> 0;
        const packed = Uint8Array.from(
          { length: k * len },
          () => (x = (x * 1103515245 + 12345) >>> 0) >>> 24,
        );
        const shards = Array.from({ length: k }, (_, j) => packed.slice(j * len, (j + 1) * len));
        registerRsEncodeKernel(undefined);
        const expected = encodeParity(shards, m).map((p) => [...p]);
        assert.deepEqual(encodeParityPacked(packed, k, len, m).map((p) => [...p]), expected);
        assert.ok(useNativeFec());
        try {
          assert.deepEqual(encodeParityPacked(packed, k, len, m).map((p) => [...p]), expected);
        } finally {
          registerRsEncodeKernel(undefined);
        }
      },
    ),
    { numRuns: 100 },
  );
});
