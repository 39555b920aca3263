import assert from "node:assert/strict";
import fc from "fast-check";
import {
  AEAD_TAG_LENGTH,
  decodeHandshakePacket,
  decodeHeader,
  decodeVersionNegotiation,
  DEFAULT_MAX_DATAGRAM,
  encodeHandshakePacket,
  encodeHeader,
  encodeVersionNegotiation,
  FLAG_MEDIA_LANE,
  HEADER_LENGTH,
  isMediaLaneDatagram,
  isRiftDatagram,
  keyPhaseOf,
  negotiateVersion,
  type PacketHeader,
  PacketType,
  RIFT_VERSION,
  splitSealed,
  SUPPORTED_VERSIONS,
  versionNegotiationResponse,
  type WireErrorKind,
} from "./wire.ts";
import type { Result } from "./result.ts";

const MAX_U53 = Number.MAX_SAFE_INTEGER;

function expectError<T>(
  r: Result<T, { kind: WireErrorKind; detail: string }>,
  ...kinds: WireErrorKind[]
): void {
  assert.equal(r.ok, false, "expected an error");
  if (!r.ok) {
    assert.ok(
      kinds.includes(r.error.kind),
      `got ${r.error.kind} (${r.error.detail}), expected ${kinds.join("|")}`,
    );
    assert.equal(typeof r.error.detail, "string");
  }
}

function expectOk<T>(r: Result<T, unknown>): T {
  if (!r.ok) {
    throw new assert.AssertionError({ message: `expected ok, got ${JSON.stringify(r.error)}` });
  }
  return r.value;
}

const headerArb: fc.Arbitrary<PacketHeader> = fc.oneof(
  fc.record({
    version: fc.constant(RIFT_VERSION),
    type: fc.constantFrom(
      PacketType.HandshakeInit,
      PacketType.HandshakeResponse,
      PacketType.HandshakeFinish,
    ),
    flags: fc.constant(0),
    connectionId: fc.nat({ max: 0xffffffff }),
    packetNumber: fc.nat({ max: MAX_U53 }),
  }),
  fc.record({
    version: fc.constant(RIFT_VERSION),
    type: fc.constant(PacketType.Sealed),
    flags: fc.constantFrom(0, 1, 2, 3),
    connectionId: fc.nat({ max: 0xffffffff }),
    packetNumber: fc.oneof(
      fc.nat({ max: MAX_U53 }),
      fc.constantFrom(0, 0xffffffff, 0x100000000, MAX_U53),
    ),
  }),
  fc.record({
    version: fc.constant(0),
    type: fc.constant(PacketType.VersionNegotiation),
    flags: fc.constant(0),
    connectionId: fc.nat({ max: 0xffffffff }),
    packetNumber: fc.nat({ max: MAX_U53 }),
  }),
);

/** Bytes biased towards RIFT-looking datagrams so decoders get past the first checks. */
const datagramArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 1300 }),
  fc.uint8Array({ maxLength: 1300, size: "max" }),
  fc.tuple(
    fc.integer({ min: 0xc0, max: 0xff }),
    fc.integer({ min: 0, max: 6 }),
    fc.uint8Array({ maxLength: 64 }),
  ).map(([b0, b1, rest]) => Uint8Array.of(b0, b1, ...rest)),
  fc.tuple(fc.constantFrom(0xc0, 0xc1), fc.uint8Array({ maxLength: 40 })).map((
    [b0, rest],
  ) => {
    const out = new Uint8Array(HEADER_LENGTH + rest.length);
    out[0] = b0;
    out[1] = b0 === 0xc0 ? 0 : 4;
    out.set(rest, HEADER_LENGTH);
    if (rest.length > 0) out[HEADER_LENGTH] = rest.length - 1;
    return out;
  }),
);

Deno.test("header: byte-exact layout matches docs/RIFT_SPEC.md", () => {
  const bytes = encodeHeader({
    version: 1,
    type: PacketType.Sealed,
    flags: 1,
    connectionId: 0x0a0b0c0d,
    packetNumber: 0x0001_0203_0405_06, // 0x00_01_02_03_04_05_06 → 0x0000010203040506
  });
  assert.deepEqual(
    Array.from(bytes),
    [
      0xc1, // marker 11 + version 1
      0x04, // SEALED
      0x01, // key phase 1
      0x00, // reserved
      0x0a,
      0x0b,
      0x0c,
      0x0d, // connection id
      0x00,
      0x00,
      0x01,
      0x02,
      0x03,
      0x04,
      0x05,
      0x06, // packet number, big-endian u64
    ],
  );
  const h = expectOk(decodeHeader(bytes));
  assert.deepEqual(h, {
    version: 1,
    type: 4,
    flags: 1,
    connectionId: 0x0a0b0c0d,
    packetNumber: 0x010203040506,
  });
});

