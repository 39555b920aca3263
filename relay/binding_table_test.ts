import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import fc from "fast-check";
import { identityFromSeed, type IdentityKeyPair } from "../crypto/identity.ts";
import {
  encodePeerKey,
  issueLease,
  type LeaseClaims,
  leasePublicKeyFromBytes,
  leaseSecretKeyFromSeed,
} from "../crypto/lease.ts";
import { ed25519 } from "@noble/curves/ed25519.js";
import {
  BindingTable,
  type BindingTableOptions,
  type DropKind,
  type RelayAddress,
} from "./binding_table.ts";
import { BindState, decodeBindAck, decodeBindError, encodeBindRequest } from "./wire.ts";

const T0 = Date.UTC(2030, 4, 1, 12, 0, 0);
const seed = (n: number) => new Uint8Array(32).fill(n);
const GATEWAY_SEED = seed(7);
const GATEWAY_SECRET = leaseSecretKeyFromSeed(GATEWAY_SEED);
const GATEWAY_PUBLIC = leasePublicKeyFromBytes(ed25519.getPublicKey(GATEWAY_SEED));
const ALICE = identityFromSeed(seed(1));
const BOB = identityFromSeed(seed(2));
const MALLORY = identityFromSeed(seed(3));
const A: RelayAddress = { hostname: "192.0.2.1", port: 40001 };
const B: RelayAddress = { hostname: "198.51.100.2", port: 40002 };
const M: RelayAddress = { hostname: "203.0.113.9", port: 666 };
const RELAY_ID = "relay-test-1";

function claims(over: Partial<LeaseClaims> = {}): LeaseClaims {
  return {
    sessionId: "sess-1",
    peers: [encodePeerKey(ALICE.publicKey), encodePeerKey(BOB.publicKey)],
    relayId: RELAY_ID,
    notBefore: new Date(T0 - 60_000),
    expiresAt: new Date(T0 + 3600_000),
    bandwidthBps: 80_000_000,
    issuer: "gw-test",
    ...over,
  };
}

function lease(over: Partial<LeaseClaims> = {}, key = GATEWAY_SECRET): string {
  return issueLease(key, claims(over));
}

function table(opts: Partial<BindingTableOptions> = {}): BindingTable {
  return new BindingTable({ relayId: RELAY_ID, leasePublicKey: GATEWAY_PUBLIC, ...opts }, T0);
}

function bind(
  t: BindingTable,
  token: string,
  who: IdentityKeyPair,
  from: RelayAddress,
  now = T0,
  ts = now,
) {
  return t.handle(encodeBindRequest(token, who, ts), from, now);
}

/** A table with session sess-1 fully bound (Alice at A, Bob at B). */
function boundTable(opts: Partial<BindingTableOptions> = {}) {
  const t = table(opts);
  const token = lease();
  const ra = bind(t, token, ALICE, A);
  assertEquals(decodeBindAck(ra.reply!.bytes)?.state, BindState.WaitingForPeer);
  const rb = bind(t, token, BOB, B);
  assertEquals(decodeBindAck(rb.reply!.bytes)?.state, BindState.Ready);
  return { t, token };
}

Deno.test("binding: both peers bind, then datagrams go both ways byte for byte", () => {
  const { t } = boundTable();
  assertEquals(t.sessionCount, 1);
  assertEquals(t.boundPeerCount, 2);
  const fromA = new Uint8Array([0xc1, 4, 0, 0, 1, 2, 3, 4, 9, 9, 9]);
  const r1 = t.handle(fromA, A, T0 + 1);
  assert(r1.forward !== undefined);
  assertEquals(r1.forward.to, B);
  assert(r1.forward.bytes === fromA, "the very datagram is forwarded, not a copy or a rewrite");
  const fromB = new Uint8Array(1200).fill(0xd7);
  const r2 = t.handle(fromB, B, T0 + 2);
  assertEquals(r2.forward?.to, A);
  assert(r2.forward?.bytes === fromB);
  assertEquals(t.counters.forwardedPackets, 2);
  assertEquals(t.counters.forwardedBytes, fromA.length + 1200);
});

