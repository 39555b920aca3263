import assert from "node:assert/strict";
import fc from "fast-check";
import type { Result } from "./result.ts";
import {
  CONGESTION_STATES,
  type ControlMessage,
  decodeControl,
  decodeInput,
  decodeVideoPayload,
  encodeControl,
  encodeInput,
  encodeVideoPayload,
  type InputEvent,
  type InputMessage,
  type StreamError,
  type StreamErrorKind,
  VIDEO_TIMING_LENGTH,
  type VideoTiming,
  writeVideoTiming,
} from "./stream.ts";

function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

function expectOk<T>(r: Result<T, StreamError>): T {
  if (!r.ok) throw new Error(`expected ok, got ${r.error.kind}: ${r.error.detail}`);
  return r.value;
}

function expectError<T>(r: Result<T, StreamError>, kind: StreamErrorKind): void {
  assert.equal(r.ok, false, "expected an error");
  if (!r.ok) assert.equal(r.error.kind, kind, r.error.detail);
}

/** Plain data (decoded byte fields are views; fast-check records have null prototypes). */
function plain(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_k, v) => v instanceof Uint8Array ? Array.from(v) : v),
  );
}

// ------------------------------------------------------------------ byte-exact, one per type

Deno.test("STREAM_CONFIG is byte-exact", () => {
  const message: ControlMessage = {
    type: "stream-config",
    width: 1280,
    height: 720,
    fps: 60,
    codec: "avc1.42c01f",
    avcc: hex("01 42 c0 1f"),
  };
  const bytes = hex("01 0500 02d0 003c 0b 617663312e3432633031 66 0004 0142c01f");
  assert.deepEqual(encodeControl(message), bytes);
  assert.deepEqual(plain(expectOk(decodeControl(bytes))), plain(message));
});

Deno.test("INPUT_APPLIED is byte-exact", () => {
  const message: ControlMessage = {
    type: "input-applied",
    sequence: 0x01020304,
    clientTimeUs: 0x0000_0102_0304_0506,
    hostAppliedUs: 2 ** 53 - 1,
  };
  const bytes = hex("02 01020304 0000010203040506 001fffffffffffff");
  assert.deepEqual(encodeControl(message), bytes);
  assert.deepEqual(expectOk(decodeControl(bytes)), message);
});

Deno.test("STATS is byte-exact", () => {
  const message: ControlMessage = {
    type: "stats",
    encoder: "libx264",
    targetBitrateBps: 8_000_000,
    fps: 60,
    fecPermille: 125,
    congestionState: "rising",
    queuingDelayUs: 0x1234,
    stages: [{ name: "capture", p50Us: 1500 }, { name: "encode", p50Us: 0x010203 }],
  };
  const bytes = hex(
    "03 07 6c6962783236 34 007a1200 3c 007d 02 00001234 02" +
      "07 63617074757265 000005dc" +
      "06 656e636f6465 00010203",
  );
  assert.deepEqual(encodeControl(message), bytes);
  assert.deepEqual(plain(expectOk(decodeControl(bytes))), plain(message));
  // congestion_state 5 is competing (docs/STREAM.md); 6 is not a state.
  const competing = bytes.slice();
  competing[16] = 5; // 9 + encoder_len
  const decoded = expectOk(decodeControl(competing));
  assert.equal(decoded.type === "stats" && decoded.congestionState, "competing");
  competing[16] = 6;
  expectError(decodeControl(competing), "InvalidValue");
});

Deno.test("ERROR is byte-exact", () => {
  const message: ControlMessage = { type: "error", code: 2, text: "encodé" };
  const bytes = hex("04 0002 0007 656e636f64c3a9");
  assert.deepEqual(encodeControl(message), bytes);
  assert.deepEqual(expectOk(decodeControl(bytes)), message);
});

const header = "00000007 0000000000000064"; // sequence 7, client_time_us 100
const inputExamples: [InputEvent, string][] = [
  [{ type: "key", code: "KeyA", down: true }, "01 04 4b657941 01"],
  [{ type: "mouse-abs", x: 0x8000, y: 0xffff }, "02 8000 ffff"],
  [{ type: "mouse-rel", dx: -2, dy: 300 }, "03 fffe 012c"],
  [{ type: "button", button: 2, down: false }, "04 02 00"],
  [{ type: "wheel", dx: 0, dy: -120 }, "05 0000 ff88"],
  [
    {
      type: "gamepad",
      index: 1,
      buttons: [255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128],
      axes: [-32768, 32767, 0, -1],
    },
    "06 01 ff000000000000000000000000000000 80 8000 7fff 0000 ffff",
  ],
];

