import assert from "node:assert/strict";
import { blake2s } from "@noble/hashes/blake2.js";
import {
  decodeIdentityPublicKey,
  encodeIdentityPublicKey,
  generateIdentity,
  identityFingerprint,
  identityFromSeed,
  signWithIdentity,
  verifyIdentitySignature,
} from "./identity.ts";

function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * RFC 8032 section 7.1, "Test Vectors for Ed25519": TEST 1, TEST 2,
 * TEST 3, TEST 1024 (whose message is 1023 bytes) and TEST SHA(abc).
 */
const RFC8032_VECTORS = [
  {
    name: "TEST 1",
    secretKey: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    message: "",
    signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155" +
      "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  },
  {
    name: "TEST 2",
    secretKey: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    message: "72",
    signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da" +
      "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
  },
  {
    name: "TEST 3",
    secretKey: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    publicKey: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
    message: "af82",
    signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac" +
      "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
  },
  {
    name: "TEST 1024",
    secretKey: "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
    publicKey: "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
    message: `
      08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1
      e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d
      658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a
      7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e
      06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc10
      3b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1
      85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d
      502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270
      88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089b
      eccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba
      b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b
      e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7
      51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988d
      cda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df
      f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7
      984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4
      88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac09
      43bf6686b64b2579376504ccc493d97e6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f
      b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f161
      0e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d
      b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8ca
      c60c905c15fc910840b94c00a0b9d0`,
    signature: "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350" +
      "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03",
  },
  {
    name: "TEST SHA(abc)",
    secretKey: "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
    publicKey: "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
    message: "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a" +
      "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    signature: "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589" +
      "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
  },
];

Deno.test("RFC 8032 7.1 vectors: key derivation, signing, verification", () => {
  for (const v of RFC8032_VECTORS) {
    const id = identityFromSeed(hex(v.secretKey));
    assert.deepEqual(id.publicKey, hex(v.publicKey), `${v.name} public key`);
    const message = hex(v.message);
    const sig = signWithIdentity(id, message);
    assert.deepEqual(sig, hex(v.signature), `${v.name} signature`);
    assert.equal(
      verifyIdentitySignature(hex(v.publicKey), message, hex(v.signature)),
      true,
      v.name,
    );
  }
  assert.equal(hex(RFC8032_VECTORS[3].message).length, 1023);
});

Deno.test("verification refuses wrong key, flipped bits, wrong lengths; never throws", () => {
  const [t1, t2, t3] = RFC8032_VECTORS;
  const pk = hex(t3.publicKey);
  const msg = hex(t3.message);
  const sig = hex(t3.signature);
  assert.equal(verifyIdentitySignature(hex(t2.publicKey), msg, sig), false);
  assert.equal(verifyIdentitySignature(pk, hex(t1.message), sig), false);
  for (let bit = 0; bit < 512; bit += 7) {
    const bad = sig.slice();
    bad[bit >> 3] ^= 1 << (bit & 7);
    assert.equal(verifyIdentitySignature(pk, msg, bad), false, `signature bit ${bit}`);
  }
  const badMsg = msg.slice();
  badMsg[1] ^= 0x80;
  assert.equal(verifyIdentitySignature(pk, badMsg, sig), false);
  assert.equal(verifyIdentitySignature(pk, msg, sig.subarray(0, 63)), false);
  assert.equal(verifyIdentitySignature(pk, msg, new Uint8Array(65)), false);
  assert.equal(verifyIdentitySignature(pk.subarray(0, 31), msg, sig), false);
  assert.equal(verifyIdentitySignature(new Uint8Array(33), msg, sig), false);
  assert.equal(
    verifyIdentitySignature(new Uint8Array(0), new Uint8Array(0), new Uint8Array(0)),
    false,
  );
  // Not a point at all (y = 2^255 - 1 is not canonical).
  assert.equal(verifyIdentitySignature(new Uint8Array(32).fill(0xff), msg, sig), false);
  // The neutral point (small order) is refused even with a "valid" signature.
  const neutral = Uint8Array.of(1, ...new Uint8Array(31));
  assert.equal(verifyIdentitySignature(neutral, msg, new Uint8Array(64)), false);
  // Garbage of the wrong type does not throw either.
  assert.equal(verifyIdentitySignature(null as unknown as Uint8Array, msg, sig), false);
});

Deno.test("S not reduced mod L is refused (no malleability)", () => {
  const v = RFC8032_VECTORS[0];
  const sig = hex(v.signature);
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]);
  let t = s + L;
  for (let i = 32; i < 64; i++) {
    sig[i] = Number(t & 0xffn);
    t >>= 8n;
  }
  assert.equal(verifyIdentitySignature(hex(v.publicKey), hex(v.message), sig), false);
});

