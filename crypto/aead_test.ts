import assert from "node:assert/strict";
import { type AeadBackend, createAead, DEFAULT_AEAD_BACKEND, nonceFromCounter } from "./aead.ts";

const BACKENDS: readonly AeadBackend[] = ["noble", "node"];

function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  }
  return out;
}

function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// RFC 8439 §2.8.2 "Example and Test Vector for AEAD_CHACHA20_POLY1305"
// (https://www.rfc-editor.org/rfc/rfc8439#section-2.8.2).
const V282 = {
  key: hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"),
  nonce: hex("070000004041424344454647"),
  ad: hex("50515253c0c1c2c3c4c5c6c7"),
  plaintext: new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  ),
  ciphertext: hex(
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6" +
      "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36" +
      "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc" +
      "3ff4def08e4b7a9de576d26586cec64b6116",
  ),
  tag: hex("1ae10b594f09e26a7e902ecbd0600691"),
};

// RFC 8439 Appendix A.5 "ChaCha20-Poly1305 AEAD Decryption"
// (https://www.rfc-editor.org/rfc/rfc8439#appendix-A.5).
const VA5 = {
  key: hex("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0"),
  nonce: hex("000000000102030405060708"),
  ad: hex("f33388860000000000004e91"),
  ciphertext: hex(
    "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb2" +
      "4c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf" +
      "332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855" +
      "9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4" +
      "b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523e" +
      "af4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a" +
      "0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a10" +
      "49e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29" +
      "a6ad5cb4022b02709b",
  ),
  tag: hex("eead9d67890cbb22392336fea1851f38"),
  plaintext: "Internet-Drafts are draft documents valid for a maximum of six " +
    "months and may be updated, replaced, or obsoleted by other documents at " +
    "any time. It is inappropriate to use Internet-Drafts as reference " +
    "material or to cite them other than as /\u201cwork in progress./\u201d",
};

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

for (const backend of BACKENDS) {
  Deno.test(`aead[${backend}]: RFC 8439 §2.8.2 seal vector`, () => {
    const aead = createAead(V282.key, backend);
    assert.equal(aead.backend, backend);
    const sealed = aead.seal(V282.nonce, V282.plaintext, V282.ad);
    assert.equal(toHex(sealed), toHex(concat(V282.ciphertext, V282.tag)));
    const opened = aead.open(V282.nonce, sealed, V282.ad);
    assert.ok(opened);
    assert.deepEqual(opened, V282.plaintext);
  });

  Deno.test(`aead[${backend}]: RFC 8439 §A.5 decryption vector`, () => {
    assert.equal(VA5.ciphertext.length, 265);
    const aead = createAead(VA5.key, backend);
    const opened = aead.open(VA5.nonce, concat(VA5.ciphertext, VA5.tag), VA5.ad);
    assert.ok(opened);
    assert.equal(new TextDecoder().decode(opened), VA5.plaintext);
    // And sealing the plaintext reproduces the RFC ciphertext and tag.
    const resealed = aead.seal(VA5.nonce, opened, VA5.ad);
    assert.equal(toHex(resealed), toHex(concat(VA5.ciphertext, VA5.tag)));
  });

  Deno.test(`aead[${backend}]: any tampering yields undefined`, () => {
    const aead = createAead(V282.key, backend);
    const sealed = aead.seal(V282.nonce, V282.plaintext, V282.ad);
    const flip = (b: Uint8Array, i: number): Uint8Array => {
      const c = b.slice();
      c[i] ^= 0x01;
      return c;
    };
    // ciphertext bytes
    for (const i of [0, 17, sealed.length - 17]) {
      assert.equal(aead.open(V282.nonce, flip(sealed, i), V282.ad), undefined);
    }
    // tag bytes
    for (const i of [sealed.length - 16, sealed.length - 1]) {
      assert.equal(aead.open(V282.nonce, flip(sealed, i), V282.ad), undefined);
    }
    // associated data
    assert.equal(aead.open(V282.nonce, sealed, flip(V282.ad, 3)), undefined);
    assert.equal(aead.open(V282.nonce, sealed, new Uint8Array(0)), undefined);
    // nonce
    assert.equal(aead.open(flip(V282.nonce, 11), sealed, V282.ad), undefined);
    // wrong key
    const other = createAead(new Uint8Array(32).fill(9), backend);
    assert.equal(other.open(V282.nonce, sealed, V282.ad), undefined);
    // truncation and malformed inputs never throw
    assert.equal(aead.open(V282.nonce, sealed.subarray(0, 15), V282.ad), undefined);
    assert.equal(aead.open(V282.nonce, new Uint8Array(0), V282.ad), undefined);
    assert.equal(aead.open(V282.nonce.subarray(0, 8), sealed, V282.ad), undefined);
    // the untampered input still opens
    assert.deepEqual(aead.open(V282.nonce, sealed, V282.ad), V282.plaintext);
  });

  Deno.test(`aead[${backend}]: empty plaintext and empty ad`, () => {
    const aead = createAead(V282.key, backend);
    const nonce = nonceFromCounter(5);
    const sealed = aead.seal(nonce, new Uint8Array(0), new Uint8Array(0));
    assert.equal(sealed.length, 16);
    const opened = aead.open(nonce, sealed, new Uint8Array(0));
    assert.ok(opened);
    assert.equal(opened.length, 0);
    const tampered = sealed.slice();
    tampered[0] ^= 0x80;
    assert.equal(aead.open(nonce, tampered, new Uint8Array(0)), undefined);
  });

  Deno.test(`aead[${backend}]: inputs in subarrays of larger buffers`, () => {
    const aead = createAead(V282.key, backend);
    const big = new Uint8Array(16 + V282.plaintext.length + 16);
    big.set(V282.ad, 2);
    big.set(V282.plaintext, 16);
    const ad = big.subarray(2, 2 + V282.ad.length);
    const pt = big.subarray(16, 16 + V282.plaintext.length);
    const sealed = aead.seal(V282.nonce, pt, ad);
    assert.equal(toHex(sealed), toHex(concat(V282.ciphertext, V282.tag)));
    const wire = new Uint8Array(7 + sealed.length);
    wire.set(sealed, 7);
    assert.deepEqual(
      aead.open(V282.nonce, wire.subarray(7), ad),
      V282.plaintext,
    );
  });
}

