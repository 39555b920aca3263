import assert from "node:assert/strict";
import fc from "fast-check";
import {
  AckChannel,
  decodeFrames,
  encodedFrameLength,
  encodeFrames,
  encodeFramesInto,
  type FecParityFrame,
  FecScheme,
  type Frame,
  FrameType,
  maxVideoPayload,
  VIDEO_FRAGMENT_OVERHEAD,
} from "./frames.ts";
import {
  AEAD_TAG_LENGTH,
  DEFAULT_MAX_DATAGRAM,
  HEADER_LENGTH,
  type WireError,
  type WireErrorKind,
} from "./wire.ts";
import type { Result } from "./result.ts";

const MAX_U53 = Number.MAX_SAFE_INTEGER;
const u16 = fc.nat({ max: 0xffff });
const u32 = fc.oneof(fc.nat({ max: 0xffffffff }), fc.constantFrom(0, 0xffffffff));
const u53 = fc.oneof(
  fc.nat({ max: MAX_U53 }),
  fc.constantFrom(0, 0xffffffff, 2 ** 32, MAX_U53),
);
const bytes = (maxLength = 1300): fc.Arbitrary<Uint8Array> =>
  fc.oneof(fc.uint8Array({ maxLength }), fc.uint8Array({ maxLength, size: "max" }));

const videoArb: fc.Arbitrary<Frame> = fc.integer({ min: 1, max: 0xffff }).chain((count) =>
  fc.record({
    type: fc.constant("video" as const),
    frameId: u32,
    fragmentIndex: fc.nat({ max: count - 1 }),
    fragmentCount: fc.constant(count),
    captureTimeUs: u53,
    keyframe: fc.boolean(),
    data: bytes(),
  })
);

const frameArbs: Record<Frame["type"], fc.Arbitrary<Frame>> = {
  video: videoArb,
  audio: fc.record({
    type: fc.constant("audio" as const),
    sequence: u32,
    captureTimeUs: u53,
    data: bytes(),
  }),
  input: fc.record({ type: fc.constant("input" as const), sequence: u32, data: bytes(200) }),
  control: fc.record({ type: fc.constant("control" as const), sequence: u32, data: bytes() }),
  ack: fc.record({
    type: fc.constant("ack" as const),
    channel: fc.constantFrom(AckChannel.Input, AckChannel.Control),
    nextExpected: u32,
    bitmap: u32,
  }),
  fec: fc.tuple(
    fc.integer({ min: 1, max: 255 }),
    fc.integer({ min: 1, max: 255 }),
    fc.nat({ max: 0xffff - 255 }),
  ).chain(([parityCount, dataCount, groupFirstIndex]) =>
    fc.record({
      type: fc.constant("fec" as const),
      scheme: fc.constantFrom(FecScheme.Xor, FecScheme.ReedSolomon),
      frameId: u32,
      groupFirstIndex: fc.constant(groupFirstIndex),
      dataCount: fc.constant(dataCount),
      parityIndex: fc.nat({ max: parityCount - 1 }),
      parityCount: fc.constant(parityCount),
      fragmentCount: fc.integer({ min: groupFirstIndex + dataCount, max: 0xffff }),
      captureTimeUs: u53,
      keyframe: fc.boolean(),
      protectedLength: u16,
      data: bytes(),
    })
  ),
  feedback: fc.record({
    type: fc.constant("feedback" as const),
    lostTotal: u32,
    basePacketNumber: fc.nat({ max: MAX_U53 - 0xffff }),
    baseReceiveTimeUs: u53,
    entries: fc.uniqueArray(u16, { maxLength: 200 }).chain((deltas) =>
      fc.tuple(
        ...[...deltas].sort((a, b) => a - b).map((packetNumberDelta) =>
          fc.record({ packetNumberDelta: fc.constant(packetNumberDelta), receiveTimeDeltaUs: u32 })
        ),
      )
    ),
  }),
  "keyframe-request": fc.record({
    type: fc.constant("keyframe-request" as const),
    lastCompleteFrameId: u32,
    reason: fc.constantFrom(0 as const, 1 as const, 2 as const),
  }),
  nack: fc.record({
    type: fc.constant("nack" as const),
    frameId: u32,
    indexes: fc.uniqueArray(u16, { minLength: 1, maxLength: 255 }).map((xs) =>
      [...xs].sort((a, b) => a - b)
    ),
  }),
  ping: fc.record({ type: fc.constant("ping" as const), pingId: u32, sendTimeUs: u53 }),
  pong: fc.record({
    type: fc.constant("pong" as const),
    pingId: u32,
    pingSendTimeUs: u53,
    responderTimeUs: u53,
  }),
  close: fc.record({
    type: fc.constant("close" as const),
    code: u16,
    reason: fc.oneof(
      fc.string({ maxLength: 60, unit: "binary" }),
      fc.string({ maxLength: 255 }),
    ),
  }),
  padding: fc.record({ type: fc.constant("padding" as const), length: fc.nat({ max: 1500 }) }),
};

