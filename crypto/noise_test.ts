import assert from "node:assert/strict";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { x25519 } from "@noble/curves/ed25519.js";
import {
  generateX25519KeyPair,
  NOISE_PROTOCOL_NAME,
  noiseDecrypt,
  noiseEncrypt,
  NoiseHandshake,
  noiseRekey,
  type X25519KeyPair,
} from "./noise.ts";

function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function keyPairFromSecret(secretHex: string): X25519KeyPair {
  const secretKey = hex(secretHex);
  return { secretKey, publicKey: x25519.getPublicKey(secretKey) };
}

/**
 * Noise_XX_25519_ChaChaPoly_BLAKE2s from the cacophony test vectors, as
 * shipped in mcginty/snow `tests/vectors/cacophony.txt` (commit
 * aabed3159deec0a0dfe3d5601c43322d84700c94). Messages alternate sender,
 * starting with the initiator: 0-2 are the handshake, 3-5 transport.
 */
const VECTOR = {
  protocolName: "Noise_XX_25519_ChaChaPoly_BLAKE2s",
  prologue: "4a6f686e2047616c74",
  initStatic: "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
  initEphemeral: "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
  respStatic: "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
  respEphemeral: "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
  handshakeHash: "6c4c56cf71612f72d05ceb96c0155e6f4ea54a26b504c93de632a2db4a49d200",
  messages: [
    {
      payload: "4c756477696720766f6e204d69736573",
      ciphertext: "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944" +
        "4c756477696720766f6e204d69736573",
    },
    {
      payload: "4d757272617920526f746862617264",
      ciphertext: "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843" +
        "7c365eb362a1c991b0557fe8a7fb187d99346765d93ec63db6c1b01504ebeec5" +
        "5a2298d2dbff80eff034d20595153f63a196a6cead1e11b2bb13e336fa13616d" +
        "d3e8b0a070c882ed3f1a78c7c06c93",
    },
    {
      payload: "462e20412e20486179656b",
      ciphertext: "46c3307de83b014258717d97781c1f50936d8b7d50c0722a1739654d10392d41" +
        "5b670c114f79b9a4f80541570f77ce88802efa4220cff733e7b5668ba38059ec" +
        "904b4b8eef9448085faf51",
    },
    {
      payload: "4361726c204d656e676572",
      ciphertext: "d5e83adfaac5dc324a68f1862df54549e56d209fba707205f328b2",
    },
    {
      payload: "4a65616e2d426170746973746520536179",
      ciphertext: "d102c9029b1f55c788f561ba7737afbccef9c9f1bf2f238167fd40ba9c1c134867",
    },
    {
      payload: "457567656e2042f6686d20766f6e2042617765726b",
      ciphertext: "cb1ce80960382c6d5d5e740ffb724d1432f0310b200fb6f8424120f506092744baa415e155",
    },
  ],
};

function vectorPair(): { init: NoiseHandshake; resp: NoiseHandshake } {
  const prologue = hex(VECTOR.prologue);
  return {
    init: new NoiseHandshake({
      initiator: true,
      prologue,
      staticKeyPair: keyPairFromSecret(VECTOR.initStatic),
      ephemeralKeyPair: keyPairFromSecret(VECTOR.initEphemeral),
    }),
    resp: new NoiseHandshake({
      initiator: false,
      prologue,
      staticKeyPair: keyPairFromSecret(VECTOR.respStatic),
      ephemeralKeyPair: keyPairFromSecret(VECTOR.respEphemeral),
    }),
  };
}

Deno.test("protocol name matches the vector", () => {
  assert.equal(NOISE_PROTOCOL_NAME, VECTOR.protocolName);
});

