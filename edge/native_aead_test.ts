import assert from "node:assert/strict";
import fc from "fast-check";
import { createAead } from "../crypto/aead.ts";
import { PacketProtector } from "../crypto/transport.ts";
import { useNativeAead } from "./native_aead.ts";
import { checkBatchBackend } from "../crypto/aead_batch_testing.ts";

Deno.test("native AEAD: registers, and equals the RFC-8439-verified noble backend byte for byte", () => {
  assert.equal(useNativeAead(), true, "the shim's aead module loads (./wavry builds it)");
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 12, maxLength: 12 }),
      fc.uint8Array({ maxLength: 64 }),
      fc.uint8Array({ maxLength: 1500 }),
      (key, nonce, ad, plaintext) => {
        const native = createAead(key, "native");
        const noble = createAead(key, "noble");
        const sealed = native.seal(nonce, plaintext, ad);
        assert.deepEqual(sealed, noble.seal(nonce, plaintext, ad));
        assert.deepEqual(native.open(nonce, sealed, ad), plaintext);
        assert.deepEqual(noble.open(nonce, sealed, ad), plaintext);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("native AEAD: any tampering, a wrong key or a short input yields undefined", () => {
  assert.ok(useNativeAead());
  const key = new Uint8Array(32).fill(3);
  const nonce = new Uint8Array(12).fill(4);
  const ad = Uint8Array.of(1, 2, 3);
  const aead = createAead(key, "native");
  const sealed = aead.seal(nonce, new Uint8Array(100).fill(7), ad);
  for (let i = 0; i < sealed.length; i += 7) {
    const bad = sealed.slice();
    bad[i] ^= 1;
    assert.equal(aead.open(nonce, bad, ad), undefined, `byte ${i}`);
  }
  assert.equal(aead.open(nonce, sealed, Uint8Array.of(1, 2)), undefined);
  assert.equal(createAead(new Uint8Array(32), "native").open(nonce, sealed, ad), undefined);
  assert.equal(aead.open(nonce, sealed.subarray(0, 15), ad), undefined);
});

Deno.test("native AEAD: a packet sealed with one backend opens with the other (mixed peers)", () => {
  assert.ok(useNativeAead());
  const keys = { sendKey: new Uint8Array(32).fill(1), recvKey: new Uint8Array(32).fill(2) };
  const peer = { sendKey: keys.recvKey, recvKey: keys.sendKey };
  const a = new PacketProtector(keys, 0, { backend: "native" });
  const b = new PacketProtector(peer, 0, { backend: "node" });
  const header = new Uint8Array(16).fill(9);
  const sealed = a.seal((_pn, _ph, out) => out.set(header), new Uint8Array(1000).fill(5), 0);
  assert.ok(sealed.ok);
  const opened = b.open(header, 0, 0, sealed.datagram.subarray(16), 0);
  assert.ok(opened.ok);
  assert.deepEqual(opened.plaintext, new Uint8Array(1000).fill(5));
});

Deno.test("native AEAD: one-call sealBatch equals N single seals; openBatch rejects only the tampered packet", () => {
  assert.ok(useNativeAead());
  checkBatchBackend("native", 200);
});
