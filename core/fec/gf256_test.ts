import assert from "node:assert/strict";
import fc from "fast-check";
import {
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

/** Schoolbook carry-less multiplication reduced by the polynomial: the reference. */
function refMul(a: number, b: number): number {
  let r = 0;
  for (let i = 0; i < 8; i++) if ((b >> i) & 1) r ^= a << i;
  for (let bit = 15; bit >= 8; bit--) if ((r >> bit) & 1) r ^= GF_POLYNOMIAL << (bit - 8);
  return r;
}

Deno.test("gf256: mul matches the carry-less reference on all pairs", () => {
  for (let a = 0; a < 256; a++) {
    for (let b = 0; b < 256; b++) {
      if (gfMul(a, b) !== refMul(a, b)) assert.fail(`mul(${a}, ${b})`);
    }
  }
});

Deno.test("gf256: field axioms on all pairs (commutativity, identities, div/inv consistency)", () => {
  for (let a = 0; a < 256; a++) {
    assert.equal(gfMul(a, 1), a);
    assert.equal(gfMul(a, 0), 0);
    assert.equal(gfAdd(a, a), 0);
    if (a !== 0) {
      assert.equal(gfMul(a, gfInv(a)), 1);
      assert.equal(gfInv(gfInv(a)), a);
      assert.equal(gfExp(gfLog(a)), a);
      assert.equal(gfDiv(a, a), 1);
    }
    for (let b = 0; b < 256; b++) {
      const p = gfMul(a, b);
      if (p !== gfMul(b, a)) assert.fail(`commutativity ${a} ${b}`);
      if ((p === 0) !== (a === 0 || b === 0)) assert.fail(`no zero divisors ${a} ${b}`);
      if (b !== 0) {
        if (gfDiv(p, b) !== a) assert.fail(`div(mul(${a},${b}),${b})`);
        if (gfDiv(a, b) !== gfMul(a, gfInv(b))) assert.fail(`div = mul inv ${a} ${b}`);
      }
      const row = gfMulRow(a);
      if (row[b] !== p) assert.fail(`row ${a} ${b}`);
    }
  }
});

Deno.test("gf256: associativity and distributivity (all pairs, sampled third operand)", () => {
  for (const c of [0, 1, 2, 3, 0x1d, 0x80, 0xfe, 0xff]) {
    for (let a = 0; a < 256; a++) {
      for (let b = 0; b < 256; b++) {
        if (gfMul(gfMul(a, b), c) !== gfMul(a, gfMul(b, c))) assert.fail(`assoc ${a} ${b} ${c}`);
        if (gfMul(a, b ^ c) !== (gfMul(a, b) ^ gfMul(a, c))) assert.fail(`distrib ${a} ${b} ${c}`);
      }
    }
  }
  fc.assert(
    fc.property(fc.nat(255), fc.nat(255), fc.nat(255), (a, b, c) => {
      assert.equal(gfMul(gfMul(a, b), c), gfMul(a, gfMul(b, c)));
      assert.equal(gfMul(a, b ^ c), gfMul(a, b) ^ gfMul(a, c));
    }),
  );
});

Deno.test("gf256: 2 generates the multiplicative group", () => {
  const seen = new Set<number>();
  for (let i = 0; i < 255; i++) seen.add(gfExp(i));
  assert.equal(seen.size, 255);
  assert.ok(!seen.has(0));
  assert.equal(gfExp(255), 1);
  assert.equal(gfExp(-1), gfInv(2));
});

Deno.test("gf256: zero has no inverse, log or divisor", () => {
  assert.throws(() => gfInv(0), RangeError);
  assert.throws(() => gfLog(0), RangeError);
  assert.throws(() => gfDiv(1, 0), RangeError);
  assert.equal(gfDiv(0, 7), 0);
});

Deno.test("gf256: mulAddInto / mulInto / xorInto match the scalar definition, any alignment", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.nat(40),
      fc.nat(3),
      fc.nat(3),
      fc.nat(255),
      (src0, extra, srcOff, dstOff, c) => {
        const src = new Uint8Array(src0.length + srcOff).subarray(srcOff);
        src.set(src0);
        const dstBuf = new Uint8Array(src0.length + extra + dstOff);
        for (let i = 0; i < dstBuf.length; i++) dstBuf[i] = (i * 37 + 11) & 0xff;
        const dst = dstBuf.subarray(dstOff);
        const before = dst.slice();
        mulAddInto(dst, src, c);
        for (let i = 0; i < dst.length; i++) {
          const want = i < src.length ? before[i] ^ gfMul(c, src[i]) : before[i];
          assert.equal(dst[i], want);
        }
        const before2 = dst.slice();
        xorInto(dst, src);
        for (let i = 0; i < dst.length; i++) {
          assert.equal(dst[i], i < src.length ? before2[i] ^ src[i] : before2[i]);
        }
        mulInto(dst, src, c);
        for (let i = 0; i < dst.length; i++) {
          assert.equal(dst[i], i < src.length ? gfMul(c, src[i]) : 0);
        }
      },
    ),
  );
});

Deno.test("gf256: bulk kernels reject a source longer than the destination", () => {
  const a = new Uint8Array(3), b = new Uint8Array(4);
  assert.throws(() => mulAddInto(a, b, 5), RangeError);
  assert.throws(() => mulInto(a, b, 5), RangeError);
  assert.throws(() => xorInto(a, b), RangeError);
});
