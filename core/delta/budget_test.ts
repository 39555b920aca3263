import assert from "node:assert/strict";
import fc from "fast-check";
import { BUDGET_FACTOR_MAX, BUDGET_MIN_FRAMES, EncoderBudget } from "./budget.ts";
import { fragmentFrame } from "../fragment.ts";
import { DEFAULT_VIDEO_FEC, protectFrame } from "../fec/video.ts";
import { maxVideoPayload } from "../frames.ts";

const DATAGRAM = 1200;
const PAYLOAD = maxVideoPayload(DATAGRAM);

/** Wire bytes of one frame as the media lane sends it: fragments and parity, each in a datagram. */
function wireBytesOf(encodedBytes: number, parityRatio: number): number {
  const frame = {
    frameId: 1,
    captureTimeUs: 0,
    keyframe: false,
    data: new Uint8Array(encodedBytes),
  };
  const fragments = fragmentFrame(frame, PAYLOAD);
  const parity = protectFrame(fragments, { ...DEFAULT_VIDEO_FEC, parityRatio });
  const perDatagram = DATAGRAM - PAYLOAD; // headers, tag, fragment header
  let bytes = 0;
  for (const f of fragments) bytes += f.data.length + perDatagram;
  for (const p of parity) bytes += p.data.length + perDatagram;
  return bytes;
}

Deno.test("before any frame the model is (1 + fec) × datagram / payload", () => {
  const b = new EncoderBudget({ datagramBytes: DATAGRAM, payloadBytes: PAYLOAD });
  assert.ok(Math.abs(b.wireFactor(0) - DATAGRAM / PAYLOAD) < 1e-12);
  assert.ok(Math.abs(b.wireFactor(0.25) - 1.25 * DATAGRAM / PAYLOAD) < 1e-12);
  assert.ok(
    Math.abs(b.encoderBitrateBps(1_000_000, 0.25) - 1e6 / (1.25 * DATAGRAM / PAYLOAD)) < 1e-6,
  );
});

Deno.test("with real fragmentation and FEC the wire carries the target (within 1 %), not 1.15× it", () => {
  // 1 Mbit/s at 30 fps, FEC ratio 0.1: DELTA's old split (target / (1 + ratio)) gives the
  // encoder 3788 bytes a frame, which is 4 fragments + 1 whole parity datagram on the wire.
  const target = 1_000_000, fps = 30, ratio = 0.1;
  const perFrame = target / fps / 8;
  const oldEncoded = perFrame / (1 + ratio);
  const oldWire = wireBytesOf(Math.round(oldEncoded), ratio);
  assert.ok(
    oldWire / perFrame > 1.14,
    `old split puts ${oldWire / perFrame} × the target on the wire`,
  );
  const b = new EncoderBudget({ datagramBytes: DATAGRAM, payloadBytes: PAYLOAD });
  let wire = 0, sent = 0;
  let encoded = b.encoderBitrateBps(target, ratio) / fps / 8;
  for (let i = 0; i < 120; i++) {
    const bytes = Math.round(encoded);
    b.onFrame(bytes, wire); // the previous frame's datagrams left since
    wire = wireBytesOf(bytes, ratio);
    if (i >= 60) sent += wire;
    encoded = b.encoderBitrateBps(target, ratio) / fps / 8;
  }
  const ratioOnWire = sent / (60 * perFrame);
  assert.ok(ratioOnWire <= 1.01 && ratioOnWire > 0.9, `wire / target = ${ratioOnWire}`);
});

Deno.test("the factor stays within bounds and ignores garbage", () => {
  const b = new EncoderBudget({ datagramBytes: DATAGRAM, payloadBytes: PAYLOAD, windowFrames: 10 });
  for (let i = 0; i < BUDGET_MIN_FRAMES + 2; i++) b.onFrame(100, 100_000);
  assert.equal(b.wireFactor(0), BUDGET_FACTOR_MAX);
  b.onFrame(NaN, 5);
  b.onFrame(5, -1);
  assert.equal(b.garbage, 2);
  assert.throws(() => new EncoderBudget({ datagramBytes: 100, payloadBytes: 200 }), RangeError);
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.double({ min: -10, max: 1e7 }), fc.double({ min: -10, max: 1e7 }))),
    fc.double({ min: -1, max: 2, noNaN: true }),
    (frames, fec) => {
      const x = new EncoderBudget({ datagramBytes: DATAGRAM, payloadBytes: PAYLOAD });
      for (const [e, w] of frames) x.onFrame(e, w);
      const f = x.wireFactor(fec);
      return f >= 1 && f <= BUDGET_FACTOR_MAX;
    },
  ));
});
