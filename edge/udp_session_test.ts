import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeVersionNegotiation, HEADER_LENGTH, PacketType } from "../core/wire.ts";
import { generateIdentity } from "../crypto/identity.ts";
import { nextEvent, RawPeer, unusedUdpPort, within } from "./test_support.ts";
import { isForeignDatagram, SessionDriver, SessionListener } from "./udp_session.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const LOOPBACK = "127.0.0.1";

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The next driver the listener accepts, within `ms`. */
async function acceptOne(listener: SessionListener, ms = 5000): Promise<SessionDriver> {
  return await within(
    ms,
    (async () => {
      for await (const driver of listener.accept()) return driver;
      throw new Error("listener closed");
    })(),
    "accepting a session",
  );
}

Deno.test("handshake over loopback UDP: both sides verify each other's identity", async () => {
  const hostId = generateIdentity();
  const clientId = generateIdentity();
  const listener = SessionListener.listen({
    hostname: LOOPBACK,
    port: 0,
    identity: hostId,
    acceptPeer: (peer) => sameBytes(peer, clientId.publicKey),
    extension: encoder.encode("host-ext"),
  });
  let client: SessionDriver | undefined;
  try {
    assert.notEqual(listener.addr.port, 0);
    const accepted = acceptOne(listener);
    client = await SessionDriver.connect({
      remote: listener.addr,
      identity: clientId,
      acceptPeer: (peer) => sameBytes(peer, hostId.publicKey),
      extension: encoder.encode("client-ext"),
    });
    const server = await accepted;
    assert.equal(client.session.state, "established");
    assert.equal(server.session.state, "established");
    assert.deepEqual(client.peerIdentity, hostId.publicKey);
    assert.deepEqual(server.peerIdentity, clientId.publicKey);
    assert.equal(decoder.decode(client.peerExtension), "host-ext");
    assert.equal(decoder.decode(server.peerExtension), "client-ext");
    assert.equal(server.remote.port, client.local.port);
    assert.equal(client.remote.port, listener.addr.port);
    const stats = listener.stats;
    assert.equal(stats.sessionsStarted, 1);
    assert.equal(stats.sessionsEstablished, 1);
    assert.equal(stats.activeSessions, 1);

    // Closing one side closes the other, by peer, and ends its event stream.
    await client.close(0, "bye");
    const closed = await within(2000, server.closed, "server closed");
    assert.deepEqual(closed, { code: 0, reason: "bye", byPeer: true });
    const events = [];
    for await (const e of server.events()) events.push(e.type);
    assert.equal(events.at(-1), "closed");
    assert.deepEqual(await client.closed, { code: 0, reason: "bye", byPeer: false });
    assert.equal(listener.stats.activeSessions, 0);
    assert.equal(listener.stats.sessionsClosed, 1);
  } finally {
    await client?.close();
    await listener.close();
  }
});

Deno.test("control and input messages flow both ways, each channel in order", async () => {
  const listener = SessionListener.listen({
    hostname: LOOPBACK,
    port: 0,
    identity: generateIdentity(),
  });
  let client: SessionDriver | undefined;
  try {
    const accepted = acceptOne(listener);
    client = await SessionDriver.connect({ remote: listener.addr, identity: generateIdentity() });
    const server = await accepted;
    const N = 300;
    const collect = (driver: SessionDriver): Promise<{ input: string[]; control: string[] }> =>
      within(
        5000,
        (async () => {
          const got = { input: [] as string[], control: [] as string[] };
          for await (const e of driver.events()) {
            if (e.type === "input") got.input.push(decoder.decode(e.data));
            if (e.type === "control") got.control.push(decoder.decode(e.data));
            if (got.input.length === N && got.control.length === N) break;
          }
          return got;
        })(),
        "messages",
      );
    const atServer = collect(server);
    const atClient = collect(client);
    for (let i = 0; i < N; i++) {
      assert.equal(client.sendInput(encoder.encode(`key ${i}`)), true);
      assert.equal(client.sendControl(encoder.encode(`c->s ${i}`)), true);
      assert.equal(server.sendInput(encoder.encode(`rumble ${i}`)), true);
      assert.equal(server.sendControl(encoder.encode(`s->c ${i}`)), true);
      // Spread over a few event-loop turns, as real input would be.
      if (i % 50 === 49) await new Promise((r) => setTimeout(r, 1));
    }
    const [s, c] = await Promise.all([atServer, atClient]);
    const expect = (prefix: string) => Array.from({ length: N }, (_, i) => `${prefix} ${i}`);
    assert.deepEqual(s.input, expect("key"));
    assert.deepEqual(s.control, expect("c->s"));
    assert.deepEqual(c.input, expect("rumble"));
    assert.deepEqual(c.control, expect("s->c"));
  } finally {
    await client?.close();
    await listener.close();
  }
});

