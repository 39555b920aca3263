/**
 * Arithmetic in GF(2^8) with the primitive polynomial x^8 + x^4 + x^3 + x^2 + 1
 * (0x11d) and generator 2, the field used by most erasure codes (Jerasure,
 * klauspost/reedsolomon, RFC 5510). Addition and subtraction are XOR;
 * multiplication goes through log/exp tables, and the bulk kernel
 * {@linkcode mulAddInto} through a full 64 KiB multiplication table.
 *
 * @module
 */

/** The field's reduction polynomial. */
export const GF_POLYNOMIAL = 0x11d;

/** `EXP[i] = 2^i`, for i in 0..509 (doubled so `EXP[LOG[a] + LOG[b]]` needs no modulo). */
const EXP = new Uint8Array(510);
/** `LOG[a]` = discrete log of a, a ≠ 0 (LOG[0] is unused). */
const LOG = new Uint8Array(256);
/** `MUL[(c << 8) | x] = c · x`: row c is the multiplication-by-c table. */
const MUL = new Uint8Array(65536);

{
  let x = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = x;
    EXP[i + 255] = x;
    LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= GF_POLYNOMIAL;
  }
  for (let c = 1; c < 256; c++) {
    const lc = LOG[c];
    for (let v = 1; v < 256; v++) MUL[(c << 8) | v] = EXP[lc + LOG[v]];
  }
}

/** Sum (and difference) of two field elements: XOR. */
export function gfAdd(a: number, b: number): number {
  return (a ^ b) & 0xff;
}

/** Product of two field elements (bytes 0..255). */
export function gfMul(a: number, b: number): number {
  return MUL[((a & 0xff) << 8) | (b & 0xff)];
}

/**
 * Quotient `a / b`.
 *
 * @throws {RangeError} if `b` is 0.
 */
export function gfDiv(a: number, b: number): number {
  if ((b & 0xff) === 0) throw new RangeError("gfDiv: division by zero");
  if ((a & 0xff) === 0) return 0;
  return EXP[LOG[a & 0xff] + 255 - LOG[b & 0xff]];
}

/**
 * Multiplicative inverse of `a`.
 *
 * @throws {RangeError} if `a` is 0.
 */
export function gfInv(a: number): number {
  if ((a & 0xff) === 0) throw new RangeError("gfInv: zero has no inverse");
  return EXP[255 - LOG[a & 0xff]];
}

/** `2^n` for any integer n (the generator raised to n, exponent taken mod 255). */
export function gfExp(n: number): number {
  return EXP[((n % 255) + 255) % 255];
}

/**
 * Discrete logarithm base 2 of `a`, in 0..254.
 *
 * @throws {RangeError} if `a` is 0.
 */
export function gfLog(a: number): number {
  if ((a & 0xff) === 0) throw new RangeError("gfLog: log of zero");
  return LOG[a & 0xff];
}

/**
 * The 256-byte table of multiplication by `c` (`row[x] = c · x`), a view
 * into the shared table: do not write to it.
 */
export function gfMulRow(c: number): Uint8Array {
  const base = (c & 0xff) << 8;
  return MUL.subarray(base, base + 256);
}

/**
 * The hot loop of the codec: `dst[i] ^= c · src[i]` for every i < src.length
 * (a `src` shorter than `dst` acts as if zero-padded). `c = 0` does nothing;
 * `c = 1` is a plain XOR, done four bytes at a time when both arrays are
 * 4-byte aligned.
 *
 * @throws {RangeError} if `src` is longer than `dst`.
 */
export function mulAddInto(dst: Uint8Array, src: Uint8Array, c: number): void {
  const n = src.length;
  if (n > dst.length) {
    throw new RangeError(`mulAddInto: src (${n} bytes) longer than dst (${dst.length})`);
  }
  c &= 0xff;
  if (c === 0 || n === 0) return;
  if (c === 1) {
    xorInto(dst, src);
    return;
  }
  const base = c << 8;
  const row = MUL.subarray(base, base + 256);
  let i = 0;
  const n8 = n & ~7;
  for (; i < n8; i += 8) {
    dst[i] ^= row[src[i]];
    dst[i + 1] ^= row[src[i + 1]];
    dst[i + 2] ^= row[src[i + 2]];
    dst[i + 3] ^= row[src[i + 3]];
    dst[i + 4] ^= row[src[i + 4]];
    dst[i + 5] ^= row[src[i + 5]];
    dst[i + 6] ^= row[src[i + 6]];
    dst[i + 7] ^= row[src[i + 7]];
  }
  for (; i < n; i++) dst[i] ^= row[src[i]];
}

/**
 * `dst[i] = c · src[i]` for every i < src.length; bytes of `dst` past
 * `src.length` are set to 0.
 *
 * @throws {RangeError} if `src` is longer than `dst`.
 */
export function mulInto(dst: Uint8Array, src: Uint8Array, c: number): void {
  const n = src.length;
  if (n > dst.length) {
    throw new RangeError(`mulInto: src (${n} bytes) longer than dst (${dst.length})`);
  }
  c &= 0xff;
  dst.fill(0, n);
  if (c === 0) {
    dst.fill(0, 0, n);
    return;
  }
  if (c === 1) {
    dst.set(src);
    return;
  }
  const base = c << 8;
  const row = MUL.subarray(base, base + 256);
  for (let i = 0; i < n; i++) dst[i] = row[src[i]];
}

/**
 * `dst[i] ^= src[i]` for every i < src.length (a shorter `src` acts as
 * zero-padded), 32 bits at a time when both arrays are 4-byte aligned.
 *
 * @throws {RangeError} if `src` is longer than `dst`.
 */
export function xorInto(dst: Uint8Array, src: Uint8Array): void {
  const n = src.length;
  if (n > dst.length) {
    throw new RangeError(`xorInto: src (${n} bytes) longer than dst (${dst.length})`);
  }
  let i = 0;
  if ((dst.byteOffset & 3) === 0 && (src.byteOffset & 3) === 0 && n >= 16) {
    const words = n >>> 2;
    const d32 = new Uint32Array(dst.buffer, dst.byteOffset, words);
    const s32 = new Uint32Array(src.buffer, src.byteOffset, words);
    for (let w = 0; w < words; w++) d32[w] ^= s32[w];
    i = words << 2;
  }
  for (; i < n; i++) dst[i] ^= src[i];
}
