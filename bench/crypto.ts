/**
 * RIFT packet protection throughput against the bare AEAD, per backend.
 *
 *   deno run -A bench/crypto.ts [--seconds S]
 *
 * For 1200-byte datagrams (one full video fragment) it measures, in one
 * process and interleaved rounds so both sides see the same machine state:
 * - the RIFT data path: frame encoding, header, packet number, key phase and
 *   seal; then header split, replay check, open, frame decoding and commit;
 * - the bare ChaCha20-Poly1305 call on the same plaintext size;
 * for both AEAD backends (@noble/ciphers and node:crypto's native one), plus
 * full Noise_XX handshakes with identity proofs per second.
 * Last line: `seal_pps=N open_pps=N bare_seal_pps=N overhead_ratio=R handshakes_per_s=N`
 * for the default backend.
 */
import {
  type AeadBackend,
  createAead,
  DEFAULT_AEAD_BACKEND,
  nonceFromCounter,
} from "../crypto/aead.ts";
import { RiftHandshake } from "../crypto/handshake.ts";
import { generateIdentity } from "../crypto/identity.ts";
import { PacketProtector } from "../crypto/transport.ts";
import { decodeFrames, encodeFrames, type Frame, maxVideoPayload } from "../core/frames.ts";
import {
  DEFAULT_MAX_DATAGRAM,
  encodeHeader,
  keyPhaseOf,
  PacketType,
  RIFT_VERSION,
  splitSealed,
} from "../core/wire.ts";

const i = Deno.args.indexOf("--seconds");
const seconds = i >= 0 ? Number(Deno.args[i + 1]) : 1;
const ROUNDS = 5;
const slice = (seconds * 1000) / ROUNDS;

/** Runs `op` repeatedly for `ms` and returns operations per second. */
function rate(ms: number, op: () => void): number {
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let k = 0; k < 64; k++) op();
    n += 64;
    now = performance.now();
  }
  return (n * 1000) / (now - start);
}

const key = crypto.getRandomValues(new Uint8Array(32));
const fragment: Frame = {
  type: "video",
  frameId: 1,
  fragmentIndex: 0,
  fragmentCount: 1,
  captureTimeUs: 0,
  keyframe: false,
  data: crypto.getRandomValues(new Uint8Array(maxVideoPayload(DEFAULT_MAX_DATAGRAM))),
};

function dataPath(backend: AeadBackend) {
  const sender = new PacketProtector({ sendKey: key, recvKey: key }, 0, { backend });
  const newReceiver = () => new PacketProtector({ sendKey: key, recvKey: key }, 0, { backend });
  const writeHeader = (packetNumber: number, keyPhase: 0 | 1) =>
    encodeHeader({
      version: RIFT_VERSION,
      type: PacketType.Sealed,
      flags: keyPhase,
      connectionId: 7,
      packetNumber,
    });
  const seal = (): Uint8Array => {
    const sealed = sender.seal(writeHeader, encodeFrames([fragment]), 0);
    if (!sealed.ok) throw new Error("seal failed");
    return sealed.datagram;
  };
  // Pre-seal one batch for the open side, outside the timed loop, so it measures only
  // receive work; a fresh receiver per pass over the batch keeps the replay window honest.
  const batch: Uint8Array[] = [];
  for (let k = 0; k < 8192; k++) batch.push(seal());
  let receiver = newReceiver();
  let next = 0;
  const open = (): void => {
    if (next === batch.length) {
      receiver = newReceiver();
      next = 0;
    }
    const datagram = batch[next++];
    const split = splitSealed(datagram);
    if (!split.ok) throw new Error("split failed");
    const { header, headerBytes, sealed } = split.value;
    const opened = receiver.open(headerBytes, header.packetNumber, keyPhaseOf(header), sealed, 0);
    if (!opened.ok) throw new Error(`open failed: ${opened.kind}`);
    const frames = decodeFrames(opened.plaintext);
    if (!frames.ok) throw new Error("decode failed");
    opened.commit();
  };
  return { seal, open };
}

