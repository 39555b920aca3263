/**
 * FEC recovery and codec speed over the link simulator's loss models.
 *
 *   deno run -A bench/fec.ts [--frames N] [--seed S] [--verify N]
 *
 * Streams of fixed-size frames (1080p60 at 20 Mbit/s: 35 packets of 1200
 * bytes per frame; 720p60 at 4 Mbit/s: 7 packets) go through a core/sim
 * `Link` with Bernoulli loss (1, 2, 5, 10%) or Gilbert-Elliott loss (mean 5%,
 * mean burst 3 packets). For each frame we count whether it is complete
 * without any retransmission:
 *
 * - none: no FEC, every data packet must arrive;
 * - xor: m = ceil(0.2·k) parity, one per contiguous group of about k/m
 *   fragments (groups of 5 for k = 35), each group's parity sent right after
 *   it; a group survives at most one loss;
 * - rs: the same m parity over the whole frame as one Reed-Solomon group;
 *   the frame survives any m losses among its k + m packets;
 * - adaptive: Reed-Solomon whose m is chosen per frame from the loss the
 *   receiver reported for earlier frames (3 frames of feedback delay): an
 *   EWMA of the loss rate and of the mean burst length, plugged into a
 *   Gilbert-Elliott loss-count distribution (the binomial tail when bursts
 *   are those of independent loss), smallest m whose residual frame-loss
 *   probability is <= 0.1%, capped at 50% overhead (core/fec/adaptive.ts,
 *   the policy the session uses).
 *
 * The recovered/not decision uses the codes' erasure properties (proven by
 * core/fec tests); the first `--verify` frames of every scenario are also
 * run through the real encoder and decoder and must agree byte for byte.
 * With retransmission (rs+rtx, adaptive+rtx): a frame the code cannot rebuild
 * gets one NACK round, as the session does when 1.5 RTT + 20 ms fits the
 * 150 ms deadline (RTT 20 ms here): its missing data fragments are sent again
 * through the same loss process (so a burst can take them too), and the frame
 * is complete if the data and parity received then reach k.
 *
 * Then the RS codec's encode and decode throughput (data bytes per second)
 * for k = 35, m = 7, 1200-byte shards, decoding 7 lost data shards.
 *
 * Last line: `loss=0.05 overhead=0.20 frames_ok_xor=F frames_ok_rs=F
 * frames_ok_adaptive=F encode_MBps=N decode_MBps=N` (1080p, 5% Bernoulli).
 */
import {
  encodeParity as rsEncode,
  reconstruct as rsReconstruct,
} from "../core/fec/reed_solomon.ts";
import { AdaptiveFecPolicy, DEFAULT_ADAPTIVE_FEC } from "../core/fec/adaptive.ts";
import { encodeParity as xorEncode, reconstruct as xorReconstruct } from "../core/fec/xor.ts";
import { gilbertElliott, Link, type LossModel } from "../core/sim/link.ts";
import { Rng } from "../core/sim/rng.ts";
import { numberFlag } from "./args.ts";

const FRAMES = numberFlag("frames", 20000);
const SEED = numberFlag("seed", 1);
const VERIFY = numberFlag("verify", 300);
const PACKET = 1200;
const FPS = 60;
const OVERHEAD = 0.2;
const TARGET_RESIDUAL = DEFAULT_ADAPTIVE_FEC.targetResidual;
const FEEDBACK_LAG_FRAMES = 3;

interface Stream {
  name: string;
  k: number;
}
const STREAMS: Stream[] = [
  { name: "1080p60 20M", k: Math.round(20e6 / FPS / 8 / PACKET) },
  { name: "720p60 4M", k: Math.round(4e6 / FPS / 8 / PACKET) },
];

interface Scenario {
  name: string;
  loss: LossModel;
  meanLoss: number;
}
const SCENARIOS: Scenario[] = [
  ...[0.01, 0.02, 0.05, 0.1].map((p) => ({
    name: `bernoulli ${p * 100}%`,
    loss: { kind: "bernoulli", p } as LossModel,
    meanLoss: p,
  })),
  { name: "GE 5% burst 3", loss: gilbertElliott(0.05, 3), meanLoss: 0.05 },
];

/** A loss process: the real simulator link, zero delay, one verdict per packet. */
class LossProcess {
  #link: Link;
  #now = 0;
  #probe = new Uint8Array(1);
  constructor(loss: LossModel, seed: number) {
    this.#link = new Link(
      { delayMs: 0, jitterMs: 0, reorder: false, duplicateProbability: 0, loss },
      new Rng(seed),
    );
  }
  /** Sends `n` packets of one frame; returns which were lost. */
  frame(n: number): boolean[] {
    const lost: boolean[] = [];
    for (let i = 0; i < n; i++) {
      this.#link.send(this.#probe, this.#now);
      lost.push(this.#link.receive(this.#now).length === 0);
    }
    this.#now += 1000 / FPS;
    return lost;
  }
}

