/**
 * Packets per second through the media lane's full send path (fragment, FEC,
 * seal, send) and receive path (receive, open, FEC, reassemble), each on one
 * Web Worker, at 1200-byte datagrams over loopback — against a baseline of
 * the same two workers moving raw 1200-byte datagrams, in the same run.
 *
 *   deno run -A bench/dataplane.ts [--ms=3000] [--rounds=3] [--frame-bytes=42000] [--fec=0.1]
 *
 * Last line: `send_pps=N recv_pps=N raw_send_pps=N raw_recv_pps=N send_ratio=F recv_ratio=F`.
 * The sender keeps at most 1024 datagrams ahead of the receiver (loopback UDP
 * drops what the receive buffer cannot hold), so both figures are what the
 * pair sustains together; the ratio is the cost of RIFT over bare UDP.
 *
 * @module
 */
import { handshakeMediaLanes } from "./media_lanes.ts";
import type { DataplaneJob } from "./dataplane_worker.ts";

const arg = (name: string, fallback: number) =>
  Number(Deno.args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const MS = arg("ms", 3000);
const ROUNDS = arg("rounds", 3);
const FRAME_BYTES = arg("frame-bytes", 42_000);
const FEC = arg("fec", 0.1);

interface Result {
  pps: number;
  datagrams: number;
  frames: number;
  /** Sender only: ms spent in the send path, and how often it waited for the receiver. */
  busyMs: number;
  waits: number;
}

async function round(mode: "rift" | "raw"): Promise<{ send: Result; receive: Result }> {
  const { host, client } = handshakeMediaLanes(FEC);
  const shared = new SharedArrayBuffer(8);
  const url = new URL("./dataplane_worker.ts", import.meta.url).href;
  const receiver = new Worker(url, { type: "module" });
  const sender = new Worker(url, { type: "module" });
  const base = { mode, shared, ms: MS, frameBytes: FRAME_BYTES, fecRatio: FEC, port: 0 };
  const receiveDone = new Promise<Result>((resolve) => {
    receiver.onmessage = (e) => {
      if ("port" in e.data) {
        sender.postMessage(
          { ...base, role: "send", lane: host, port: e.data.port } as DataplaneJob,
        );
      } else resolve(e.data);
    };
  });
  const sendDone = new Promise<Result>((resolve) => sender.onmessage = (e) => resolve(e.data));
  receiver.postMessage({ ...base, role: "receive", lane: client } as DataplaneJob);
  const [send, receive] = await Promise.all([sendDone, receiveDone]);
  return { send, receive };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rift = { send: [] as number[], recv: [] as number[] };
const raw = { send: [] as number[], recv: [] as number[] };
for (let i = 0; i < ROUNDS; i++) {
  // Alternate so load changes on the shared machine hit both alike.
  const r = await round("rift");
  const b = await round("raw");
  rift.send.push(r.send.pps);
  rift.recv.push(r.receive.pps);
  raw.send.push(b.send.pps);
  raw.recv.push(b.receive.pps);
  console.log(
    `round ${i + 1}: rift send ${r.send.pps.toFixed(0)} pps (${r.send.frames} frames) ` +
      `recv ${r.receive.pps.toFixed(0)} pps (${r.receive.frames} frames complete); ` +
      `raw send ${b.send.pps.toFixed(0)} recv ${b.receive.pps.toFixed(0)} pps ` +
      `(rift sender busy ${r.send.busyMs.toFixed(0)} ms, waited for the receiver ${r.send.waits}x)`,
  );
}
const s = median(rift.send), r = median(rift.recv), bs = median(raw.send), br = median(raw.recv);
console.log(
  `command: deno run -A bench/dataplane.ts --ms=${MS} --rounds=${ROUNDS} ` +
    `--frame-bytes=${FRAME_BYTES} --fec=${FEC}`,
);
console.log(
  `send_pps=${s.toFixed(0)} recv_pps=${r.toFixed(0)} raw_send_pps=${bs.toFixed(0)} ` +
    `raw_recv_pps=${br.toFixed(0)} send_ratio=${(s / bs).toFixed(2)} recv_ratio=${
      (r / br).toFixed(2)
    }`,
);