function bare(backend: AeadBackend) {
  const aead = createAead(key, backend);
  const plaintext = encodeFrames([fragment]);
  const ad = new Uint8Array(16);
  const nonce = new Uint8Array(12);
  let counter = 0;
  const sealed = aead.seal(nonceFromCounter(0, nonce), plaintext, ad);
  return {
    seal: () => {
      aead.seal(nonceFromCounter(counter++, nonce), plaintext, ad);
    },
    open: () => {
      if (aead.open(nonceFromCounter(0, nonce), sealed, ad) === undefined) throw new Error("open");
    },
  };
}

function handshake(): void {
  const a = RiftHandshake.initiator({ identity: idA, localConnectionId: 1 });
  const b = RiftHandshake.responder({ identity: idB, localConnectionId: 2 });
  b.readNext(a.writeNext());
  a.readNext(b.writeNext());
  const r = b.readNext(a.writeNext());
  if (!r.ok || !a.isComplete || !b.isComplete) throw new Error("handshake failed");
}
const idA = generateIdentity();
const idB = generateIdentity();

const backends: AeadBackend[] = ["noble", "node"];
const results = new Map<
  AeadBackend,
  { seal: number[]; open: number[]; bareSeal: number[]; bareOpen: number[] }
>();
for (const b of backends) results.set(b, { seal: [], open: [], bareSeal: [], bareOpen: [] });
const handshakes: number[] = [];

// Warm up every path, then interleave rounds so drift hits all sides alike.
for (const b of backends) {
  const d = dataPath(b);
  const x = bare(b);
  rate(50, d.seal);
  rate(50, d.open);
  rate(50, x.seal);
  rate(50, x.open);
}
rate(50, handshake);
for (let round = 0; round < ROUNDS; round++) {
  for (const b of backends) {
    const r = results.get(b)!;
    const d = dataPath(b);
    const x = bare(b);
    r.seal.push(rate(slice / 4, d.seal));
    r.bareSeal.push(rate(slice / 4, x.seal));
    r.open.push(rate(slice / 4, d.open));
    r.bareOpen.push(rate(slice / 4, x.open));
  }
  handshakes.push(rate(slice / 4, handshake));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const summary = new Map<AeadBackend, Record<string, number>>();
for (const b of backends) {
  const r = results.get(b)!;
  const s = {
    seal: median(r.seal),
    open: median(r.open),
    bareSeal: median(r.bareSeal),
    bareOpen: median(r.bareOpen),
  };
  summary.set(b, s);
  console.log(
    `# ${b.padEnd(5)} rift seal ${s.seal.toFixed(0)} pps, rift open ${s.open.toFixed(0)} pps, ` +
      `bare seal ${s.bareSeal.toFixed(0)} pps, bare open ${s.bareOpen.toFixed(0)} pps; ` +
      `seal ratio ${(s.seal / s.bareSeal).toFixed(3)}, open ratio ${
        (s.open / s.bareOpen).toFixed(3)
      }; ` +
      `seal ${(s.seal * DEFAULT_MAX_DATAGRAM * 8 / 1e9).toFixed(2)} Gbit/s`,
  );
}
const noble = summary.get("noble")!;
const node = summary.get("node")!;
const faster: AeadBackend = node.seal + node.open >= noble.seal + noble.open ? "node" : "noble";
console.log(
  `# node/noble speed-up: seal ${(node.seal / noble.seal).toFixed(2)}x, open ${
    (node.open / noble.open).toFixed(2)
  }x; faster backend: ${faster}; default backend: ${DEFAULT_AEAD_BACKEND}`,
);
const d = summary.get(DEFAULT_AEAD_BACKEND)!;
const overhead = Math.min(d.seal / d.bareSeal, d.open / d.bareOpen);
console.log(
  `seal_pps=${d.seal.toFixed(0)} open_pps=${d.open.toFixed(0)} bare_seal_pps=${
    d.bareSeal.toFixed(0)
  } overhead_ratio=${overhead.toFixed(3)} handshakes_per_s=${median(handshakes).toFixed(0)}`,
);
