/**
 * Forward error correction for video fragments: a single-parity XOR code
 * and a systematic Cauchy Reed-Solomon erasure code over GF(2^8), as pure
 * functions over shards (byte arrays). The FEC_PARITY frame (0x15) carries
 * one parity shard; see docs/FEC.md.
 *
 * @example
 * ```ts
 * import { codecFor } from "./mod.ts";
 * import { FecScheme } from "../frames.ts";
 *
 * const rs = codecFor(FecScheme.ReedSolomon);
 * const data = [new Uint8Array([1, 2]), new Uint8Array([3, 4, 5])];
 * const parity = rs.encodeParity(data, 2);
 * const back = rs.reconstruct([undefined, undefined, ...parity], 2);
 * // back[0] is [1, 2, 0] (padded), back[1] is [3, 4, 5]
 * ```
 *
 * @module
 */

import { FecScheme } from "../frames.ts";
import * as rs from "./reed_solomon.ts";
import * as xor from "./xor.ts";

export {
  GF_POLYNOMIAL,
  gfAdd,
  gfDiv,
  gfExp,
  gfInv,
  gfLog,
  gfMul,
  gfMulRow,
  mulAddInto,
  mulInto,
  xorInto,
} from "./gf256.ts";
export {
  encodeParity as rsEncodeParity,
  invertMatrix,
  parityRow,
  reconstruct as rsReconstruct,
  RS_MAX_SHARDS,
} from "./reed_solomon.ts";
export {
  encodeParity as xorEncodeParity,
  reconstruct as xorReconstruct,
  XOR_MAX_DATA,
} from "./xor.ts";

/** An erasure code over one group of shards. */
export interface FecCodec {
  /** The FEC_PARITY `scheme` value of this code. */
  readonly scheme: FecScheme;
  /** Most parity shards per group for `k` data shards. */
  maxParity(k: number): number;
  /** Parity shards over `data` (zero-padded to the longest). */
  encodeParity(data: Uint8Array[], parityCount: number): Uint8Array[];
  /** The k data shards from k data + m parity slots, or undefined if too few arrived. */
  reconstruct(shards: (Uint8Array | undefined)[], k: number): Uint8Array[] | undefined;
}

/** Reed-Solomon: any k of k + m shards rebuild the data; k + m ≤ 255. */
export const reedSolomonCodec: FecCodec = {
  scheme: FecScheme.ReedSolomon,
  maxParity: (k: number): number => Math.max(0, rs.RS_MAX_SHARDS - k),
  encodeParity: rs.encodeParity,
  reconstruct: rs.reconstruct,
};

/** XOR: one parity per group, rebuilds any single loss. */
export const xorCodec: FecCodec = {
  scheme: FecScheme.Xor,
  maxParity: (): number => 1,
  encodeParity: xor.encodeParity,
  reconstruct: xor.reconstruct,
};

/** The codec for a FEC_PARITY `scheme` value. */
export function codecFor(scheme: FecScheme): FecCodec {
  return scheme === FecScheme.Xor ? xorCodec : reedSolomonCodec;
}

export { DEFAULT_VIDEO_FEC, FecReceiver, protectFrame, type VideoFecConfig } from "./video.ts";
export {
  type AdaptiveFecConfig,
  AdaptiveFecPolicy,
  DEFAULT_ADAPTIVE_FEC,
  residualByParity,
} from "./adaptive.ts";
