/**
 * A kernel TCP flow through the IP-in-UDP tunnel across the link emulator:
 * 4 Mbit/s, 20 ms one way, 100 ms drop-tail queue, 12 s of bulk transfer.
 * The handshake takes one configured round trip, goodput after slow start is
 * 80 to 100% of the rate, and the emulator's log shows the tunnel's packets
 * crossing the shared `down` link (data) and `up` link (ACKs). Root only;
 * fails (never skips) if the tunnel does not carry the flow.
 */
import assert from "node:assert/strict";
import { startLinkEmulator } from "./emulator.ts";
import { goodputSeries, TcpTunnel } from "./tcp_tunnel.ts";

Deno.test({
  name: "tcp tunnel: CUBIC across the emulator gets the rate and the configured RTT",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const rateBps = 4e6, delayMs = 20, seconds = 12;
  const tunnel = await TcpTunnel.create({ senderSide: "target" });
  let emu: Awaited<ReturnType<typeof startLinkEmulator>> | undefined;
  try {
    const link = { delayMs, rateBps, queueMs: 100 };
    emu = await startLinkEmulator({
      target: tunnel.target,
      up: { delayMs },
      down: link,
      log: true,
    });
    await tunnel.connect(emu.flows[0]);
    const t0 = performance.timeOrigin + performance.now();
    const { connectMs, congestion } = await tunnel.start(seconds);
    assert.equal(congestion, "cubic");
    await new Promise((r) => setTimeout(r, 6000));
    const info = await tunnel.tcpInfo(); // mid-transfer: the socket's rtt, cwnd, congestion control
    await new Promise((r) => setTimeout(r, seconds * 1000 - 6000 + 500));
    const samples = tunnel.samples();
    const stats = tunnel.stats();
    const log = await emu.packetLog();

    // The handshake crossed both directions once each: 2 x 20 ms plus the emulator's overshoot.
    assert.ok(
      connectMs >= 2 * delayMs && connectMs < 2 * delayMs + 15,
      `handshake ${connectMs.toFixed(1)} ms for a ${2 * delayMs} ms round trip`,
    );
    assert.match(info, /cubic/, info);
    // Goodput from 4 s (slow start and its overshoot done) to the end of the transfer.
    const series = goodputSeries(samples, t0 + 4000, t0 + seconds * 1000, 1000);
    assert.ok(series.length >= 6, `only ${series.length} goodput bins`);
    const mean = series.reduce((a, b) => a + b.bps, 0) / series.length;
    // TCP payload only: IP+TCP headers (52 of 1500 bytes) also cross the link, so ~96.5% is the top.
    assert.ok(
      mean >= 0.8 * rateBps && mean <= rateBps,
      `goodput ${(mean / 1e6).toFixed(3)} Mbit/s for ${rateBps / 1e6} Mbit/s; ${info}`,
    );
    // The tunnel's datagrams are what crossed the shared links: data down, ACKs up.
    const down = log.filter((e) => e.dir === "down" && e.flow === 0 && e.fate === "delivered");
    const up = log.filter((e) => e.dir === "up" && e.flow === 0 && e.fate === "delivered");
    const downBytes = down.reduce((a, e) => a + e.bytes, 0);
    assert.ok(down.length > 1000 && up.length > 300, `down ${down.length}, up ${up.length}`);
    assert.ok(Math.max(...down.map((e) => e.bytes)) <= 1500, "a datagram above the TUN MTU");
    assert.ok(downBytes >= samples.at(-1)!.total, "fewer bytes crossed down than were received");
    assert.equal(stats.sender.sendErrors + stats.receiver.sendErrors, 0);
    assert.equal(stats.sender.writeErrors + stats.receiver.writeErrors, 0);
    // Every datagram the sender's end sent reached the emulator (none lost outside the model).
    const st = emu.stats();
    assert.equal(st.flows[0].down.received, stats.sender.udpSent);
    console.log(
      `goodput ${(mean / 1e6).toFixed(3)} Mbit/s (${(mean / rateBps).toFixed(3)} of the rate), ` +
        `handshake ${connectMs.toFixed(1)} ms, down ${down.length} datagrams, up ${up.length}, ` +
        `dropped at the queue ${
          log.filter((e) => e.dir === "down" && e.fate === "dropped-queue").length
        }, realtime ${stats.realtime}\n${info}`,
    );
  } finally {
    await emu?.close();
    await tunnel.close();
  }
});