Deno.test("binding: acks echo timestamp and nonce and are smaller than the request", () => {
  const t = table();
  const nonce = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  const req = encodeBindRequest(lease(), ALICE, T0 + 5, nonce);
  const r = t.handle(req, A, T0);
  const ack = decodeBindAck(r.reply!.bytes)!;
  assertEquals(ack.timestampMs, T0 + 5);
  assertEquals([...ack.nonce], [...nonce]);
  assertEquals(ack.idleTimeoutMs, 30_000);
  assert(r.reply!.bytes.length < req.length);
  assertEquals(r.reply!.to, A);
});

interface RefusalCase {
  name: string;
  kind: DropKind;
  /** Whether the refusal answers with a BIND_ERROR. */
  replies: boolean;
  opts?: Partial<BindingTableOptions>;
  /** Returns the datagram and its source, given the bound table's lease. */
  make: (token: string) => { bytes: Uint8Array; from: RelayAddress };
}

const otherGateway = leaseSecretKeyFromSeed(seed(99));

const REFUSALS: RefusalCase[] = [
  {
    name: "forged lease (signed by another key)",
    kind: "LeaseForged",
    replies: true,
    make: () => ({
      bytes: encodeBindRequest(lease({ sessionId: "s2" }, otherGateway), MALLORY, T0),
      from: M,
    }),
  },
  {
    name: "lease payload tampered after signing",
    kind: "LeaseForged",
    replies: true,
    make: (token) => {
      const body = token.slice("v4.public.".length);
      const i = 20;
      const flipped = body.slice(0, i) + (body[i] === "A" ? "B" : "A") + body.slice(i + 1);
      return { bytes: encodeBindRequest(`v4.public.${flipped}`, ALICE, T0), from: M };
    },
  },
  {
    name: "expired lease",
    kind: "LeaseExpired",
    replies: true,
    make: () => ({
      bytes: encodeBindRequest(
        lease({
          sessionId: "s2",
          notBefore: new Date(T0 - 7200_000),
          expiresAt: new Date(T0 - 60_000),
        }),
        ALICE,
        T0,
      ),
      from: M,
    }),
  },
  {
    name: "lease not yet valid",
    kind: "LeaseNotYetValid",
    replies: true,
    make: () => ({
      bytes: encodeBindRequest(
        lease({
          sessionId: "s2",
          notBefore: new Date(T0 + 600_000),
          expiresAt: new Date(T0 + 7200_000),
        }),
        ALICE,
        T0,
      ),
      from: M,
    }),
  },
  {
    name: "lease for another relay",
    kind: "LeaseWrongRelay",
    replies: true,
    make: () => ({
      bytes: encodeBindRequest(lease({ sessionId: "s2", relayId: "relay-other" }), ALICE, T0),
      from: M,
    }),
  },
  {
    name: "sniffed lease presented by someone not in it",
    kind: "PeerNotInLease",
    replies: true,
    make: (token) => ({ bytes: encodeBindRequest(token, MALLORY, T0 + 1), from: M }),
  },
  {
    name: "peer key from the lease but a bad signature",
    kind: "BadPeerSignature",
    replies: true,
    make: (token) => {
      const bytes = encodeBindRequest(token, ALICE, T0 + 1);
      bytes[bytes.length - 10] ^= 0x01;
      return { bytes, from: M };
    },
  },
  {
    name: "signature by another key over a peer's public key",
    kind: "BadPeerSignature",
    replies: true,
    make: (token) => {
      const forged = encodeBindRequest(token, MALLORY, T0 + 1);
      const keyOff = 4 + token.length;
      forged.set(ALICE.publicKey, keyOff);
      return { bytes: forged, from: M };
    },
  },
  {
    name: "replayed binding request (same timestamp) from another address",
    kind: "BindReplayed",
    replies: true,
    make: (token) => ({ bytes: encodeBindRequest(token, ALICE, T0), from: M }),
  },
  {
    name: "binding request with an old timestamp",
    kind: "BindStale",
    replies: true,
    make: (token) => ({ bytes: encodeBindRequest(token, ALICE, T0 - 20_000), from: M }),
  },
  {
    name: "binding request from the future",
    kind: "BindStale",
    replies: true,
    make: (token) => ({ bytes: encodeBindRequest(token, ALICE, T0 + 20_000), from: M }),
  },
  {
    name: "truncated binding request",
    kind: "Malformed",
    replies: false,
    make: (token) => ({ bytes: encodeBindRequest(token, ALICE, T0 + 1).subarray(0, 200), from: M }),
  },
  {
    name: "unknown relay message type",
    kind: "Malformed",
    replies: false,
    make: () => ({ bytes: new Uint8Array([0x45, 1, 0, 0]), from: M }),
  },
  {
    name: "STUN on the relay port",
    kind: "ForeignProtocol",
    replies: false,
    make: () => ({ bytes: new Uint8Array(20).fill(0).fill(1, 1, 2), from: M }),
  },
  {
    name: "RIFT datagram from an unbound address",
    kind: "UnboundSource",
    replies: false,
    make: () => ({ bytes: new Uint8Array([0xc1, 1, 0, 0, 0, 0, 0, 0]), from: M }),
  },
  {
    name: "new session when the table is full",
    kind: "TableFull",
    replies: true,
    opts: { maxSessions: 1 },
    make: () => ({ bytes: encodeBindRequest(lease({ sessionId: "s2" }), ALICE, T0), from: M }),
  },
  {
    name: "an address already bound to another session",
    kind: "AddressInUse",
    replies: true,
    make: () => ({ bytes: encodeBindRequest(lease({ sessionId: "s2" }), ALICE, T0), from: B }),
  },
  {
    name: "same session id, other peers",
    kind: "SessionConflict",
    replies: true,
    make: () => ({
      bytes: encodeBindRequest(
        lease({ peers: [encodePeerKey(ALICE.publicKey), encodePeerKey(MALLORY.publicKey)] }),
        MALLORY,
        T0 + 1,
      ),
      from: M,
    }),
  },
  {
    name: "binding requests beyond the verification budget",
    kind: "BindRateLimited",
    replies: false,
    // The two binds of the set-up use up the whole budget.
    opts: { bindVerifyBurst: 2, bindVerifyPerSecond: 1 },
    make: () => ({ bytes: encodeBindRequest(lease({ sessionId: "s2" }), ALICE, T0), from: M }),
  },
];

