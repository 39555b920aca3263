import assert from "node:assert/strict";
import { AsyncQueue } from "./queue.ts";

Deno.test("AsyncQueue delivers in order, waits for items, and ends", async () => {
  const q = new AsyncQueue<number>();
  q.push(1);
  q.push(2);
  const got: number[] = [];
  const reading = (async () => {
    for await (const n of q.iterate()) got.push(n);
  })();
  await Promise.resolve();
  q.push(3);
  q.end();
  q.push(4); // ignored after end
  await reading;
  assert.deepEqual(got, [1, 2, 3]);
  assert.deepEqual(await q.next(), { value: undefined, done: true });
});

Deno.test("AsyncQueue: leaving a loop keeps the rest; a full queue discards the oldest", async () => {
  const q = new AsyncQueue<string>(2);
  q.push("a");
  q.push("b");
  q.push("c");
  assert.equal(q.discarded, 1);
  for await (const s of q.iterate()) {
    assert.equal(s, "b");
    break;
  }
  assert.equal(q.length, 1);
  assert.deepEqual(await q.next(), { value: "c", done: false });
  const pending = q.next();
  await assert.rejects(q.next(), /single consumer/);
  q.end();
  assert.deepEqual(await pending, { value: undefined, done: true });
});