for (const [event, body] of inputExamples) {
  Deno.test(`INPUT ${event.type} is byte-exact`, () => {
    const message: InputMessage = { sequence: 7, clientTimeUs: 100, event };
    const bytes = hex(header + body);
    assert.deepEqual(encodeInput(message), bytes);
    assert.deepEqual(expectOk(decodeInput(bytes)), message);
  });
}

Deno.test("video payload is byte-exact; the access unit is a view", () => {
  const timing: VideoTiming = { encodeStartUs: 1, encodeEndUs: 0x100000002, handedToSessionUs: 3 };
  const au = hex("00000001 65 88");
  const bytes = hex(
    "0000000000000001 0000000100000002 0000000000000003 00000001 65 88",
  );
  const payload = encodeVideoPayload(timing, au);
  assert.deepEqual(payload, bytes);
  const decoded = expectOk(decodeVideoPayload(payload));
  assert.deepEqual(decoded.timing, timing);
  assert.deepEqual(decoded.accessUnit, au);
  assert.equal(decoded.accessUnit.buffer, payload.buffer);
  // Stamping in place rewrites only the header.
  writeVideoTiming(payload, { ...timing, handedToSessionUs: 0x0a0b });
  assert.deepEqual(payload.subarray(16, 24), hex("0000000000000a0b"));
  assert.deepEqual(payload.subarray(VIDEO_TIMING_LENGTH), au);
});

// ------------------------------------------------------------------ error kinds

Deno.test("decoders report typed errors", () => {
  expectError(decodeControl(new Uint8Array(0)), "Truncated");
  expectError(decodeControl(hex("09")), "UnknownType");
  expectError(decodeControl(hex("04 0002 0001 ff")), "InvalidValue"); // bad UTF-8
  expectError(decodeControl(hex("04 0002 0000 00")), "TrailingBytes");
  expectError(decodeControl(hex("02 01020304 0020000000000000 0000000000000000")), "InvalidValue");
  expectError(decodeControl(hex("01 0500 02d0 003c 00 0000")), "InvalidValue"); // empty codec
  expectError(decodeInput(hex(header + "07")), "UnknownType");
  expectError(decodeInput(hex(header + "04 01 02")), "InvalidValue"); // down = 2
  expectError(decodeInput(hex(header + "01 21" + "41".repeat(33) + "01")), "InvalidValue");
  expectError(decodeInput(hex(header + "01 01 20 01")), "InvalidValue"); // space in code
  expectError(decodeInput(hex(header + "02 0000")), "Truncated");
  expectError(decodeVideoPayload(new Uint8Array(23)), "Truncated");
  expectError(decodeVideoPayload(hex("ffffffffffffffff" + "00".repeat(16))), "InvalidValue");
});

Deno.test("encoders refuse what the format cannot carry", () => {
  const base = { sequence: 1, clientTimeUs: 1 };
  assert.throws(() => encodeInput({ ...base, event: { type: "key", code: "", down: true } }));
  assert.throws(() =>
    encodeInput({ ...base, event: { type: "key", code: "K".repeat(33), down: true } })
  );
  assert.throws(() => encodeInput({ ...base, event: { type: "mouse-abs", x: 65536, y: 0 } }));
  assert.throws(() => encodeInput({ ...base, event: { type: "wheel", dx: 0.5, dy: 0 } }));
  assert.throws(() =>
    encodeInput({ ...base, sequence: -1, event: { type: "wheel", dx: 0, dy: 0 } })
  );
  assert.throws(() => encodeControl({ type: "error", code: 0, text: "\ud800" }));
  assert.throws(() =>
    encodeControl({
      type: "input-applied",
      sequence: 0,
      clientTimeUs: 2 ** 53,
      hostAppliedUs: 0,
    })
  );
  assert.throws(() =>
    writeVideoTiming(new Uint8Array(10), { encodeStartUs: 0, encodeEndUs: 0, handedToSessionUs: 0 })
  );
});