Deno.test("cacophony vector: handshake messages, hash and transport", () => {
  const { init, resp } = vectorPair();
  const m = VECTOR.messages;

  assert.equal(init.isMyTurnToWrite, true);
  assert.equal(resp.isMyTurnToWrite, false);
  const msg1 = init.writeMessage(hex(m[0].payload));
  assert.equal(toHex(msg1), m[0].ciphertext);
  const r1 = resp.readMessage(msg1);
  assert.ok(r1);
  assert.equal(toHex(r1.payload), m[0].payload);

  const msg2 = resp.writeMessage(hex(m[1].payload));
  assert.equal(toHex(msg2), m[1].ciphertext);
  const r2 = init.readMessage(msg2);
  assert.ok(r2);
  assert.equal(toHex(r2.payload), m[1].payload);
  assert.deepEqual(init.remoteStaticPublicKey, keyPairFromSecret(VECTOR.respStatic).publicKey);

  const msg3 = init.writeMessage(hex(m[2].payload));
  assert.equal(toHex(msg3), m[2].ciphertext);
  const r3 = resp.readMessage(msg3);
  assert.ok(r3);
  assert.equal(toHex(r3.payload), m[2].payload);
  assert.deepEqual(resp.remoteStaticPublicKey, keyPairFromSecret(VECTOR.initStatic).publicKey);

  assert.ok(init.isComplete && resp.isComplete);
  assert.equal(toHex(init.handshakeHash), VECTOR.handshakeHash);
  assert.equal(toHex(resp.handshakeHash), VECTOR.handshakeHash);

  const iKeys = init.split();
  const rKeys = resp.split();
  assert.deepEqual(iKeys.sendKey, rKeys.recvKey);
  assert.deepEqual(iKeys.recvKey, rKeys.sendKey);
  assert.notDeepEqual(iKeys.sendKey, iKeys.recvKey);

  // Transport: message 3 and 5 from the responder (nonces 0, 1), 4 from the
  // initiator (nonce 0), zero-length associated data.
  const empty = new Uint8Array(0);
  const t3 = noiseEncrypt(rKeys.sendKey, 0n, empty, hex(m[3].payload));
  assert.equal(toHex(t3), m[3].ciphertext);
  assert.equal(toHex(noiseDecrypt(iKeys.recvKey, 0n, empty, t3)!), m[3].payload);
  const t4 = noiseEncrypt(iKeys.sendKey, 0n, empty, hex(m[4].payload));
  assert.equal(toHex(t4), m[4].ciphertext);
  assert.equal(toHex(noiseDecrypt(rKeys.recvKey, 0n, empty, t4)!), m[4].payload);
  const t5 = noiseEncrypt(rKeys.sendKey, 1n, empty, hex(m[5].payload));
  assert.equal(toHex(t5), m[5].ciphertext);
  assert.equal(toHex(noiseDecrypt(iKeys.recvKey, 1n, empty, t5)!), m[5].payload);
});

Deno.test("payload callback sees the hash the reader reports", () => {
  const { init, resp } = vectorPair();
  const seen: Uint8Array[] = [];
  resp.readMessage(init.writeMessage((h) => {
    seen.push(h);
    return new Uint8Array(0);
  }))!;
  const r2 = init.readMessage(resp.writeMessage((h) => {
    seen.push(h);
    return Uint8Array.of(1, 2, 3);
  }));
  assert.ok(r2);
  assert.deepEqual(r2.handshakeHashBeforePayload, seen[1]);
  const r3 = resp.readMessage(init.writeMessage((h) => {
    seen.push(h);
    return Uint8Array.of(4);
  }));
  assert.ok(r3);
  assert.deepEqual(r3.handshakeHashBeforePayload, seen[2]);
  assert.notDeepEqual(seen[1], seen[2]);
});