Deno.test("header: encode → decode is identity", () => {
  fc.assert(
    fc.property(headerArb, (h) => {
      assert.deepEqual(expectOk(decodeHeader(encodeHeader(h))), { ...h });
    }),
    { numRuns: 2000 },
  );
});

Deno.test("header: encodes into a caller buffer at an offset", () => {
  const out = new Uint8Array(40).fill(0xee);
  const h: PacketHeader = {
    version: 1,
    type: PacketType.Sealed,
    flags: 0,
    connectionId: 7,
    packetNumber: 9,
  };
  assert.equal(encodeHeader(h, out, 10), out);
  assert.equal(out[9], 0xee);
  assert.equal(out[26], 0xee);
  assert.deepEqual(expectOk(decodeHeader(out.subarray(10, 30))), h);
});

Deno.test("header: reserved bits are ignored on receipt", () => {
  const bytes = encodeHeader({
    version: 1,
    type: PacketType.Sealed,
    flags: 0,
    connectionId: 1,
    packetNumber: 2,
  });
  bytes[2] = 0xfc; // reserved flag bits set, key phase 0, session lane
  bytes[3] = 0xff;
  const h = expectOk(decodeHeader(bytes));
  assert.equal(h.flags, 0);
  assert.equal(keyPhaseOf(h), 0);
  assert.equal(isMediaLaneDatagram(bytes), false);
  bytes[2] = 0xfe; // media lane bit is kept
  assert.equal(expectOk(decodeHeader(bytes)).flags, FLAG_MEDIA_LANE);
  assert.equal(isMediaLaneDatagram(bytes), true);
  bytes[2] = 0xff;
  assert.equal(keyPhaseOf(expectOk(decodeHeader(bytes))), 1);
  // Key phase means nothing outside SEALED.
  const hs = encodeHandshakePacket(PacketType.HandshakeResponse, 5, 0, new Uint8Array(48));
  hs[2] = 0xff;
  const hh = expectOk(decodeHeader(hs));
  assert.equal(hh.flags, 0);
  assert.equal(keyPhaseOf(hh), 0);
});

Deno.test("header: each error kind", () => {
  const good = encodeHeader({
    version: 1,
    type: PacketType.Sealed,
    flags: 0,
    connectionId: 1,
    packetNumber: 1,
  });
  expectError(decodeHeader(new Uint8Array(0)), "Truncated");
  expectError(decodeHeader(good.subarray(0, 15)), "Truncated");
  // STUN (first byte 0..3), DTLS (20..63), anything below 0xC0: not RIFT.
  for (const b of [0x00, 0x01, 0x03, 0x16, 0x40, 0x80, 0xbf]) {
    const d = good.slice();
    d[0] = b;
    expectError(decodeHeader(d), "NotRift");
    assert.equal(isRiftDatagram(d), false);
  }
  assert.equal(isRiftDatagram(good), true);
  assert.equal(isRiftDatagram(new Uint8Array(0)), false);
  expectError(decodeHeader(new Uint8Array(1201).fill(0xc1)), "Oversized");
  expectError(decodeHeader(new Uint8Array(101).fill(0xc1), 100), "Oversized");
  const v2 = good.slice();
  v2[0] = 0xc2;
  expectError(decodeHeader(v2), "UnknownVersion");
  const t5 = good.slice();
  t5[1] = 5;
  expectError(decodeHeader(t5), "UnknownType");
  const v1t0 = good.slice();
  v1t0[1] = 0;
  expectError(decodeHeader(v1t0), "UnknownType");
  const v0t1 = good.slice();
  v0t1[0] = 0xc0;
  v0t1[1] = 1;
  expectError(decodeHeader(v0t1), "UnknownType");
  const bigPn = good.slice();
  bigPn[8] = 0x00;
  bigPn[9] = 0x20; // 2^53
  expectError(decodeHeader(bigPn), "Malformed");
  bigPn[9] = 0x1f;
  bigPn.fill(0xff, 10, 16); // 2^53 - 1 is fine
  assert.equal(expectOk(decodeHeader(bigPn)).packetNumber, MAX_U53);
});

Deno.test("header: encoder rejects caller bugs with RangeError", () => {
  const base: PacketHeader = {
    version: 1,
    type: PacketType.Sealed,
    flags: 0,
    connectionId: 0,
    packetNumber: 0,
  };
  const bad: Partial<PacketHeader>[] = [
    { version: 64 },
    { version: -1 },
    { type: 5 as PacketType },
    { flags: 4 },
    { flags: 1, type: PacketType.HandshakeInit },
    { flags: 2, type: PacketType.HandshakeFinish },
    { connectionId: 2 ** 32 },
    { connectionId: 1.5 },
    { packetNumber: 2 ** 53 },
    { packetNumber: -1 },
  ];
  for (const b of bad) {
    assert.throws(() => encodeHeader({ ...base, ...b }), RangeError, JSON.stringify(b));
  }
  assert.throws(() => encodeHeader(base, new Uint8Array(20), 5), RangeError);
});