// ------------------------------------------------------------------ properties

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const i16 = fc.integer({ min: -0x8000, max: 0x7fff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u53 = fc.maxSafeNat();
const printable = (min: number, max: number, lowest: number) =>
  fc.array(fc.integer({ min: lowest, max: 0x7e }), { minLength: min, maxLength: max })
    .map((codes) => String.fromCharCode(...codes));
const utf8Text = (min: number, maxBytes: number) =>
  fc.string({ unit: "grapheme", minLength: min, maxLength: maxBytes })
    .filter((s) => new TextEncoder().encode(s).length <= maxBytes);

const controlArb: fc.Arbitrary<ControlMessage> = fc.oneof(
  fc.record({
    type: fc.constant("stream-config" as const),
    width: u16,
    height: u16,
    fps: u16,
    codec: printable(1, 255, 0x20),
    avcc: fc.uint8Array({ maxLength: 300 }),
  }),
  fc.record({
    type: fc.constant("input-applied" as const),
    sequence: u32,
    clientTimeUs: u53,
    hostAppliedUs: u53,
  }),
  fc.record({
    type: fc.constant("stats" as const),
    encoder: utf8Text(0, 255),
    targetBitrateBps: u32,
    fps: fc.integer({ min: 0, max: 255 }),
    fecPermille: u16,
    congestionState: fc.constantFrom(...CONGESTION_STATES),
    queuingDelayUs: u32,
    stages: fc.array(fc.record({ name: utf8Text(1, 60), p50Us: u32 }), { maxLength: 8 }),
  }),
  fc.record({ type: fc.constant("error" as const), code: u16, text: utf8Text(0, 2000) }),
);

const eventArb: fc.Arbitrary<InputEvent> = fc.oneof(
  fc.record({
    type: fc.constant("key" as const),
    code: printable(1, 32, 0x21),
    down: fc.boolean(),
  }),
  fc.record({ type: fc.constant("mouse-abs" as const), x: u16, y: u16 }),
  fc.record({ type: fc.constant("mouse-rel" as const), dx: i16, dy: i16 }),
  fc.record({ type: fc.constant("button" as const), button: u8, down: fc.boolean() }),
  fc.record({ type: fc.constant("wheel" as const), dx: i16, dy: i16 }),
  fc.record({
    type: fc.constant("gamepad" as const),
    index: u8,
    buttons: fc.array(u8, { minLength: 17, maxLength: 17 }),
    axes: fc.array(i16, { minLength: 4, maxLength: 4 }),
  }),
);
const inputArb: fc.Arbitrary<InputMessage> = fc.record({
  sequence: u32,
  clientTimeUs: u53,
  event: eventArb,
});
const timingArb: fc.Arbitrary<VideoTiming> = fc.record({
  encodeStartUs: u53,
  encodeEndUs: u53,
  handedToSessionUs: u53,
});

Deno.test("property: encode → decode is the identity", () => {
  fc.assert(fc.property(controlArb, (m) => {
    assert.deepEqual(plain(expectOk(decodeControl(encodeControl(m)))), plain(m));
  }));
  fc.assert(fc.property(inputArb, (m) => {
    assert.deepEqual(plain(expectOk(decodeInput(encodeInput(m)))), plain(m));
  }));
  fc.assert(fc.property(timingArb, fc.uint8Array({ maxLength: 200 }), (t, au) => {
    const decoded = expectOk(decodeVideoPayload(encodeVideoPayload(t, au)));
    assert.deepEqual(plain(decoded.timing), plain(t));
    assert.deepEqual(decoded.accessUnit, au);
  }));
});

Deno.test("property: arbitrary bytes never throw, and what decodes re-encodes to the same bytes", () => {
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    // Valid messages with one byte changed or cut short reach deeper into the decoders.
    fc.tuple(fc.oneof(controlArb.map(encodeControl), inputArb.map(encodeInput)), u8, fc.nat())
      .map(([b, v, at]) => {
        const copy = b.slice(0, Math.max(0, b.length - (at % 3)));
        if (copy.length > 0) copy[at % copy.length] = v;
        return copy;
      }),
  );
  fc.assert(
    fc.property(bytes, (b) => {
      const control = decodeControl(b);
      if (control.ok) assert.deepEqual(encodeControl(control.value), b);
      const input = decodeInput(b);
      if (input.ok) assert.deepEqual(encodeInput(input.value), b);
      const video = decodeVideoPayload(b);
      if (video.ok) {
        assert.deepEqual(encodeVideoPayload(video.value.timing, video.value.accessUnit), b);
      }
    }),
    { numRuns: 3000 },
  );
});

Deno.test("property: every strict prefix of a message is an error", () => {
  const tagged = fc.oneof(
    controlArb.map((m) => ({ bytes: encodeControl(m), decode: decodeControl as Decode })),
    inputArb.map((m) => ({ bytes: encodeInput(m), decode: decodeInput as Decode })),
  );
  fc.assert(
    fc.property(tagged, ({ bytes, decode }) => {
      for (let n = 0; n < bytes.length; n++) {
        assert.equal(decode(bytes.subarray(0, n)).ok, false);
      }
    }),
    { numRuns: 300 },
  );
});

type Decode = (b: Uint8Array) => Result<unknown, StreamError>;
