/**
 * Systematic Reed-Solomon erasure code over GF(2^8) with a Cauchy generator
 * matrix. The k data shards are sent as they are; parity shard i is
 * `P_i = Σ_j C[i][j] · D_j` with
 *
 *     C[i][j] = (x_0 + y_j) / (x_i + y_j),   x_i = k + i,   y_j = j
 *
 * (field arithmetic, + is XOR): a Cauchy matrix `1 / (x_i + y_j)` with each
 * column scaled so that row 0 is all ones. Every square submatrix of a
 * Cauchy matrix is invertible, and scaling columns keeps it so, hence
 * `[I; C]` is MDS: ANY k of the k + m shards give back the data. Row 0 being
 * all ones makes parity 0 the plain XOR of the data (the XOR scheme's
 * parity), and a row depends only on k and its index, not on m, so a
 * sender may add parity shards to a group later without changing the ones
 * already sent.
 *
 * Shards of different lengths are zero-padded to the longest; parity shards
 * have that length. Pure functions, no I/O; the inputs are never modified.
 *
 * @module
 */

import { gfDiv, gfInv, gfMul, mulAddInto } from "./gf256.ts";

/** Most shards (data + parity) in one group: the field has 256 elements, x_i and y_j must be distinct. */
export const RS_MAX_SHARDS = 255;

/** Generator rows per data count k, filled lazily: `rows[i][j] = C[i][j]`. */
const ROWS = new Map<number, Uint8Array[]>();

/**
 * Coefficients of parity row `i` for `k` data shards (cached; do not
 * modify the returned array).
 *
 * @throws {RangeError} if k, i are not integers with k ≥ 1, i ≥ 0, k + i < 255.
 */
export function parityRow(k: number, i: number): Uint8Array {
  if (!Number.isInteger(k) || k < 1 || !Number.isInteger(i) || i < 0 || k + i >= RS_MAX_SHARDS) {
    throw new RangeError(
      `parityRow: need integers k >= 1, i >= 0, k + i < 255; got k=${k}, i=${i}`,
    );
  }
  let rows = ROWS.get(k);
  if (rows === undefined) {
    rows = [];
    ROWS.set(k, rows);
  }
  for (let r = rows.length; r <= i; r++) {
    const row = new Uint8Array(k);
    const xr = k + r;
    for (let j = 0; j < k; j++) row[j] = gfDiv(k ^ j, xr ^ j);
    rows.push(row);
  }
  return rows[i];
}

function checkShard(s: unknown, what: string): asserts s is Uint8Array {
  if (!(s instanceof Uint8Array)) throw new RangeError(`${what} is not a Uint8Array`);
}

/**
 * A parity kernel supplied from outside core/ (the FFI shim's C loop): data
 * shards packed back to back (`k · len` bytes), the `m · k` coefficient rows,
 * parity written packed (`m · len` bytes). Must compute exactly what the
 * TypeScript loop computes; core/fec tests check it when one is registered.
 */
export type RsEncodeKernel = (
  packedData: Uint8Array,
  k: number,
  len: number,
  rows: Uint8Array,
  m: number,
  packedParity: Uint8Array,
) => void;

let kernel: RsEncodeKernel | undefined;

/** Uses `k` for {@linkcode encodeParity} in this thread from now on (undefined: back to TypeScript). */
export function registerRsEncodeKernel(k: RsEncodeKernel | undefined): void {
  kernel = k;
}

/**
 * Computes `parityCount` parity shards over `data` (k shards, zero-padded
 * to the longest). Each parity shard has the length of the longest data
 * shard.
 *
 * @param data the k ≥ 1 data shards
 * @param parityCount m ≥ 0, with k + m ≤ 255
 * @returns m new parity shards, index i = parity i
 * @throws {RangeError} on an empty `data`, a non-Uint8Array shard or counts out of range.
 */
