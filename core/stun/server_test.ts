import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import fc from "fast-check";
import type { TransportAddress } from "./ip.ts";
import {
  decodeStun,
  encodeStun,
  findAttribute,
  newTransactionId,
  type StunAttribute,
  StunClass,
  StunMethod,
} from "./message.ts";
import { ALL_SOCKETS, type LocalSocket, StunServerCore } from "./server.ts";

const PRIMARY: TransportAddress = { hostname: "198.51.100.1", port: 3478, family: "IPv4" };
const ALTERNATE: TransportAddress = { hostname: "198.51.100.2", port: 3479, family: "IPv4" };
const CLIENT: TransportAddress = { hostname: "203.0.113.7", port: 40000, family: "IPv4" };

function request(attributes: StunAttribute[] = [], cls: StunClass = StunClass.Request) {
  return encodeStun({
    method: StunMethod.Binding,
    messageClass: cls,
    transactionId: newTransactionId(),
    attributes,
  }, { fingerprint: true });
}

function decodeReply(bytes: Uint8Array) {
  const r = decodeStun(bytes);
  assert(r.ok);
  assert(r.value.fingerprint, "every reply carries FINGERPRINT");
  return r.value;
}

Deno.test("Binding: XOR-MAPPED-ADDRESS is the source, same transaction id, from the arrival socket", () => {
  const core = new StunServerCore({ primary: PRIMARY });
  const req = request();
  const a = core.handle(req, CLIENT);
  assert(a.action === "reply");
  assertEquals(a.sendFrom, { ip: "primary", port: "primary" });
  assertEquals(a.to, CLIENT);
  const m = decodeReply(a.bytes);
  assertEquals(m.messageClass, StunClass.SuccessResponse);
  assertEquals(m.transactionId, req.slice(8, 20));
  assertEquals(findAttribute(m, "XorMappedAddress")?.address, CLIENT);
  // Without an alternate address: no RFC 5780 attributes.
  assertEquals(findAttribute(m, "OtherAddress"), undefined);
  assertEquals(findAttribute(m, "ResponseOrigin"), undefined);
  assertEquals(core.counters.successes, 1);
});

Deno.test("Binding over IPv6 reports the IPv6 source", () => {
  const core = new StunServerCore({
    primary: { hostname: "2001:db8::1", port: 3478, family: "IPv6" },
  });
  const from: TransportAddress = { hostname: "2001:db8::77", port: 5555, family: "IPv6" };
  const a = core.handle(request(), from);
  assert(a.action === "reply");
  assertEquals(findAttribute(decodeReply(a.bytes), "XorMappedAddress")?.address, from);
});

const combos: { changeIp: boolean; changePort: boolean }[] = [
  { changeIp: false, changePort: false },
  { changeIp: false, changePort: true },
  { changeIp: true, changePort: false },
  { changeIp: true, changePort: true },
];

for (const arrivedOn of ALL_SOCKETS) {
  for (const c of combos) {
    Deno.test(
      `RFC 5780: arrived on ${arrivedOn.ip} IP/${arrivedOn.port} port, CHANGE-REQUEST ip=${c.changeIp} port=${c.changePort}`,
      () => {
        const core = new StunServerCore({ primary: PRIMARY, alternate: ALTERNATE });
        const a = core.handle(request([{ kind: "ChangeRequest", ...c }]), CLIENT, arrivedOn);
        assert(a.action === "reply");
        const flip = (v: "primary" | "alternate") => v === "primary" ? "alternate" : "primary";
        const want: LocalSocket = {
          ip: c.changeIp ? flip(arrivedOn.ip) : arrivedOn.ip,
          port: c.changePort ? flip(arrivedOn.port) : arrivedOn.port,
        };
        assertEquals(a.sendFrom, want);
        const m = decodeReply(a.bytes);
        assertEquals(m.messageClass, StunClass.SuccessResponse);
        assertEquals(findAttribute(m, "XorMappedAddress")?.address, CLIENT);
        // RESPONSE-ORIGIN is the socket the reply leaves from.
        assertEquals(findAttribute(m, "ResponseOrigin")?.address, {
          hostname: want.ip === "primary" ? PRIMARY.hostname : ALTERNATE.hostname,
          port: want.port === "primary" ? PRIMARY.port : ALTERNATE.port,
          family: "IPv4",
        });
        // OTHER-ADDRESS differs from the arrival socket in both IP and port.
        assertEquals(findAttribute(m, "OtherAddress")?.address, {
          hostname: arrivedOn.ip === "primary" ? ALTERNATE.hostname : PRIMARY.hostname,
          port: arrivedOn.port === "primary" ? ALTERNATE.port : PRIMARY.port,
          family: "IPv4",
        });
        assertEquals(core.counters.changed, c.changeIp || c.changePort ? 1 : 0);
      },
    );
  }
}

for (const c of combos) {
  Deno.test(
    `single address: CHANGE-REQUEST ip=${c.changeIp} port=${c.changePort} gets 420 + UNKNOWN-ATTRIBUTES`,
    () => {
      const core = new StunServerCore({ primary: PRIMARY });
      const a = core.handle(request([{ kind: "ChangeRequest", ...c }]), CLIENT);
      assert(a.action === "reply");
      assertEquals(a.errorCode, 420);
      assertEquals(a.sendFrom, { ip: "primary", port: "primary" });
      const m = decodeReply(a.bytes);
      assertEquals(m.messageClass, StunClass.ErrorResponse);
      assertEquals(findAttribute(m, "ErrorCode")?.code, 420);
      assertEquals(findAttribute(m, "UnknownAttributes")?.types, [0x0003]);
      assertEquals(core.counters.errors[420], 1);
    },
  );
}

