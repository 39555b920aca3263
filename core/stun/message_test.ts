import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import fc from "fast-check";
import {
  decodeStun,
  encodeStun,
  findAttribute,
  isStunPacket,
  MAGIC_COOKIE,
  messageType,
  shortTermKey,
  splitMessageType,
  type StunAttribute,
  StunClass,
  type StunMessage,
  StunMethod,
  verifyIntegrity,
} from "./message.ts";
import { crc32 } from "./crc32.ts";
import { isRiftDatagram } from "../wire.ts";
import { formatIp, parseIp } from "./ip.ts";

const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));

// RFC 5769 §2.1–2.3, byte for byte.
const SAMPLE_REQUEST = hex(`
  000100582112a442b7e7a701bc34d686fa87dfae
  802200105354554e207465737420636c69656e74
  002400046e0001ff80290008932ff9b151263b36
  000600096576746a3a68367659202020
  000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2
  80280004e57a3bcf`);
const SAMPLE_IPV4_RESPONSE = hex(`
  0101003c2112a442b7e7a701bc34d686fa87dfae
  8022000b7465737420766563746f7220
  002000080001a147e112a643
  000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7
  80280004c07d4c96`);
const SAMPLE_IPV6_RESPONSE = hex(`
  010100482112a442b7e7a701bc34d686fa87dfae
  8022000b7465737420766563746f7220
  002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9
  00080014a382954e4be67bf11784c97c8292c275bfe3ed41
  80280004c8fb0b4c`);
const PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt";
const TXID = hex("b7e7a701bc34d686fa87dfae");

Deno.test("RFC 5769 §2.1 sample request decodes, integrity and fingerprint verify", () => {
  const r = decodeStun(SAMPLE_REQUEST);
  assert(r.ok);
  const m = r.value;
  assertEquals(m.method, StunMethod.Binding);
  assertEquals(m.messageClass, StunClass.Request);
  assertEquals(m.transactionId, TXID);
  assert(m.fingerprint);
  assertEquals(m.attributes, [
    { kind: "Software", value: "STUN test client" },
    { kind: "Priority", priority: 0x6e0001ff },
    { kind: "IceControlled", tieBreaker: 0x932ff9b151263b36n },
    { kind: "Username", value: "evtj:h6vY" },
  ]);
  assert(verifyIntegrity(SAMPLE_REQUEST, m, shortTermKey(PASSWORD)));
  assert(!verifyIntegrity(SAMPLE_REQUEST, m, shortTermKey(PASSWORD + "x")));
});

Deno.test("RFC 5769 §2.1 sample request re-encodes byte-exact (0x20 padding)", () => {
  const r = decodeStun(SAMPLE_REQUEST);
  assert(r.ok);
  const out = encodeStun(r.value, {
    integrityKey: shortTermKey(PASSWORD),
    fingerprint: true,
    paddingByte: 0x20,
  });
  assertEquals(out, SAMPLE_REQUEST);
});

Deno.test("RFC 5769 §2.2 IPv4 response: encode byte-exact, decode the mapped address", () => {
  const msg: StunMessage = {
    method: StunMethod.Binding,
    messageClass: StunClass.SuccessResponse,
    transactionId: TXID,
    attributes: [
      { kind: "Software", value: "test vector" },
      {
        kind: "XorMappedAddress",
        address: { hostname: "192.0.2.1", port: 32853, family: "IPv4" },
      },
    ],
  };
  const key = shortTermKey(PASSWORD);
  assertEquals(
    encodeStun(msg, { integrityKey: key, fingerprint: true, paddingByte: 0x20 }),
    SAMPLE_IPV4_RESPONSE,
  );
  const r = decodeStun(SAMPLE_IPV4_RESPONSE);
  assert(r.ok);
  assertEquals(r.value.attributes, msg.attributes);
  assert(r.value.fingerprint);
  assert(verifyIntegrity(SAMPLE_IPV4_RESPONSE, r.value, key));
});