const anyFrame: fc.Arbitrary<Frame> = fc.oneof(...Object.values(frameArbs));
const frameList: fc.Arbitrary<Frame[]> = fc.array(anyFrame, { minLength: 1, maxLength: 8 });

/** Plain-object copy (fast-check records have a null prototype; decoded data are views). */
function normalize(frames: readonly Frame[]): unknown[] {
  return frames.map((f) => {
    const o: Record<string, unknown> = { ...f };
    if ("data" in f) o.data = Array.from(f.data);
    if (f.type === "feedback") o.entries = f.entries.map((e) => ({ ...e }));
    return o;
  });
}

function expectError<T>(r: Result<T, WireError>, ...kinds: WireErrorKind[]): void {
  assert.equal(r.ok, false, "expected an error");
  if (!r.ok) {
    assert.ok(
      kinds.includes(r.error.kind),
      `got ${r.error.kind} (${r.error.detail}), expected ${kinds.join("|")}`,
    );
  }
}

function expectOk<T>(r: Result<T, WireError>): T {
  if (!r.ok) {
    throw new assert.AssertionError({ message: `expected ok: ${r.error.kind} ${r.error.detail}` });
  }
  return r.value;
}

for (const [name, arb] of Object.entries(frameArbs)) {
  Deno.test(`frames: ${name} encode → decode is identity`, () => {
    fc.assert(
      fc.property(arb, (frame) => {
        const encoded = encodeFrames([frame]);
        assert.equal(encoded.length, encodedFrameLength(frame));
        assert.deepEqual(normalize(expectOk(decodeFrames(encoded))), normalize([frame]));
      }),
      { numRuns: 300 },
    );
  });
}

Deno.test("frames: mixed sequences round trip, also at an offset in a larger buffer", () => {
  fc.assert(
    fc.property(frameList, fc.nat({ max: 64 }), (frames, offset) => {
      const encoded = encodeFrames(frames);
      assert.equal(
        encoded.length,
        frames.reduce((n, f) => n + encodedFrameLength(f), 0),
      );
      assert.deepEqual(normalize(expectOk(decodeFrames(encoded))), normalize(frames));
      const out = new Uint8Array(offset + encoded.length + 3).fill(0xaa);
      const end = encodeFramesInto(frames, out, offset);
      assert.equal(end, offset + encoded.length);
      assert.deepEqual(out.subarray(offset, end), encoded);
      assert.equal(out[end], 0xaa);
      if (offset > 0) assert.equal(out[offset - 1], 0xaa);
      assert.throws(() => encodeFramesInto(frames, out, offset + 4), RangeError);
    }),
    { numRuns: 500 },
  );
});

Deno.test("frames: VIDEO_FRAGMENT byte-exact layout matches docs/RIFT_SPEC.md", () => {
  const encoded = encodeFrames([{
    type: "video",
    frameId: 0x01020304,
    fragmentIndex: 2,
    fragmentCount: 5,
    captureTimeUs: 0x0a0b0c0d0e0f,
    keyframe: true,
    data: Uint8Array.of(0xde, 0xad, 0xbe),
  }]);
  assert.deepEqual(Array.from(encoded), [
    0x10, // type VIDEO_FRAGMENT
    0x01,
    0x02,
    0x03,
    0x04, // frame_id u32
    0x00,
    0x02, // fragment_index u16
    0x00,
    0x05, // fragment_count u16
    0x00,
    0x00,
    0x0a,
    0x0b,
    0x0c,
    0x0d,
    0x0e,
    0x0f, // capture_time_us u64
    0x01, // flags: keyframe
    0x00,
    0x03, // length u16
    0xde,
    0xad,
    0xbe, // data
  ]);
  assert.equal(VIDEO_FRAGMENT_OVERHEAD, 20);
  const [f] = expectOk(decodeFrames(encoded));
  assert.equal(f.type, "video");
  if (f.type === "video") {
    // decoded data is a view into the plaintext, no copy
    assert.equal(f.data.buffer, encoded.buffer);
    assert.equal(f.data.byteOffset, 20);
  }
});

