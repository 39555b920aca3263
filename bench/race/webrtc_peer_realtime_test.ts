import assert from "node:assert/strict";
import { startWebrtcCall } from "./webrtc_peer.ts";
import type { HostPort } from "./sdp.ts";

/**
 * A tiny two-socket UDP relay with a fixed one-way delay, only for this test
 * (the real link emulator lives in tools/linkemu): peers send to `listen`,
 * the target sees them from `upstream`; replies go back to the last peer heard.
 */
function tinyRelay(target: HostPort, delayMs: number) {
  const listen = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const upstream = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  let peer: Deno.NetAddr | undefined;
  const counts = { up: 0, down: 0, peers: new Set<string>() };
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const later = (f: () => void) => {
    const id = setTimeout(() => {
      timers.delete(id);
      f();
    }, delayMs);
    timers.add(id);
  };
  let open = true;
  const pump = async (
    from: Deno.DatagramConn,
    to: Deno.DatagramConn,
    dest: () => Deno.NetAddr | undefined,
    up: boolean,
  ) => {
    try {
      for await (const [data, addr] of from) {
        if (up) {
          peer = addr as Deno.NetAddr;
          counts.peers.add(`${peer.hostname}:${peer.port}`);
          counts.up++;
        } else counts.down++;
        const d = dest();
        if (d) later(() => open && to.send(data, d).catch(() => {}));
      }
    } catch { /* closed */ }
  };
  const targetAddr: Deno.NetAddr = { transport: "udp", hostname: target.ip, port: target.port };
  const done = Promise.all([
    pump(listen, upstream, () => targetAddr, true),
    pump(upstream, listen, () => peer, false),
  ]);
  const addr = (c: Deno.DatagramConn) => {
    const a = c.addr as Deno.NetAddr;
    return { ip: a.hostname, port: a.port };
  };
  return {
    listenAddr: addr(listen),
    upstreamAddr: addr(upstream),
    counts,
    async close() {
      open = false;
      for (const t of timers) clearTimeout(t);
      listen.close();
      upstream.close();
      await done;
    },
  };
}

Deno.test("webrtc call through a UDP relay: frames decode, delays include the relay, b=AS caps the rate", async () => {
  let relay: ReturnType<typeof tinyRelay> | undefined;
  const call = await startWebrtcCall({
    width: 640,
    height: 360,
    fps: 30,
    maxKbps: 400,
    route: (receiver) => {
      relay = tinyRelay(receiver, 25);
      return Promise.resolve({ senderSees: relay.listenAddr, receiverSees: relay.upstreamAddr });
    },
  });
  try {
    const r = await call.run(8000);
    assert.ok(relay!.counts.up > 100 && relay!.counts.down > 10, JSON.stringify(relay!.counts));
    assert.ok(r.frames.length > 60, `only ${r.frames.length} frames decoded`);
    assert.equal(r.unreadableFrames, 0);
    const delays = r.frames.map((f) => f.recvMs - f.sendMs);
    // Every frame crossed the relay's 25 ms.
    assert.ok(Math.min(...delays) >= 25, `min delay ${Math.min(...delays)}`);
    const seqs = new Set(r.frames.map((f) => f.seq));
    assert.ok(seqs.size === r.frames.length, "a frame was decoded twice");
    // The ceiling: sent rate over the last 3 s stays near 400 kbit/s (pacing overshoots a little).
    const s = r.sender.filter((x) => x.t > r.sender[r.sender.length - 1].t - 3000);
    const kbps = (s[s.length - 1].bytesSent - s[0].bytesSent) * 8 / (s[s.length - 1].t - s[0].t);
    assert.ok(kbps < 400 * 1.15, `sent ${kbps.toFixed(0)} kbit/s over a 400 kbit/s ceiling`);
    assert.ok(s.some((x) => x.availableOutgoingBitrate > 0), "no GCC estimate");
  } finally {
    await call.close();
    await relay?.close();
  }
});