Deno.test("RFC 5769 §2.3 IPv6 response: encode byte-exact, decode the mapped address", () => {
  const msg: StunMessage = {
    method: StunMethod.Binding,
    messageClass: StunClass.SuccessResponse,
    transactionId: TXID,
    attributes: [
      { kind: "Software", value: "test vector" },
      {
        kind: "XorMappedAddress",
        address: { hostname: "2001:db8:1234:5678:11:2233:4455:6677", port: 32853, family: "IPv6" },
      },
    ],
  };
  const key = shortTermKey(PASSWORD);
  assertEquals(
    encodeStun(msg, { integrityKey: key, fingerprint: true, paddingByte: 0x20 }),
    SAMPLE_IPV6_RESPONSE,
  );
  const r = decodeStun(SAMPLE_IPV6_RESPONSE);
  assert(r.ok);
  assertEquals(r.value.attributes, msg.attributes);
  assert(verifyIntegrity(SAMPLE_IPV6_RESPONSE, r.value, key));
});

Deno.test("message type bits: Binding request/success/error are 0x0001/0x0101/0x0111", () => {
  assertEquals(messageType(1, StunClass.Request), 0x0001);
  assertEquals(messageType(1, StunClass.Indication), 0x0011);
  assertEquals(messageType(1, StunClass.SuccessResponse), 0x0101);
  assertEquals(messageType(1, StunClass.ErrorResponse), 0x0111);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xfff }), fc.integer({ min: 0, max: 3 }), (m, c) => {
      assertEquals(splitMessageType(messageType(m, c as StunClass)), {
        method: m,
        messageClass: c,
      });
    }),
  );
});

