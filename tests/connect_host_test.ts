/**
 * A host reachable through the gateway accepts, at the RIFT handshake, only
 * the identities the gateway vouched for (a connect request it forwarded
 * after checking the allow list or pairing): a client that skips the gateway
 * and dials the host's UDP port is refused even though the host has no
 * `--allow` list, while the same kind of client through the gateway gets in.
 * Real gateway, STUN and relay programs on loopback (demo/reach.ts), the
 * host as a library on an Xvfb display.
 *
 * @module
 */
import assert from "node:assert/strict";
import { generateIdentity } from "../crypto/identity.ts";
import { encodePeerKey } from "../crypto/lease.ts";
import { WavryHost } from "../host/host.ts";
import { GatewayLink } from "../host/gateway_link.ts";
import { ClientConnection } from "../client/connection.ts";
import { GatewaySession } from "../client/gateway_connect.ts";
import { startReachServices } from "../demo/reach.ts";
import { startXvfb } from "../tools/display/xvfb.ts";

Deno.test("gateway mode: a client the gateway did not vouch for is refused at the handshake; a paired one connects, leaves, and connects again", async () => {
  const xvfb = await startXvfb(320, 240);
  const reach = await startReachServices();
  const cleanup: (() => Promise<unknown>)[] = [];
  try {
    const hostId = generateIdentity();
    const logs: string[] = [];
    const link = await GatewayLink.start({
      url: reach.gatewayUrl,
      identity: hostId,
      name: "test-host",
      pairing: true,
      log: (l) => logs.push(l),
    });
    cleanup.push(() => link.stop());
    const host = await WavryHost.start({
      listen: { hostname: "127.0.0.1", port: 0 },
      display: xvfb.display,
      fps: 30,
      bitrateBps: 1_000_000,
      identity: hostId,
      ice: { stunServer: reach.stun },
      connectEvents: link,
    });
    cleanup.push(() => host.stop());
    await link.serve(host.connector);
    const code = /pairing code (\S+)/.exec(logs.find((l) => l.includes("pairing code"))!)![1];

    // Straight to the UDP port, no gateway: refused (no --allow, but gateway mode).
    const stranger = generateIdentity();
    await assert.rejects(
      ClientConnection.connect({
        remote: host.addr,
        identity: stranger,
        expectHost: hostId.publicKey,
        config: { handshakeTimeoutMs: 3_000 },
      }),
      /does not accept this client|not allowed/,
    );

    // Through the gateway with the pairing code: vouched for, connects, and video arrives.
    const clientId = generateIdentity();
    const session = await GatewaySession.open({
      url: reach.gatewayUrl,
      identity: clientId,
      name: "test-client",
      host: { key: encodePeerKey(hostId.publicKey) },
      pairingCode: code,
    });
    cleanup.push(() => session.close());
    const connection = await ClientConnection.connect({
      remote: { hostname: "0.0.0.0", port: 0 },
      identity: clientId,
      expectHost: hostId.publicKey,
      ice: { stunServer: reach.stun, includeLoopback: true },
      signaling: session,
    });
    cleanup.push(() => connection.close());
    assert.ok(["host", "srflx", "prflx"].includes(connection.path), connection.path);
    let frames = 0;
    for await (const e of connection.events()) {
      if (e.type === "video-frame" && ++frames === 5) break;
      if (e.type === "closed") throw new Error(`closed: ${e.reason}`);
    }
    assert.equal(frames, 5);

    // The client leaves and comes back (what a user does after a failure): a new connect, new
    // checks, a new session; the host's first agent went with the first session.
    await connection.close();
    await session.close();
    const again = await GatewaySession.open({
      url: reach.gatewayUrl,
      identity: clientId,
      name: "test-client",
      host: { key: encodePeerKey(hostId.publicKey) },
    });
    cleanup.push(() => again.close());
    assert.notEqual(again.sessionId, session.sessionId);
    const second = await ClientConnection.connect({
      remote: { hostname: "0.0.0.0", port: 0 },
      identity: clientId,
      expectHost: hostId.publicKey,
      ice: { stunServer: reach.stun, includeLoopback: true },
      signaling: again,
    });
    cleanup.push(() => second.close());
    frames = 0;
    for await (const e of second.events()) {
      if (e.type === "video-frame" && ++frames === 5) break;
      if (e.type === "closed") throw new Error(`closed: ${e.reason}`);
    }
    assert.equal(frames, 5);
  } finally {
    for (const f of cleanup.reverse()) await f().catch(() => {});
    await reach.stop();
    await xvfb.stop();
  }
});
