import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { StunServerCore } from "../core/stun/server.ts";
import { generateIdentity } from "../crypto/identity.ts";
import { IceConnection } from "./ice_connect.ts";
import { within } from "./test_support.ts";
import { SessionDriver, SessionListener } from "./udp_session.ts";
import { UdpSocket } from "./udp_socket.ts";

/** A STUN server (the real core) on a loopback socket of this process. */
function startStun(): UdpSocket {
  const socket = UdpSocket.bind("127.0.0.1", 0);
  const core = new StunServerCore({
    primary: { hostname: "127.0.0.1", port: socket.addr.port, family: "IPv4" },
  });
  socket.start((bytes, from) => {
    const a = core.handle(bytes, { ...from, family: "IPv4" });
    if (a.action === "reply") socket.send(a.bytes, a.to);
  });
  return socket;
}

Deno.test("ICE over loopback, then a RIFT session on the same sockets; STUN keeps flowing beside it", async () => {
  const stun = startStun();
  const stunServer = { hostname: "127.0.0.1", port: stun.addr.port };
  const a = await IceConnection.gather({
    socket: UdpSocket.bind("0.0.0.0", 0),
    role: "controlling",
    stunServer,
    hostAddresses: ["127.0.0.1"],
    timing: { consentIntervalMs: 200 },
  });
  const b = await IceConnection.gather({
    socket: UdpSocket.bind("0.0.0.0", 0),
    role: "controlled",
    stunServer,
    hostAddresses: ["127.0.0.1"],
    timing: { consentIntervalMs: 200 },
  });
  let listener: SessionListener | undefined;
  let driver: SessionDriver | undefined;
  try {
    // The mapped address equals the host one on loopback: no separate srflx candidate.
    assertEquals(a.serverReflexive?.port, a.socket.addr.port);
    assertEquals(a.offer().candidates.length, 1);
    // Offers travel as JSON, as they will through the gateway.
    assert(a.setRemote(JSON.parse(JSON.stringify(b.offer()))).ok);
    assert(b.setRemote(JSON.parse(JSON.stringify(a.offer()))).ok);
    const [oa, ob] = await within(5000, Promise.all([a.connected(), b.connected()]), "ICE");
    assert(oa.ok && ob.ok);
    assertEquals(oa.remote, { hostname: "127.0.0.1", port: b.socket.addr.port });
    assertEquals(ob.remote, { hostname: "127.0.0.1", port: a.socket.addr.port });

    const idA = generateIdentity(), idB = generateIdentity();
    listener = SessionListener.listen({ identity: idB, port: 0, attached: b });
    assertEquals(listener.addr.port, b.socket.addr.port, "the listener serves on ICE's socket");
    const accepted = (async () => {
      for await (const s of listener!.accept()) return s;
    })();
    driver = await within(
      5000,
      SessionDriver.connect({ identity: idA, remote: oa.remote, attached: a }),
      "RIFT handshake",
    );
    const host = (await within(5000, accepted, "accept"))!;
    assertEquals(driver.local.port, a.socket.addr.port, "the client sends from ICE's socket");
    const text = new TextEncoder();
    for (let i = 0; i < 5; i++) driver.sendControl(text.encode(`m${i}`));
    const got: string[] = [];
    for await (const e of host.events()) {
      if (e.type === "control") got.push(new TextDecoder().decode(e.data));
      if (got.length === 5) break;
    }
    assertEquals(got, ["m0", "m1", "m2", "m3", "m4"]);
    // Consent checks went on over the shared socket while RIFT ran.
    await new Promise((r) => setTimeout(r, 600));
    assert(a.agent.counters.consentSuccesses >= 1, "consent answered beside RIFT");
    assertEquals(a.agent.state, "connected");
    assert(a.counters.routed > 0 && b.counters.routed > 0, "RIFT datagrams were routed");
  } finally {
    await driver?.close();
    await listener?.close();
    await a.close();
    await b.close();
    await stun.close();
  }
});

Deno.test("a bad offer is refused with a kind and starts nothing; bad candidates are skipped", async () => {
  const a = await IceConnection.gather({
    socket: UdpSocket.bind("127.0.0.1", 0),
    role: "controlling",
  });
  try {
    const r = a.setRemote({ ufrag: "x", pwd: "y", candidates: [] });
    assert(!r.ok && r.error.kind === "BadCredentials");
    assert(!a.setRemote("nope").ok);
    assertEquals(a.agent.state, "new");
    const ok = a.setRemote({
      ufrag: "abcd",
      pwd: "0123456789012345678901",
      candidates: [{ type: "host", ip: "not-an-ip", port: 1, priority: 1, foundation: "f" }, {
        type: "host",
        ip: "127.0.0.1",
        port: 9,
        priority: 1,
        foundation: "f",
      }],
    });
    assert(ok.ok);
    assertEquals(ok.value.refused.map((e) => e.kind), ["BadAddress"]);
    assertEquals(a.agent.remoteCandidates.length, 1);
  } finally {
    await a.close();
  }
});
