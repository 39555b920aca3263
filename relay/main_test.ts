import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ed25519 } from "@noble/curves/ed25519.js";
import { generateIdentity } from "../crypto/identity.ts";
import {
  encodePeerKey,
  issueLease,
  leasePublicKeyFromBytes,
  leaseSecretKeyFromSeed,
} from "../crypto/lease.ts";
import { TestPeer } from "./test_support.ts";
import { BindState, decodeBindAck, encodeBindRequest } from "./wire.ts";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("relay/main.ts --lease-key: a standalone relay process binds a peer and stops on SIGTERM", async () => {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const leaseKey = leasePublicKeyFromBytes(ed25519.getPublicKey(seed));
  const dir = await Deno.makeTempDir({ prefix: "wavry-relay-cli-" });
  // The same command `./wavry relay` runs (the script execs `deno run -A relay/main.ts`).
  const child = new Deno.Command(Deno.execPath(), {
    cwd: ROOT,
    args: [
      "run",
      "-A",
      "relay/main.ts",
      "--lease-key",
      leaseKey,
      "--listen",
      "127.0.0.1:0",
      "--http",
      "127.0.0.1:0",
      "--relay-id",
      "cli-relay",
      "--identity",
      `${dir}/relay.key`,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const peer = new TestPeer();
  let exited = false;
  try {
    // Read the start line: it names the bound ports.
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let log = "";
    let match: RegExpExecArray | null = null;
    const deadline = Date.now() + 20_000;
    while (match === null && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      log += value;
      match = /udp 127\.0\.0\.1:(\d+); metrics http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(log);
    }
    assert(match !== null, `no start line in: ${log}`);
    // Keep draining stderr so the child never blocks on a full pipe.
    const drained = (async () => {
      for (;;) {
        const { done } = await reader.read();
        if (done) return;
      }
    })();
    const udp = { hostname: "127.0.0.1", port: Number(match[1]) };
    const mode = (await Deno.stat(`${dir}/relay.key`)).mode! & 0o777;
    assertEquals(mode, 0o600);

    const a = generateIdentity();
    const now = Date.now();
    const lease = issueLease(leaseSecretKeyFromSeed(seed), {
      sessionId: "cli",
      peers: [encodePeerKey(a.publicKey), encodePeerKey(generateIdentity().publicKey)],
      relayId: "cli-relay",
      notBefore: new Date(now),
      expiresAt: new Date(now + 60_000),
      bandwidthBps: 1e6,
      issuer: "t",
    });
    await peer.send(encodeBindRequest(lease, a, Date.now()), udp);
    assertEquals(decodeBindAck((await peer.next(3_000))!.bytes)?.state, BindState.WaitingForPeer);
    const health = await fetch(`http://127.0.0.1:${match[2]}/health`);
    assertEquals(health.status, 200);
    await health.body?.cancel();

    child.kill("SIGTERM");
    const status = await child.status;
    exited = true;
    assertEquals(status.code, 0);
    await drained;
  } finally {
    if (!exited) {
      child.kill("SIGKILL");
      await child.status;
    }
    await peer.close();
    await Deno.remove(dir, { recursive: true });
  }
});