Deno.test("aead: cross-backend interop for many sizes", () => {
  const key = new Uint8Array(32).map((_, i) => i * 7 + 1);
  const noble = createAead(key, "noble");
  const node = createAead(key, "node");
  for (const size of [0, 1, 15, 16, 17, 63, 64, 65, 1200, 1500, 4096]) {
    const pt = new Uint8Array(size).map((_, i) => (i * 31 + size) & 0xff);
    const ad = new Uint8Array(16).fill(size & 0xff);
    const nonce = nonceFromCounter(size * 1000 + 3);
    const a = noble.seal(nonce, pt, ad);
    const b = node.seal(nonce, pt, ad);
    assert.equal(toHex(a), toHex(b), `size ${size}`);
    assert.deepEqual(node.open(nonce, a, ad), pt);
    assert.deepEqual(noble.open(nonce, b, ad), pt);
  }
});

Deno.test("aead: key is copied at creation", () => {
  const key = new Uint8Array(32).fill(3);
  for (const backend of BACKENDS) {
    const aead = createAead(key, backend);
    const nonce = nonceFromCounter(1);
    const before = aead.seal(nonce, new Uint8Array(10), new Uint8Array(0));
    key.fill(0);
    const after = aead.seal(nonce, new Uint8Array(10), new Uint8Array(0));
    assert.deepEqual(before, after);
    key.fill(3);
  }
});

Deno.test("aead: createAead rejects bad keys and backends", () => {
  assert.throws(() => createAead(new Uint8Array(31)), RangeError);
  assert.throws(
    () => createAead(new Uint8Array(32), "webcrypto" as AeadBackend),
    RangeError,
  );
  assert.ok(BACKENDS.includes(DEFAULT_AEAD_BACKEND));
});

Deno.test("aead: seal rejects a nonce that is not 12 bytes", () => {
  for (const backend of BACKENDS) {
    const aead = createAead(new Uint8Array(32), backend);
    assert.throws(
      () => aead.seal(new Uint8Array(8), new Uint8Array(1), new Uint8Array(0)),
      RangeError,
    );
  }
});

Deno.test("nonceFromCounter: 4 zero bytes then u64 little-endian", () => {
  assert.equal(toHex(nonceFromCounter(0)), "000000000000000000000000");
  assert.equal(toHex(nonceFromCounter(1)), "000000000100000000000000");
  assert.equal(toHex(nonceFromCounter(0x0102030405)), "000000000504030201000000");
  assert.equal(toHex(nonceFromCounter(0xffffffff)), "00000000ffffffff00000000");
  assert.equal(toHex(nonceFromCounter(0x100000000)), "000000000000000001000000");
  assert.equal(
    toHex(nonceFromCounter(Number.MAX_SAFE_INTEGER)),
    "00000000ffffffffffff1f00",
  );
  const out = new Uint8Array(12).fill(0xaa);
  assert.equal(nonceFromCounter(258, out), out);
  assert.equal(toHex(out), "000000000201000000000000");
  assert.throws(() => nonceFromCounter(-1), RangeError);
  assert.throws(() => nonceFromCounter(1.5), RangeError);
  assert.throws(() => nonceFromCounter(2 ** 53), RangeError);
  assert.throws(() => nonceFromCounter(NaN), RangeError);
  assert.throws(() => nonceFromCounter(1, new Uint8Array(8)), RangeError);
});

Deno.test("aead: sealInto writes the same bytes as seal, at an offset, on both backends", () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const plaintext = crypto.getRandomValues(new Uint8Array(1168));
  const ad = crypto.getRandomValues(new Uint8Array(16));
  for (const backend of BACKENDS) {
    const aead = createAead(key, backend);
    const nonce = nonceFromCounter(77);
    const expected = aead.seal(nonce, plaintext, ad);
    const out = new Uint8Array(16 + expected.length + 5).fill(0xee);
    aead.sealInto(nonce, plaintext, ad, out, 16);
    assert.deepEqual(out.subarray(16, 16 + expected.length), expected, backend);
    assert.ok(out.subarray(0, 16).every((b) => b === 0xee), `${backend}: wrote before offset`);
    assert.ok(out.subarray(16 + expected.length).every((b) => b === 0xee), `${backend}: overran`);
    assert.throws(() => aead.sealInto(nonce, plaintext, ad, new Uint8Array(100), 0), RangeError);
  }
});
