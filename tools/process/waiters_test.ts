import assert from "node:assert/strict";
import { Waiters } from "./waiters.ts";

Deno.test("waiters: a wait resolves on the notify after its condition holds, and not before", async () => {
  const waiters = new Waiters();
  const lines: string[] = [];
  let settled = false;
  const waiting = waiters.wait(() => lines.find((l) => l === "ready"), 5_000, () => "timeout")
    .then((v) => {
      settled = true;
      return v;
    });
  lines.push("starting");
  waiters.notify();
  await Promise.resolve();
  assert.equal(settled, false);
  lines.push("ready");
  assert.equal(settled, false, "nothing re-checks without notify");
  waiters.notify();
  assert.equal(await waiting, "ready");
});

Deno.test("waiters: a condition true at once resolves without notify", async () => {
  assert.equal(await new Waiters().wait(() => 7, 5_000, () => 0), 7);
});

Deno.test("waiters: what poll throws rejects the wait; the timeout settles with onTimeout", async () => {
  const waiters = new Waiters();
  let ended = false;
  const failing = waiters.wait(
    () => {
      if (ended) throw new Error("the source ended");
      return undefined;
    },
    5_000,
    () => "timeout",
  );
  ended = true;
  waiters.notify();
  await assert.rejects(failing, /the source ended/);
  assert.equal(await waiters.wait(() => undefined, 10, () => false), false);
  await assert.rejects(
    waiters.wait(() => undefined, 10, () => {
      throw new Error("no line within 10 ms");
    }),
    /no line within 10 ms/,
  );
});
