import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ed25519 } from "@noble/curves/ed25519.js";
import { generateIdentity } from "../crypto/identity.ts";
import {
  encodePeerKey,
  issueLease,
  leasePublicKeyFromBytes,
  leaseSecretKeyFromSeed,
} from "../crypto/lease.ts";
import { startRelay } from "./server.ts";
import { TestPeer } from "./test_support.ts";
import { decodeBindError, encodeBindRequest } from "./wire.ts";

const seed = crypto.getRandomValues(new Uint8Array(32));
const SECRET = leaseSecretKeyFromSeed(seed);
const PUBLIC = leasePublicKeyFromBytes(ed25519.getPublicKey(seed));

async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  return await res.text();
}

function metricValue(text: string, name: string, kind?: string): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name + "{") && !line.startsWith(name + " ")) continue;
    if (kind !== undefined && !line.includes(`kind="${kind}"`)) continue;
    return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

Deno.test("server: refusals show up by kind at /metrics; /health reports the worker", async () => {
  const relay = await startRelay({
    relayId: "relay-metrics",
    listen: { hostname: "127.0.0.1", port: 0 },
    http: { hostname: "127.0.0.1", port: 0 },
    leasePublicKey: PUBLIC,
    statsIntervalMs: 50,
  });
  const peer = new TestPeer();
  try {
    const base = `http://127.0.0.1:${relay.http.port}`;
    const a = generateIdentity();
    const b = generateIdentity();
    const now = Date.now();
    const claims = {
      sessionId: "m1",
      peers: [encodePeerKey(a.publicKey), encodePeerKey(b.publicKey)] as [string, string],
      notBefore: new Date(now - 7200_000),
      expiresAt: new Date(now - 3600_000),
      bandwidthBps: 1e6,
      issuer: "t",
    };
    const expired = issueLease(SECRET, { ...claims, relayId: "relay-metrics" });
    const wrongRelay = issueLease(SECRET, {
      ...claims,
      relayId: "elsewhere",
      expiresAt: new Date(now + 3600_000),
    });
    await peer.send(encodeBindRequest(expired, a, Date.now()), relay.udp);
    assertEquals(decodeBindError((await peer.next())!.bytes)?.kind, "LeaseExpired");
    await peer.send(encodeBindRequest(wrongRelay, a, Date.now()), relay.udp);
    assertEquals(decodeBindError((await peer.next())!.bytes)?.kind, "LeaseWrongRelay");
    await peer.send(new Uint8Array([0xc1, 0, 0]), relay.udp);

    let text = "";
    for (let i = 0; i < 40; i++) {
      text = await scrape(`${base}/metrics`);
      if (metricValue(text, "wavry_relay_dropped_total", "UnboundSource") === 1) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assertEquals(metricValue(text, "wavry_relay_dropped_total", "LeaseExpired"), 1);
    assertEquals(metricValue(text, "wavry_relay_dropped_total", "LeaseWrongRelay"), 1);
    assertEquals(metricValue(text, "wavry_relay_dropped_total", "UnboundSource"), 1);
    assertEquals(metricValue(text, "wavry_relay_dropped_total", "LeaseForged"), 0);
    assertEquals(metricValue(text, "wavry_relay_replies_total"), 2);
    assert(text.includes('relay="relay-metrics"'));
    assert(text.includes("wavry_relay_stun_answered_total"), "STUN on the relay port is counted");

    const health = await fetch(`${base}/health`);
    assertEquals(health.status, 200);
    const h = await health.json();
    assertEquals(h.status, "ok");
    assertEquals(h.relayId, "relay-metrics");
    assertEquals(h.gatewayRegistered, null);
    // The shim is built in this repo (make -C ffi), so the batched native socket is in use.
    assertEquals([h.socket, h.socketFallbackReason], ["native", null]);
    assertEquals(
      (await fetch(`${base}/nope`).then(async (r) => [r.status, await r.text()]))[0],
      404,
    );

    // A dead worker makes /health fail.
    relay.forwarder.kill();
    await new Promise((r) => setTimeout(r, 3 * 50 + 1_100));
    const dead = await fetch(`${base}/health`);
    assertEquals(dead.status, 503);
    await dead.body?.cancel();
  } finally {
    await peer.close();
    await relay.stop();
  }
});
