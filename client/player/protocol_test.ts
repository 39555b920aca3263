import assert from "node:assert/strict";
import {
  decodeFrameHeader,
  encodeFrameMessage,
  FRAME_HEADER_BYTES,
  parsePageMessage,
} from "./protocol.ts";

Deno.test("frame messages round-trip their header and carry the bitstream after it", () => {
  const bitstream = new Uint8Array([0, 0, 0, 1, 0x65, 0x88, 0x84]);
  const header = {
    frameId: 0xfffffffe,
    keyframe: true,
    captureTimeUs: 123_456_789_012,
    offsetUs: 1.7e15,
    sendUs: 1_700_000_000_123_456,
  };
  const message = encodeFrameMessage(header, bitstream);
  assert.equal(message.length, FRAME_HEADER_BYTES + bitstream.length);
  assert.deepEqual(decodeFrameHeader(message), { ...header, headerBytes: FRAME_HEADER_BYTES });
  assert.deepEqual(message.subarray(FRAME_HEADER_BYTES), bitstream);
  const noOffset = decodeFrameHeader(
    encodeFrameMessage({ ...header, keyframe: false, offsetUs: undefined }, bitstream),
  );
  assert.equal(noOffset?.offsetUs, undefined);
  assert.equal(noOffset?.keyframe, false);
  assert.equal(decodeFrameHeader(message.subarray(0, 31)), undefined);
  assert.equal(decodeFrameHeader(new Uint8Array(40)), undefined);
});

Deno.test("page messages are validated", () => {
  assert.deepEqual(parsePageMessage('{"t":"key","code":"KeyA","down":true,"ts":1}'), {
    t: "key",
    code: "KeyA",
    down: true,
    ts: 1,
  });
  assert.equal(parsePageMessage('{"t":"key","code":"KeyA","down":1,"ts":1}'), undefined);
  assert.equal(parsePageMessage('{"t":"move","x":0.5,"y":"a","ts":1}'), undefined);
  assert.equal(parsePageMessage('{"t":"wheel","dx":0,"dy":1}'), undefined); // no ts
  assert.equal(
    parsePageMessage(
      '{"t":"gamepad","index":0,"connected":true,"buttons":[1,"x"],"axes":[],"ts":1}',
    ),
    undefined,
  );
  assert.deepEqual(parsePageMessage('{"t":"keyreq","reason":"error"}'), {
    t: "keyreq",
    reason: "error",
  });
  assert.equal(parsePageMessage("not json"), undefined);
  assert.equal(parsePageMessage("[1]"), undefined);
  assert.equal(parsePageMessage('{"t":"unknown"}'), undefined);
});