Deno.test("200 KB video frames arrive intact (paced; a lost one is re-requested)", async () => {
  // Gentle pacing: in one process the sender and the receiver share an event loop, and this
  // file may run beside other test files (./wavry test --parallel).
  const pacing = { rateMbps: 50, burstDatagrams: 16 };
  const listener = SessionListener.listen({
    hostname: LOOPBACK,
    port: 0,
    identity: generateIdentity(),
    pacing,
  });
  let client: SessionDriver | undefined;
  try {
    const accepted = acceptOne(listener);
    client = await SessionDriver.connect({ remote: listener.addr, identity: generateIdentity() });
    const server = await accepted;
    assert.deepEqual(server.pacing, pacing);
    const data = new Uint8Array(200 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    let frameId = 0;
    let attempts = 0;
    const delivered = [];
    while (delivered.length < 3) {
      assert.ok(++attempts <= 6, `only ${delivered.length} of 3 frames in ${attempts - 1} tries`);
      const outcome = within(
        5000,
        (async () => {
          for await (const e of client.events()) {
            if (e.type === "video-frame" || e.type === "video-frame-lost") return e;
          }
          throw new Error("closed");
        })(),
        "a frame",
      );
      server.sendVideoFrame({ frameId, captureTimeUs: 1000 + frameId, keyframe: true, data });
      frameId++;
      const e = await outcome;
      if (e.type === "video-frame") delivered.push(e.frame);
      // On loss the client's session asks for a keyframe at once, as a host would be told.
      else assert.equal((await nextEvent(server, "keyframe-request")).reason, 0);
    }
    for (const frame of delivered) {
      assert.equal(frame.keyframe, true);
      assert.equal(frame.data.length, data.length);
      assert.ok(sameBytes(frame.data, data), `frame ${frame.frameId} bytes differ`);
    }
    assert.equal(client.stats.framesCompleted, 3);
    assert.ok(server.stats.io.pacingWaits > 0, "a 175-datagram frame should hit the pacer");
  } finally {
    await client?.close();
    await listener.close();
  }
});

Deno.test("five clients on one listener at once, each routed to its own session", async () => {
  const listener = SessionListener.listen({
    hostname: LOOPBACK,
    port: 0,
    identity: generateIdentity(),
  });
  const clients: SessionDriver[] = [];
  const echo: Promise<void>[] = [];
  try {
    // The host echoes every control message with its session's peer identity prefix.
    const serving = (async () => {
      for await (const driver of listener.accept()) {
        echo.push((async () => {
          for await (const e of driver.events()) {
            if (e.type === "control") driver.sendControl(e.data);
          }
        })());
      }
    })();
    const identities = Array.from({ length: 5 }, () => generateIdentity());
    clients.push(
      ...await Promise.all(
        identities.map((identity) => SessionDriver.connect({ remote: listener.addr, identity })),
      ),
    );
    assert.equal(listener.stats.activeSessions, 5);
    assert.equal(new Set(clients.map((c) => c.local.port)).size, 5);
    await Promise.all(clients.map(async (client, i) => {
      for (let k = 0; k < 20; k++) {
        const reply = nextEvent(client, "control");
        client.sendControl(encoder.encode(`client ${i} msg ${k}`));
        assert.equal(decoder.decode((await reply).data), `client ${i} msg ${k}`);
      }
    }));
    assert.equal(listener.stats.sessionsEstablished, 5);
    assert.equal(listener.stats.dropped.NoSession ?? 0, 0);
    await Promise.all(clients.map((c) => c.close()));
    await listener.close();
    await serving;
    await Promise.all(echo);
    assert.equal(listener.stats.sessionsClosed, 5);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await listener.close();
  }
});

Deno.test("wrong identity: connect rejects saying so, and the listener keeps serving", async () => {
  const hostId = generateIdentity();
  const allowed = generateIdentity();
  const listener = SessionListener.listen({
    hostname: LOOPBACK,
    port: 0,
    identity: hostId,
    acceptPeer: (peer) => sameBytes(peer, allowed.publicKey),
    config: { handshakeTimeoutMs: 1000 },
  });
  let good: SessionDriver | undefined;
  try {
    // 1. The client pins another host key: it refuses the host at once.
    const pinned = generateIdentity().publicKey;
    const t0 = performance.now();
    await assert.rejects(
      SessionDriver.connect({
        remote: listener.addr,
        identity: allowed,
        acceptPeer: (peer) => sameBytes(peer, pinned),
      }),
      (error: Error) => {
        assert.match(error.message, /peer identity not allowed/);
        assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${listener.addr.port}`));
        return true;
      },
    );
    assert.ok(performance.now() - t0 < 1000, "a refused host identity fails at once");

    // 2. The host refuses the client's identity: the host cannot say so (it has no keys for a
    // refused peer), so the client gives up when the handshake is not confirmed in time.
    await assert.rejects(
      SessionDriver.connect({
        remote: listener.addr,
        identity: generateIdentity(),
        config: { handshakeTimeoutMs: 1200 },
      }),
      (error: Error) => {
        assert.match(error.message, /identity/);
        assert.match(error.message, /never confirmed/);
        return true;
      },
    );
    assert.equal(listener.stats.handshakesRejected, 1);

    // The listener still serves an allowed client.
    const accepted = acceptOne(listener);
    good = await SessionDriver.connect({ remote: listener.addr, identity: allowed });
    const server = await accepted;
    const reply = nextEvent(good, "control");
    server.sendControl(encoder.encode("welcome"));
    assert.equal(decoder.decode((await reply).data), "welcome");
    // The host-side session of case 1 (waiting for a FINISH that never comes) times out.
    await within(
      3000,
      (async () => {
        while (listener.stats.handshakesTimedOut < 1) await new Promise((r) => setTimeout(r, 50));
      })(),
      "host-side handshake timeout",
    );
    assert.equal(listener.stats.activeSessions, 1);
  } finally {
    await good?.close();
    await listener.close();
  }
});

Deno.test("no host listening: connect rejects within the handshake timeout, naming the address", async () => {
  const port = unusedUdpPort();
  const t0 = performance.now();
  await assert.rejects(
    SessionDriver.connect({
      remote: { hostname: LOOPBACK, port },
      identity: generateIdentity(),
      config: { handshakeTimeoutMs: 1500 },
    }),
    (error: Error) => {
      assert.match(error.message, /handshake timed out after 1500 ms/);
      assert.match(error.message, new RegExp(`is the host running at 127\\.0\\.0\\.1:${port}\\?`));
      return true;
    },
  );
  const elapsed = performance.now() - t0;
  assert.ok(elapsed >= 1450 && elapsed < 2500, `took ${elapsed} ms`);
});

Deno.test("connect can be aborted; the socket is released", async () => {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error("user gave up")), 100);
  try {
    await assert.rejects(
      SessionDriver.connect({
        remote: { hostname: LOOPBACK, port: unusedUdpPort() },
        identity: generateIdentity(),
        signal: controller.signal,
      }),
      /user gave up/,
    );
  } finally {
    clearTimeout(timer);
  }
});

Deno.test("version mismatch: a host speaking only another version is named as such", async () => {
  const fake = Deno.listenDatagram({ hostname: LOOPBACK, port: 0, transport: "udp" });
  const serve = (async () => {
    try {
      const [init, from] = await fake.receive();
      assert.equal(init[1], PacketType.HandshakeInit);
      await fake.send(encodeVersionNegotiation([2, 3]), from);
    } catch {
      // closed
    }
  })();
  try {
    await assert.rejects(
      SessionDriver.connect({
        remote: { hostname: LOOPBACK, port: (fake.addr as Deno.NetAddr).port },
        identity: generateIdentity(),
      }),
      /version mismatch .*2, 3/,
    );
  } finally {
    fake.close();
    await serve;
  }
});

Deno.test("a vanished client: the host's idle timeout closes its session with code 1", async () => {
  const listener = SessionListener.listen({
    hostname: LOOPBACK,
    port: 0,
    identity: generateIdentity(),
    config: { idleTimeoutMs: 600, keepaliveMs: 100 },
  });
  const peer = new RawPeer(generateIdentity(), listener.addr);
  try {
    const server = await acceptOne(listener);
    await peer.vanish();
    const t0 = performance.now();
    const closed = await within(3000, server.closed, "idle timeout");
    assert.deepEqual(closed, { code: 1, reason: "idle timeout", byPeer: false });
    assert.ok(performance.now() - t0 < 1000);
    assert.equal(listener.stats.activeSessions, 0);
    assert.equal(listener.stats.sessionsClosed, 1);
  } finally {
    await peer.vanish();
    await listener.close();
  }
});

Deno.test("a vanished host: the client's idle timeout closes with code 1", async () => {
  const host = new RawPeer(generateIdentity());
  let client: SessionDriver | undefined;
  try {
    client = await SessionDriver.connect({
      remote: host.addr,
      identity: generateIdentity(),
      config: { idleTimeoutMs: 600, keepaliveMs: 100 },
    });
    await host.vanish();
    const closed = await within(3000, client.closed, "idle timeout");
    assert.equal(closed.code, 1);
    assert.equal(closed.byPeer, false);
    const last = [];
    for await (const e of client.events()) last.push(e);
    assert.deepEqual(last.at(-1), { type: "closed", ...closed });
  } finally {
    await client?.close();
    await host.vanish();
  }
});

Deno.test("garbage datagrams are counted and ignored; sessions carry on", async () => {
  const listener = SessionListener.listen({
    hostname: LOOPBACK,
    port: 0,
    identity: generateIdentity(),
  });
  const attacker = Deno.listenDatagram({ hostname: LOOPBACK, port: 0, transport: "udp" });
  let client: SessionDriver | undefined;
  try {
    const accepted = acceptOne(listener);
    client = await SessionDriver.connect({ remote: listener.addr, identity: generateIdentity() });
    const server = await accepted;
    const to = { transport: "udp" as const, ...listener.addr };
    const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
    const header = (
      version: number,
      type: number,
      connectionId: number,
      length: number,
      packetNumber = 0,
    ) => {
      const d = random(length);
      d[0] = 0xc0 | version;
      d[1] = type;
      d.fill(0, 2, HEADER_LENGTH);
      new DataView(d.buffer).setUint32(4, connectionId);
      new DataView(d.buffer).setUint32(12, packetNumber);
      return d;
    };
    const garbage: Uint8Array[] = [
      new Uint8Array([0x00, 0x01, 0x02]), // STUN-like: not RIFT
      random(1).fill(0xc1), // truncated
      header(1, 9, 0, 64), // unknown type
      header(1, PacketType.Sealed, 0xdeadbeef, 100), // no such session
      header(1, PacketType.Sealed, server.session.localConnectionId, 100), // wrong source address
      header(1, PacketType.HandshakeInit, 0, 1200), // INIT with a garbage body
      header(7, PacketType.HandshakeInit, 0, 1200), // another version
      new Uint8Array(1500).fill(0xc1), // oversized
    ];
    for (let round = 0; round < 10; round++) {
      for (const d of garbage) await attacker.send(d, to);
    }
    // Garbage at the client's own socket too.
    for (let i = 0; i < 10; i++) {
      const forged = header(1, PacketType.Sealed, client.session.localConnectionId, 200, 5000 + i);
      await attacker.send(forged, {
        transport: "udp",
        hostname: LOOPBACK,
        port: client.local.port,
      });
    }
    // Ordering on loopback is FIFO: once this round trip is done, the garbage has been handled.
    const reply = nextEvent(client, "control");
    server.sendControl(encoder.encode("still here"));
    assert.equal(decoder.decode((await reply).data), "still here");
    await within(
      2000,
      (async () => {
        while (listener.stats.socket.datagramsReceived < 80) {
          await new Promise((r) => setTimeout(r, 20));
        }
      })(),
      "garbage to arrive",
    );

    const { dropped, sessionsStarted, versionNegotiationsSent, activeSessions } = listener.stats;
    assert.equal(dropped.NotRift, 10);
    assert.equal(dropped.Truncated, 10);
    assert.equal(dropped.UnknownType, 10);
    assert.equal(dropped.NoSession, 20);
    assert.equal(dropped.Malformed, 10); // INIT whose padding is not zero: no session created
    assert.equal(dropped.UnknownVersion, 10);
    assert.equal(dropped.Oversized, 10);
    assert.equal(versionNegotiationsSent, 10);
    assert.equal(sessionsStarted, 1);
    assert.equal(activeSessions, 1);
    await within(
      2000,
      (async () => {
        while ((client!.stats.dropped.Unauthenticated ?? 0) < 10) {
          await new Promise((r) => setTimeout(r, 20));
        }
      })(),
      "client-side garbage counted",
    );
    assert.equal(client.session.state, "established");
  } finally {
    attacker.close();
    await client?.close();
    await listener.close();
  }
});

Deno.test("isForeignDatagram: exactly first bytes 0-3 (STUN) and 0x40-0x4F (relay control)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 40 }), (d) => {
      const expected = d.length > 0 && (d[0] <= 3 || (d[0] >= 0x40 && d[0] <= 0x4f));
      assert.equal(isForeignDatagram(d), expected);
    }),
  );
  // Every RIFT packet starts at 0xC0 or above: never foreign.
  for (let b = 0xc0; b <= 0xff; b++) assert.equal(isForeignDatagram(new Uint8Array([b, 0])), false);
});

Deno.test("foreign datagrams: onForeign on both sides instead of NotRift, sendRaw on the session's own socket, prepare before the handshake", async () => {
  const hostId = generateIdentity();
  const clientId = generateIdentity();
  const atHost: [number[], number][] = [];
  const atClient: [number[], number][] = [];
  const listener = SessionListener.listen({
    hostname: LOOPBACK,
    port: 0,
    identity: hostId,
    onForeign: (d, from) => atHost.push([[...d], from.port]),
  });
  const plain = SessionListener.listen({ hostname: LOOPBACK, port: 0, identity: hostId });
  const outsider = Deno.listenDatagram({ hostname: LOOPBACK, port: 0, transport: "udp" });
  const outsiderPort = (outsider.addr as Deno.NetAddr).port;
  const outsiderAddr = { hostname: LOOPBACK, port: outsiderPort };
  let client: SessionDriver | undefined;
  try {
    const stun = new Uint8Array([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]);
    const control = new Uint8Array([0x41, 7, 7]);
    for (const d of [stun, control]) {
      await outsider.send(d, { transport: "udp", ...listener.addr });
      await outsider.send(d, { transport: "udp", ...plain.addr });
    }
    await within(
      2_000,
      (async () => {
        while (atHost.length < 2) await new Promise((r) => setTimeout(r, 10));
      })(),
      "foreign datagrams at the listener",
    );
    assert.deepEqual(atHost, [[[...stun], outsiderPort], [[...control], outsiderPort]]);
    assert.equal(listener.stats.foreignReceived, 2);
    assert.equal(listener.stats.dropped.NotRift ?? 0, 0);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(plain.stats.dropped.NotRift, 2, "without onForeign they stay NotRift drops");

    // The listener answers from its own port.
    assert.equal(listener.sendRaw(new Uint8Array([0x42, 1]), outsiderAddr), true);
    assert.equal(listener.sendRaw(new Uint8Array(0), outsiderAddr), false);
    const [answer, from] = await within(2_000, outsider.receive(), "listener's raw answer");
    assert.deepEqual([...answer], [0x42, 1]);
    assert.equal((from as Deno.NetAddr).port, listener.addr.port);

    // prepare: raw exchange on the client's socket first; the handshake starts after it.
    const accepted = acceptOne(listener);
    const order: string[] = [];
    client = await SessionDriver.connect({
      remote: listener.addr,
      localHostname: LOOPBACK,
      identity: clientId,
      onForeign: (d, f) => atClient.push([[...d], f.port]),
      prepare: async (link) => {
        order.push("prepare");
        assert.equal(link.sendRaw(new Uint8Array([0x43]), outsiderAddr), true);
        const [ping, pingFrom] = await within(2_000, outsider.receive(), "prepare's raw datagram");
        assert.deepEqual([...ping], [0x43]);
        assert.equal((pingFrom as Deno.NetAddr).port, link.local.port);
        await outsider.send(new Uint8Array([0x44, 2]), {
          transport: "udp",
          hostname: LOOPBACK,
          port: link.local.port,
        });
        await within(
          2_000,
          (async () => {
            while (atClient.length < 1) await new Promise((r) => setTimeout(r, 10));
          })(),
          "foreign datagram during prepare",
        );
        assert.equal(listener.stats.sessionsStarted, 0, "no INIT before prepare resolved");
        order.push("prepared");
      },
    });
    const server = await accepted;
    assert.deepEqual(order, ["prepare", "prepared"]);
    assert.deepEqual(atClient, [[[0x44, 2], outsiderPort]]);
    // After the handshake: raw sends from the driver on both sides, foreign arrivals counted.
    assert.equal(client.sendRaw(new Uint8Array([0x01, 0x01]), outsiderAddr), true);
    const [fromClient, fromClientAddr] = await within(2_000, outsider.receive(), "client sendRaw");
    assert.deepEqual([...fromClient], [0x01, 0x01]);
    assert.equal((fromClientAddr as Deno.NetAddr).port, client.local.port);
    assert.equal(server.sendRaw(new Uint8Array([0x45]), outsiderAddr), true);
    const [fromServer, fromServerAddr] = await within(2_000, outsider.receive(), "server sendRaw");
    assert.deepEqual([...fromServer], [0x45]);
    assert.equal((fromServerAddr as Deno.NetAddr).port, listener.addr.port);
    assert.equal(client.stats.io.rawSent, 2);
    assert.equal(client.stats.io.foreignReceived, 1);
    assert.equal(server.stats.io.rawSent, 1);
    // The session itself still works.
    const got = nextEvent(server, "control");
    client.sendControl(encoder.encode("after raw"));
    assert.equal(decoder.decode((await got).data), "after raw");
    await client.close();
    assert.equal(
      client.sendRaw(new Uint8Array([0x46]), outsiderAddr),
      false,
      "closed: nothing sent",
    );
  } finally {
    await client?.close();
    await listener.close();
    await plain.close();
    outsider.close();
  }
});

Deno.test("connect: a failing prepare rejects connect with its error and releases the socket; abort during prepare too", async () => {
  const hostId = generateIdentity();
  const listener = SessionListener.listen({ hostname: LOOPBACK, port: 0, identity: hostId });
  try {
    const port = unusedUdpPort();
    await assert.rejects(
      SessionDriver.connect({
        remote: listener.addr,
        localHostname: LOOPBACK,
        localPort: port,
        identity: generateIdentity(),
        prepare: () => Promise.reject(new Error("relay refused")),
      }),
      /relay refused/,
    );
    // The port is free again.
    Deno.listenDatagram({ hostname: LOOPBACK, port, transport: "udp" }).close();
    const controller = new AbortController();
    const connecting = SessionDriver.connect({
      remote: listener.addr,
      localHostname: LOOPBACK,
      localPort: port,
      identity: generateIdentity(),
      signal: controller.signal,
      prepare: () => new Promise(() => {}), // never settles
    });
    controller.abort(new Error("gave up"));
    await assert.rejects(connecting, /gave up/);
    Deno.listenDatagram({ hostname: LOOPBACK, port, transport: "udp" }).close();
    assert.equal(listener.stats.sessionsStarted, 0);
  } finally {
    await listener.close();
  }
});
