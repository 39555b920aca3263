import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ed25519 } from "@noble/curves/ed25519.js";
import { identityFromSeed } from "../crypto/identity.ts";
import {
  encodePeerKey,
  issueLease,
  leasePublicKeyFromBytes,
  leaseSecretKeyFromSeed,
} from "../crypto/lease.ts";
import { BindingTable } from "./binding_table.ts";
import { PeerBinding } from "./peer_binding.ts";
import { decodeBindRequest, encodeBindAck } from "./wire.ts";

const T0 = Date.UTC(2030, 0, 1);
const GW = new Uint8Array(32).fill(5);
const ALICE = identityFromSeed(new Uint8Array(32).fill(1));
const BOB = identityFromSeed(new Uint8Array(32).fill(2));
const A = { hostname: "192.0.2.1", port: 1 };
const B = { hostname: "192.0.2.2", port: 2 };

function lease(relayId = "r1"): string {
  return issueLease(leaseSecretKeyFromSeed(GW), {
    sessionId: "s",
    peers: [encodePeerKey(ALICE.publicKey), encodePeerKey(BOB.publicKey)],
    relayId,
    notBefore: new Date(T0 - 1000),
    expiresAt: new Date(T0 + 3600_000),
    bandwidthBps: 1e6,
    issuer: "gw",
  });
}

function relay(): BindingTable {
  return new BindingTable(
    { relayId: "r1", leasePublicKey: leasePublicKeyFromBytes(ed25519.getPublicKey(GW)) },
    T0,
  );
}

/** Runs one peer step against the (real, sans-IO) relay table. */
function step(peer: PeerBinding, table: BindingTable, from: typeof A, now: number): void {
  const out = peer.poll(now);
  if (out === undefined) return;
  const r = table.handle(out, from, now);
  if (r.reply) peer.handle(r.reply.bytes);
}

Deno.test("peer binding: waits for the other peer, retries, then is ready", () => {
  const t = relay();
  const token = lease();
  const a = new PeerBinding({ lease: token, identity: ALICE });
  const b = new PeerBinding({ lease: token, identity: BOB });
  step(a, t, A, T0);
  assertEquals(a.status, { state: "waiting-for-peer" });
  assertEquals(a.pollTimeout(), T0 + 500);
  step(a, t, A, T0 + 100); // not due yet: nothing sent
  assertEquals(a.requestsSent, 1);
  step(b, t, B, T0 + 200);
  assertEquals(b.status, { state: "ready", idleTimeoutMs: 30_000 });
  step(a, t, A, T0 + 500);
  assertEquals(a.status, { state: "ready", idleTimeoutMs: 30_000 });
  assertEquals(a.requestsSent, 2);
  assertEquals(a.poll(T0 + 5000), undefined);
  assertEquals(a.pollTimeout(), undefined);
  assertEquals(t.readySessionCount, 1);
  assertEquals(t.counters.drops.BindReplayed, 0);
});

Deno.test("peer binding: timestamps strictly increase even within one millisecond", () => {
  const a = new PeerBinding({ lease: lease(), identity: ALICE, retryMs: 0 });
  const ts = [0, 1, 2].map(() => decodeBindRequest(a.poll(T0)!)!.timestampMs);
  assertEquals(ts, [T0, T0 + 1, T0 + 2]);
});

Deno.test("peer binding: a definite refusal fails at once; no answer fails at the timeout", () => {
  const t = relay();
  const wrong = new PeerBinding({ lease: lease("other-relay"), identity: ALICE });
  step(wrong, t, A, T0);
  assertEquals(wrong.status, { state: "failed", kind: "LeaseWrongRelay" });
  assertEquals(wrong.poll(T0 + 1000), undefined);

  const lonely = new PeerBinding({ lease: lease(), identity: ALICE, timeoutMs: 2000 });
  let sent = 0;
  for (let now = T0; now <= T0 + 3000; now += 100) if (lonely.poll(now)) sent++;
  assertEquals(lonely.status, { state: "failed", kind: "Timeout" });
  assertEquals(sent, 4);
});

Deno.test("peer binding: answers that echo no nonce of ours are ignored", () => {
  const a = new PeerBinding({ lease: lease(), identity: ALICE });
  assert(a.poll(T0) !== undefined);
  const forged = encodeBindAck({
    state: 2,
    timestampMs: T0,
    nonce: new Uint8Array(8).fill(9),
    idleTimeoutMs: 1,
  });
  assertEquals(a.handle(forged), false);
  assertEquals(a.handle(new Uint8Array([0xc1, 0])), false);
  assertEquals(a.status, { state: "binding" });
});