Deno.test("CRC-32 check value and FINGERPRINT xor constant", () => {
  assertEquals(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assertEquals(MAGIC_COOKIE, 0x2112a442);
});

Deno.test("isStunPacket: first byte 0–3 and a header's length; RIFT's 0xC0|v is not STUN", () => {
  assert(isStunPacket(SAMPLE_REQUEST));
  const rift = new Uint8Array(40);
  rift[0] = 0xc1;
  assert(!isStunPacket(rift));
  for (let b = 0; b < 256; b++) {
    const p = new Uint8Array(20);
    p[0] = b;
    assertEquals(isStunPacket(p), b <= 3);
  }
  assert(!isStunPacket(new Uint8Array(19)));
});

Deno.test("RFC 7983 demux: no first byte is both STUN and RIFT", () => {
  for (let b = 0; b < 256; b++) {
    const p = new Uint8Array(64);
    p[0] = b;
    assert(!(isStunPacket(p) && isRiftDatagram(p)), `byte ${b}`);
  }
});

Deno.test("decode errors are typed, never thrown", () => {
  const kind = (b: Uint8Array) => {
    const r = decodeStun(b);
    return r.ok ? "ok" : r.error.kind;
  };
  assertEquals(kind(new Uint8Array(5)), "Truncated");
  const notStun = SAMPLE_REQUEST.slice();
  notStun[0] = 0x40;
  assertEquals(kind(notStun), "NotStun");
  const cookie = SAMPLE_REQUEST.slice();
  cookie[4] = 0;
  assertEquals(kind(cookie), "BadMagicCookie");
  assertEquals(kind(SAMPLE_REQUEST.subarray(0, 104)), "BadLength");
  const fp = SAMPLE_REQUEST.slice();
  fp[fp.length - 1] ^= 1;
  assertEquals(kind(fp), "BadFingerprint");
  // XOR-MAPPED-ADDRESS with family 3.
  const bad = SAMPLE_IPV4_RESPONSE.slice(0, 48);
  new DataView(bad.buffer).setUint16(2, 28);
  bad[37] = 3;
  assertEquals(kind(bad), "BadAttributeValue");
  // An attribute that claims more than the message holds.
  const long = SAMPLE_IPV4_RESPONSE.slice(0, 36);
  new DataView(long.buffer).setUint16(2, 16);
  long[23] = 0x20;
  assertEquals(kind(long), "BadAttributeLength");
});

Deno.test("MESSAGE-INTEGRITY: attributes after it are ignored; unknown required ones listed", () => {
  const key = shortTermKey("pw");
  const base = encodeStun({
    method: 1,
    messageClass: StunClass.Request,
    transactionId: TXID,
    attributes: [{ kind: "Raw", type: 0x7777, value: new Uint8Array([1, 2, 3]) }],
  }, { integrityKey: key });
  // Append a USERNAME after MESSAGE-INTEGRITY by hand: it must not be reported.
  const extra = new Uint8Array(base.length + 8);
  extra.set(base);
  extra.set([0x00, 0x06, 0x00, 0x01, 0x61, 0, 0, 0], base.length);
  new DataView(extra.buffer).setUint16(2, extra.length - 20);
  const r = decodeStun(extra);
  assert(r.ok);
  assertEquals(r.value.unknownRequired, [0x7777]);
  assertEquals(r.value.attributes.length, 1);
  assert(verifyIntegrity(extra, r.value, key));
});

const addr4 = fc.record({
  hostname: fc.ipV4().map((s) => formatIp(parseIp(s)!)),
  port: fc.integer({ min: 0, max: 65535 }),
  family: fc.constant("IPv4" as const),
}).map((a) => ({ ...a }));
const addr6 = fc.record({
  hostname: fc.ipV6().map((s) => formatIp(parseIp(s)!)),
  port: fc.integer({ min: 0, max: 65535 }),
  family: fc.constant("IPv6" as const),
}).map((a) => ({ ...a }));
const anyAddr = fc.oneof(addr4, addr6);
const text = (max: number) => fc.string({ maxLength: max, unit: "grapheme" });

const attribute: fc.Arbitrary<StunAttribute> = fc.oneof(
  anyAddr.map((address) => ({ kind: "MappedAddress" as const, address })),
  anyAddr.map((address) => ({ kind: "XorMappedAddress" as const, address })),
  anyAddr.map((address) => ({ kind: "OtherAddress" as const, address })),
  anyAddr.map((address) => ({ kind: "ResponseOrigin" as const, address })),
  text(60).map((value) => ({ kind: "Username" as const, value })),
  text(60).map((value) => ({ kind: "Software" as const, value })),
  fc.record({
    kind: fc.constant("ErrorCode" as const),
    code: fc.integer({ min: 300, max: 699 }),
    reason: text(40),
  }),
  fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 5 }).map((types) => ({
    kind: "UnknownAttributes" as const,
    types,
  })),
  fc.record({
    kind: fc.constant("ChangeRequest" as const),
    changeIp: fc.boolean(),
    changePort: fc.boolean(),
  }),
  fc.integer({ min: 0, max: 0xffff }).map((port) => ({ kind: "ResponsePort" as const, port })),
  fc.integer({ min: 0, max: 40 }).map((length) => ({ kind: "Padding" as const, length })),
  fc.integer({ min: 0, max: 0xffffffff }).map((priority) => ({
    kind: "Priority" as const,
    priority,
  })),
  fc.constant({ kind: "UseCandidate" as const }),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((tieBreaker) => ({
    kind: "IceControlling" as const,
    tieBreaker,
  })),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((tieBreaker) => ({
    kind: "IceControlled" as const,
    tieBreaker,
  })),
  fc.record({
    kind: fc.constant("Raw" as const),
    // Unknown types only: known codes would decode to their typed form.
    type: fc.constantFrom(0x0030, 0x7fff, 0xc001, 0xfffe),
    value: fc.uint8Array({ maxLength: 30 }),
  }),
).map((a) => ({ ...a }) as StunAttribute);

const message: fc.Arbitrary<StunMessage> = fc.record({
  method: fc.integer({ min: 0, max: 0xfff }),
  messageClass: fc.constantFrom(0, 1, 2, 3) as fc.Arbitrary<StunClass>,
  transactionId: fc.uint8Array({ minLength: 12, maxLength: 12 }),
  attributes: fc.array(attribute, { maxLength: 8 }),
});

