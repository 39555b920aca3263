/**
 * Single-parity XOR code: one parity shard `P = D_0 ⊕ … ⊕ D_{k-1}` per
 * group (shards zero-padded to the longest), which rebuilds any one lost
 * shard. Same API shape as the Reed-Solomon codec with m = 1, and the same
 * bytes as its parity 0, so a receiver may treat an XOR parity as an RS
 * parity with index 0. Pure functions, inputs never modified.
 *
 * @module
 */

import { xorInto } from "./gf256.ts";

/** Most data shards in one XOR group (data_count is a u8). */
export const XOR_MAX_DATA = 255;

function checkShard(s: unknown, what: string): asserts s is Uint8Array {
  if (!(s instanceof Uint8Array)) throw new RangeError(`${what} is not a Uint8Array`);
}

/**
 * XOR parity over `data` (k shards, zero-padded to the longest).
 *
 * @param data 1 ≤ k ≤ 255 data shards
 * @param parityCount must be 1 (kept for the same shape as Reed-Solomon)
 * @returns one new parity shard as long as the longest data shard
 * @throws {RangeError} on an empty or oversized group, a non-Uint8Array shard or parityCount ≠ 1.
 */
export function encodeParity(data: Uint8Array[], parityCount = 1): Uint8Array[] {
  if (!Array.isArray(data) || data.length < 1 || data.length > XOR_MAX_DATA) {
    throw new RangeError("xor encodeParity: need 1..255 data shards");
  }
  if (parityCount !== 1) {
    throw new RangeError(`xor encodeParity: parityCount must be 1, got ${parityCount}`);
  }
  let len = 0;
  for (let j = 0; j < data.length; j++) {
    checkShard(data[j], `xor encodeParity: data[${j}]`);
    if (data[j].length > len) len = data[j].length;
  }
  const p = new Uint8Array(len);
  for (const d of data) xorInto(p, d);
  return [p];
}

/**
 * Rebuilds the k data shards when at most one of the k + 1 shards is lost.
 * Present data shards are returned as given; a rebuilt one has the parity's
 * (padded) length.
 *
 * @param shards k data shards then the parity; `undefined` marks a loss
 * @param k number of data shards, shards.length must be k + 1
 * @returns the k data shards, or `undefined` if two or more are missing
 * @throws {RangeError} on a wrong shard count, non-Uint8Array entries or a
 *   data shard longer than the parity.
 */
export function reconstruct(
  shards: (Uint8Array | undefined)[],
  k: number,
): Uint8Array[] | undefined {
  if (!Array.isArray(shards)) throw new RangeError("xor reconstruct: shards is not an array");
  if (!Number.isInteger(k) || k < 1 || k > XOR_MAX_DATA || shards.length !== k + 1) {
    throw new RangeError(
      `xor reconstruct: need 1 <= k <= 255 and k + 1 shards; got k=${k}, ${shards.length} shards`,
    );
  }
  let lost = -1;
  let lostCount = 0;
  for (let s = 0; s <= k; s++) {
    const shard = shards[s];
    if (shard === undefined) {
      lost = s;
      lostCount++;
    } else {
      checkShard(shard, `xor reconstruct: shards[${s}]`);
    }
  }
  const parity = shards[k];
  if (parity !== undefined) {
    for (let j = 0; j < k; j++) {
      const d = shards[j];
      if (d !== undefined && d.length > parity.length) {
        throw new RangeError(
          `xor reconstruct: data shard ${j} (${d.length} bytes) is longer than the parity (${parity.length})`,
        );
      }
    }
  }
  if (lostCount > 1) return undefined;
  const out = shards.slice(0, k) as Uint8Array[];
  if (lostCount === 0 || lost === k) return out;
  const rebuilt = (parity as Uint8Array).slice();
  for (let j = 0; j < k; j++) if (j !== lost) xorInto(rebuilt, out[j]);
  out[lost] = rebuilt;
  return out;
}
