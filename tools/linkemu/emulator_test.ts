import assert from "node:assert/strict";
import { startLinkEmulator } from "./emulator.ts";
import { type HostPort, LinkEmulatorError } from "./types.ts";

function udp(): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
}

function addr(s: Deno.DatagramConn): HostPort {
  const a = s.addr as Deno.NetAddr;
  return { hostname: a.hostname, port: a.port };
}

/** Receives one datagram or fails after `ms`. */
async function recv(s: Deno.DatagramConn, ms = 2000): Promise<[Uint8Array, HostPort]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("timed out")), ms);
  });
  try {
    const [d, a] = await Promise.race([s.receive(), timeout]);
    const n = a as Deno.NetAddr;
    return [d, { hostname: n.hostname, port: n.port }];
  } finally {
    clearTimeout(timer);
  }
}

const text = (s: string) => new TextEncoder().encode(s);
const str = (d: Uint8Array) => new TextDecoder().decode(d);

Deno.test("emulator: forwards both ways, each through its own delay", async () => {
  const peer = udp(), target = udp();
  const emu = await startLinkEmulator({
    target: addr(target),
    up: { delayMs: 15 },
    down: { delayMs: 25 },
  });
  try {
    const t0 = performance.now();
    await peer.send(text("ping"), { transport: "udp", ...emu.listenAddr });
    const [d, from] = await recv(target);
    const t1 = performance.now();
    assert.equal(str(d), "ping");
    assert.deepEqual(from, emu.upstreamAddr, "the target sees the upstream socket");
    assert.ok(t1 - t0 >= 15, `up took ${t1 - t0} ms`);
    await target.send(text("pong"), { transport: "udp", ...from });
    const [back, via] = await recv(peer);
    assert.ok(performance.now() - t1 >= 25);
    assert.equal(str(back), "pong");
    assert.deepEqual(via, emu.listenAddr);
    const s = emu.stats();
    assert.equal(s.up.delivered, 1);
    assert.equal(s.down.delivered, 1);
    assert.equal(s.flows[0].up.bytesForwarded, 4);
  } finally {
    await emu.close();
    peer.close();
    target.close();
  }
});

Deno.test("emulator: several flows share the links, each to its own target", async () => {
  const targets = [udp(), udp(), udp()];
  const peers = [udp(), udp(), udp()];
  const emu = await startLinkEmulator({
    target: addr(targets[0]),
    extraFlows: targets.slice(1).map((t) => ({ target: addr(t) })),
    up: { rateBps: 1e6 },
    down: {},
  });
  try {
    assert.equal(emu.flows.length, 3);
    for (let i = 0; i < 3; i++) {
      await peers[i].send(text(`flow${i}`), { transport: "udp", ...emu.flows[i].listenAddr });
    }
    for (let i = 0; i < 3; i++) {
      const [d, from] = await recv(targets[i]);
      assert.equal(str(d), `flow${i}`);
      assert.deepEqual(from, emu.flows[i].upstreamAddr);
      await targets[i].send(text(`back${i}`), { transport: "udp", ...from });
    }
    for (let i = 0; i < 3; i++) assert.equal(str((await recv(peers[i]))[0]), `back${i}`);
    const s = emu.stats();
    assert.equal(s.up.delivered, 3, "one shared up link carried all three");
    assert.deepEqual(s.flows.map((f) => f.up.forwarded), [1, 1, 1]);
  } finally {
    await emu.close();
    for (const s of [...targets, ...peers]) s.close();
  }
});

Deno.test("emulator: the packet log records every fate", async () => {
  const peer = udp(), target = udp();
  const emu = await startLinkEmulator({
    target: addr(target),
    up: { loss: { kind: "bernoulli", p: 1 } },
    down: { rateBps: 8000, queueBytes: 150 },
    log: true,
  });
  try {
    await peer.send(text("lost"), { transport: "udp", ...emu.listenAddr });
    // The peer is known now (it spoke first). Three 100-byte datagrams into a 150-byte
    // queue: the 2nd and 3rd are dropped.
    for (let i = 0; i < 3; i++) {
      await target.send(new Uint8Array(100), { transport: "udp", ...emu.upstreamAddr });
    }
    await recv(peer); // the first leaves after 100 ms at 8 kbit/s
    const log = await emu.packetLog();
    assert.deepEqual(log.map((e) => [e.dir, e.fate]), [
      ["up", "lost"],
      ["down", "delivered"],
      ["down", "dropped-queue"],
      ["down", "dropped-queue"],
    ]);
    const d = log[1];
    assert.ok(Math.abs(d.departAt! - d.inAt - 100) < 1e-6, "100 bytes at 8 kbit/s take 100 ms");
    assert.ok(d.outAt! >= d.dueAt!);
    assert.equal(emu.stats().up.lostRandom, 1);
    assert.equal(emu.stats().down.droppedQueue, 2);
  } finally {
    await emu.close();
    peer.close();
    target.close();
  }
});

Deno.test("emulator: a reply before any peer spoke is counted, not sent", async () => {
  const target = udp();
  const emu = await startLinkEmulator({ target: addr(target), up: {}, down: {}, log: true });
  try {
    await target.send(text("orphan"), { transport: "udp", ...emu.upstreamAddr });
    for (let i = 0; i < 100 && emu.stats().down.noPeer === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(emu.stats().down.noPeer, 1);
    assert.equal((await emu.packetLog())[0].fate, "no-peer");
  } finally {
    await emu.close();
    target.close();
  }
});

Deno.test("emulator: bad configuration and busy ports are typed errors", async () => {
  const target = udp();
  try {
    await assert.rejects(
      startLinkEmulator({ target: addr(target), up: { delayMs: -1 }, down: {} }),
      (e) => e instanceof LinkEmulatorError && e.kind === "InvalidConfig",
    );
    await assert.rejects(
      startLinkEmulator({ target: { hostname: "127.0.0.1", port: 0 }, up: {}, down: {} }),
      (e) => e instanceof LinkEmulatorError && e.kind === "InvalidConfig",
    );
    await assert.rejects(
      startLinkEmulator({
        target: addr(target),
        up: { rateBps: 1, trace: undefined, queueMs: 0 },
        down: {},
      }),
      (e) => e instanceof LinkEmulatorError && e.kind === "InvalidConfig",
    );
    await assert.rejects(
      startLinkEmulator({ listen: addr(target), target: addr(target), up: {}, down: {} }),
      (e) => e instanceof LinkEmulatorError && e.kind === "BindFailed",
    );
  } finally {
    target.close();
  }
});
