/**
 * Where the media lane's per-packet time goes, on one thread without
 * sockets: fragmenting + FEC (`sendVideoFrame`), sealing (`pollTransmit` one
 * datagram at a time vs `pollTransmitBatch`, one AEAD call per batch) and
 * receiving (`handleDatagram` one at a time vs `handleBatch`), with the
 * native AEAD and FEC kernels the workers use, in alternating rounds.
 *
 *   deno run -A bench/dataplane_stages.ts [--frames=2000] [--frame-bytes=42000] [--fec=0.1]
 *
 * Last line (µs per datagram, medians of 3 rounds):
 * `queue_us=F single_seal_us=F batch_seal_us=F single_open_us=F batch_open_us=F`.
 *
 * @module
 */
import { handshakeMediaLanes } from "./media_lanes.ts";
import { MediaReceiver, MediaSender } from "../core/media_lane.ts";
import { useNativeAead } from "../edge/native_aead.ts";
import { useNativeFec } from "../edge/native_fec.ts";

const arg = (name: string, fallback: number) =>
  Number(Deno.args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const FRAMES = arg("frames", 2000);
const FRAME_BYTES = arg("frame-bytes", 42_000);
const FEC = arg("fec", 0.1);

useNativeAead();
useNativeFec();

function round(batched: boolean) {
  const { host, client } = handshakeMediaLanes(FEC);
  const sender = new MediaSender(host, 0);
  const receiver = new MediaReceiver(client, 0);
  const frame = new Uint8Array(FRAME_BYTES).map((_, i) => i * 7);
  const packed = new Uint8Array(64 * 1200);
  const offsets = new Int32Array(64), lengths = new Int32Array(64);
  const times = new Float64Array(64);
  let queue = 0, seal = 0, open = 0, datagrams = 0;
  for (let f = 0; f < FRAMES; f++) {
    const t0 = performance.now();
    sender.sendVideoFrame({ frameId: f, captureTimeUs: 0, keyframe: false, data: frame });
    const t1 = performance.now();
    let n = 0, at = 0;
    if (batched) {
      const b = sender.pollTransmitBatch(t1, 64);
      n = b.count;
      for (let i = 0; i < n; i++) {
        offsets[i] = at;
        lengths[i] = b.lengths[i];
        at += b.lengths[i];
      }
      packed.set(b.bytes.subarray(0, at)); // what the kernel would copy; not timed apart
    } else {
      for (let d; (d = sender.pollTransmit(t1)) !== undefined;) {
        offsets[n] = at;
        lengths[n++] = d.length;
        packed.set(d, at);
        at += d.length;
      }
    }
    const t2 = performance.now();
    if (batched) {
      times.fill(t2, 0, n);
      receiver.handleBatch(packed, offsets, lengths, n, times);
    } else {
      for (let i = 0; i < n; i++) {
        receiver.handleDatagram(packed.subarray(offsets[i], offsets[i] + lengths[i]), t2);
      }
    }
    while (receiver.pollEvent() !== undefined) {
      // drain the events: delivery is part of the receive path
    }
    const t3 = performance.now();
    if (f >= FRAMES / 5) { // after warm-up
      queue += t1 - t0;
      seal += t2 - t1;
      open += t3 - t2;
      datagrams += n;
    }
  }
  const us = (ms: number) => (ms * 1000) / datagrams;
  return { queue: us(queue), seal: us(seal), open: us(open) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const r = {
  queue: [] as number[],
  ss: [] as number[],
  bs: [] as number[],
  so: [] as number[],
  bo: [] as number[],
};
for (let i = 0; i < 3; i++) {
  const s = round(false), b = round(true);
  r.queue.push(b.queue);
  r.ss.push(s.seal);
  r.bs.push(b.seal);
  r.so.push(s.open);
  r.bo.push(b.open);
  console.log(
    `round ${i + 1}: queue (fragment+FEC) ${b.queue.toFixed(2)} µs; seal single ${
      s.seal.toFixed(2)
    } batch ${b.seal.toFixed(2)} µs; receive single ${s.open.toFixed(2)} batch ${
      b.open.toFixed(2)
    } µs per datagram`,
  );
}
console.log(
  `command: deno run -A bench/dataplane_stages.ts --frames=${FRAMES} --frame-bytes=${FRAME_BYTES} --fec=${FEC}`,
);
const f = (x: number[]) => median(x).toFixed(2);
console.log(
  `queue_us=${f(r.queue)} single_seal_us=${f(r.ss)} batch_seal_us=${f(r.bs)} ` +
    `single_open_us=${f(r.so)} batch_open_us=${f(r.bo)}`,
);