for (const c of REFUSALS) {
  Deno.test(`refusal: ${c.name} → ${c.kind}, counted, nothing else changes`, () => {
    const { t, token } = boundTable(c.opts);
    const before = t.describe();
    const counters = t.snapshotCounters();
    const { bytes, from } = c.make(token);
    const r = t.handle(bytes, from, T0);
    assertEquals(r.drop, c.kind);
    assertEquals(r.forward, undefined);
    if (c.replies) {
      assert(r.reply !== undefined, "a parsed binding request gets a BIND_ERROR");
      assertEquals(decodeBindError(r.reply.bytes)?.kind, c.kind);
      assertEquals(r.reply.to, from);
      assert(r.reply.bytes.length <= bytes.length, "no amplification");
    } else {
      assertEquals(r.reply, undefined);
    }
    const after = t.snapshotCounters();
    assertEquals(after.drops[c.kind], counters.drops[c.kind] + 1);
    assertEquals(t.describe(), before, "the table is unchanged");
    // Only the counters of this datagram moved.
    const expected = {
      ...counters,
      datagramsIn: counters.datagramsIn + 1,
      bytesIn: counters.bytesIn + bytes.length,
      replies: counters.replies + (c.replies ? 1 : 0),
      replyBytes: counters.replyBytes + (r.reply?.bytes.length ?? 0),
      drops: { ...counters.drops, [c.kind]: counters.drops[c.kind] + 1 },
    };
    assertEquals(after, expected);
    // And the session still forwards.
    assertEquals(t.handle(new Uint8Array([0xc1, 0]), A, T0 + 1).forward?.to, B);
  });
}

Deno.test("refusal: a peer-not-bound datagram is dropped until the other peer binds", () => {
  const t = table();
  const token = lease();
  bind(t, token, ALICE, A);
  assertEquals(t.handle(new Uint8Array([0xc1]), A, T0 + 1).drop, "PeerNotBound");
  assertEquals(t.counters.drops.PeerNotBound, 1);
  bind(t, token, BOB, B, T0 + 2);
  assertEquals(t.handle(new Uint8Array([0xc1]), A, T0 + 3).forward?.to, B);
});

