import assert from "node:assert/strict";
import { raiseDefaultSocketBuffers } from "./socket_buffers.ts";

const RMEM = "/proc/sys/net/core/rmem_default";

Deno.test("raiseDefaultSocketBuffers: raises the default for new sockets and restores it", () => {
  const before = Number(Deno.readTextFileSync(RMEM).trim());
  const want = before + 4096;
  const r = raiseDefaultSocketBuffers(want);
  try {
    // The suite runs as root (README); a refusal here is a real failure, not a skip.
    assert.equal(r.reason, undefined, r.reason);
    assert.equal(Number(Deno.readTextFileSync(RMEM).trim()), want);
    assert.ok(r.raised.some((x) => x.path === RMEM && x.previous === before));
  } finally {
    r.restore();
    r.restore();
  }
  assert.equal(Number(Deno.readTextFileSync(RMEM).trim()), before);
  // Never lowers a knob.
  const none = raiseDefaultSocketBuffers(1);
  assert.equal(none.raised.length, 0);
  assert.throws(() => raiseDefaultSocketBuffers(0), RangeError);
});
