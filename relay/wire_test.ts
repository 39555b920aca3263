import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import fc from "fast-check";
import { identityFromSeed } from "../crypto/identity.ts";
import {
  BIND_ACK_LENGTH,
  BIND_ERROR_LENGTH,
  BIND_REQUEST_OVERHEAD,
  BindState,
  decodeBindAck,
  decodeBindError,
  decodeBindRequest,
  encodeBindAck,
  encodeBindError,
  encodeBindRequest,
  leaseHash,
  verifyBindSignature,
} from "./wire.ts";

const ALICE = identityFromSeed(new Uint8Array(32).fill(1));
const LEASE = "v4.public.eyJzaWQiOiJ4In0AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

Deno.test("wire: a bind request round-trips and its signature verifies", () => {
  const nonce = new Uint8Array([9, 8, 7, 6, 5, 4, 3, 2]);
  const bytes = encodeBindRequest(LEASE, ALICE, 1_900_000_000_123, nonce);
  assertEquals(bytes[0], 0x40);
  assertEquals(bytes.length, BIND_REQUEST_OVERHEAD + LEASE.length);
  const req = decodeBindRequest(bytes)!;
  assertEquals(req.lease, LEASE);
  assertEquals([...req.peerKey], [...ALICE.publicKey]);
  assertEquals(req.timestampMs, 1_900_000_000_123);
  assertEquals([...req.nonce], [...nonce]);
  assert(verifyBindSignature(req, leaseHash(req.leaseBytes)));
  // Bound to the lease: the same signature over another lease's digest fails.
  assert(!verifyBindSignature(req, leaseHash(new TextEncoder().encode(LEASE + "A"))));
});

Deno.test("wire: first bytes stay in RFC 7983's 64–79 range", () => {
  const ack = encodeBindAck({
    state: BindState.Ready,
    timestampMs: 5,
    nonce: new Uint8Array(8),
    idleTimeoutMs: 30_000,
  });
  const error = encodeBindError("LeaseExpired", 5, new Uint8Array(8));
  for (const b of [encodeBindRequest(LEASE, ALICE, 1)[0], ack[0], error[0]]) {
    assert(b >= 64 && b <= 79);
  }
  assertEquals(ack.length, BIND_ACK_LENGTH);
  assertEquals(error.length, BIND_ERROR_LENGTH);
  assertEquals(decodeBindAck(ack)?.state, BindState.Ready);
  assertEquals(decodeBindAck(ack)?.idleTimeoutMs, 30_000);
  assertEquals(decodeBindError(error)?.kind, "LeaseExpired");
});

Deno.test("wire: decoders never throw on junk and refuse trailing or missing bytes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 800 }), fc.nat(2), (bytes, which) => {
      if (bytes.length > 0) bytes[0] = 0x40 + which;
      decodeBindRequest(bytes);
      decodeBindAck(bytes);
      decodeBindError(bytes);
    }),
    { numRuns: 2000 },
  );
  const good = encodeBindRequest(LEASE, ALICE, 1);
  assertEquals(decodeBindRequest(good.subarray(0, good.length - 1)), undefined);
  const longer = new Uint8Array(good.length + 1);
  longer.set(good);
  assertEquals(decodeBindRequest(longer), undefined);
  const v2 = good.slice();
  v2[1] = 2;
  assertEquals(decodeBindRequest(v2), undefined);
});