export function encodeParity(data: Uint8Array[], parityCount: number): Uint8Array[] {
  if (!Array.isArray(data) || data.length < 1) {
    throw new RangeError("encodeParity: need at least one data shard");
  }
  const k = data.length;
  if (!Number.isInteger(parityCount) || parityCount < 0 || k + parityCount > RS_MAX_SHARDS) {
    throw new RangeError(
      `encodeParity: parityCount ${parityCount} out of range for ${k} data shards (k + m <= 255)`,
    );
  }
  let len = 0;
  for (let j = 0; j < k; j++) {
    checkShard(data[j], `encodeParity: data[${j}]`);
    if (data[j].length > len) len = data[j].length;
  }
  if (kernel !== undefined && parityCount > 0) {
    const packed = new Uint8Array(k * len);
    for (let j = 0; j < k; j++) packed.set(data[j], j * len);
    const rows = new Uint8Array(parityCount * k);
    for (let i = 0; i < parityCount; i++) rows.set(parityRow(k, i), i * k);
    const out = new Uint8Array(parityCount * len);
    kernel(packed, k, len, rows, parityCount, out);
    return Array.from({ length: parityCount }, (_, i) => out.subarray(i * len, (i + 1) * len));
  }
  const parity: Uint8Array[] = [];
  for (let i = 0; i < parityCount; i++) {
    const p = new Uint8Array(len);
    const row = parityRow(k, i);
    for (let j = 0; j < k; j++) mulAddInto(p, data[j], row[j]);
    parity.push(p);
  }
  return parity;
}

/** The m·k coefficient rows packed for the kernel, cached per (k, m). */
const PACKED_ROWS = new Map<number, Uint8Array>();

function packedRows(k: number, m: number): Uint8Array {
  const key = k * 256 + m;
  let rows = PACKED_ROWS.get(key);
  if (rows === undefined) {
    rows = new Uint8Array(m * k);
    for (let i = 0; i < m; i++) rows.set(parityRow(k, i), i * k);
    PACKED_ROWS.set(key, rows);
  }
  return rows;
}

/**
 * {@linkcode encodeParity} over data shards already packed back to back
 * (`k` shards of `len` bytes each, zero-padded), so the caller builds one
 * buffer instead of k arrays: returns the m parity shards as views of one
 * new `m · len` buffer. Same bytes as `encodeParity`.
 *
 * @throws {RangeError} on counts out of range or a buffer shorter than `k · len`.
 */
export function encodeParityPacked(
  packed: Uint8Array,
  k: number,
  len: number,
  parityCount: number,
): Uint8Array[] {
  if (
    !Number.isInteger(k) || k < 1 || !Number.isInteger(len) || len < 0 ||
    !Number.isInteger(parityCount) || parityCount < 0 || k + parityCount > RS_MAX_SHARDS ||
    packed.length < k * len
  ) {
    throw new RangeError(
      `encodeParityPacked: k=${k}, len=${len}, m=${parityCount} out of range or buffer too short`,
    );
  }
  const out = new Uint8Array(parityCount * len);
  if (kernel !== undefined && parityCount > 0) {
    kernel(packed, k, len, packedRows(k, parityCount), parityCount, out);
  } else {
    for (let i = 0; i < parityCount; i++) {
      const p = out.subarray(i * len, (i + 1) * len);
      const row = parityRow(k, i);
      for (let j = 0; j < k; j++) mulAddInto(p, packed.subarray(j * len, (j + 1) * len), row[j]);
    }
  }
  return Array.from({ length: parityCount }, (_, i) => out.subarray(i * len, (i + 1) * len));
}

/**
 * Inverts a square matrix over GF(2^8) in place (Gauss-Jordan), returning
 * the inverse. Rows are Uint8Arrays of length n.
 *
 * @throws {Error} if the matrix is singular (cannot happen for Cauchy submatrices).
 */