/** Splits k fragments into m contiguous groups of near-equal size. */
function xorGroups(k: number, m: number): number[] {
  const sizes: number[] = [];
  for (let g = 0; g < m; g++) sizes.push(Math.floor(k / m) + (g < k % m ? 1 : 0));
  return sizes;
}

function randomShards(rng: Rng, k: number): Uint8Array[] {
  return Array.from({ length: k }, () => rng.bytes(PACKET));
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** XOR frame: groups sent one after the other, each followed by its parity. */
function xorFrame(lost: boolean[], sizes: number[], data?: Uint8Array[]): boolean {
  let p = 0, first = 0, ok = true;
  for (const g of sizes) {
    let losses = 0;
    for (let i = 0; i <= g; i++) if (lost[p + i]) losses++;
    const groupOk = losses <= 1;
    if (data !== undefined) {
      const group = data.slice(first, first + g);
      const shards: (Uint8Array | undefined)[] = [...group, ...xorEncode(group)];
      for (let i = 0; i <= g; i++) if (lost[p + i]) shards[i] = undefined;
      const got = xorReconstruct(shards, g);
      if (
        (got !== undefined) !== groupOk || (got && !got.every((d, i) => equalBytes(d, group[i])))
      ) {
        throw new Error("xor: codec disagrees with the erasure criterion");
      }
    }
    ok &&= groupOk;
    p += g + 1;
    first += g;
  }
  return ok;
}

/** RS frame: k data then m parity; ok iff at most m of the k + m are lost. */
function rsFrame(lost: boolean[], k: number, m: number, data?: Uint8Array[]): boolean {
  let losses = 0;
  for (let i = 0; i < k + m; i++) if (lost[i]) losses++;
  const ok = losses <= m;
  if (data !== undefined) {
    const shards: (Uint8Array | undefined)[] = [...data, ...rsEncode(data, m)];
    for (let i = 0; i < k + m; i++) if (lost[i]) shards[i] = undefined;
    const got = rsReconstruct(shards, k);
    if ((got !== undefined) !== ok || (got && !got.every((d, i) => equalBytes(d, data[i])))) {
      throw new Error("rs: codec disagrees with the erasure criterion");
    }
  }
  return ok;
}

interface Result {
  none: number;
  xor: number;
  rs: number;
  m: number;
  adaptive: number;
  adaptiveOverhead: number;
  rsRtx: number;
  adaptiveRtx: number;
}

/** One NACK round for a frame the code could not rebuild; true when it then completes. */
function withRetransmission(lost: boolean[], k: number, m: number, loss: LossProcess): boolean {
  const lostCount = lost.filter((l) => l).length;
  if (lostCount <= m) return true;
  const missingData = lost.slice(0, k).filter((l) => l).length;
  const again = loss.frame(missingData).filter((l) => !l).length;
  return k + m - lostCount + again >= k;
}

function run(stream: Stream, sc: Scenario, seed: number): Result {
  const k = stream.k;
  const m = Math.ceil(OVERHEAD * k);
  const sizes = xorGroups(k, m);
  const dataRng = new Rng(seed ^ 0x5eed);
  const lossNone = new LossProcess(sc.loss, seed);
  const lossXor = new LossProcess(sc.loss, seed + 1);
  const lossRs = new LossProcess(sc.loss, seed + 2);
  const lossAd = new LossProcess(sc.loss, seed + 3);
  const lossRsRtx = new LossProcess(sc.loss, seed + 4);
  const lossAdRtx = new LossProcess(sc.loss, seed + 5);
  const estRtx = new AdaptiveFecPolicy();
  const pendingRtx: boolean[][] = [];
  let rsRtx = 0, adRtx = 0;
  const est = new AdaptiveFecPolicy();
  const pending: boolean[][] = [];
  let none = 0, xor = 0, rs = 0, ad = 0, adParity = 0;
  for (let f = 0; f < FRAMES; f++) {
    const data = f < VERIFY ? randomShards(dataRng, k) : undefined;
    if (!lossNone.frame(k).some((l) => l)) none++;
    if (xorFrame(lossXor.frame(k + m), sizes, data)) xor++;
    if (rsFrame(lossRs.frame(k + m), k, m, data)) rs++;
    const ma = est.parityFor(k);
    const lostAd = lossAd.frame(k + ma);
    if (rsFrame(lostAd, k, ma, data)) ad++;
    adParity += ma;
    pending.push(lostAd);
    if (pending.length > FEEDBACK_LAG_FRAMES) est.observe(pending.shift()!);
    if (withRetransmission(lossRsRtx.frame(k + m), k, m, lossRsRtx)) rsRtx++;
    const mr = estRtx.parityFor(k);
    const lostAdRtx = lossAdRtx.frame(k + mr);
    if (withRetransmission(lostAdRtx, k, mr, lossAdRtx)) adRtx++;
    pendingRtx.push(lostAdRtx);
    if (pendingRtx.length > FEEDBACK_LAG_FRAMES) estRtx.observe(pendingRtx.shift()!);
  }
  return {
    none: none / FRAMES,
    xor: xor / FRAMES,
    rs: rs / FRAMES,
    m,
    adaptive: ad / FRAMES,
    adaptiveOverhead: adParity / (FRAMES * k),
    rsRtx: rsRtx / FRAMES,
    adaptiveRtx: adRtx / FRAMES,
  };
}

function throughput(): { encode: number; decode: number } {
  const k = 35, m = 7;
  const rng = new Rng(7);
  const data = randomShards(rng, k);
  const parity = rsEncode(data, m);
  const shards: (Uint8Array | undefined)[] = [...data, ...parity];
  for (let i = 0; i < m; i++) shards[i * 5] = undefined;
  const time = (fn: () => void): number => {
    for (let i = 0; i < 200; i++) fn();
    let iters = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < 1000) {
      for (let i = 0; i < 50; i++) fn();
      iters += 50;
      t = performance.now();
    }
    return (iters * k * PACKET) / 1e6 / ((t - t0) / 1000);
  };
  return {
    encode: time(() => rsEncode(data, m)),
    decode: time(() => rsReconstruct(shards, k)),
  };
}

