import assert from "node:assert/strict";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { type AeadBackend, createAead, nonceFromCounter } from "./aead.ts";
import {
  DEFAULT_TRANSPORT_CONFIG,
  deriveLaneKeys,
  HEADER_LENGTH,
  MEDIA_LANE_LABEL,
  type OpenResult,
  PacketProtector,
  type TransportConfig,
} from "./transport.ts";

// A stand-in for the RIFT header codec of core/: byte 0 carries the key phase
// in bit 2, bytes 8..15 the packet number (big-endian); the rest is filler.
function headerFor(pn: number, phase: 0 | 1): Uint8Array {
  const h = new Uint8Array(HEADER_LENGTH);
  writeHeader(pn, phase, h);
  return h;
}

function writeHeader(pn: number, phase: 0 | 1, h: Uint8Array): void {
  h[0] = 0x40 | (phase << 2);
  h[1] = 0xaa;
  new DataView(h.buffer, h.byteOffset, h.byteLength).setBigUint64(8, BigInt(pn));
}

function parse(datagram: Uint8Array): {
  header: Uint8Array;
  pn: number;
  phase: 0 | 1;
  sealed: Uint8Array;
} {
  const header = datagram.subarray(0, HEADER_LENGTH);
  const pn = Number(new DataView(header.buffer, header.byteOffset).getBigUint64(8));
  const phase = ((header[0] >> 2) & 1) as 0 | 1;
  return { header, pn, phase, sealed: datagram.subarray(HEADER_LENGTH) };
}

const K1 = new Uint8Array(32).fill(0x11);
const K2 = new Uint8Array(32).fill(0x22);

function pair(
  config: Partial<TransportConfig> = {},
  now = 0,
): { a: PacketProtector; b: PacketProtector } {
  return {
    a: new PacketProtector({ sendKey: K1, recvKey: K2 }, now, { minRekeyIntervalMs: 0, ...config }),
    b: new PacketProtector({ sendKey: K2, recvKey: K1 }, now, { minRekeyIntervalMs: 0, ...config }),
  };
}

function sealOk(p: PacketProtector, text: string, now: number): Uint8Array {
  const r = p.seal(writeHeader, new TextEncoder().encode(text), now);
  assert.ok(r.ok);
  return r.datagram;
}

function openDatagram(p: PacketProtector, d: Uint8Array, now: number): OpenResult {
  const { header, pn, phase, sealed } = parse(d);
  return p.open(header, pn, phase, sealed, now);
}

function openCommit(p: PacketProtector, d: Uint8Array, now: number): string {
  const r = openDatagram(p, d, now);
  if (!r.ok) assert.fail(`open failed: ${r.kind}`);
  r.commit();
  return new TextDecoder().decode(r.plaintext);
}

function expectError(r: OpenResult, kind: string): void {
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.kind, kind);
}

/** Reference Noise Rekey, written independently of transport.ts. */
function referenceRekey(k: Uint8Array): Uint8Array {
  const nonce = new Uint8Array(12);
  nonce.fill(0xff, 4);
  return chacha20poly1305(k, nonce, new Uint8Array(0)).encrypt(new Uint8Array(32))
    .slice(0, 32);
}

for (const backend of ["noble", "node"] as AeadBackend[]) {
  Deno.test(`transport[${backend}]: round trip both directions`, () => {
    const { a, b } = pair({ backend });
    for (let i = 0; i < 5; i++) {
      const d = sealOk(a, `a->b ${i}`, 0);
      assert.equal(d.length, HEADER_LENGTH + `a->b ${i}`.length + 16);
      assert.equal(parse(d).pn, i);
      assert.equal(openCommit(b, d, 0), `a->b ${i}`);
      assert.equal(openCommit(a, sealOk(b, `b->a ${i}`, 0), 0), `b->a ${i}`);
    }
    assert.deepEqual(a.stats, { sealed: 5, opened: 5, rekeys: 0, receiveKeyRotations: 0 });
  });
}