Deno.test("unknown comprehension-required attribute: 420 listing it; optional ones are ignored", () => {
  const core = new StunServerCore({ primary: PRIMARY });
  const a = core.handle(
    request([{ kind: "Raw", type: 0x0042, value: new Uint8Array(2) }]),
    CLIENT,
  );
  assert(a.action === "reply");
  assertEquals(findAttribute(decodeReply(a.bytes), "UnknownAttributes")?.types, [0x0042]);
  const b = core.handle(request([{ kind: "Raw", type: 0xc042, value: new Uint8Array(2) }]), CLIENT);
  assert(b.action === "reply");
  assertEquals(b.errorCode, 0);
});

Deno.test("malformed attribute in a request: 400; unknown method: 400 with that method", () => {
  const core = new StunServerCore({ primary: PRIMARY });
  const req = request([{ kind: "ChangeRequest", changeIp: false, changePort: false }]);
  // Break CHANGE-REQUEST's length (4 → 2) and the FINGERPRINT with it: send without it.
  const noFp = req.slice(0, req.length - 8);
  new DataView(noFp.buffer).setUint16(2, noFp.length - 20);
  new DataView(noFp.buffer).setUint16(22, 2);
  const a = core.handle(noFp, CLIENT);
  assert(a.action === "reply");
  assertEquals(a.errorCode, 400);
  const m = decodeReply(a.bytes);
  assertEquals(m.transactionId, req.slice(8, 20));
  const other = encodeStun({
    method: 0x00a,
    messageClass: StunClass.Request,
    transactionId: newTransactionId(),
    attributes: [],
  });
  const b = core.handle(other, CLIENT);
  assert(b.action === "reply");
  assertEquals(b.errorCode, 400);
  assertEquals(decodeReply(b.bytes).method, 0x00a);
  assertEquals(core.counters.errors[400], 2);
});

Deno.test("drops are typed and counted: garbage, RIFT, bad fingerprint, indication, response", () => {
  const core = new StunServerCore({ primary: PRIMARY });
  const rift = new Uint8Array(32);
  rift[0] = 0xc1;
  const badFp = request();
  badFp[badFp.length - 1] ^= 0xff;
  const cases: [Uint8Array, string][] = [
    [new Uint8Array(3), "Truncated"],
    [rift, "NotStun"],
    [badFp, "BadFingerprint"],
    [request([], StunClass.Indication), "Indication"],
    [request([], StunClass.SuccessResponse), "UnexpectedResponse"],
  ];
  for (const [bytes, reason] of cases) {
    const a = core.handle(bytes, CLIENT);
    assert(a.action === "drop");
    assertEquals(a.reason, reason);
  }
  assertEquals(core.counters.drops, {
    Truncated: 1,
    NotStun: 1,
    BadFingerprint: 1,
    Indication: 1,
    UnexpectedResponse: 1,
  });
  assertEquals(core.counters.requests, 0);
  // An alternate socket on a single-address server is an edge bug: dropped, not answered.
  const d = core.handle(request(), CLIENT, { ip: "alternate", port: "primary" });
  assert(d.action === "drop" && d.reason === "UnknownSocket");
});

Deno.test("config: the alternate must differ in IP and port", () => {
  for (
    const alternate of [{ ...ALTERNATE, port: PRIMARY.port }, {
      ...ALTERNATE,
      hostname: PRIMARY.hostname,
    }]
  ) {
    let threw = false;
    try {
      new StunServerCore({ primary: PRIMARY, alternate });
    } catch (e) {
      threw = e instanceof RangeError;
    }
    assert(threw);
  }
});

Deno.test("property: the server never throws on arbitrary datagrams and answers only requests", () => {
  const core = new StunServerCore({ primary: PRIMARY, alternate: ALTERNATE });
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), fc.constantFrom(...ALL_SOCKETS), (b, s) => {
      const a = core.handle(b, CLIENT, s);
      if (a.action === "reply") assertEquals(b[0] & 0x01, 0); // a request's class bit C0 is 0
    }),
    { numRuns: 2000 },
  );
});

Deno.test("RFC 5780 RESPONSE-PORT redirects to that port of the source IP; PADDING echoed, capped", () => {
  const core = new StunServerCore({ primary: PRIMARY, alternate: ALTERNATE });
  const req = request([
    { kind: "ResponsePort", port: 40001 },
    { kind: "ChangeRequest", changeIp: true, changePort: true },
    { kind: "Padding", length: 1500 },
  ]);
  const a = core.handle(req, CLIENT);
  assert(a.action === "reply");
  assertEquals(a.to, { ...CLIENT, port: 40001 });
  assertEquals(a.sendFrom, { ip: "alternate", port: "alternate" });
  assert(a.bytes.length <= req.length, "no amplification through PADDING");
  const pad = findAttribute(decodeReply(a.bytes), "Padding");
  assert(pad && pad.length > 1400);
  // A single-address server refuses RESPONSE-PORT.
  const single = new StunServerCore({ primary: PRIMARY });
  const b = single.handle(request([{ kind: "ResponsePort", port: 1 }]), CLIENT);
  assert(b.action === "reply");
  assertEquals(b.errorCode, 420);
  assertEquals(findAttribute(decodeReply(b.bytes), "UnknownAttributes")?.types, [0x0027]);
});
