import assert from "node:assert/strict";
import { generateIdentity } from "../crypto/identity.ts";
import { measure, percentile, serveEcho } from "./loopback.ts";
import { SessionDriver, SessionListener } from "../edge/udp_session.ts";

Deno.test("percentile uses the nearest rank", () => {
  const values = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(values, 50), 50);
  assert.equal(percentile(values, 99), 99);
  assert.equal(percentile(values, 100), 100);
  assert.ok(Number.isNaN(percentile([], 50)));
});

Deno.test("loopback measurement: control pings round-trip, frames arrive", async () => {
  const listener = SessionListener.listen({
    hostname: "127.0.0.1",
    port: 0,
    identity: generateIdentity(),
    pacing: { rateMbps: 50, burstDatagrams: 16 },
  });
  const serving = serveEcho(listener);
  let client: SessionDriver | undefined;
  try {
    client = await SessionDriver.connect({ remote: listener.addr, identity: generateIdentity() });
    const result = await measure(client, 200, 2, 20_000);
    assert.equal(result.rttMs.length, 200);
    assert.ok(result.rttMs.every((ms) => ms > 0 && ms < 1000));
    assert.equal(result.framesDelivered + result.framesLost, 2);
    // The floor of input latency on loopback: well under a millisecond at the median.
    assert.ok(percentile(result.rttMs, 50) < 20, `p50 ${percentile(result.rttMs, 50)} ms`);
  } finally {
    await client?.close();
    await listener.close();
    await serving;
  }
});