Deno.test("transport: wire format is header || AEAD(pn nonce, AD = header)", () => {
  const { a } = pair();
  sealOk(a, "zero", 0);
  const d = sealOk(a, "one", 0);
  const { header, sealed } = parse(d);
  assert.deepEqual(header, headerFor(1, 0));
  const plain = createAead(K1, "noble").open(nonceFromCounter(1), sealed, header);
  assert.ok(plain);
  assert.equal(new TextDecoder().decode(plain), "one");
});

Deno.test("transport: replayed packet is rejected", () => {
  const { a, b } = pair();
  const d = sealOk(a, "hello", 0);
  assert.equal(openCommit(b, d, 0), "hello");
  expectError(openDatagram(b, d, 0), "Replayed");
  assert.equal(b.stats.opened, 1);
});

Deno.test("transport: reordering within the window is accepted", () => {
  const { a, b } = pair();
  const ds = Array.from({ length: 100 }, (_, i) => sealOk(a, `m${i}`, 0));
  const order = [...ds.keys()].reverse();
  for (const i of order) assert.equal(openCommit(b, ds[i], 0), `m${i}`);
  for (const i of order) expectError(openDatagram(b, ds[i], 0), "Replayed");
});

Deno.test("transport: packet older than the window is TooOld", () => {
  const { a, b } = pair({ replayWindow: 2048 });
  const first = sealOk(a, "old", 0);
  for (let i = 1; i < 2048; i++) sealOk(a, "x", 0);
  const last = sealOk(a, "new", 0); // pn 2048
  assert.equal(openCommit(b, last, 0), "new");
  expectError(openDatagram(b, first, 0), "TooOld");
});

Deno.test("transport: tampered header or ciphertext is Unauthenticated", () => {
  const { a, b } = pair();
  const d = sealOk(a, "payload", 0);
  for (const i of [1, 5, HEADER_LENGTH, HEADER_LENGTH + 3, d.length - 1]) {
    const t = d.slice();
    t[i] ^= 0x01;
    expectError(openDatagram(b, t, 0), "Unauthenticated");
  }
  // A different packet number than the one sealed (the nonce) fails too.
  const { header, phase, sealed } = parse(d);
  expectError(b.open(header, 1, phase, sealed, 0), "Unauthenticated");
  // Truncated input and a short header never throw.
  expectError(b.open(header, 0, phase, sealed.subarray(0, 10), 0), "Unauthenticated");
  expectError(b.open(header.subarray(0, 8), 0, phase, sealed, 0), "Unauthenticated");
  // Failed attempts left no trace: the genuine packet still opens.
  assert.equal(openCommit(b, d, 0), "payload");
});

Deno.test("transport: nothing changes until commit is called", () => {
  const { a, b } = pair();
  const d = sealOk(a, "maybe", 0);
  for (let i = 0; i < 3; i++) {
    const r = openDatagram(b, d, 0);
    assert.ok(r.ok);
    assert.equal(new TextDecoder().decode(r.plaintext), "maybe");
  }
  assert.equal(b.stats.opened, 0);
  const r = openDatagram(b, d, 0);
  assert.ok(r.ok);
  r.commit();
  r.commit(); // idempotent
  assert.equal(b.stats.opened, 1);
  expectError(openDatagram(b, d, 0), "Replayed");
});

Deno.test("transport: sender rekeys by packet count and flips the phase", () => {
  const { a, b } = pair({ rekeyAfterPackets: 4 });
  const phases: number[] = [];
  for (let i = 0; i < 10; i++) {
    const d = sealOk(a, `p${i}`, 0);
    phases.push(parse(d).phase);
    assert.equal(openCommit(b, d, 0), `p${i}`);
  }
  assert.deepEqual(phases, [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]);
  assert.equal(a.stats.rekeys, 2);
  assert.equal(b.stats.receiveKeyRotations, 2);
  // The second key is exactly Noise Rekey of the first.
  const fresh = new PacketProtector({ sendKey: K1, recvKey: K2 }, 0, {
    rekeyAfterPackets: 1,
    minRekeyIntervalMs: 0,
  });
  sealOk(fresh, "k0", 0);
  const d = sealOk(fresh, "k1", 0);
  const { header, sealed } = parse(d);
  const plain = createAead(referenceRekey(K1), "noble").open(nonceFromCounter(1), sealed, header);
  assert.equal(new TextDecoder().decode(plain!), "k1");
});

