import assert from "node:assert/strict";
import {
  annexBToLengthPrefixed,
  buildAvcC,
  codecConfigFromAnnexB,
  codecString,
  extractParameterSets,
  isIdrAccessUnit,
  NalType,
  splitAnnexB,
} from "./h264.ts";

// A Constrained Baseline level 3.1 SPS/PPS pair and slices, with both start code lengths.
const SPS = new Uint8Array([0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8]);
const PPS = new Uint8Array([0x68, 0xce, 0x0f, 0x2c, 0x80]);
const IDR = new Uint8Array([0x65, 0x88, 0x84, 0x00, 0x33]);
const SLICE = new Uint8Array([0x41, 0x9a, 0x02, 0x00]);

function annexB(...units: [number[], Uint8Array][]): Uint8Array {
  const parts = units.flatMap(([start, unit]) => [...start, ...unit]);
  return new Uint8Array(parts);
}

Deno.test("splitAnnexB finds units after 3- and 4-byte start codes and trims trailing zeros", () => {
  const au = annexB([[0, 0, 0, 1], SPS], [[0, 0, 1], PPS], [[0, 0, 0, 1], IDR]);
  const units = splitAnnexB(au);
  assert.deepEqual(units.map((u) => u.type), [NalType.Sps, NalType.Pps, NalType.Idr]);
  assert.deepEqual(units[0].data, SPS);
  assert.deepEqual(units[1].data, PPS);
  // IDR ends in 0x33, its own zero byte inside (0x00 before 0x33) is kept.
  assert.deepEqual(units[2].data, IDR);
  assert.equal(units[0].offset, 4);
  assert.equal(units[1].offset, 4 + SPS.length + 3);
});

Deno.test("splitAnnexB ignores leading garbage and returns nothing without a start code", () => {
  assert.deepEqual(splitAnnexB(new Uint8Array([1, 2, 3, 4])), []);
  assert.deepEqual(splitAnnexB(new Uint8Array(0)), []);
  const units = splitAnnexB(annexB([[9, 9, 0, 0, 1], SLICE]));
  assert.equal(units.length, 1);
  assert.equal(units[0].type, NalType.Slice);
});

Deno.test("isIdrAccessUnit and extractParameterSets", () => {
  const key = annexB([[0, 0, 0, 1], SPS], [[0, 0, 0, 1], PPS], [[0, 0, 0, 1], IDR]);
  const delta = annexB([[0, 0, 0, 1], SLICE]);
  assert.equal(isIdrAccessUnit(key), true);
  assert.equal(isIdrAccessUnit(delta), false);
  const sets = extractParameterSets(key)!;
  assert.deepEqual(sets.sps, SPS);
  assert.deepEqual(sets.pps, PPS);
  assert.equal(extractParameterSets(delta), undefined);
});

Deno.test("codecString is avc1.PPCCLL from the SPS", () => {
  assert.equal(codecString(SPS), "avc1.42c01f");
  assert.equal(codecString(new Uint8Array([0x67, 0x64, 0x00, 0x28])), "avc1.640028");
  assert.throws(() => codecString(PPS), RangeError);
  assert.throws(() => codecString(new Uint8Array([0x67, 0x42])), RangeError);
});

Deno.test("buildAvcC lays out an AVCDecoderConfigurationRecord", () => {
  const avcc = buildAvcC(SPS, PPS);
  assert.deepEqual([...avcc.subarray(0, 6)], [1, 0x42, 0xc0, 0x1f, 0xff, 0xe1]);
  assert.equal((avcc[6] << 8) | avcc[7], SPS.length);
  assert.deepEqual(avcc.subarray(8, 8 + SPS.length), SPS);
  let o = 8 + SPS.length;
  assert.equal(avcc[o++], 1);
  assert.equal((avcc[o] << 8) | avcc[o + 1], PPS.length);
  o += 2;
  assert.deepEqual(avcc.subarray(o, o + PPS.length), PPS);
  assert.equal(avcc.length, o + PPS.length); // Baseline: no High-profile extension

  const highSps = new Uint8Array([0x67, 0x64, 0x00, 0x28, 0xac]);
  const high = buildAvcC(highSps, PPS);
  assert.equal(high.length, 6 + 2 + highSps.length + 1 + 2 + PPS.length + 4);
  assert.deepEqual([...high.subarray(high.length - 4)], [0xfd, 0xf8, 0xf8, 0]);
  assert.throws(() => buildAvcC(PPS, PPS), RangeError);
  assert.throws(() => buildAvcC(SPS, SPS), RangeError);
});

Deno.test("codecConfigFromAnnexB and annexBToLengthPrefixed", () => {
  const key = annexB([[0, 0, 0, 1], SPS], [[0, 0, 1], PPS], [[0, 0, 0, 1], IDR]);
  const config = codecConfigFromAnnexB(key)!;
  assert.equal(config.codec, "avc1.42c01f");
  assert.deepEqual(config.avcc, buildAvcC(SPS, PPS));
  const lp = annexBToLengthPrefixed(key);
  const view = new DataView(lp.buffer);
  assert.equal(view.getUint32(0), SPS.length);
  assert.deepEqual(lp.subarray(4, 4 + SPS.length), SPS);
  assert.equal(lp.length, 12 + SPS.length + PPS.length + IDR.length);
  assert.equal(codecConfigFromAnnexB(annexB([[0, 0, 1], SLICE])), undefined);
});