Deno.test("fuzz: junk never throws, never forwards, changes no binding, never amplifies", () => {
  const { t, token } = boundTable({ bindVerifyPerSecond: 1e9, bindVerifyBurst: 1e9 });
  const before = t.describe();
  const valid = encodeBindRequest(token, ALICE, T0 + 3);
  const junk = fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: 1500 }),
    // shaped like the relay's own messages
    fc.uint8Array({ minLength: 1, maxLength: 700 }).map((b) => {
      b[0] = 0x40 + (b[0] % 3);
      if (b.length > 1) b[1] = 1;
      return b;
    }),
    // a valid request with some bytes changed
    fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 })), {
      minLength: 1,
      maxLength: 4,
    }).map((flips) => {
      const b = valid.slice();
      for (const [i, x] of flips) b[i] ^= x;
      return b;
    }),
  );
  const from = fc.record({
    hostname: fc.constantFrom("10.0.0.1", "10.0.0.2", "::1"),
    port: fc.integer({ min: 1, max: 65535 }),
  });
  fc.assert(
    fc.property(junk, from, (bytes, src) => {
      const r = t.handle(bytes, src, T0);
      assertEquals(r.forward, undefined);
      assert(r.drop !== undefined);
      if (r.reply) assert(r.reply.bytes.length <= bytes.length);
    }),
    { numRuns: 800 },
  );
  assertEquals(t.describe(), before);
  assertEquals(t.counters.bindsAccepted, 2);
});

Deno.test("flood: many valid sessions stay within the cap; a forged flood is rate limited", () => {
  const t = table({ maxSessions: 20, bindVerifyPerSecond: 100, bindVerifyBurst: 100 });
  for (let i = 0; i < 60; i++) {
    const r = bind(t, lease({ sessionId: `flood-${i}` }), ALICE, {
      hostname: "10.9.0.1",
      port: 1000 + i,
    });
    assertEquals(r.drop, i < 20 ? undefined : "TableFull");
  }
  assertEquals(t.sessionCount, 20);
  assertEquals(t.counters.drops.TableFull, 40);
  // Now 10,000 requests in one second with a forged signature: the budget left is 40.
  const forged = encodeBindRequest(lease({ sessionId: "x" }), MALLORY, T0);
  const before = t.describe();
  let refused = 0;
  for (let i = 0; i < 10_000; i++) {
    const r = t.handle(forged, { hostname: "10.8.0.1", port: i % 65535 + 1 }, T0);
    assert(r.drop === "PeerNotInLease" || r.drop === "BindRateLimited");
    if (r.reply) assert(r.reply.bytes.length <= forged.length);
    refused++;
  }
  assertEquals(refused, 10_000);
  assertEquals(t.counters.drops.PeerNotInLease, 40);
  assertEquals(t.counters.drops.BindRateLimited, 9_960);
  assertEquals(t.describe(), before);
  assertEquals(t.sessionCount, 20);
});

Deno.test("bandwidth: each direction is capped at the lease rate; excess is dropped and counted", () => {
  // 800 kbit/s = 100,000 B/s; burst 100 ms = 10,000 B.
  const t = table({ bandwidthBurstMs: 100, minBurstBytes: 1 });
  const token = lease({ bandwidthBps: 800_000 });
  bind(t, token, ALICE, A);
  bind(t, token, BOB, B);
  const pkt = new Uint8Array(1000).fill(0xc1);
  const sendFor = (from: RelayAddress, now: number, n: number) => {
    let ok = 0;
    for (let i = 0; i < n; i++) if (t.handle(pkt, from, now).forward) ok++;
    return ok;
  };
  assertEquals(sendFor(A, T0, 15), 10);
  assertEquals(t.counters.drops.BandwidthExceeded, 5);
  // B's direction has its own bucket.
  assertEquals(sendFor(B, T0, 10), 10);
  // 50 ms later, 5,000 B more.
  assertEquals(sendFor(A, T0 + 50, 10), 5);
  // Over one simulated second at 1 ms steps, A gets ~100 kB through, not more.
  let forwarded = 0;
  for (let ms = 1; ms <= 1000; ms++) forwarded += sendFor(A, T0 + 50 + ms, 2);
  assert(forwarded >= 99 && forwarded <= 101, `forwarded ${forwarded} kB in 1 s`);
});