Deno.test("round trip with random keys", () => {
  for (let round = 0; round < 5; round++) {
    const prologue = crypto.getRandomValues(new Uint8Array(round * 7));
    const is = generateX25519KeyPair();
    const rs = generateX25519KeyPair();
    const init = new NoiseHandshake({ initiator: true, prologue, staticKeyPair: is });
    const resp = new NoiseHandshake({ initiator: false, prologue, staticKeyPair: rs });
    const p = (n: number) => crypto.getRandomValues(new Uint8Array(n));
    const p1 = p(round), p2 = p(100 + round), p3 = p(3 * round);
    assert.deepEqual(resp.readMessage(init.writeMessage(p1))?.payload, p1);
    assert.deepEqual(init.readMessage(resp.writeMessage(p2))?.payload, p2);
    assert.deepEqual(resp.readMessage(init.writeMessage(p3))?.payload, p3);
    assert.deepEqual(init.remoteStaticPublicKey, rs.publicKey);
    assert.deepEqual(resp.remoteStaticPublicKey, is.publicKey);
    assert.deepEqual(init.handshakeHash, resp.handshakeHash);
    const a = init.split(), b = resp.split();
    assert.deepEqual(a.sendKey, b.recvKey);
    assert.deepEqual(a.recvKey, b.sendKey);
    const ct = noiseEncrypt(a.sendKey, 7n, prologue, p2);
    assert.deepEqual(noiseDecrypt(b.recvKey, 7n, prologue, ct), p2);
    assert.equal(noiseDecrypt(b.recvKey, 8n, prologue, ct), undefined);
  }
});

Deno.test("different prologues do not complete", () => {
  const init = new NoiseHandshake({
    initiator: true,
    prologue: Uint8Array.of(1),
    staticKeyPair: generateX25519KeyPair(),
  });
  const resp = new NoiseHandshake({
    initiator: false,
    prologue: Uint8Array.of(2),
    staticKeyPair: generateX25519KeyPair(),
  });
  assert.ok(resp.readMessage(init.writeMessage(new Uint8Array(0))));
  assert.equal(init.readMessage(resp.writeMessage(new Uint8Array(0))), undefined);
});

function flipBit(msg: Uint8Array, bit: number): Uint8Array {
  const out = msg.slice();
  out[bit >> 3] ^= 1 << (bit & 7);
  return out;
}

Deno.test("flipped bits in messages 2 and 3 are refused, state unchanged", () => {
  const { init, resp } = vectorPair();
  const msg1 = init.writeMessage(new Uint8Array(0));
  assert.ok(resp.readMessage(msg1));
  const msg2 = resp.writeMessage(Uint8Array.of(9, 9));

  for (let bit = 0; bit < msg2.length * 8; bit += 5) {
    const hBefore = init.handshakeHash;
    assert.equal(init.readMessage(flipBit(msg2, bit)), undefined, `msg2 bit ${bit}`);
    assert.deepEqual(init.handshakeHash, hBefore);
    assert.equal(init.remoteStaticPublicKey, undefined);
  }
  assert.equal(init.readMessage(msg2.subarray(0, msg2.length - 1)), undefined);
  assert.equal(init.readMessage(new Uint8Array(0)), undefined);
  assert.deepEqual(init.readMessage(msg2)?.payload, Uint8Array.of(9, 9));

  const msg3 = init.writeMessage(Uint8Array.of(7));
  for (let bit = 0; bit < msg3.length * 8; bit += 3) {
    assert.equal(resp.readMessage(flipBit(msg3, bit)), undefined, `msg3 bit ${bit}`);
    assert.equal(resp.isComplete, false);
  }
  assert.equal(resp.readMessage(msg3.subarray(0, 60)), undefined);
  assert.deepEqual(resp.readMessage(msg3)?.payload, Uint8Array.of(7));
  assert.deepEqual(init.split().sendKey, resp.split().recvKey);
});