Deno.test("frames: the parity of full video fragments fills the datagram exactly", () => {
  assert.equal(maxVideoPayload(), 1140);
  assert.equal(maxVideoPayload(1200), 1140);
  assert.equal(maxVideoPayload(1452), 1392);
  const fragment: Frame = {
    type: "video",
    frameId: 1,
    fragmentIndex: 0,
    fragmentCount: 1,
    captureTimeUs: 0,
    keyframe: false,
    data: new Uint8Array(maxVideoPayload()),
  };
  // Parity over full fragments: each shard is the payload behind its u16 length.
  const parity: Frame = {
    type: "fec",
    scheme: FecScheme.ReedSolomon,
    frameId: 1,
    groupFirstIndex: 0,
    dataCount: 1,
    parityIndex: 0,
    parityCount: 1,
    fragmentCount: 1,
    captureTimeUs: 0,
    keyframe: false,
    protectedLength: maxVideoPayload() + 2,
    data: new Uint8Array(maxVideoPayload() + 2),
  };
  const packet = (f: Frame) => HEADER_LENGTH + encodedFrameLength(f) + AEAD_TAG_LENGTH;
  assert.equal(packet(parity), DEFAULT_MAX_DATAGRAM);
  assert.equal(packet(fragment), DEFAULT_MAX_DATAGRAM - 8);
});

Deno.test("frames: decodeFrames never throws on arbitrary bytes", () => {
  const typed = fc.tuple(fc.integer({ min: 0x10, max: 0x1b }), bytes(300)).map(([t, rest]) =>
    Uint8Array.of(t, ...rest)
  );
  const spliced = fc.tuple(frameList, bytes(40), fc.nat()).map(([frames, noise, at]) => {
    const enc = encodeFrames(frames);
    const out = enc.slice();
    const pos = at % (enc.length + 1);
    out.set(noise.subarray(0, Math.max(0, out.length - pos)), pos);
    return out;
  });
  fc.assert(
    fc.property(fc.oneof(bytes(), typed, spliced), (d) => {
      const r = decodeFrames(d);
      assert.equal(typeof r.ok, "boolean");
    }),
    { numRuns: 5000 },
  );
});

