import assert from "node:assert/strict";
import fc from "fast-check";
import * as v from "valibot";
import {
  offerFromSignaling,
  offerToSignaling,
  parseRelayAddress,
  pathOfPair,
} from "./connect_signaling.ts";
import { IceConnection } from "./ice_connect.ts";
import { UdpSocket } from "./udp_socket.ts";
import { PeerMessageSchema } from "../gateway/schema.ts";
import type { SelectedPair } from "../core/ice/mod.ts";

Deno.test("an ICE offer survives the gateway's offer message: schema-valid, and back to the same offer", async () => {
  const ice = await IceConnection.gather({
    socket: UdpSocket.bind("127.0.0.1", 0),
    role: "controlling",
  });
  try {
    const offer = ice.offer();
    assert.ok(offer.candidates.length >= 1);
    const fields = offerToSignaling(offer);
    const msg = { type: "offer", sessionId: "Qm9vAbc12345", ...fields };
    const parsed = v.safeParse(PeerMessageSchema, msg);
    assert.ok(parsed.success, JSON.stringify(parsed.issues));
    assert.deepEqual(offerFromSignaling(fields), offer);
  } finally {
    await ice.close();
  }
});

Deno.test("the gateway's offer schema refuses bad ICE credentials and keeps them optional", () => {
  const base = { type: "answer", sessionId: "Qm9vAbc12345", candidates: [] };
  assert.ok(v.safeParse(PeerMessageSchema, base).success, "credentials are optional");
  for (const bad of [{ ufrag: "abc" }, { pwd: "short" }, { ufrag: "ab cd" }, { ufrag: 5 }]) {
    assert.equal(v.safeParse(PeerMessageSchema, { ...base, ...bad }).success, false);
  }
});

Deno.test("parseRelayAddress: IPv4 and bracketed IPv6 with a port; anything else undefined, never throws", () => {
  assert.deepEqual(parseRelayAddress("198.51.100.4:3478"), {
    hostname: "198.51.100.4",
    port: 3478,
  });
  assert.deepEqual(parseRelayAddress("[2001:db8::1]:7300"), {
    hostname: "2001:db8::1",
    port: 7300,
  });
  for (const bad of ["", "1.2.3.4", "1.2.3.4:0", "1.2.3.4:70000", "host:80", "[::1]", ":80"]) {
    assert.equal(parseRelayAddress(bad), undefined, bad);
  }
  fc.assert(fc.property(fc.string(), (s) => {
    const r = parseRelayAddress(s);
    return r === undefined || (r.port >= 1 && r.port <= 65535 && r.hostname.length > 0);
  }));
});

Deno.test("offerFromSignaling never throws on schema-valid input; IceConnection.setRemote judges it", async () => {
  const ice = await IceConnection.gather({
    socket: UdpSocket.bind("127.0.0.1", 0),
    role: "controlled",
  });
  try {
    const candidate = fc.record({
      kind: fc.constantFrom("host" as const, "srflx" as const, "relay" as const),
      address: fc.oneof(fc.ipV4(), fc.constant("::1"), fc.constant("999.1.1.1")),
      port: fc.integer({ min: 1, max: 65535 }),
      priority: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      foundation: fc.stringMatching(/^[A-Za-z0-9+/]{1,32}$/),
    });
    fc.assert(
      fc.property(fc.array(candidate, { maxLength: 8 }), (candidates) => {
        const offer = offerFromSignaling({ candidates });
        assert.equal(offer.candidates.length, candidates.length);
        return true;
      }),
    );
  } finally {
    await ice.close();
  }
});

Deno.test("IceConnection with no pair at all fails at the direct bound instead of waiting forever", async () => {
  const ice = await IceConnection.gather({
    socket: UdpSocket.bind("0.0.0.0", 0),
    role: "controlling",
    hostAddresses: [],
    timing: { directBoundMs: 300 },
  });
  try {
    assert.deepEqual(ice.offer().candidates, []);
    const peer = { ufrag: "abcd", pwd: "a".repeat(22), candidates: [] };
    assert.ok(ice.setRemote(peer).ok);
    const t = performance.now();
    const outcome = await ice.connected();
    const ms = performance.now() - t;
    assert.equal(outcome.ok, false);
    assert.match((outcome as { reason: string }).reason, /no candidate pair/);
    assert.ok(ms >= 250 && ms < 2000, `${ms} ms`);
  } finally {
    await ice.close();
  }
});

Deno.test("pathOfPair: the peer's candidate type, or relay", () => {
  const c = (type: "host" | "srflx" | "prflx" | "relay") => ({
    type,
    address: { hostname: "192.0.2.1", port: 1, family: "IPv4" as const },
    base: { hostname: "192.0.2.1", port: 1, family: "IPv4" as const },
    priority: 1,
    foundation: "f",
  });
  const pair = (remote: "host" | "srflx" | "prflx" | "relay", relayed: boolean) =>
    ({
      socketId: 0,
      local: c("host"),
      remote: c(remote),
      sendTo: c(remote).address,
      relayed,
    }) as unknown as SelectedPair;
  assert.equal(pathOfPair(pair("srflx", false)), "srflx");
  assert.equal(pathOfPair(pair("prflx", false)), "prflx");
  assert.equal(pathOfPair(pair("host", false)), "host");
  assert.equal(pathOfPair(pair("relay", true)), "relay");
});
