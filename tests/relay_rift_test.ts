/**
 * A real RIFT session (core/session.ts over edge/udp_session.ts) through the
 * relay worker: each peer opens its relay binding from the UDP port it will
 * then use for RIFT, so the relay forwards the Noise_XX handshake and the
 * sealed packets it cannot read. No change to edge/ is needed: the binding is
 * keyed by address, so a short-lived socket on the same port can open it.
 */
import assert from "node:assert/strict";
import { ed25519 } from "@noble/curves/ed25519.js";
import { generateIdentity, type IdentityKeyPair } from "../crypto/identity.ts";
import {
  encodePeerKey,
  issueLease,
  leasePublicKeyFromBytes,
  leaseSecretKeyFromSeed,
} from "../crypto/lease.ts";
import { SessionDriver, SessionListener } from "../edge/udp_session.ts";
import { within } from "../edge/test_support.ts";
import { RelayForwarder } from "../relay/forwarder.ts";
import type { RelayAddress } from "../relay/binding_table.ts";
import { TestPeer } from "../relay/test_support.ts";
import { PeerBinding, type PeerBindingState } from "../relay/peer_binding.ts";

const LOOPBACK = "127.0.0.1";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Opens a relay binding from a fresh loopback port with the peer-side state
 * machine, until the relay answers; returns the port (released again) and the state.
 */
async function bindFromPort(
  relay: RelayAddress,
  lease: string,
  identity: IdentityKeyPair,
): Promise<{ port: number; state: PeerBindingState["state"] }> {
  const socket = new TestPeer(LOOPBACK, 0);
  const binding = new PeerBinding({ lease, identity, retryMs: 200, timeoutMs: 3_000 });
  try {
    while (binding.status.state === "binding") {
      const out = binding.poll(Date.now());
      if (out !== undefined) await socket.send(out, relay);
      const answer = await socket.next(50);
      if (answer !== undefined) binding.handle(answer.bytes);
    }
    return { port: socket.address.port, state: binding.status.state };
  } finally {
    await socket.close();
  }
}

Deno.test("RIFT through the relay: Noise_XX handshake, messages both ways and a 200 KB frame; killing the relay ends the session", async () => {
  const gatewaySeed = crypto.getRandomValues(new Uint8Array(32));
  const hostId = generateIdentity();
  const clientId = generateIdentity();
  const now = Date.now();
  const lease = issueLease(leaseSecretKeyFromSeed(gatewaySeed), {
    sessionId: "rift-through-relay",
    peers: [encodePeerKey(hostId.publicKey), encodePeerKey(clientId.publicKey)],
    relayId: "relay-rift",
    notBefore: new Date(now - 1_000),
    expiresAt: new Date(now + 600_000),
    bandwidthBps: 400_000_000,
    issuer: "test",
  });
  const config = { idleTimeoutMs: 1_500, keepaliveMs: 300 };
  let relay: RelayForwarder | undefined;
  let listener: SessionListener | undefined;
  let client: SessionDriver | undefined;
  try {
    relay = await RelayForwarder.start({
      hostname: LOOPBACK,
      port: 0,
      table: {
        relayId: "relay-rift",
        leasePublicKey: leasePublicKeyFromBytes(ed25519.getPublicKey(gatewaySeed)),
      },
      statsIntervalMs: 100,
    });
    const hostBinding = await bindFromPort(relay.address, lease, hostId);
    assert.equal(hostBinding.state, "waiting-for-peer");
    const clientBinding = await bindFromPort(relay.address, lease, clientId);
    assert.equal(clientBinding.state, "ready");

    listener = SessionListener.listen({
      hostname: LOOPBACK,
      port: hostBinding.port,
      identity: hostId,
      acceptPeer: (peer) => encodePeerKey(peer) === encodePeerKey(clientId.publicKey),
      config,
    });
    const accepted = within(
      5_000,
      (async () => {
        for await (const d of listener.accept()) return d;
        throw new Error("listener closed");
      })(),
      "accept through the relay",
    );
    // The client dials the relay, not the host: the relay's address is all it knows.
    client = await SessionDriver.connect({
      remote: relay.address,
      localHostname: LOOPBACK,
      localPort: clientBinding.port,
      identity: clientId,
      acceptPeer: (peer) => encodePeerKey(peer) === encodePeerKey(hostId.publicKey),
      config,
    });
    const server = await accepted;
    assert.deepEqual(client.peerIdentity, hostId.publicKey, "end-to-end identity, not the relay's");
    assert.deepEqual(server.peerIdentity, clientId.publicKey);
    assert.equal(server.remote.port, relay.address.port, "the host sees the relay as its peer");

    const N = 100;
    const collect = (driver: SessionDriver) =>
      within(
        5_000,
        (async () => {
          const got: string[] = [];
          for await (const e of driver.events()) {
            if (e.type === "control") got.push(decoder.decode(e.data));
            if (got.length === N) break;
          }
          return got;
        })(),
        "control messages",
      );
    const atServer = collect(server);
    const atClient = collect(client);
    for (let i = 0; i < N; i++) {
      client.sendControl(encoder.encode(`c->s ${i}`));
      server.sendControl(encoder.encode(`s->c ${i}`));
    }
    const expect = (p: string) => Array.from({ length: N }, (_, i) => `${p} ${i}`);
    assert.deepEqual(await atServer, expect("c->s"));
    assert.deepEqual(await atClient, expect("s->c"));

    const data = new Uint8Array(200 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    // Gentle pacing: host and client share one event loop here, on a busy 2-core machine;
    // a video frame has no retransmission, so one datagram lost in a socket buffer loses it.
    server.setPacing({ rateMbps: 20, burstDatagrams: 8 });
    let frame: Uint8Array | undefined;
    for (let attempt = 0; attempt < 6 && frame === undefined; attempt++) {
      const outcome = within(
        5_000,
        (async () => {
          for await (const e of client.events()) {
            if (e.type === "video-frame") return e.frame.data;
            if (e.type === "video-frame-lost") return undefined;
          }
          throw new Error("closed");
        })(),
        "a frame",
      );
      server.sendVideoFrame({ frameId: attempt, captureTimeUs: 1_000, keyframe: true, data });
      frame = await outcome;
    }
    assert.ok(
      frame !== undefined,
      `no 200 KB frame got through in 6 tries; relay ${JSON.stringify(relay.stats)}; client ${
        JSON.stringify(client.stats)
      }`,
    );
    assert.deepEqual(frame, data);

    // The frame alone is ~175 datagrams: all of it went through the relay.
    await new Promise((r) => setTimeout(r, 250));
    const forwarded = relay.stats?.counters.forwardedPackets ?? 0;
    assert.ok(forwarded > 175, `relay forwarded only ${forwarded} datagrams`);

    // The relay dies mid-stream: both ends notice within their idle timeout.
    relay.kill();
    const [c, s] = await Promise.all([
      within(5_000, client.closed, "client notices"),
      within(5_000, server.closed, "host notices"),
    ]);
    assert.equal(c.byPeer, false);
    assert.equal(s.byPeer, false);
    assert.match(c.reason, /idle|timeout|silent/i);
  } finally {
    await client?.close();
    await listener?.close();
    await relay?.stop();
  }
});