Deno.test("decoders never throw on arbitrary bytes", () => {
  fc.assert(
    fc.property(datagramArb, fc.integer({ min: 0, max: 1500 }), (d, max) => {
      for (const r of [decodeHeader(d), decodeHeader(d, max)]) {
        assert.equal(typeof r.ok, "boolean");
      }
      decodeHandshakePacket(d);
      decodeVersionNegotiation(d);
      splitSealed(d);
      isRiftDatagram(d);
      const vn = versionNegotiationResponse(d);
      if (vn !== undefined) assert.ok(vn.length <= d.length);
    }),
    { numRuns: 5000 },
  );
});

Deno.test("handshake packets: round trip and errors", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(
        PacketType.HandshakeInit,
        PacketType.HandshakeResponse,
        PacketType.HandshakeFinish,
      ),
      fc.nat({ max: 0xffffffff }),
      fc.nat({ max: 1000 }),
      fc.uint8Array({ minLength: 1, maxLength: DEFAULT_MAX_DATAGRAM - HEADER_LENGTH, size: "max" }),
      (type, cid, pn, body) => {
        const connectionId = type === PacketType.HandshakeInit ? 0 : cid;
        const d = encodeHandshakePacket(type, connectionId, pn, body);
        assert.equal(d.length, HEADER_LENGTH + body.length);
        const decoded = expectOk(decodeHandshakePacket(d));
        assert.deepEqual(decoded.header, {
          version: RIFT_VERSION,
          type,
          flags: 0,
          connectionId,
          packetNumber: pn,
        });
        assert.deepEqual(decoded.body, body);
        for (let cut = 0; cut <= HEADER_LENGTH; cut++) {
          expectError(decodeHandshakePacket(d.subarray(0, cut)), "Truncated");
        }
      },
    ),
    { numRuns: 300 },
  );
  assert.throws(
    () => encodeHandshakePacket(PacketType.HandshakeInit, 0, 0, new Uint8Array(0)),
    RangeError,
  );
  assert.throws(
    () => encodeHandshakePacket(PacketType.HandshakeInit, 7, 0, new Uint8Array(36)),
    RangeError,
  );
  assert.throws(
    () => encodeHandshakePacket(PacketType.Sealed, 7, 0, new Uint8Array(36)),
    RangeError,
  );
  assert.throws(
    () => encodeHandshakePacket(PacketType.HandshakeResponse, 7, 0, new Uint8Array(1185)),
    RangeError,
  );
  assert.equal(
    encodeHandshakePacket(PacketType.HandshakeResponse, 7, 0, new Uint8Array(1184)).length,
    1200,
  );
  // An INIT carrying a connection id, or a SEALED packet, is not a valid handshake packet.
  const init = encodeHandshakePacket(PacketType.HandshakeInit, 0, 0, new Uint8Array(36));
  init[7] = 1;
  expectError(decodeHandshakePacket(init), "Malformed");
  const sealed = new Uint8Array(40);
  encodeHeader(
    { version: 1, type: PacketType.Sealed, flags: 0, connectionId: 1, packetNumber: 0 },
    sealed,
  );
  expectError(decodeHandshakePacket(sealed), "Malformed");
});

Deno.test("version negotiation: round trip, truncation and errors", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 63 }), { minLength: 1, maxLength: 255 }),
      (versions) => {
        const d = encodeVersionNegotiation(versions);
        assert.equal(d.length, HEADER_LENGTH + 1 + versions.length);
        assert.deepEqual(expectOk(decodeVersionNegotiation(d)), versions);
        const h = expectOk(decodeHeader(d));
        assert.deepEqual(h, {
          version: 0,
          type: PacketType.VersionNegotiation,
          flags: 0,
          connectionId: 0,
          packetNumber: 0,
        });
        for (let cut = 0; cut < d.length; cut++) {
          expectError(decodeVersionNegotiation(d.subarray(0, cut)), "Truncated", "Malformed");
        }
      },
    ),
    { numRuns: 300 },
  );
  assert.deepEqual(
    Array.from(encodeVersionNegotiation([1, 2])),
    [0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2],
  );
  const vn = encodeVersionNegotiation([1]);
  const zero = vn.slice();
  zero[16] = 0;
  expectError(decodeVersionNegotiation(zero.subarray(0, 17)), "Malformed");
  const trailing = new Uint8Array(vn.length + 1);
  trailing.set(vn);
  expectError(decodeVersionNegotiation(trailing), "Malformed");
  const v0 = vn.slice();
  v0[17] = 0;
  expectError(decodeVersionNegotiation(v0), "Malformed");
  const v64 = vn.slice();
  v64[17] = 64;
  expectError(decodeVersionNegotiation(v64), "Malformed");
  const cid = vn.slice();
  cid[7] = 1;
  expectError(decodeVersionNegotiation(cid), "Malformed");
  const notVn = encodeHandshakePacket(PacketType.HandshakeInit, 0, 0, new Uint8Array(36));
  expectError(decodeVersionNegotiation(notVn), "Malformed");
  assert.throws(() => encodeVersionNegotiation([]), RangeError);
  assert.throws(() => encodeVersionNegotiation([0]), RangeError);
  assert.throws(() => encodeVersionNegotiation([64]), RangeError);
  assert.throws(() => encodeVersionNegotiation(new Array(256).fill(1)), RangeError);
});

