/**
 * The host's synthetic source end to end on loopback: a WavryHost with a
 * pattern source (no X display) streams through DELTA, FEC and pacing to a
 * ClientConnection; the frames arrive, decode with FFmpeg, and the time code
 * in each picture matches the frame's capture time.
 */
import assert from "node:assert/strict";
import { ClientConnection } from "../client/connection.ts";
import { decodeVideoPayload } from "../core/stream.ts";
import { generateIdentity } from "../crypto/identity.ts";
import { FfmpegVideoDecoder } from "../media/linux/video_decoder.ts";
import { readTimeCode } from "../media/pattern.ts";
import { WavryHost } from "./host.ts";

const W = 640, H = 360;

Deno.test("host pattern source: frames stream to a client and their time codes decode", async () => {
  const hostIdentity = generateIdentity();
  const log: string[] = [];
  const host = await WavryHost.start({
    listen: { hostname: "127.0.0.1", port: 0 },
    source: { kind: "pattern", width: W, height: H, seed: 2 },
    fps: 30,
    bitrateBps: 2_000_000,
    identity: hostIdentity,
    log: (l) => log.push(l),
  });
  let conn: ClientConnection | undefined;
  const decoder = FfmpegVideoDecoder.open();
  try {
    conn = await ClientConnection.connect({
      remote: host.addr,
      identity: generateIdentity(),
      expectHost: hostIdentity.publicKey,
    });
    const deadline = performance.now() + 4_000;
    let frames = 0, pictures = 0, matched = 0, lastSeq = -1;
    for await (const e of conn.events()) {
      if (e.type !== "video-frame") continue;
      frames++;
      const payload = decodeVideoPayload(e.frame.data);
      assert.ok(payload.ok);
      const picture = await decoder.decode(payload.value.accessUnit);
      if (picture !== undefined) {
        pictures++;
        // Grey picture: the blue channel is the luma the code was drawn in.
        const luma = new Uint8Array(picture.width * picture.height);
        for (let i = 0; i < luma.length; i++) luma[i] = picture.data[i * 4];
        const code = readTimeCode(luma, picture.width, picture.height);
        assert.ok(code !== undefined, `frame ${e.frame.frameId}: time code unreadable`);
        assert.equal(code.sendMs, Math.floor(e.frame.captureTimeUs / 1000) >>> 0);
        assert.ok(code.seq > lastSeq, `time codes advance (${code.seq} after ${lastSeq})`);
        lastSeq = code.seq;
        matched++;
      }
      if (performance.now() > deadline) break;
    }
    assert.ok(frames >= 60, `frames arrived: ${frames}`);
    assert.ok(pictures >= frames - 2, `decoded ${pictures} of ${frames}`);
    assert.equal(matched, pictures);
    assert.ok(log.some((l) => l.includes(`streaming ${W}x${H}`)), log.join("\n"));
  } finally {
    decoder.close();
    await conn?.close();
    await host.stop();
  }
});
