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
import { useNativeAead } from "../edge/native_aead.ts";
import {
  type AeadBackend,
  createAead,
  DEFAULT_AEAD_BACKEND,
  nonceFromCounter,
} from "../crypto/aead.ts";
import { RiftHandshake } from "../crypto/handshake.ts";
import { generateIdentity } from "../crypto/identity.ts";
import { PacketProtector } from "../crypto/transport.ts";
import {
  decodeFrames,
  encodeFrames,
  encodeFramesInto,
  type Frame,
  maxVideoPayload,
} from "../core/frames.ts";
import {
  DEFAULT_MAX_DATAGRAM,
  encodeHeader,
  keyPhaseOf,
  PacketType,
  RIFT_VERSION,
  splitSealed,
} from "../core/wire.ts";

const i = Deno.args.indexOf("--seconds");
const seconds = i >= 0 ? Number(Deno.args[i + 1]) : 8;
const ROUNDS = 5;

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
  const writeHeader = (packetNumber: number, keyPhase: 0 | 1, out: Uint8Array) =>
    encodeHeader(
      {
        version: RIFT_VERSION,
        type: PacketType.Sealed,
        flags: keyPhase,
        connectionId: 7,
        packetNumber,
      },
      out,
      0,
    );
  // Like the session: frames are encoded into one reusable buffer, then sealed into the datagram.
  const scratch = new Uint8Array(DEFAULT_MAX_DATAGRAM);
  const frames = [fragment];
  const seal = (): Uint8Array => {
    const plaintext = scratch.subarray(0, encodeFramesInto(frames, scratch, 0));
    const sealed = sender.seal(writeHeader, plaintext, 0);
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
  return { seal, open, batch };
}

/**
 * The baseline: the bare AEAD call on the same inputs as the data path. Seal takes the
 * same plaintext; open walks the same batch of sealed datagrams (same memory, same
 * nonces and headers), so the only difference is RIFT's framing and bookkeeping.
 */
function bare(backend: AeadBackend, batch: readonly Uint8Array[]) {
  const aead = createAead(key, backend);
  const plaintext = encodeFrames([fragment]);
  const ad = new Uint8Array(16);
  const nonce = new Uint8Array(12);
  let counter = 0;
  let next = 0;
  return {
    seal: () => {
      aead.seal(nonceFromCounter(counter++, nonce), plaintext, ad);
    },
    open: () => {
      if (next === batch.length) next = 0;
      const pn = next;
      const datagram = batch[next++];
      const opened = aead.open(
        nonceFromCounter(pn, nonce),
        datagram.subarray(16),
        datagram.subarray(0, 16),
      );
      if (opened === undefined) throw new Error("open");
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
// The FFI shim's OpenSSL ChaCha20-Poly1305, when the shim is built (./wavry builds it).
if (useNativeAead()) backends.push("native");
const results = new Map<
  AeadBackend,
  { seal: number[]; open: number[]; bareSeal: number[]; bareOpen: number[] }
>();
for (const b of backends) results.set(b, { seal: [], open: [], bareSeal: [], bareOpen: [] });
const handshakes: number[] = [];

// Every measurement runs in short slices, interleaved, in an order that reverses every round
// (ABBA), so garbage-collection debt and machine drift fall on all paths alike.
type Series = "seal" | "open" | "bareSeal" | "bareOpen";
const tasks: { backend: AeadBackend; series: Series; op: () => void }[] = [];
for (const b of backends) {
  const d = dataPath(b);
  const x = bare(b, d.batch);
  tasks.push(
    { backend: b, series: "seal", op: d.seal },
    { backend: b, series: "bareSeal", op: x.seal },
    { backend: b, series: "open", op: d.open },
    { backend: b, series: "bareOpen", op: x.open },
  );
}
for (const t of tasks) rate(50, t.op);
rate(50, handshake);
const rounds = ROUNDS * 4;
const sliceMs = (seconds * 1000) / rounds / (tasks.length + 1);
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? tasks : [...tasks].reverse();
  for (const t of order) results.get(t.backend)![t.series].push(rate(sliceMs, t.op));
  handshakes.push(rate(sliceMs, handshake));
}

const sliceMsBatch = Math.max(20, sliceMs);
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
// The media lane's batch path: 64 datagrams of 1200 bytes per sealBatch/openBatch call (one FFI
// call with the native backend), against the same backend's one-packet bare seal above.
for (const b of backends) {
  const aead = createAead(key, b);
  const n = 64, len = DEFAULT_MAX_DATAGRAM;
  const buffer = new Uint8Array(n * len);
  const offsets = Int32Array.from({ length: n }, (_, i) => i * len);
  const lengths = new Int32Array(n).fill(len);
  const counters = Float64Array.from({ length: n }, (_, i) => i);
  const batch = { buffer, offsets, lengths, counters, count: n };
  const dst = new Uint8Array(n * len);
  const ok = new Uint8Array(n);
  aead.sealBatch(batch, 16);
  const sealed = buffer.slice();
  const opening = { ...batch, buffer: sealed };
  const sealRate: number[] = [], openRate: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    sealRate.push(n * rate(sliceMsBatch, () => aead.sealBatch(batch, 16)));
    openRate.push(
      n * rate(sliceMsBatch, () => {
        ok.fill(1);
        if (aead.openBatch(opening, 16, dst, offsets, ok) !== n) throw new Error("batch open");
      }),
    );
  }
  console.log(
    `# ${b.padEnd(5)} batch of ${n}: seal ${median(sealRate).toFixed(0)} pps, open ${
      median(openRate).toFixed(0)
    } pps; vs bare seal ${(median(sealRate) / summary.get(b)!.bareSeal).toFixed(2)}x`,
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