Deno.test("property: encode → decode is the identity (with and without integrity)", () => {
  fc.assert(
    fc.property(message, fc.boolean(), fc.boolean(), (m, mi, fp) => {
      const key = shortTermKey("secret");
      const bytes = encodeStun(m, { integrityKey: mi ? key : undefined, fingerprint: fp });
      const r = decodeStun(bytes);
      assert(r.ok, r.ok ? "" : r.error.detail);
      assertEquals(r.value.method, m.method);
      assertEquals(r.value.messageClass, m.messageClass);
      assertEquals(r.value.transactionId, m.transactionId);
      assertEquals(r.value.attributes, m.attributes);
      assertEquals(r.value.fingerprint, fp);
      assertEquals(verifyIntegrity(bytes, r.value, key), mi);
      // RFC 7983's 0–3 range holds for methods below 0x100 (all registered ones).
      assertEquals(isStunPacket(bytes), m.method < 0x100);
    }),
    { numRuns: 500 },
  );
});

Deno.test("property: arbitrary bytes never throw", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      decodeStun(b);
    }),
    { numRuns: 3000 },
  );
  // Also bytes that pass the header checks, so the attribute walk is exercised.
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 120 }).map((a) => a.subarray(0, a.length & ~3)),
      (body) => {
        const b = new Uint8Array(20 + body.length);
        new DataView(b.buffer).setUint32(4, MAGIC_COOKIE);
        new DataView(b.buffer).setUint16(2, body.length);
        b.set(body, 20);
        const r = decodeStun(b);
        if (r.ok) findAttribute(r.value, "XorMappedAddress");
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("property: any single bit flip is caught (framing checks or FINGERPRINT)", () => {
  fc.assert(
    fc.property(message, fc.nat(), fc.integer({ min: 0, max: 7 }), (m, pos, bit) => {
      const bytes = encodeStun(m, { fingerprint: true });
      // Flips in bytes 2–3 (the length) or in the cookie are caught by framing checks; flips
      // of the type bits keep the framing but change the CRC input.
      const i = pos % bytes.length;
      const flipped = bytes.slice();
      flipped[i] ^= 1 << bit;
      // Either the datagram is rejected, or the flip hit FINGERPRINT's own type so the
      // message lost its FINGERPRINT: a receiver that requires one rejects it too.
      const r = decodeStun(flipped);
      assert(!r.ok || !r.value.fingerprint);
    }),
    { numRuns: 1000 },
  );
});

Deno.test("encode rejects caller bugs with RangeError", () => {
  const base = { method: 1, messageClass: StunClass.Request, transactionId: TXID };
  const bad: StunMessage[] = [
    { ...base, transactionId: new Uint8Array(11), attributes: [] },
    { ...base, method: 0x1000, attributes: [] },
    {
      ...base,
      attributes: [{
        kind: "XorMappedAddress",
        address: { hostname: "x", port: 1, family: "IPv4" },
      }],
    },
    { ...base, attributes: [{ kind: "ErrorCode", code: 200, reason: "" }] },
    { ...base, attributes: [{ kind: "Raw", type: 0x8028, value: new Uint8Array(4) }] },
  ];
  for (const m of bad) {
    let threw = false;
    try {
      encodeStun(m);
    } catch (e) {
      threw = e instanceof RangeError;
    }
    assert(threw);
  }
});

Deno.test("IP text: IPv4 strict dotted quads, IPv6 round-trips in RFC 5952 form", () => {
  assertEquals(formatIp(parseIp("2001:0db8:0:0:0:0:0:1")!), "2001:db8::1");
  assertEquals(formatIp(parseIp("::")!), "::");
  assertEquals(formatIp(parseIp("::ffff:1.2.3.4")!), "::ffff:102:304");
  assertEquals(formatIp(parseIp("1:0:0:2:0:0:0:3")!), "1:0:0:2::3");
  assertEquals(parseIp("1.2.3"), null);
  assertEquals(parseIp("1::2::3"), null);
  for (const bad of ["01.2.3.4", "1.2.3.4.", "256.1.1.1", "1..2.3", "1.2.3.4a", "", "1.2.3.4.5"]) {
    assertEquals(parseIp(bad), null, bad);
  }
  fc.assert(fc.property(fc.ipV4(), (s) => {
    const b = parseIp(s);
    assert(b);
    assertEquals(formatIp(b), s.split(".").map(Number).join("."));
  }));
  fc.assert(fc.property(fc.ipV6(), (s) => {
    const b = parseIp(s);
    assert(b);
    assertEquals(parseIp(formatIp(b)), b);
  }));
});
