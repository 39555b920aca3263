import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { TransportAddress } from "./ip.ts";
import { decodeStun, encodeStun, StunClass } from "./message.ts";
import { StunBindingClient, transactionDeadline } from "./client.ts";
import { StunServerCore } from "./server.ts";

const SERVER: TransportAddress = { hostname: "198.51.100.1", port: 3478, family: "IPv4" };
const ME: TransportAddress = { hostname: "203.0.113.7", port: 40000, family: "IPv4" };

Deno.test("binding client: request, server core answer, mapped address and RTT", () => {
  const core = new StunServerCore({ primary: SERVER });
  const c = new StunBindingClient({ server: SERVER }, 1000);
  const req = c.pollTransmit(1000);
  assert(req);
  assertEquals(c.pollTransmit(1000), undefined, "nothing more due at the same instant");
  const a = core.handle(req, ME);
  assert(a.action === "reply");
  assert(c.handleResponse(a.bytes, 1042));
  const r = c.result();
  assert(r?.ok);
  assertEquals(r.mapped, ME);
  assertEquals(r.rttMs, 42);
  assertEquals(c.pollTimeout(), undefined);
});

Deno.test("retransmission schedule per RFC 8489 §6.2.1: 0, 500, 1500, … 31500, give up at 39500", () => {
  const c = new StunBindingClient({ server: SERVER }, 0);
  const sentAt: number[] = [];
  let now = 0;
  while (c.result() === undefined) {
    if (c.pollTransmit(now)) sentAt.push(now);
    c.handleTimeout(now);
    const next = c.pollTimeout();
    if (next === undefined) break;
    now = next;
  }
  assertEquals(sentAt, [0, 500, 1500, 3500, 7500, 15500, 31500]);
  assertEquals(now, 39500);
  assertEquals(transactionDeadline(), 39500);
  const r = c.result();
  assert(r && !r.ok);
  assertEquals(r.kind, "Timeout");
});

Deno.test("bounded custom timing: rto 100, rc 3, rm 4 gives up at 700 ms", () => {
  const c = new StunBindingClient({ server: SERVER, rto: 100, rc: 3, rm: 4 }, 0);
  let now = 0;
  for (let i = 0; i < 20 && c.result() === undefined; i++) {
    c.pollTransmit(now);
    c.handleTimeout(now);
    now = c.pollTimeout() ?? now;
  }
  assertEquals(now, 700);
  assertEquals(transactionDeadline({ rto: 100, rc: 3, rm: 4 }), 700);
  assertEquals(c.transaction.transmissions, 3);
});

Deno.test("responses with another transaction id, requests and garbage are not consumed", () => {
  const core = new StunServerCore({ primary: SERVER });
  const c = new StunBindingClient({ server: SERVER }, 0);
  const req = c.pollTransmit(0)!;
  const other = new StunBindingClient({ server: SERVER }, 0).pollTransmit(0)!;
  const wrong = core.handle(other, ME);
  assert(wrong.action === "reply");
  assert(!c.handleResponse(wrong.bytes, 5));
  assert(!c.handleResponse(req, 5));
  assert(!c.handleResponse(new Uint8Array([1, 2, 3]), 5));
  assertEquals(c.result(), undefined);
  const right = core.handle(req, ME);
  assert(right.action === "reply");
  assert(c.handleResponse(right.bytes, 6));
  assert(!c.handleResponse(right.bytes, 7), "a duplicate is not consumed twice");
});

Deno.test("error response ends the transaction with its code", () => {
  const core = new StunServerCore({ primary: SERVER });
  const c = new StunBindingClient({
    server: SERVER,
    attributes: [{ kind: "ChangeRequest", changeIp: true, changePort: false }],
  }, 0);
  const a = core.handle(c.pollTransmit(0)!, ME);
  assert(a.action === "reply");
  assert(c.handleResponse(a.bytes, 1));
  const r = c.result();
  assert(r && !r.ok);
  assertEquals(r.kind, "ErrorResponse");
  assertEquals(r.code, 420);
});

Deno.test("a success without a mapped address is reported, and legacy MAPPED-ADDRESS is accepted", () => {
  const c = new StunBindingClient({ server: SERVER, transactionId: new Uint8Array(12) }, 0);
  c.pollTransmit(0);
  const legacy = encodeStun({
    method: 1,
    messageClass: StunClass.SuccessResponse,
    transactionId: new Uint8Array(12),
    attributes: [{ kind: "MappedAddress", address: ME }],
  });
  assert(c.handleResponse(legacy, 3));
  const r = c.result();
  assert(r?.ok);
  assertEquals(r.mapped, ME);
  const empty = encodeStun({
    method: 1,
    messageClass: StunClass.SuccessResponse,
    transactionId: new Uint8Array(12),
    attributes: [],
  });
  assert(decodeStun(empty).ok);
  const c2 = new StunBindingClient({ server: SERVER, transactionId: new Uint8Array(12) }, 0);
  c2.pollTransmit(0);
  assert(c2.handleResponse(empty, 1));
  const r2 = c2.result();
  assert(r2 && !r2.ok && r2.kind === "NoMappedAddress");
});