const pct = (x: number): string => (100 * x).toFixed(2).padStart(7) + "%";

console.log(`# deno run -A bench/fec.ts --frames ${FRAMES} --seed ${SEED} --verify ${VERIFY}`);
console.log(
  `# frames fully recovered without retransmission, ${FRAMES} frames per cell; ` +
    `xor and rs at the same overhead m = ceil(0.2 k); adaptive targets ${TARGET_RESIDUAL} residual`,
);
console.log(
  "stream        loss              k   m  overhead     none      xor       rs | adaptive  adapt_oh |" +
    "   rs+rtx  adapt+rtx",
);
let last: Result | undefined;
let bursty: Result | undefined;
for (const stream of STREAMS) {
  for (const sc of SCENARIOS) {
    const r = run(stream, sc, SEED);
    console.log(
      `${stream.name.padEnd(13)} ${sc.name.padEnd(16)} ${String(stream.k).padStart(3)} ${
        String(r.m).padStart(3)
      }  ${(r.m / stream.k).toFixed(3).padStart(8)} ${pct(r.none)} ${pct(r.xor)} ${pct(r.rs)} |${
        pct(r.adaptive)
      }  ${r.adaptiveOverhead.toFixed(3).padStart(8)} |${pct(r.rsRtx)}  ${pct(r.adaptiveRtx)}`,
    );
    if (stream === STREAMS[0] && sc.name === "bernoulli 5%") last = r;
    if (stream === STREAMS[0] && sc.name.startsWith("GE")) bursty = r;
  }
}
const tp = throughput();
console.log(
  `# RS codec, k=35 m=7, ${PACKET}-byte shards: encode ${tp.encode.toFixed(1)} MB/s, ` +
    `decode (7 data shards lost) ${tp.decode.toFixed(1)} MB/s of data`,
);
console.log(
  `# adaptive at loss=0.05 (1080p): mean overhead ${last!.adaptiveOverhead.toFixed(3)}`,
);
console.log(
  `# GE 5% burst 3 (1080p), one NACK round at 20 ms RTT: rs=${bursty!.rs.toFixed(4)} ` +
    `rs+rtx=${bursty!.rsRtx.toFixed(4)} adaptive=${bursty!.adaptive.toFixed(4)} ` +
    `adaptive+rtx=${bursty!.adaptiveRtx.toFixed(4)} (adaptive overhead ${
      bursty!.adaptiveOverhead.toFixed(3)
    })`,
);
console.log(
  `loss=0.05 overhead=0.20 frames_ok_xor=${last!.xor.toFixed(4)} frames_ok_rs=${
    last!.rs.toFixed(4)
  } frames_ok_adaptive=${last!.adaptive.toFixed(4)} encode_MBps=${
    tp.encode.toFixed(1)
  } decode_MBps=${tp.decode.toFixed(1)}`,
);
