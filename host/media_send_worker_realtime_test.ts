import assert from "node:assert/strict";
import { establishedSessions } from "../core/session_testing.ts";
import { VIDEO_TIMING_LENGTH } from "../core/stream.ts";
import { decodeHeader } from "../core/wire.ts";
import { NativeUdpSocket } from "../edge/native_udp.ts";
import { type CongestionDecision, MediaSendWorker } from "./media_send.ts";
import type { HostFrame } from "./media_pipeline.ts";

const FPS = 60;
const FRAME_BYTES = 4_000; // 2 Mbit/s at 60 fps
const RTT_MS = 40;

Deno.test("media send worker: in an outage (no feedback) DELTA's window holds the encoder within a few frames, not at the feedback timeout", async () => {
  const { host } = establishedSessions(3);

  const socket = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  const sink = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const decisions: { at: number; decision: CongestionDecision }[] = [];
  const media = await MediaSendWorker.start(socket.fd, {
    onDecision: (_id, decision) => decisions.push({ at: performance.now(), decision }),
  });
  let linkUp = true;
  const arrivals: { packetNumber: number; receiveTimeUs: number }[] = [];
  // The client: every datagram that arrives while the link is up is reported every 20 ms.
  const receiving = (async () => {
    for await (const [datagram] of sink) {
      if (!linkUp) continue;
      const header = decodeHeader(datagram);
      if (!header.ok) continue;
      arrivals.push({
        packetNumber: header.value.packetNumber,
        receiveTimeUs: Math.round(performance.now() * 1000),
      });
    }
  })().catch(() => {});
  const feedback = setInterval(() => {
    if (!linkUp || arrivals.length === 0) return;
    media.feedback(1, { lostTotal: 0, arrivals: arrivals.splice(0) }, RTT_MS);
  }, 20);
  let frameId = 0;
  const frames = setInterval(() => {
    const payload = new Uint8Array(VIDEO_TIMING_LENGTH + FRAME_BYTES);
    const frame: HostFrame = {
      frameId: ++frameId,
      captureTimeUs: Math.round(performance.now() * 1000),
      keyframe: frameId === 1,
      timing: { captureEndUs: 0, encodeStartUs: 0, encodeEndUs: 0, convertMs: 0, encodeMs: 0 },
      payload,
      data: payload.subarray(VIDEO_TIMING_LENGTH),
    };
    media.sendFrame(frame);
  }, 1000 / FPS);
  try {
    media.add(1, host.detachMedia(), sink.addr as Deno.NetAddr, {
      initialBitrateBps: 2_500_000,
      maxBitrateBps: 4_000_000,
      width: 640,
      height: 360,
      maxFps: FPS,
    });
    await new Promise((r) => setTimeout(r, 1_500));
    assert.ok(decisions.length > 0, "no decision while the link was up");
    assert.equal(decisions.at(-1)!.decision.hold, false, "held while the link was up");

    linkUp = false;
    const outage = performance.now();
    await new Promise((r) => setTimeout(r, 600));
    const held = decisions.find((d) => d.at >= outage && d.decision.hold);
    assert.ok(held !== undefined, "the encoder was never held in a 600 ms outage");
    const after = held.at - outage;
    console.log(`held ${after.toFixed(0)} ms into the outage (feedback timeout ≥ 400 ms)`);
    // One window is the target over min RTT + two feedback intervals + margin: ~100 ms here.
    assert.ok(after < 250, `held ${after.toFixed(0)} ms into the outage, expected under 250`);
  } finally {
    clearInterval(frames);
    clearInterval(feedback);
    await media.stop();
    socket.close();
    sink.close();
    await receiving;
  }
});
