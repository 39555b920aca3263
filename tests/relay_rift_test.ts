/**
 * A real RIFT session (core/session.ts over edge/udp_session.ts) through the
 * relay worker: each peer opens its relay binding from the UDP port it will
 * then use for RIFT, so the relay forwards the Noise_XX handshake and the
 * sealed packets it cannot read. The first test opens each binding from a
 * short-lived socket on the port the session then binds (the binding is keyed
 * by address); the second binds on the sessions' own sockets through the edge
 * hook (`onForeign`, `sendRaw`, `prepare`), as a real host and client do.
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

/**
 * Drives a PeerBinding over `send` until it is "ready" or "failed" (answers
 * reach `binding.handle` through the session's `onForeign`).
 */
async function driveBinding(
  binding: PeerBinding,
  send: (datagram: Uint8Array) => boolean,
): Promise<PeerBindingState["state"]> {
  for (;;) {
    const state = binding.status.state;
    if (state === "ready" || state === "failed") return state;
    const out = binding.poll(Date.now());
    if (out !== undefined) assert.ok(send(out), "the session socket took the BIND_REQUEST");
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("RIFT through the relay on the sessions' own sockets: host and client bind with PeerBinding via onForeign/sendRaw, then handshake and data", async () => {
  const gatewaySeed = crypto.getRandomValues(new Uint8Array(32));
  const hostId = generateIdentity();
  const clientId = generateIdentity();
  const now = Date.now();
  const lease = issueLease(leaseSecretKeyFromSeed(gatewaySeed), {
    sessionId: "rift-own-socket",
    peers: [encodePeerKey(hostId.publicKey), encodePeerKey(clientId.publicKey)],
    relayId: "relay-own-socket",
    notBefore: new Date(now - 1_000),
    expiresAt: new Date(now + 600_000),
    bandwidthBps: 400_000_000,
    issuer: "test",
  });
  let relay: RelayForwarder | undefined;
  let listener: SessionListener | undefined;
  let client: SessionDriver | undefined;
  try {
    relay = await RelayForwarder.start({
      hostname: LOOPBACK,
      port: 0,
      table: {
        relayId: "relay-own-socket",
        leasePublicKey: leasePublicKeyFromBytes(ed25519.getPublicKey(gatewaySeed)),
      },
      statsIntervalMs: 50,
    });
    const relayAddress = relay.address;
    const fromRelay = (from: RelayAddress) =>
      from.hostname === relayAddress.hostname && from.port === relayAddress.port;

    // The host: one listener socket for the relay binding AND the sessions.
    const hostBinding = new PeerBinding({ lease, identity: hostId, retryMs: 100 });
    const host = SessionListener.listen({
      hostname: LOOPBACK,
      port: 0,
      identity: hostId,
      acceptPeer: (peer) => encodePeerKey(peer) === encodePeerKey(clientId.publicKey),
      onForeign: (datagram, from) => {
        if (fromRelay(from)) hostBinding.handle(datagram);
      },
    });
    listener = host;
    // It keeps asking until the relay says both are bound (that is how it learns the client came).
    const hostBound = driveBinding(hostBinding, (d) => host.sendRaw(d, relayAddress));
    await within(
      3_000,
      (async () => {
        while (hostBinding.status.state === "binding") await new Promise((r) => setTimeout(r, 10));
      })(),
      "host binding",
    );
    assert.equal(hostBinding.status.state, "waiting-for-peer");

    const accepted = within(
      5_000,
      (async () => {
        for await (const d of host.accept()) return d;
        throw new Error("listener closed");
      })(),
      "accept through the relay",
    );
    // The client: binds from its session socket in `prepare`, then the handshake starts.
    const clientBinding = new PeerBinding({ lease, identity: clientId, retryMs: 100 });
    let boundPort: number | undefined;
    client = await SessionDriver.connect({
      remote: relayAddress,
      localHostname: LOOPBACK,
      identity: clientId,
      acceptPeer: (peer) => encodePeerKey(peer) === encodePeerKey(hostId.publicKey),
      onForeign: (datagram, from) => {
        if (fromRelay(from)) clientBinding.handle(datagram);
      },
      prepare: async (link) => {
        boundPort = link.local.port;
        const state = await driveBinding(clientBinding, (d) => link.sendRaw(d, relayAddress));
        if (state !== "ready") {
          throw new Error(`client binding ${JSON.stringify(clientBinding.status)}`);
        }
      },
    });
    assert.equal(await within(3_000, hostBound, "host learns both are bound"), "ready");
    const server = await accepted;
    assert.equal(client.local.port, boundPort, "the session runs on the port that bound");
    assert.deepEqual(client.peerIdentity, hostId.publicKey, "end-to-end identity, not the relay's");
    assert.deepEqual(server.peerIdentity, clientId.publicKey);
    assert.deepEqual(server.remote, relayAddress, "the host sees the relay as its peer");
    assert.ok(client.stats.io.foreignReceived >= 1 && client.stats.io.rawSent >= 1);
    assert.ok(host.stats.foreignReceived >= 2 && host.stats.rawSent >= 2);
    assert.equal(host.stats.dropped.NotRift ?? 0, 0, "relay answers never reached the RIFT path");

    const N = 50;
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

    // A snapshot taken after the exchange (control messages share datagrams, so count loosely).
    const after = Date.now();
    const s = await within(
      3_000,
      (async () => {
        for (;;) {
          const st = relay!.stats;
          if (st !== undefined && st.atMs > after) return st;
          await new Promise((r) => setTimeout(r, 20));
        }
      })(),
      "relay counters",
    );
    assert.ok(s.counters.forwardedPackets >= 4, `forwarded ${s.counters.forwardedPackets}`);
    assert.equal(s.readySessions, 1);
    assert.equal(s.boundPeers, 2);
    assert.equal(s.counters.drops.UnboundSource, 0, "nothing was sent before its binding");
  } finally {
    await client?.close();
    await listener?.close();
    await relay?.stop();
  }
});
