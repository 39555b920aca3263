import assert from "node:assert/strict";
import fc from "fast-check";
import { RateLimiter } from "./rate_limit.ts";

Deno.test("token bucket: burst, then the refill rate", () => {
  const rl = new RateLimiter({ burst: 3, perSecond: 2 });
  assert.deepEqual([0, 0, 0, 0].map(() => rl.take("a", 0)), [true, true, true, false]);
  assert.equal(rl.take("b", 0), true, "keys are independent");
  assert.equal(rl.take("a", 499), false);
  assert.equal(rl.take("a", 500), true, "one token after 0.5 s at 2/s");
  assert.equal(rl.take("a", 500), false);
  assert.deepEqual([0, 0, 0, 0].map(() => rl.take("a", 100_000)), [true, true, true, false]);
});

Deno.test("token bucket: never more than burst + rate x time, whatever the timing", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 20 }),
    fc.integer({ min: 1, max: 50 }),
    fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 300 }),
    (burst, perSecond, gaps) => {
      const rl = new RateLimiter({ burst, perSecond });
      let t = 0;
      let granted = 0;
      for (const g of gaps) {
        t += g;
        if (rl.take("k", t)) granted++;
      }
      assert.ok(granted <= burst + perSecond * t / 1000 + 1e-9);
    },
  ));
});

Deno.test("token bucket: the number of buckets is bounded", () => {
  const rl = new RateLimiter({ burst: 2, perSecond: 1 }, 100);
  for (let i = 0; i < 1000; i++) rl.take(`k${i}`, i);
  assert.ok(rl.size <= 100);
});
