/**
 * The live stream through the link emulator with 5% random loss on the media
 * direction: FEC rebuilds what is lost (no retransmission needed, no frame
 * given up) and DELTA does not read random loss as congestion — the rate
 * stays up. Real host (synthetic pattern source, x264), real client workers,
 * real sockets.
 */
import assert from "node:assert/strict";
import { generateIdentity } from "../crypto/identity.ts";
import { WavryHost } from "../host/host.ts";
import { ClientConnection } from "../client/connection.ts";
import { startLinkEmulator } from "../tools/linkemu/mod.ts";

Deno.test("5% random loss: FEC rebuilds the losses, frames keep coming, DELTA keeps the rate", async () => {
  const hostIdentity = generateIdentity();
  const host = await WavryHost.start({
    listen: { hostname: "127.0.0.1", port: 0 },
    source: { kind: "pattern", width: 1280, height: 720 },
    fps: 60,
    bitrateBps: 4_000_000,
    identity: hostIdentity,
  });
  let link: Awaited<ReturnType<typeof startLinkEmulator>> | undefined;
  let connection: ClientConnection | undefined;
  try {
    link = await startLinkEmulator({
      target: { hostname: "127.0.0.1", port: host.addr.port },
      up: {},
      down: { loss: { kind: "bernoulli", p: 0.05 } },
      seed: 7,
    });
    connection = await ClientConnection.connect({
      remote: link.listenAddr,
      identity: generateIdentity(),
      expectHost: hostIdentity.publicKey,
    });
    let frames = 0;
    const events = (async () => {
      for await (const e of connection!.events()) if (e.type === "video-frame") frames++;
    })();
    await new Promise((r) => setTimeout(r, 5_000));
    const media = connection.stats.media;
    const congestion = host.metrics.snapshot(performance.now()).congestion;
    console.log(JSON.stringify({ frames, media, congestion }));
    assert.ok(media.packetsLost > 50, `the emulator dropped packets (${media.packetsLost})`);
    assert.ok(
      media.fecRecoveries > 0.5 * media.packetsLost,
      `FEC rebuilt ${media.fecRecoveries} of ${media.packetsLost} lost packets`,
    );
    assert.ok(frames > 150, `${frames} frames in 5 s`);
    assert.ok(media.framesLost <= 0.02 * frames, `${media.framesLost} frames given up`);
    assert.ok(congestion !== undefined && congestion.fecRatio > 0, "DELTA turned FEC on");
    // Random loss with flat delay is not congestion: the target rose from the 4 Mbit/s start.
    assert.ok(
      congestion!.targetBitrateBps >= 4_000_000,
      `target ${congestion!.targetBitrateBps} bit/s under random loss`,
    );
    await connection.close();
    await events;
  } finally {
    await connection?.close();
    await link?.close();
    await host.stop();
  }
});