Deno.test("a flipped bit in message 1 is caught by the initiator at message 2", () => {
  // Message 1 is unauthenticated by design (nothing is keyed yet), so the
  // responder cannot tell; the tampered transcript makes its message 2 fail
  // at the initiator, whose state stays usable for the genuine responder.
  const { init } = vectorPair();
  const msg1 = init.writeMessage(Uint8Array.of(1, 2, 3, 4));
  for (const bit of [0, 77, 255, 256 + 9]) {
    const fooled = vectorPair().resp;
    const r = fooled.readMessage(flipBit(msg1, bit));
    assert.ok(r, "responder cannot detect tampering of message 1");
    const forgedReply = fooled.writeMessage(new Uint8Array(0));
    assert.equal(init.readMessage(forgedReply), undefined, `msg1 bit ${bit}`);
    assert.equal(init.isMyTurnToWrite, false);
  }
  const { resp } = vectorPair();
  assert.ok(resp.readMessage(msg1));
  assert.ok(init.readMessage(resp.writeMessage(new Uint8Array(0))));
  assert.ok(resp.readMessage(init.writeMessage(new Uint8Array(0))));
  assert.ok(init.isComplete && resp.isComplete);
});

Deno.test("low-order ephemeral keys are refused without changing state", () => {
  const resp = new NoiseHandshake({
    initiator: false,
    prologue: new Uint8Array(0),
    staticKeyPair: generateX25519KeyPair(),
  });
  const h = resp.handshakeHash;
  // u = 0 and u = 1 are low-order points on Curve25519.
  for (const u of [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31))]) {
    const r = resp.tryReadMessage(u);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.reason, "Malformed");
  }
  assert.deepEqual(resp.handshakeHash, h);
  assert.equal(resp.isMyTurnToWrite, false);
});

Deno.test("messages out of turn are refused; misuse throws", () => {
  const { init, resp } = vectorPair();
  const r = init.tryReadMessage(new Uint8Array(48));
  assert.equal(!r.ok && r.reason, "UnexpectedMessage");
  assert.throws(() => resp.writeMessage(new Uint8Array(0)));
  assert.throws(() => init.split());
});

Deno.test("clone is independent", () => {
  const { init, resp } = vectorPair();
  const msg1 = init.writeMessage(new Uint8Array(0));
  const copy = resp.clone();
  assert.ok(copy.readMessage(msg1));
  assert.equal(resp.isMyTurnToWrite, false);
  assert.equal(copy.isMyTurnToWrite, true);
  assert.ok(resp.readMessage(msg1));
  assert.deepEqual(resp.writeMessage(new Uint8Array(0)), copy.writeMessage(new Uint8Array(0)));
});

Deno.test("rekey is ENCRYPT(k, 2^64-1, empty, zeros) truncated", () => {
  const key = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  const next = noiseRekey(key);
  assert.equal(next.length, 32);
  const full = noiseEncrypt(key, 0xffff_ffff_ffff_ffffn, new Uint8Array(0), new Uint8Array(32));
  assert.equal(full.length, 48);
  assert.deepEqual(next, full.subarray(0, 32));
  assert.notDeepEqual(next, key);
  // Independent check of the nonce layout: 4 zero bytes, then the counter
  // as 64-bit little-endian (here all ones).
  const nonce = hex("00000000ffffffffffffffff");
  const direct = chacha20poly1305(key, nonce, new Uint8Array(0)).encrypt(new Uint8Array(32));
  assert.deepEqual(next, direct.subarray(0, 32));
  const nonce5 = hex("000000000500000000000000");
  assert.deepEqual(
    noiseEncrypt(key, 5n, Uint8Array.of(1), Uint8Array.of(2)),
    chacha20poly1305(key, nonce5, Uint8Array.of(1)).encrypt(Uint8Array.of(2)),
  );
});

Deno.test("noiseDecrypt never throws on garbage", () => {
  const key = new Uint8Array(32);
  assert.equal(noiseDecrypt(key, 0n, new Uint8Array(0), new Uint8Array(0)), undefined);
  assert.equal(noiseDecrypt(key, 0n, new Uint8Array(0), new Uint8Array(15)), undefined);
  assert.equal(noiseDecrypt(key, 0n, new Uint8Array(0), new Uint8Array(40)), undefined);
});
