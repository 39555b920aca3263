import assert from "node:assert/strict";
import fc from "fast-check";
import { ed25519 } from "@noble/curves/ed25519.js";
import { sign, verify } from "paseto-ts/v4";
import {
  encodePeerKey,
  issueLease,
  type LeaseClaims,
  leasePublicKeyFromBytes,
  leaseSecretKeyFromSeed,
  type LeaseVerifyResult,
  verifyLease,
} from "./lease.ts";

function hex(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

// ---------------------------------------------------------------------------
// Official PASETO v4.public test vectors, from paseto-standard/test-vectors,
// file v4.json (commit d26d2dd8d45d316a581032205cd131ab5c326aa9):
// https://github.com/paseto-standard/test-vectors/blob/master/v4.json
// All 4-S-* vectors share one key pair.
// ---------------------------------------------------------------------------
const V4_PUBLIC_KEY = hex("1eb9dbbbbc047c03fd70604e0071f0987e16b28b757225c11f00415d0e20b1a2");
const V4_SECRET_KEY = hex(
  "b4cbfb43df4ce210727d953e4a713307fa19bb7d9f85041438d9e11b942a3774" +
    "1eb9dbbbbc047c03fd70604e0071f0987e16b28b757225c11f00415d0e20b1a2",
);
const V4_SEED = hex("b4cbfb43df4ce210727d953e4a713307fa19bb7d9f85041438d9e11b942a3774");
const V4_PAYLOAD = '{"data":"this is a signed message","exp":"2022-01-01T00:00:00+00:00"}';
const V4_KID_FOOTER = '{"kid":"zVhMiPBP9fRf2snEcT7gFTioeA9COcNy9DfgL1W60haN"}';

const SIGN_VECTORS = [
  {
    name: "4-S-1",
    token:
      "v4.public.eyJkYXRhIjoidGhpcyBpcyBhIHNpZ25lZCBtZXNzYWdlIiwiZXhwIjoiMjAyMi0wMS0wMVQwMDowMDowMCswMDowMCJ9bg_XBBzds8lTZShVlwwKSgeKpLT3yukTw6JUz3W4h_ExsQV-P0V54zemZDcAxFaSeef1QlXEFtkqxT1ciiQEDA",
    footer: "",
    assertion: "",
  },
  {
    name: "4-S-2",
    token:
      "v4.public.eyJkYXRhIjoidGhpcyBpcyBhIHNpZ25lZCBtZXNzYWdlIiwiZXhwIjoiMjAyMi0wMS0wMVQwMDowMDowMCswMDowMCJ9v3Jt8mx_TdM2ceTGoqwrh4yDFn0XsHvvV_D0DtwQxVrJEBMl0F2caAdgnpKlt4p7xBnx1HcO-SPo8FPp214HDw.eyJraWQiOiJ6VmhNaVBCUDlmUmYyc25FY1Q3Z0ZUaW9lQTlDT2NOeTlEZmdMMVc2MGhhTiJ9",
    footer: V4_KID_FOOTER,
    assertion: "",
  },
  {
    name: "4-S-3",
    token:
      "v4.public.eyJkYXRhIjoidGhpcyBpcyBhIHNpZ25lZCBtZXNzYWdlIiwiZXhwIjoiMjAyMi0wMS0wMVQwMDowMDowMCswMDowMCJ9NPWciuD3d0o5eXJXG5pJy-DiVEoyPYWs1YSTwWHNJq6DZD3je5gf-0M4JR9ipdUSJbIovzmBECeaWmaqcaP0DQ.eyJraWQiOiJ6VmhNaVBCUDlmUmYyc25FY1Q3Z0ZUaW9lQTlDT2NOeTlEZmdMMVc2MGhhTiJ9",
    footer: V4_KID_FOOTER,
    assertion: '{"test-vector":"4-S-3"}',
  },
];

// expect-fail vectors of the same file that a v4.public verifier can be
// handed: the wrong purpose (4-F-1, v4.local), a v4.public token whose
// vector has only a symmetric key (4-F-2: must not verify under the 4-S key),
// and the wrong version (4-F-3, v3.local).
const FAIL_VECTORS = [
  {
    name: "4-F-1",
    token:
      "v4.local.vngXfCISbnKgiP6VWGuOSlYrFYU300fy9ijW33rznDYgxHNPwWluAY2Bgb0z54CUs6aYYkIJ-bOOOmJHPuX_34Agt_IPlNdGDpRdGNnBz2MpWJvB3cttheEc1uyCEYltj7wBQQYX.YXJiaXRyYXJ5LXN0cmluZy10aGF0LWlzbid0LWpzb24",
    assertion: '{"test-vector":"4-F-1"}',
  },
  {
    name: "4-F-2",
    token:
      "v4.public.eyJpbnZhbGlkIjoidGhpcyBzaG91bGQgbmV2ZXIgZGVjb2RlIn22Sp4gjCaUw0c7EH84ZSm_jN_Qr41MrgLNu5LIBCzUr1pn3Z-Wukg9h3ceplWigpoHaTLcwxj0NsI1vjTh67YB.eyJraWQiOiJ6VmhNaVBCUDlmUmYyc25FY1Q3Z0ZUaW9lQTlDT2NOeTlEZmdMMVc2MGhhTiJ9",
    assertion: '{"test-vector":"4-F-2"}',
  },
  {
    name: "4-F-3",
    token:
      "v3.local.23e_2PiqpQBPvRFKzB0zHhjmxK3sKo2grFZRRLM-U7L0a8uHxuF9RlVz3Ic6WmdUUWTxCaYycwWV1yM8gKbZB2JhygDMKvHQ7eBf8GtF0r3K0Q_gF1PXOxcOgztak1eD1dPe9rLVMSgR0nHJXeIGYVuVrVoLWQ.YXJiaXRyYXJ5LXN0cmluZy10aGF0LWlzbid0LWpzb24",
    assertion: '{"test-vector":"4-F-3"}',
  },
];

const VECTOR_SECRET = leaseSecretKeyFromSeed(V4_SEED, V4_PUBLIC_KEY);
const VECTOR_PUBLIC = leasePublicKeyFromBytes(V4_PUBLIC_KEY);

Deno.test("lease: key helpers reproduce the vector key pair", () => {
  assert.deepEqual(ed25519.getPublicKey(V4_SEED), V4_PUBLIC_KEY);
  const fromFull = `k4.secret.${btoa(String.fromCharCode(...V4_SECRET_KEY))}`
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  assert.equal(VECTOR_SECRET, fromFull);
  assert.throws(() => leaseSecretKeyFromSeed(V4_SEED, new Uint8Array(32)), RangeError);
  assert.throws(() => leaseSecretKeyFromSeed(new Uint8Array(31)), RangeError);
  assert.throws(() => leasePublicKeyFromBytes(new Uint8Array(33)), RangeError);
});

for (const v of SIGN_VECTORS) {
  Deno.test(`lease: PASETO vector ${v.name} signs and verifies with paseto-ts`, () => {
    const token = sign(VECTOR_SECRET, V4_PAYLOAD, {
      footer: v.footer,
      assertion: v.assertion,
      addExp: false,
      addIat: false,
      validatePayload: false,
    });
    assert.equal(token, v.token);
    const { payload, footer } = verify(VECTOR_PUBLIC, v.token, {
      assertion: v.assertion,
      validatePayload: false,
    });
    assert.deepEqual(payload, JSON.parse(V4_PAYLOAD));
    assert.deepEqual(footer, v.footer === "" ? "" : JSON.parse(v.footer));
    // A wrong implicit assertion breaks the signature.
    assert.throws(() =>
      verify(VECTOR_PUBLIC, v.token, { assertion: "wrong", validatePayload: false })
    );
  });
}

for (const v of FAIL_VECTORS) {
  Deno.test(`lease: PASETO expect-fail vector ${v.name} is rejected`, () => {
    assert.throws(() =>
      verify(VECTOR_PUBLIC, v.token, { assertion: v.assertion, validatePayload: false })
    );
    const r = verifyLease(v.token, VECTOR_PUBLIC, { relayId: "r", now: new Date(0) });
    assert.equal(r.ok, false);
  });
}

// ---------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------

const GATEWAY_SEED = new Uint8Array(32).map((_, i) => i + 1);
const GATEWAY_SECRET = leaseSecretKeyFromSeed(GATEWAY_SEED);
const GATEWAY_PUBLIC = leasePublicKeyFromBytes(ed25519.getPublicKey(GATEWAY_SEED));
const OTHER_SEED = new Uint8Array(32).fill(0x42);
const OTHER_SECRET = leaseSecretKeyFromSeed(OTHER_SEED);

const HOST = encodePeerKey(ed25519.getPublicKey(new Uint8Array(32).fill(1)));
const CLIENT = encodePeerKey(ed25519.getPublicKey(new Uint8Array(32).fill(2)));

const T0 = new Date("2030-05-01T12:00:00.000Z");
const CLAIMS: LeaseClaims = {
  sessionId: "sess-7f3a",
  peers: [HOST, CLIENT],
  relayId: "relay-eu-1",
  notBefore: T0,
  expiresAt: new Date(T0.getTime() + 3600_000),
  bandwidthBps: 25_000_000,
  issuer: "gateway-1",
};

function at(ms: number): Date {
  return new Date(T0.getTime() + ms);
}

function expectKind(r: LeaseVerifyResult, kind: string): void {
  if (r.ok) assert.fail(`expected ${kind}, got ok`);
  assert.equal(r.kind, kind, r.detail);
}

Deno.test("lease: a valid lease verifies and round-trips its claims", () => {
  const token = issueLease(GATEWAY_SECRET, CLAIMS);
  assert.ok(token.startsWith("v4.public."));
  assert.equal(issueLease(GATEWAY_SECRET, CLAIMS), token); // deterministic
  const r = verifyLease(token, GATEWAY_PUBLIC, { relayId: "relay-eu-1", now: at(60_000) });
  if (!r.ok) assert.fail(r.detail);
  assert.deepEqual(r.claims, { ...CLAIMS, issuedAt: T0 });
  // The payload is plain PASETO: any v4 implementation can read it.
  const { payload } = verify(GATEWAY_PUBLIC, token, { validatePayload: false });
  assert.deepEqual(Object.keys(payload), ["iss", "sid", "peers", "rid", "bw", "iat", "nbf", "exp"]);
  assert.equal(payload.exp, "2030-05-01T13:00:00.000Z");
  assert.equal(payload.bw, 25_000_000);
});

Deno.test("lease: signed by another key is LeaseForged", () => {
  const token = issueLease(OTHER_SECRET, CLAIMS);
  expectKind(
    verifyLease(token, GATEWAY_PUBLIC, { relayId: "relay-eu-1", now: at(0) }),
    "LeaseForged",
  );
});

Deno.test("lease: tampered payload or signature is LeaseForged", () => {
  const token = issueLease(GATEWAY_SECRET, CLAIMS);
  const body = token.slice("v4.public.".length);
  const raw = Uint8Array.from(
    atob(body.replace(/-/g, "+").replace(/_/g, "/")),
    (c) => c.charCodeAt(0),
  );
  const enc = (b: Uint8Array) =>
    "v4.public." +
    btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  // Change the relay id inside the signed JSON to the one we want to reach.
  const json = new TextDecoder().decode(raw.subarray(0, raw.length - 64));
  const forgedJson = json.replace("relay-eu-1", "relay-eu-2");
  const forged = new Uint8Array([
    ...new TextEncoder().encode(forgedJson),
    ...raw.subarray(raw.length - 64),
  ]);
  expectKind(
    verifyLease(enc(forged), GATEWAY_PUBLIC, { relayId: "relay-eu-2", now: at(0) }),
    "LeaseForged",
  );
  for (const i of [0, 10, raw.length - 64, raw.length - 1]) {
    const t = raw.slice();
    t[i] ^= 0x04;
    const r = verifyLease(enc(t), GATEWAY_PUBLIC, { relayId: "relay-eu-1", now: at(0) });
    assert.equal(r.ok, false, `byte ${i}`);
    if (!r.ok) assert.ok(r.kind === "LeaseForged" || r.kind === "LeaseMalformed");
  }
  // Appending a footer is refused.
  expectKind(
    verifyLease(token + ".e30", GATEWAY_PUBLIC, { relayId: "relay-eu-1", now: at(0) }),
    "LeaseMalformed",
  );
});

Deno.test("lease: expiry and not-before honour the clock skew", () => {
  const token = issueLease(GATEWAY_SECRET, CLAIMS);
  const v = (ms: number, skew?: number) =>
    verifyLease(token, GATEWAY_PUBLIC, {
      relayId: "relay-eu-1",
      now: at(ms),
      clockSkewMs: skew,
    });
  assert.ok(v(0, 0).ok);
  assert.ok(v(3600_000 - 1, 0).ok);
  expectKind(v(3600_000, 0), "LeaseExpired");
  expectKind(v(-1, 0), "LeaseNotYetValid");
  // default skew is 30 s
  assert.ok(v(-30_000).ok);
  expectKind(v(-30_001), "LeaseNotYetValid");
  assert.ok(v(3600_000 + 29_999).ok);
  expectKind(v(3600_000 + 30_000), "LeaseExpired");
  expectKind(v(86_400_000), "LeaseExpired");
});

Deno.test("lease: another relay's lease is LeaseWrongRelay", () => {
  const token = issueLease(GATEWAY_SECRET, CLAIMS);
  expectKind(
    verifyLease(token, GATEWAY_PUBLIC, { relayId: "relay-us-1", now: at(0) }),
    "LeaseWrongRelay",
  );
});

Deno.test("lease: signed but ill-typed claims are LeaseMalformed", () => {
  const bad = [
    { ...JSON.parse('{"iss":"g","sid":"s","rid":"relay-eu-1","bw":1}'), peers: [HOST] },
    { iss: "g", sid: "s", rid: "relay-eu-1", bw: "fast", peers: [HOST, CLIENT] },
    { iss: "g", sid: "s", rid: "relay-eu-1", bw: 1, peers: [HOST, "not-a-key"] },
  ];
  for (const p of bad) {
    const payload = JSON.stringify({
      ...p,
      iat: T0.toISOString(),
      nbf: T0.toISOString(),
      exp: at(1000).toISOString(),
    });
    const token = sign(GATEWAY_SECRET, payload, {
      addExp: false,
      addIat: false,
      validatePayload: false,
    });
    expectKind(
      verifyLease(token, GATEWAY_PUBLIC, { relayId: "relay-eu-1", now: at(0) }),
      "LeaseMalformed",
    );
  }
  const noExp = sign(
    GATEWAY_SECRET,
    JSON.stringify({ iss: "g", sid: "s", rid: "relay-eu-1", bw: 1, peers: [HOST, CLIENT] }),
    { addExp: false, addIat: false, validatePayload: false },
  );
  expectKind(
    verifyLease(noExp, GATEWAY_PUBLIC, { relayId: "relay-eu-1", now: at(0) }),
    "LeaseMalformed",
  );
});

Deno.test("lease: garbage strings are LeaseMalformed", () => {
  const opts = { relayId: "relay-eu-1", now: at(0) };
  for (
    const s of [
      "",
      "v4.public.",
      "v4.public.!!!!",
      "v4.public.AAAA",
      "v4.local.AAAA",
      "v2.public." + "A".repeat(200),
      "x".repeat(10_000),
    ]
  ) {
    expectKind(verifyLease(s, GATEWAY_PUBLIC, opts), "LeaseMalformed");
  }
  expectKind(
    verifyLease(issueLease(GATEWAY_SECRET, CLAIMS), "k4.public.nope", opts),
    "LeaseMalformed",
  );
  expectKind(verifyLease(42 as unknown as string, GATEWAY_PUBLIC, opts), "LeaseMalformed");
});

Deno.test("lease: property: verifyLease never throws", () => {
  const token = issueLease(GATEWAY_SECRET, CLAIMS);
  const opts = { relayId: "relay-eu-1", now: at(0) };
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ maxLength: 300 }),
        fc.string({ maxLength: 300 }).map((s) => "v4.public." + s),
        fc.base64String({ maxLength: 400 }).map((s) =>
          "v4.public." + s.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")
        ),
        fc.tuple(fc.nat({ max: token.length - 1 }), fc.string({ minLength: 1, maxLength: 1 })).map((
          [i, c],
        ) => token.slice(0, i) + c + token.slice(i + 1)),
      ),
      (s) => {
        const r = verifyLease(s, GATEWAY_PUBLIC, opts);
        if (s !== token) assert.equal(r.ok, false);
        // The catch-all in verifyLease must never be what caught it.
        if (!r.ok) assert.ok(!r.detail.startsWith("unexpected error"), r.detail);
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("lease: issueLease rejects invalid claims", () => {
  assert.throws(() => issueLease(GATEWAY_SECRET, { ...CLAIMS, sessionId: "" }), TypeError);
  assert.throws(
    () => issueLease(GATEWAY_SECRET, { ...CLAIMS, peers: [HOST, "zz"] }),
    TypeError,
  );
  assert.throws(() => issueLease(GATEWAY_SECRET, { ...CLAIMS, bandwidthBps: 0 }), TypeError);
  assert.throws(() => issueLease(GATEWAY_SECRET, { ...CLAIMS, expiresAt: T0 }), TypeError);
  assert.throws(
    () => issueLease(GATEWAY_SECRET, { ...CLAIMS, notBefore: new Date(NaN) }),
    TypeError,
  );
});
