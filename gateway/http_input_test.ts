import assert from "node:assert/strict";
import fc from "fast-check";
import { SignalingChannel } from "./client.ts";
import { snapshotKv } from "./store.ts";
import { metricValue, startTestGateway } from "./test_support.ts";

Deno.test("HTTP: junk bodies on every endpoint get a typed 4xx and leave KV unchanged", async () => {
  const gw = await startTestGateway({
    loginLimit: {
      perAddress: { burst: 1e6, perSecond: 1e6 },
      perIdentity: { burst: 1e6, perSecond: 1e6 },
    },
  });
  try {
    const host = await gw.peer("h", "host");
    const relay = await gw.peer("r", "relay");
    await relay.relayHeartbeat({
      relayId: "r1",
      address: "10.0.0.1:4000",
      load: 0,
      capacityBps: 1e6,
    });
    const before = await snapshotKv(gw.kv);
    const endpoints: [string, string | undefined][] = [
      ["/v1/challenge", undefined],
      ["/v1/register", undefined],
      ["/v1/login", undefined],
      ["/v1/hosts/allow", host.token],
      ["/v1/pairing/redeem", host.token],
      ["/v1/relays/heartbeat", relay.token],
    ];
    const junk = fc.oneof(
      fc.string({ maxLength: 100 }),
      fc.json({ maxDepth: 3 }),
      fc.record({
        publicKey: fc.oneof(fc.constant(host.publicKey), fc.string({ maxLength: 50 })),
        nonce: fc.string({ maxLength: 50 }),
        signature: fc.string({ maxLength: 90 }),
        name: fc.string({ maxLength: 70 }),
        kind: fc.string({ maxLength: 6 }),
        purpose: fc.constantFrom("login", "register", "other"),
        clientKey: fc.string({ maxLength: 50 }),
        code: fc.string({ maxLength: 10 }),
        relayId: fc.string({ maxLength: 70 }),
        address: fc.string({ maxLength: 30 }),
        load: fc.double(),
        capacityBps: fc.double(),
        extra: fc.anything({ maxDepth: 1 }),
      }, { requiredKeys: ["extra"] }).map((o) => JSON.stringify(o)),
    );
    let n = 0;
    for (const body of fc.sample(junk, { numRuns: 120, seed: 7 })) {
      const [path, token] = endpoints[n++ % endpoints.length];
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (token) headers.authorization = `Bearer ${token}`;
      const res = await fetch(`${gw.url}${path}`, { method: "POST", headers, body });
      const reply = await res.json();
      assert.ok(res.status >= 400 && res.status < 500, `${path} ${body} -> ${res.status}`);
      assert.equal(reply.type, "error");
      assert.ok(typeof reply.code === "string" && typeof reply.message === "string");
    }
    // A body declared too large is refused before it is read.
    const big = await fetch(`${gw.url}/v1/challenge`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ pad: "x".repeat(20_000) }),
    });
    assert.equal(big.status, 413);
    assert.equal((await big.json()).code, "TooLarge");
    assert.equal(await snapshotKv(gw.kv), before, "KV changed");
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    assert.ok(metricValue(m, 'wavry_gateway_refusals_total{kind="bad_request"}') >= 100);
  } finally {
    await gw.stop();
  }
});

Deno.test("WebSocket: a socket that never authenticates is closed after the timeout", async () => {
  const gw = await startTestGateway({ authTimeoutMs: 150 });
  try {
    const ch = await SignalingChannel.open(gw.url);
    const t0 = Date.now();
    await ch.closed;
    assert.ok(Date.now() - t0 >= 100);
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    assert.equal(metricValue(m, 'wavry_gateway_refusals_total{kind="auth_timeout"}'), 1);
    // A plain GET on the WebSocket path is refused with a typed error.
    const plain = await fetch(`${gw.url}/v1/ws`);
    assert.equal(plain.status, 426);
    assert.equal((await plain.json()).code, "BadMessage");
  } finally {
    await gw.stop();
  }
});
