/**
 * FEC through the real media lane: `MediaSender` packs, seals and protects
 * each frame, a core/sim loss process drops datagrams, `MediaReceiver` opens,
 * rebuilds and reassembles. Where bench/fec.ts scores the codes' erasure
 * property on ideal shards, this counts what the session actually delivers,
 * for small frames above all: one-fragment P-frames of a still desktop,
 * two-fragment frames of a 360p cellular stream, and 720p60 at 4 Mbit/s.
 *
 *   deno run -A bench/fec_live.ts [--frames N] [--seed S]
 *
 * Per stream and loss model, three figures over the same frames and loss seed:
 * - none: FEC off, frames complete as sent;
 * - live: FEC ratio 0.2 (m = ceil(0.2·k): 1 parity for up to 5 fragments);
 * - bound: the frames of the live run whose lost datagrams a code with m
 *   parity can rebuild (any m of k + m): what perfect FEC would deliver from
 *   exactly those losses. live/bound is 1 when the session loses nothing
 *   its parity could have repaired.
 *
 * Last line, for one-fragment frames at 5% random loss:
 * `desktop_loss=0.05 frames_ok_none=F frames_ok_live=F frames_ok_bound=F live_over_bound=F`.
 *
 * @module
 */
import { maxVideoPayload } from "../core/frames.ts";
import { MediaReceiver, MediaSender } from "../core/media_lane.ts";
import { establishedSessions } from "../core/session_testing.ts";
import { gilbertElliott, Link, type LossModel } from "../core/sim/link.ts";
import { Rng } from "../core/sim/rng.ts";
import { numberFlag } from "./args.ts";

const FRAMES = numberFlag("frames", 20000);
const SEED = numberFlag("seed", 1);
const FPS = 60;
const RATIO = 0.2;

const STREAMS = [
  { name: "desktop still", bytes: 300 },
  { name: "360p60 1M", bytes: Math.round(1e6 / FPS / 8) },
  { name: "720p60 4M", bytes: Math.round(4e6 / FPS / 8) },
];
const LOSSES: { name: string; model: LossModel; p: number }[] = [
  { name: "bernoulli 2%", model: { kind: "bernoulli", p: 0.02 }, p: 0.02 },
  { name: "bernoulli 5%", model: { kind: "bernoulli", p: 0.05 }, p: 0.05 },
  { name: "GE 5% burst 3", model: gilbertElliott(0.05, 3), p: 0.05 },
];

interface Run {
  delivered: number;
  /** Frames whose losses any-m-of-(k+m) parity could rebuild (k, m as sent). */
  rebuildable: number;
  datagrams: number;
}

/** Sends FRAMES frames of `bytes` through the loss process; counts what the receiver delivers. */
function run(bytes: number, ratio: number, loss: LossModel, seed: number): Run {
  const { host, client } = establishedSessions(seed);
  const sender = new MediaSender(host.detachMedia(), 0);
  const receiver = new MediaReceiver(client.detachMedia(), 0);
  sender.setFec({ parityRatio: ratio, scheme: 1, maxGroup: 64 });
  const link = new Link(
    { delayMs: 0, jitterMs: 0, reorder: false, duplicateProbability: 0, loss },
    new Rng(seed + 1),
  );
  const data = new Rng(seed + 2).bytes(bytes);
  const k = Math.ceil(bytes / sender.maxVideoPayload);
  const m = ratio > 0 ? Math.ceil(k * ratio) : 0;
  let delivered = 0, rebuildable = 0, datagrams = 0;
  for (let i = 0; i < FRAMES; i++) {
    const now = i * (1000 / FPS);
    sender.sendVideoFrame({
      frameId: i + 1,
      captureTimeUs: Math.round(now * 1000),
      keyframe: false,
      data,
    });
    let lostShards = 0;
    // The pacer drains each frame before the next one is captured at these rates.
    for (let d; (d = sender.pollTransmit(now)) !== undefined;) {
      datagrams++;
      link.send(d, now);
      const arrived = link.receive(now);
      if (arrived.length === 0) lostShards++;
      for (const a of arrived) receiver.handleDatagram(a, now);
    }
    // One shard per datagram (checked below), so lost datagrams are lost shards.
    if (lostShards <= m) rebuildable++;
    receiver.handleTimeout(now);
    for (let e; (e = receiver.pollEvent()) !== undefined;) {
      if (e.type === "video-frame") delivered++;
    }
  }
  receiver.handleTimeout(FRAMES * (1000 / FPS) + 1000);
  for (let e; (e = receiver.pollEvent()) !== undefined;) if (e.type === "video-frame") delivered++;
  // Every datagram held exactly one shard: a frame's k fragments and m parity left apart.
  if (datagrams !== FRAMES * (k + m)) {
    throw new Error(`${datagrams} datagrams for ${FRAMES} frames of ${k} + ${m} shards`);
  }
  return { delivered, rebuildable, datagrams };
}

const fmt = (x: number) => x.toFixed(4);
console.log(`# deno run -A bench/fec_live.ts --frames ${FRAMES} --seed ${SEED}`);
console.log(
  "stream          loss             k  m  datagrams/frame    none     live    bound  live/bound",
);
let last = "";
for (const s of STREAMS) {
  for (const l of LOSSES) {
    const none = run(s.bytes, 0, l.model, SEED);
    const live = run(s.bytes, RATIO, l.model, SEED);
    const k = Math.ceil(s.bytes / maxVideoPayload()), m = Math.ceil(k * RATIO);
    const okNone = none.delivered / FRAMES, okLive = live.delivered / FRAMES;
    const okBound = live.rebuildable / FRAMES;
    console.log(
      `${s.name.padEnd(15)} ${l.name.padEnd(15)} ${String(k).padStart(2)} ${
        String(m).padStart(2)
      }` +
        `  ${(live.datagrams / FRAMES).toFixed(2).padStart(15)}  ${fmt(okNone)}   ${
          fmt(okLive)
        }   ` +
        `${fmt(okBound)}  ${fmt(okLive / okBound)}`,
    );
    if (s.name === "desktop still" && l.name === "bernoulli 5%") {
      last = `desktop_loss=${l.p} frames_ok_none=${fmt(okNone)} frames_ok_live=${fmt(okLive)} ` +
        `frames_ok_bound=${fmt(okBound)} live_over_bound=${fmt(okLive / okBound)}`;
    }
  }
}
console.log(last);
