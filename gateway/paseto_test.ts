import assert from "node:assert/strict";
import fc from "fast-check";
import { sign, verify } from "paseto-ts/v4";
import { generateIdentity } from "../crypto/identity.ts";
import { leasePublicKeyFromBytes, leaseSecretKeyFromSeed } from "../crypto/lease.ts";
import { importV4Keys, pae, signV4Public, verifyV4Public } from "./paseto.ts";

const id = generateIdentity();
const secret = leaseSecretKeyFromSeed(id.secretKey);
const paserkPublic = leasePublicKeyFromBytes(id.publicKey);
const keys = await importV4Keys(secret);

Deno.test("PAE matches the PASETO spec examples", () => {
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  assert.equal(hex(pae([])), "0000000000000000");
  assert.equal(hex(pae([new Uint8Array(0)])), "01000000000000000000000000000000");
  assert.equal(
    hex(pae([new TextEncoder().encode("test")])),
    "0100000000000000040000000000000074657374",
  );
});

Deno.test("WebCrypto v4.public tokens and paseto-ts tokens verify with each other", async () => {
  await fc.assert(
    fc.asyncProperty(
      // Keys and values drawn from what session claims contain (base64url keys, ISO
      // dates, kinds). paseto-ts refuses some valid JSON, e.g. {"":"}"} (its
      // depth check counts braces inside strings), so braces are left out.
      fc.dictionary(
        fc.stringMatching(/^[A-Za-z0-9_.:-]{0,8}$/),
        fc.stringMatching(/^[A-Za-z0-9_.:+ -]{0,40}$/),
        { maxKeys: 5 },
      ),
      fc.string({ maxLength: 30 }),
      async (obj, assertion) => {
        const payload = JSON.stringify(obj);
        const ours = await signV4Public(keys.privateKey, payload, assertion);
        const theirs = verify(paserkPublic, ours, { assertion, validatePayload: false });
        assert.deepEqual(theirs.payload, JSON.parse(payload));
        const byThem = sign(secret, payload, {
          assertion,
          addExp: false,
          addIat: false,
          validatePayload: false,
        });
        assert.equal(byThem, ours, "Ed25519 is deterministic: the same token");
        assert.equal(await verifyV4Public(keys.publicKey, byThem, assertion), payload);
      },
    ),
    { numRuns: 50 },
  );
});

Deno.test("v4.public verification refuses tampering, other assertions, other keys, footers", async () => {
  const token = await signV4Public(keys.privateKey, '{"a":1}', "ctx");
  assert.equal(await verifyV4Public(keys.publicKey, token, "ctx"), '{"a":1}');
  assert.equal(await verifyV4Public(keys.publicKey, token, "other"), undefined);
  const other = await importV4Keys(leaseSecretKeyFromSeed(generateIdentity().secretKey));
  assert.equal(await verifyV4Public(other.publicKey, token, "ctx"), undefined);
  assert.equal(await verifyV4Public(keys.publicKey, token + ".Zm9v", "ctx"), undefined);
  assert.equal(await verifyV4Public(keys.publicKey, token.replace("v4.", "v3."), "ctx"), undefined);
  await fc.assert(
    fc.asyncProperty(
      fc.nat(token.length - 11),
      fc.constantFrom(..."ABCabc019-_"),
      async (i, ch) => {
        const pos = 10 + i;
        fc.pre(token[pos] !== ch);
        const t = token.slice(0, pos) + ch + token.slice(pos + 1);
        assert.equal(await verifyV4Public(keys.publicKey, t, "ctx"), undefined);
      },
    ),
    { numRuns: 200 },
  );
  await assert.rejects(importV4Keys("k4.secret.short"), TypeError);
});