Deno.test("transport: sender rekeys by time", () => {
  const { a, b } = pair({ rekeyAfterMs: 1000 }, 5_000);
  assert.equal(parse(sealOk(a, "t0", 5_000)).phase, 0);
  assert.equal(parse(sealOk(a, "t1", 5_999)).phase, 0);
  const d = sealOk(a, "t2", 6_000);
  assert.equal(parse(d).phase, 1);
  assert.equal(parse(sealOk(a, "t3", 6_999)).phase, 1);
  assert.equal(parse(sealOk(a, "t4", 7_000)).phase, 0);
  assert.equal(a.stats.rekeys, 2);
  assert.equal(openCommit(b, d, 6_000), "t2");
  assert.equal(b.stats.receiveKeyRotations, 1);
});

Deno.test("transport: reordering across a key update is accepted", () => {
  const { a, b } = pair({ rekeyAfterPackets: 5 });
  const ds = Array.from({ length: 10 }, (_, i) => sealOk(a, `r${i}`, 0));
  assert.deepEqual(ds.map((d) => parse(d).phase), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
  // New-phase packets overtake old-phase ones.
  const order = [0, 1, 6, 2, 5, 3, 8, 4, 9, 7];
  for (const i of order) assert.equal(openCommit(b, ds[i], 100), `r${i}`);
  assert.equal(b.stats.receiveKeyRotations, 1);
  assert.equal(b.stats.opened, 10);
});

Deno.test("transport: previous key is dropped after the retention time", () => {
  const { a, b } = pair({ rekeyAfterPackets: 2, previousKeyRetentionMs: 3000 });
  const ds = Array.from({ length: 4 }, (_, i) => sealOk(a, `q${i}`, 0));
  assert.equal(openCommit(b, ds[2], 1000), "q2"); // rotates at t=1000
  assert.equal(openCommit(b, ds[0], 4000), "q0"); // still within 3 s
  expectError(openDatagram(b, ds[1], 4001), "Unauthenticated");
  assert.equal(openCommit(b, ds[3], 4001), "q3");
});

Deno.test("transport: a forged packet with the other phase bit does not rotate", () => {
  const { a, b } = pair();
  assert.equal(openCommit(b, sealOk(a, "first", 0), 0), "first");
  const d = sealOk(a, "second", 0);
  const forgedHeader = headerFor(1, 1);
  const { sealed } = parse(d);
  const r = b.open(forgedHeader, 1, 1, sealed, 0);
  expectError(r, "Unauthenticated");
  // Random garbage with the other phase bit, high packet number.
  const junk = new Uint8Array(40).fill(7);
  expectError(b.open(headerFor(500, 1), 500, 1, junk, 0), "Unauthenticated");
  assert.equal(b.stats.receiveKeyRotations, 0);
  assert.equal(openCommit(b, d, 0), "second");
  assert.equal(b.stats.receiveKeyRotations, 0);
});

Deno.test("transport: an uncommitted next-key packet does not rotate", () => {
  const { a, b } = pair({
    rekeyAfterPackets: 1,
    minRekeyIntervalMs: 0,
  });
  const d0 = sealOk(a, "p0", 0);
  const d1 = sealOk(a, "p1", 0); // phase 1
  const r = openDatagram(b, d1, 0);
  assert.ok(r.ok); // not committed
  assert.equal(b.stats.receiveKeyRotations, 0);
  assert.equal(openCommit(b, d0, 0), "p0");
  assert.equal(openCommit(b, d1, 0), "p1");
  assert.equal(b.stats.receiveKeyRotations, 1);
});

Deno.test("transport: refuses to seal past the packet number limit", () => {
  const p = new PacketProtector({ sendKey: K1, recvKey: K2 }, 0, { maxPacketNumber: 2 });
  for (let i = 0; i <= 2; i++) assert.ok(p.seal(writeHeader, new Uint8Array(1), 0).ok);
  let calls = 0;
  const r = p.seal(
    () => {
      calls++;
    },
    new Uint8Array(1),
    0,
  );
  assert.deepEqual(r, { ok: false, kind: "Exhausted" });
  assert.equal(calls, 0);
  assert.equal(p.stats.sealed, 3);
  // The default limit is the largest counter a nonce can carry.
  assert.equal(DEFAULT_TRANSPORT_CONFIG.maxPacketNumber, 2 ** 53 - 1);
  assert.equal(nonceFromCounter(2 ** 53 - 1).length, 12);
  assert.throws(() => nonceFromCounter(2 ** 53), RangeError);
  assert.throws(() => pair({ maxPacketNumber: 2 ** 53 }), RangeError);
});

Deno.test("transport: config validation and defaults", () => {
  assert.equal(DEFAULT_TRANSPORT_CONFIG.rekeyAfterPackets, 2 ** 30);
  assert.equal(DEFAULT_TRANSPORT_CONFIG.rekeyAfterMs, 120_000);
  assert.equal(DEFAULT_TRANSPORT_CONFIG.replayWindow, 2048);
  assert.equal(DEFAULT_TRANSPORT_CONFIG.previousKeyRetentionMs, 3_000);
  assert.throws(() => pair({ rekeyAfterPackets: 0 }), RangeError);
  assert.throws(() => pair({ rekeyAfterMs: -1 }), RangeError);
  assert.throws(
    () => new PacketProtector({ sendKey: new Uint8Array(16), recvKey: K2 }, 0),
    RangeError,
  );
});

Deno.test("transport: a packet-count rekey waits for the minimum interval", () => {
  const { a, b } = pair({ rekeyAfterPackets: 4, minRekeyIntervalMs: 1_000 });
  // 40 packets in one instant: still one phase, so any reordering among them is harmless.
  const burst = Array.from({ length: 40 }, (_, i) => sealOk(a, `p${i}`, 10));
  assert.equal(a.stats.rekeys, 0);
  assert.deepEqual(
    burst.reverse().map((d) => openCommit(b, d, 10)),
    Array.from({ length: 40 }, (_, i) => `p${39 - i}`),
  );
  // Once the interval has passed, the next packet starts a new phase.
  const later = sealOk(a, "later", 1_010);
  assert.equal(a.stats.rekeys, 1);
  assert.equal(openCommit(b, later, 1_010), "later");
  assert.equal(b.stats.receiveKeyRotations, 1);
});

Deno.test("lane keys: independent of the session keys, and each side's send key is the other's receive key", () => {
  const a = { sendKey: new Uint8Array(32).fill(1), recvKey: new Uint8Array(32).fill(2) };
  const b = { sendKey: a.recvKey, recvKey: a.sendKey };
  const laneA = deriveLaneKeys(a, MEDIA_LANE_LABEL);
  const laneB = deriveLaneKeys(b, MEDIA_LANE_LABEL);
  assert.deepEqual(laneA.sendKey, laneB.recvKey);
  assert.deepEqual(laneA.recvKey, laneB.sendKey);
  assert.notDeepEqual(laneA.sendKey, a.sendKey);
  assert.notDeepEqual(laneA.sendKey, laneA.recvKey);
  assert.notDeepEqual(deriveLaneKeys(a, "other").sendKey, laneA.sendKey);
  // A packet sealed under the session key does not open under the lane key.
  const session = new PacketProtector(a, 0);
  const lane = new PacketProtector(laneB, 0);
  const header = new Uint8Array(16);
  const sealed = session.seal((_pn, _phase, out) => out.set(header), new Uint8Array(10), 0);
  assert.ok(sealed.ok);
  const opened = lane.open(sealed.datagram.subarray(0, 16), 0, 0, sealed.datagram.subarray(16), 0);
  assert.equal(opened.ok, false);
});