Deno.test("idle: a silent peer's binding expires; a talking peer keeps its own", () => {
  const { t } = boundTable();
  assertEquals(t.pollTimeout(), T0 + 1000);
  // Alice talks every 5 s; Bob is silent.
  for (let s = 5; s <= 30; s += 5) {
    t.handle(new Uint8Array([0xc1]), A, T0 + s * 1000);
    t.handleTimeout(T0 + s * 1000);
  }
  assertEquals(t.counters.bindingsExpired, 1);
  assertEquals(t.boundPeerCount, 1);
  assertEquals(t.handle(new Uint8Array([0xc1]), A, T0 + 30_500).drop, "PeerNotBound");
  assertEquals(t.handle(new Uint8Array([0xc1]), B, T0 + 30_500).drop, "UnboundSource");
  t.handleTimeout(T0 + 61_000);
  assertEquals(t.sessionCount, 0);
  assertEquals(t.boundPeerCount, 0);
  assertEquals(t.counters.bindingsExpired, 2);
  assertEquals(t.pollTimeout(), undefined);
});

Deno.test("expiry: forwarding stops when the lease ends (plus skew) and the session goes", () => {
  const t = table({ leaseClockSkewMs: 0 });
  const token = lease({ expiresAt: new Date(T0 + 10_000) });
  bind(t, token, ALICE, A);
  bind(t, token, BOB, B);
  assertEquals(t.handle(new Uint8Array([0xc1]), A, T0 + 9_999).forward?.to, B);
  assertEquals(t.handle(new Uint8Array([0xc1]), A, T0 + 10_000).drop, "SessionExpired");
  t.handleTimeout(T0 + 10_000);
  assertEquals(t.sessionCount, 0);
  assertEquals(t.counters.sessionsExpired, 1);
  // The same lease cannot bind again.
  assertEquals(bind(t, token, ALICE, A, T0 + 10_001).drop, "LeaseExpired");
});

Deno.test("rebinding: a fresh request from a new address moves the peer (NAT rebinding)", () => {
  const { t, token } = boundTable();
  const A2 = { hostname: "192.0.2.1", port: 50000 };
  const r = bind(t, token, ALICE, A2, T0 + 1000);
  assertEquals(decodeBindAck(r.reply!.bytes)?.state, BindState.Ready);
  assertEquals(t.handle(new Uint8Array([0xc1]), A, T0 + 1001).drop, "UnboundSource");
  assertEquals(t.handle(new Uint8Array([0xc1]), A2, T0 + 1001).forward?.to, B);
  assertEquals(t.handle(new Uint8Array([0xc1]), B, T0 + 1001).forward?.to, A2);
  assertEquals(t.boundPeerCount, 2);
});

Deno.test("renewal: a new lease for the same session and peers extends it", () => {
  const t = table({ leaseClockSkewMs: 0 });
  const first = lease({ expiresAt: new Date(T0 + 10_000) });
  bind(t, first, ALICE, A);
  bind(t, first, BOB, B);
  const second = lease({ expiresAt: new Date(T0 + 60_000), issuedAt: new Date(T0) });
  assertEquals(bind(t, second, ALICE, A, T0 + 5_000).drop, undefined);
  assertEquals(t.handle(new Uint8Array([0xc1]), B, T0 + 20_000).forward?.to, A);
  assertEquals(t.describe()[0].expiresAtMs, T0 + 60_000);
});

Deno.test("options: an idle timeout not above twice the freshness window is refused", () => {
  let threw = false;
  try {
    table({ idleTimeoutMs: 10_000, bindFreshnessMs: 5_000 });
  } catch (e) {
    threw = e instanceof RangeError;
  }
  assert(threw);
});

Deno.test("lease key rotation: new leases need the new key; bound sessions keep forwarding", () => {
  const { t } = boundTable();
  const newSeed = seed(42);
  t.setLeasePublicKey(leasePublicKeyFromBytes(ed25519.getPublicKey(newSeed)));
  assertEquals(bind(t, lease({ sessionId: "old-key" }), ALICE, M).drop, "LeaseForged");
  const fresh = lease({ sessionId: "new-key" }, leaseSecretKeyFromSeed(newSeed));
  assertEquals(bind(t, fresh, ALICE, M).drop, undefined);
  assertEquals(t.handle(new Uint8Array([0xc1]), A, T0 + 1).forward?.to, B);
});
