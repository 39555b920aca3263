/**
 * H.264 bitstream helpers: Annex-B NAL unit splitting, SPS/PPS extraction,
 * the RFC 6381 codec string and the AVCDecoderConfigurationRecord ("avcC")
 * a WebCodecs `VideoDecoder` takes as its `description`.
 *
 * @module
 */
import type { CodecConfig } from "./types.ts";

/** NAL unit types used by Wavry (ITU-T H.264 table 7-1). */
export const NalType = {
  /** Coded slice of a non-IDR picture. */
  Slice: 1,
  /** Coded slice of an IDR picture. */
  Idr: 5,
  /** Supplemental enhancement information. */
  Sei: 6,
  /** Sequence parameter set. */
  Sps: 7,
  /** Picture parameter set. */
  Pps: 8,
  /** Access unit delimiter. */
  Aud: 9,
} as const;

/** One NAL unit found in an Annex-B buffer. */
export interface NalUnit {
  /** nal_unit_type (low 5 bits of the first byte). */
  readonly type: number;
  /** The NAL unit without its start code (header byte first); a view into the input. */
  readonly data: Uint8Array;
  /** Offset of `data` in the input. */
  readonly offset: number;
}

/**
 * Splits an Annex-B buffer (3- or 4-byte start codes) into NAL units.
 * Bytes before the first start code are ignored; trailing zero bytes of a
 * unit (the leading zero of the next 4-byte start code) are trimmed.
 */
export function splitAnnexB(buffer: Uint8Array): NalUnit[] {
  const units: NalUnit[] = [];
  const n = buffer.length;
  let start = -1;
  let i = 0;
  while (i + 2 < n) {
    if (buffer[i + 2] > 1) {
      i += 3;
    } else if (buffer[i] === 0 && buffer[i + 1] === 0 && buffer[i + 2] === 1) {
      if (start >= 0) pushUnit(units, buffer, start, i);
      start = i + 3;
      i += 3;
    } else {
      i++;
    }
  }
  if (start >= 0) pushUnit(units, buffer, start, n);
  return units;
}

function pushUnit(units: NalUnit[], buffer: Uint8Array, start: number, end: number): void {
  while (end > start && buffer[end - 1] === 0) end--;
  if (end <= start) return;
  units.push({ type: buffer[start] & 0x1f, data: buffer.subarray(start, end), offset: start });
}

/** Whether an Annex-B access unit contains an IDR slice. */
export function isIdrAccessUnit(accessUnit: Uint8Array): boolean {
  return splitAnnexB(accessUnit).some((u) => u.type === NalType.Idr);
}

/** The first SPS and PPS of an Annex-B buffer, or undefined when either is missing. */
export function extractParameterSets(
  buffer: Uint8Array,
): { sps: Uint8Array; pps: Uint8Array } | undefined {
  let sps: Uint8Array | undefined;
  let pps: Uint8Array | undefined;
  for (const unit of splitAnnexB(buffer)) {
    if (unit.type === NalType.Sps && sps === undefined) sps = unit.data;
    if (unit.type === NalType.Pps && pps === undefined) pps = unit.data;
  }
  return sps && pps ? { sps, pps } : undefined;
}

function hex2(value: number): string {
  return value.toString(16).padStart(2, "0");
}

/**
 * The RFC 6381 codec string of an SPS: "avc1." + profile_idc,
 * constraint flags and level_idc as hex (e.g. "avc1.42c01f").
 */
export function codecString(sps: Uint8Array): string {
  if (sps.length < 4 || (sps[0] & 0x1f) !== NalType.Sps) {
    throw new RangeError("not an SPS NAL unit (need type 7 and at least 4 bytes)");
  }
  return `avc1.${hex2(sps[1])}${hex2(sps[2])}${hex2(sps[3])}`;
}

/**
 * Builds an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) for
 * one SPS and one PPS, with 4-byte NAL length fields. For the High profiles
 * (100, 110, 122, 144) the chroma/bit-depth extension is added with 4:2:0,
 * 8-bit values, which is what Wavry's encoders produce.
 */
export function buildAvcC(sps: Uint8Array, pps: Uint8Array): Uint8Array {
  if (sps.length < 4 || (sps[0] & 0x1f) !== NalType.Sps) throw new RangeError("not an SPS");
  if (pps.length < 1 || (pps[0] & 0x1f) !== NalType.Pps) throw new RangeError("not a PPS");
  if (sps.length > 0xffff || pps.length > 0xffff) throw new RangeError("parameter set too long");
  const profile = sps[1];
  const highProfile = profile === 100 || profile === 110 || profile === 122 || profile === 144;
  const out = new Uint8Array(6 + 2 + sps.length + 1 + 2 + pps.length + (highProfile ? 4 : 0));
  let o = 0;
  out[o++] = 1; // configurationVersion
  out[o++] = sps[1]; // AVCProfileIndication
  out[o++] = sps[2]; // profile_compatibility
  out[o++] = sps[3]; // AVCLevelIndication
  out[o++] = 0xff; // reserved (6 bits) + lengthSizeMinusOne = 3
  out[o++] = 0xe1; // reserved (3 bits) + numOfSequenceParameterSets = 1
  out[o++] = sps.length >> 8;
  out[o++] = sps.length & 0xff;
  out.set(sps, o);
  o += sps.length;
  out[o++] = 1; // numOfPictureParameterSets
  out[o++] = pps.length >> 8;
  out[o++] = pps.length & 0xff;
  out.set(pps, o);
  o += pps.length;
  if (highProfile) {
    out[o++] = 0xfc | 1; // chroma_format_idc = 1 (4:2:0)
    out[o++] = 0xf8 | 0; // bit_depth_luma_minus8 = 0
    out[o++] = 0xf8 | 0; // bit_depth_chroma_minus8 = 0
    out[o++] = 0; // numOfSequenceParameterSetExt
  }
  return out;
}

/** A {@linkcode CodecConfig} from the first SPS and PPS in an Annex-B buffer, or undefined. */
export function codecConfigFromAnnexB(buffer: Uint8Array): CodecConfig | undefined {
  const sets = extractParameterSets(buffer);
  if (sets === undefined) return undefined;
  const sps = sets.sps.slice();
  const pps = sets.pps.slice();
  return { codec: codecString(sps), sps, pps, avcc: buildAvcC(sps, pps) };
}

/**
 * Converts an Annex-B access unit to the length-prefixed form (4-byte
 * big-endian lengths) that an `avc` WebCodecs decoder with an avcC
 * description expects.
 */
export function annexBToLengthPrefixed(accessUnit: Uint8Array): Uint8Array {
  const units = splitAnnexB(accessUnit);
  let size = 0;
  for (const u of units) size += 4 + u.data.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let o = 0;
  for (const u of units) {
    view.setUint32(o, u.data.length);
    out.set(u.data, o + 4);
    o += 4 + u.data.length;
  }
  return out;
}