Deno.test("frames: every truncation of one frame is Truncated or Malformed", () => {
  fc.assert(
    fc.property(anyFrame, (frame) => {
      const enc = encodeFrames([frame]);
      for (let cut = 0; cut < enc.length; cut++) {
        expectError(decodeFrames(enc.subarray(0, cut)), "Truncated", "Malformed");
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("frames: truncating a sequence decodes the whole frames before the cut, or fails", () => {
  fc.assert(
    fc.property(frameList, fc.nat(), (frames, at) => {
      const enc = encodeFrames(frames);
      const cut = at % enc.length;
      const boundaries = [0];
      for (const f of frames) boundaries.push(boundaries.at(-1)! + encodedFrameLength(f));
      const k = boundaries.indexOf(cut);
      const r = decodeFrames(enc.subarray(0, cut));
      if (k > 0) {
        assert.deepEqual(normalize(expectOk(r)), normalize(frames.slice(0, k)));
      } else {
        expectError(r, "Truncated", "Malformed");
      }
    }),
    { numRuns: 1000 },
  );
});

Deno.test("frames: each error kind", () => {
  expectError(decodeFrames(new Uint8Array(0)), "Malformed");
  expectError(decodeFrames(Uint8Array.of(0x1d)), "UnknownFrameType");
  expectError(decodeFrames(Uint8Array.of(0x0f)), "UnknownFrameType");
  const ping = encodeFrames([{ type: "ping", pingId: 1, sendTimeUs: 2 }]);
  const unknownAfter = new Uint8Array(ping.length + 5);
  unknownAfter.set(ping);
  unknownAfter[ping.length] = 0xff;
  expectError(decodeFrames(unknownAfter), "UnknownFrameType");

  const video = (patch: (b: Uint8Array) => void): Uint8Array => {
    const b = encodeFrames([{
      type: "video",
      frameId: 1,
      fragmentIndex: 0,
      fragmentCount: 2,
      captureTimeUs: 5,
      keyframe: false,
      data: new Uint8Array(4),
    }]);
    patch(b);
    return b;
  };
  expectError(decodeFrames(video((b) => b[18] = 0xff)), "Truncated"); // length past the end
  expectError(decodeFrames(video((b) => (b[7] = 0, b[8] = 0))), "Malformed"); // count 0
  expectError(decodeFrames(video((b) => b[6] = 2)), "Malformed"); // index == count
  expectError(decodeFrames(video((b) => b[9] = 0x00 | 0x20)), "Malformed"); // time ≥ 2^53
  assert.equal(expectOk(decodeFrames(video((b) => b[17] = 0xfe)))[0].type, "video"); // reserved flags

  const ack = encodeFrames([{
    type: "ack",
    channel: AckChannel.Input,
    nextExpected: 0,
    bitmap: 0,
  }]);
  ack[1] = 0x11;
  expectError(decodeFrames(ack), "Malformed");

  const fec = (patch: (b: Uint8Array) => void): Uint8Array => {
    const b = encodeFrames([{
      type: "fec",
      scheme: FecScheme.Xor,
      frameId: 1,
      groupFirstIndex: 0,
      dataCount: 4,
      parityIndex: 0,
      parityCount: 1,
      fragmentCount: 4,
      captureTimeUs: 5,
      keyframe: true,
      protectedLength: 4,
      data: new Uint8Array(4),
    }]);
    patch(b);
    return b;
  };
  expectError(decodeFrames(fec((b) => b[1] = 2)), "Malformed"); // scheme
  expectError(decodeFrames(fec((b) => b[8] = 0)), "Malformed"); // data_count 0
  expectError(decodeFrames(fec((b) => b[9] = 1)), "Malformed"); // parity_index == parity_count
  expectError(decodeFrames(fec((b) => b[10] = 0)), "Malformed"); // parity_count 0
  expectError(decodeFrames(fec((b) => b[12] = 3)), "Malformed"); // group ends past fragment_count
  expectError(decodeFrames(fec((b) => b[13] = 0x01)), "Malformed"); // capture_time_us ≥ 2^53

  const feedback = encodeFrames([{
    type: "feedback",
    lostTotal: 0,
    basePacketNumber: 10,
    baseReceiveTimeUs: 0,
    entries: [
      { packetNumberDelta: 0, receiveTimeDeltaUs: 0 },
      { packetNumberDelta: 3, receiveTimeDeltaUs: 9 },
    ],
  }]);
  const dup = feedback.slice();
  dup[30] = 0; // second delta = first delta
  expectError(decodeFrames(dup), "Malformed");
  const huge = feedback.slice();
  huge[5] = 0x00;
  huge[6] = 0x1f;
  huge.fill(0xff, 7, 13); // base = 2^53 - 1, + delta 3 overflows
  expectError(decodeFrames(huge), "Malformed");
  const shortFeedback = feedback.slice();
  shortFeedback[22] = 3; // count 3, only 2 entries present
  expectError(decodeFrames(shortFeedback), "Truncated");

  const kf = encodeFrames([{ type: "keyframe-request", lastCompleteFrameId: 1, reason: 0 }]);
  kf[5] = 3;
  expectError(decodeFrames(kf), "Malformed");

  const close = encodeFrames([{ type: "close", code: 0, reason: "ab" }]);
  close[4] = 0xc3; // start of a 2-byte sequence followed by ASCII: invalid UTF-8
  expectError(decodeFrames(close), "Malformed");
  const closeLong = close.slice();
  closeLong[3] = 3;
  expectError(decodeFrames(closeLong), "Truncated");

  const pad = encodeFrames([{ type: "padding", length: 8 }]);
  pad[6] = 1;
  expectError(decodeFrames(pad), "Malformed");

  const pong = encodeFrames([{ type: "pong", pingId: 1, pingSendTimeUs: 2, responderTimeUs: 3 }]);
  pong[13] = 0xff;
  expectError(decodeFrames(pong), "Malformed");
});

Deno.test("frames: encoders reject caller bugs with RangeError", () => {
  // A valid parity frame; each bad one below changes only what makes it bad.
  const fec: FecParityFrame = {
    type: "fec",
    scheme: FecScheme.Xor,
    frameId: 0,
    groupFirstIndex: 0,
    dataCount: 1,
    parityIndex: 0,
    parityCount: 1,
    fragmentCount: 1,
    captureTimeUs: 0,
    keyframe: false,
    protectedLength: 0,
    data: new Uint8Array(0),
  };
  assert.ok(encodeFrames([fec]).length > 0);
  const bad: Frame[] = [
    {
      type: "video",
      frameId: 1,
      fragmentIndex: 1,
      fragmentCount: 1,
      captureTimeUs: 0,
      keyframe: false,
      data: new Uint8Array(0),
    },
    {
      type: "video",
      frameId: 2 ** 32,
      fragmentIndex: 0,
      fragmentCount: 1,
      captureTimeUs: 0,
      keyframe: false,
      data: new Uint8Array(0),
    },
    { type: "audio", sequence: 0, captureTimeUs: 2 ** 53, data: new Uint8Array(0) },
    { type: "input", sequence: -1, data: new Uint8Array(0) },
    { type: "control", sequence: 0, data: new Uint8Array(65536) },
    { type: "ack", channel: 0x11 as AckChannel, nextExpected: 0, bitmap: 0 },
    { ...fec, scheme: 2 as FecScheme },
    { ...fec, groupFirstIndex: 2, dataCount: 2, fragmentCount: 3 },
    { ...fec, captureTimeUs: 2 ** 53 },
    {
      type: "feedback",
      lostTotal: 0,
      basePacketNumber: 0,
      baseReceiveTimeUs: 0,
      entries: [{ packetNumberDelta: 2, receiveTimeDeltaUs: 0 }, {
        packetNumberDelta: 1,
        receiveTimeDeltaUs: 0,
      }],
    },
    { type: "keyframe-request", lastCompleteFrameId: 0, reason: 3 as 0 },
    { type: "nack", frameId: 0, indexes: [] },
    { type: "nack", frameId: 0, indexes: [2, 1] },
    { type: "nack", frameId: 0, indexes: [65536] },
    { type: "ping", pingId: 0, sendTimeUs: 1.5 },
    { type: "pong", pingId: 0, pingSendTimeUs: 0, responderTimeUs: -1 },
    { type: "close", code: 65536, reason: "" },
    { type: "close", code: 0, reason: "x".repeat(256) },
    { type: "close", code: 0, reason: "\ud800" },
    { type: "padding", length: 65536 },
  ];
  for (const f of bad) {
    assert.throws(() => encodeFrames([f]), RangeError, JSON.stringify(f.type));
  }
  assert.throws(() => encodeFrames([]), RangeError);
  assert.equal(encodeFrames([{ type: "close", code: 0, reason: "é".repeat(127) }]).length, 258);
  assert.equal(FrameType.Padding, 0x1b);
});

Deno.test("NACK is byte-exact; no indexes or unordered indexes are Malformed", () => {
  const bytes = encodeFrames([{ type: "nack", frameId: 0x01020304, indexes: [3, 0x0102] }]);
  assert.deepEqual([...bytes], [0x1c, 1, 2, 3, 4, 2, 0, 3, 1, 2]);
  assert.equal(decodeFrames(Uint8Array.of(0x1c, 0, 0, 0, 1, 0)).ok, false);
  assert.equal(decodeFrames(Uint8Array.of(0x1c, 0, 0, 0, 1, 2, 0, 5, 0, 5)).ok, false);
  assert.equal(decodeFrames(Uint8Array.of(0x1c, 0, 0, 0, 1, 2, 0, 5)).ok, false);
});