Deno.test("generated identities sign and verify", () => {
  let counter = 0;
  const deterministic = (n: number) => new Uint8Array(n).fill(++counter);
  const a = generateIdentity(deterministic);
  const b = generateIdentity(deterministic);
  assert.deepEqual(a.secretKey, new Uint8Array(32).fill(1));
  assert.notDeepEqual(a.publicKey, b.publicKey);
  const random = generateIdentity();
  const msg = new TextEncoder().encode("hello");
  assert.equal(verifyIdentitySignature(random.publicKey, msg, signWithIdentity(random, msg)), true);
  assert.equal(verifyIdentitySignature(a.publicKey, msg, signWithIdentity(b, msg)), false);
  assert.throws(() => identityFromSeed(new Uint8Array(31)));
});

Deno.test("fingerprint: base32 of blake2s(pk)[0..10] in groups of four", () => {
  const pk = hex(RFC8032_VECTORS[0].publicKey);
  const fp = identityFingerprint(pk);
  assert.match(fp, /^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$/);
  // Recompute independently: 80 bits, 5 bits per character.
  const digest = blake2s(pk).subarray(0, 10);
  let bits = "";
  for (const b of digest) bits += b.toString(2).padStart(8, "0");
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let expected = "";
  for (let i = 0; i < 80; i += 5) expected += alphabet[parseInt(bits.slice(i, i + 5), 2)];
  assert.equal(fp.replaceAll("-", ""), expected);
  assert.notEqual(identityFingerprint(hex(RFC8032_VECTORS[1].publicKey)), fp);
});

Deno.test("public key text form: base64url, unpadded, canonical", () => {
  for (const v of RFC8032_VECTORS) {
    const pk = hex(v.publicKey);
    const text = encodeIdentityPublicKey(pk);
    assert.equal(text.length, 43);
    assert.match(text, /^[A-Za-z0-9_-]{43}$/);
    // Same as the standard base64 alphabet swap, minus padding.
    const std = btoa(String.fromCharCode(...pk)).replace(/=+$/, "").replaceAll("+", "-").replaceAll(
      "/",
      "_",
    );
    assert.equal(text, std);
    assert.deepEqual(decodeIdentityPublicKey(text), pk);
  }
  const text = encodeIdentityPublicKey(hex(RFC8032_VECTORS[0].publicKey));
  assert.equal(decodeIdentityPublicKey(text + "="), undefined);
  assert.equal(decodeIdentityPublicKey(text.slice(0, 42)), undefined);
  assert.equal(decodeIdentityPublicKey(text.slice(0, 42) + "+"), undefined);
  assert.equal(decodeIdentityPublicKey(" " + text.slice(1)), undefined);
  // Last character carries 2 spare bits that must be zero.
  const last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".indexOf(text[42]);
  const sloppy = text.slice(0, 42) +
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last | 1];
  assert.equal(decodeIdentityPublicKey(sloppy), undefined);
  assert.equal(decodeIdentityPublicKey(""), undefined);
  assert.equal(decodeIdentityPublicKey(42 as unknown as string), undefined);
  // Neutral point: a valid encoding but of small order.
  assert.equal(
    decodeIdentityPublicKey(encodeIdentityPublicKey(Uint8Array.of(1, ...new Uint8Array(31)))),
    undefined,
  );
});