Deno.test("version negotiation: responder answers unknown-version INIT only, never amplifying", () => {
  const init = encodeHandshakePacket(PacketType.HandshakeInit, 0, 0, new Uint8Array(36));
  // Our own version: no negotiation.
  assert.equal(versionNegotiationResponse(init), undefined);
  const v7 = init.slice();
  v7[0] = 0xc7;
  expectError(decodeHeader(v7), "UnknownVersion");
  const answer = versionNegotiationResponse(v7);
  assert.ok(answer !== undefined);
  assert.deepEqual(expectOk(decodeVersionNegotiation(answer)), [...SUPPORTED_VERSIONS]);
  // Not an INIT: dropped silently.
  const v7sealed = v7.slice();
  v7sealed[1] = PacketType.Sealed;
  assert.equal(versionNegotiationResponse(v7sealed), undefined);
  // A VN never answers a VN.
  assert.equal(versionNegotiationResponse(encodeVersionNegotiation([7])), undefined);
  // Never more bytes than received.
  assert.equal(versionNegotiationResponse(v7.subarray(0, 17)), undefined);
  assert.ok(versionNegotiationResponse(v7.subarray(0, 18), [5]) !== undefined);
  assert.equal(versionNegotiationResponse(v7.subarray(0, 18), [5, 6]), undefined);
  assert.equal(versionNegotiationResponse(v7.subarray(0, 15)), undefined);
  // Not RIFT at all.
  const stun = v7.slice();
  stun[0] = 0x00;
  assert.equal(versionNegotiationResponse(stun), undefined);
  fc.assert(
    fc.property(datagramArb, (d) => {
      const r = versionNegotiationResponse(d);
      if (r !== undefined) {
        assert.ok(r.length <= d.length);
        assert.equal(d[1], PacketType.HandshakeInit);
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("version negotiation: initiator decisions", () => {
  assert.equal(negotiateVersion([1, 2], 1, [1]).action, "ignore");
  assert.deepEqual(negotiateVersion([2, 3], 4, [1, 2, 3, 4]), { action: "retry", version: 3 });
  assert.equal(negotiateVersion([5, 6], 1, [1]).action, "fail");
});

Deno.test("splitSealed: views, minimum length and errors", () => {
  fc.assert(
    fc.property(
      fc.nat({ max: 0xffffffff }),
      fc.nat({ max: MAX_U53 }),
      fc.constantFrom(0, 1),
      fc.integer({ min: AEAD_TAG_LENGTH, max: DEFAULT_MAX_DATAGRAM - HEADER_LENGTH }),
      (connectionId, packetNumber, flags, sealedLength) => {
        const d = new Uint8Array(HEADER_LENGTH + sealedLength);
        const h: PacketHeader = {
          version: 1,
          type: PacketType.Sealed,
          flags,
          connectionId,
          packetNumber,
        };
        encodeHeader(h, d);
        d.fill(0x5a, HEADER_LENGTH);
        const s = expectOk(splitSealed(d));
        assert.deepEqual(s.header, h);
        assert.equal(keyPhaseOf(s.header), flags);
        assert.equal(s.headerBytes.length, HEADER_LENGTH);
        assert.equal(s.headerBytes.buffer, d.buffer);
        assert.deepEqual(s.headerBytes, d.subarray(0, HEADER_LENGTH));
        assert.equal(s.sealed.length, sealedLength);
        assert.equal(s.sealed.byteOffset, HEADER_LENGTH);
        for (let cut = 0; cut < HEADER_LENGTH + AEAD_TAG_LENGTH; cut++) {
          expectError(splitSealed(d.subarray(0, cut)), "Truncated");
        }
      },
    ),
    { numRuns: 300 },
  );
  expectError(
    splitSealed(encodeHandshakePacket(PacketType.HandshakeFinish, 1, 0, new Uint8Array(64))),
    "Malformed",
  );
  expectError(splitSealed(new Uint8Array(1300).fill(0xc1)), "Oversized");
});