export function invertMatrix(matrix: Uint8Array[]): Uint8Array[] {
  const n = matrix.length;
  const a = matrix.map((r) => r.slice());
  const inv = Array.from({ length: n }, (_, i) => {
    const r = new Uint8Array(n);
    r[i] = 1;
    return r;
  });
  for (let col = 0; col < n; col++) {
    let piv = col;
    while (piv < n && a[piv][col] === 0) piv++;
    if (piv === n) throw new Error("invertMatrix: singular matrix");
    if (piv !== col) {
      [a[piv], a[col]] = [a[col], a[piv]];
      [inv[piv], inv[col]] = [inv[col], inv[piv]];
    }
    const scale = gfInv(a[col][col]);
    if (scale !== 1) {
      for (let c = 0; c < n; c++) {
        a[col][c] = gfMul(a[col][c], scale);
        inv[col][c] = gfMul(inv[col][c], scale);
      }
    }
    for (let r = 0; r < n; r++) {
      const f = a[r][col];
      if (r === col || f === 0) continue;
      for (let c = 0; c < n; c++) {
        a[r][c] ^= gfMul(f, a[col][c]);
        inv[r][c] ^= gfMul(f, inv[col][c]);
      }
    }
  }
  return inv;
}

/**
 * Rebuilds the k data shards from any k of the k + m shards.
 *
 * Present data shards are returned as given (same objects); rebuilt ones
 * are new arrays as long as the parity shards (the padded length: trim
 * them with the lengths the caller knows, e.g. from the fragment layout).
 *
 * @param shards k data shards then m parity shards, in generation order;
 *   `undefined` marks a lost shard. Present parity shards must all have
 *   the same length, and no present data shard may be longer.
 * @param k number of data shards, 1 ≤ k ≤ shards.length ≤ 255
 * @returns the k data shards, or `undefined` if fewer than k shards are present
 * @throws {RangeError} on counts out of range, non-Uint8Array entries or inconsistent lengths.
 */
export function reconstruct(
  shards: (Uint8Array | undefined)[],
  k: number,
): Uint8Array[] | undefined {
  if (!Array.isArray(shards)) throw new RangeError("reconstruct: shards is not an array");
  const n = shards.length;
  if (!Number.isInteger(k) || k < 1 || n < k || n > RS_MAX_SHARDS) {
    throw new RangeError(
      `reconstruct: need 1 <= k <= shards.length <= 255; got k=${k}, ${n} shards`,
    );
  }
  let present = 0;
  let parityLen = -1;
  let maxDataLen = 0;
  for (let s = 0; s < n; s++) {
    const shard = shards[s];
    if (shard === undefined) continue;
    checkShard(shard, `reconstruct: shards[${s}]`);
    present++;
    if (s < k) {
      if (shard.length > maxDataLen) maxDataLen = shard.length;
    } else if (parityLen < 0) {
      parityLen = shard.length;
    } else if (shard.length !== parityLen) {
      throw new RangeError(
        `reconstruct: parity shards differ in length (${parityLen} and ${shard.length})`,
      );
    }
  }
  if (parityLen >= 0 && maxDataLen > parityLen) {
    throw new RangeError(
      `reconstruct: a data shard (${maxDataLen} bytes) is longer than the parity (${parityLen})`,
    );
  }
  if (present < k) return undefined;

  const missing: number[] = [];
  for (let j = 0; j < k; j++) if (shards[j] === undefined) missing.push(j);
  const out = shards.slice(0, k) as Uint8Array[];
  const e = missing.length;
  if (e === 0) return out;

  // Use the first e present parity shards. Their syndromes (parity minus the
  // known data's contribution) equal A · D_missing with A = C[rows][missing].
  const rows: number[] = [];
  for (let s = k; s < n && rows.length < e; s++) if (shards[s] !== undefined) rows.push(s - k);
  const syndromes = rows.map((i) => {
    const syn = (shards[k + i] as Uint8Array).slice();
    const row = parityRow(k, i);
    for (let j = 0; j < k; j++) {
      const d = shards[j];
      if (d !== undefined) mulAddInto(syn, d, row[j]);
    }
    return syn;
  });
  const inv = invertMatrix(rows.map((i) => {
    const row = parityRow(k, i);
    return Uint8Array.from(missing, (j) => row[j]);
  }));
  for (let x = 0; x < e; x++) {
    const d = new Uint8Array(parityLen);
    for (let r = 0; r < e; r++) mulAddInto(d, syndromes[r], inv[x][r]);
    out[missing[x]] = d;
  }
  return out;
}
