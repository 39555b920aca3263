/**
 * UDP packets per second at 1200 bytes on loopback: the shim's
 * NativeUdpSocket (single send, sendmmsg batches of 32, recvmmsg batches of
 * 64) against Deno.listenDatagram, in the same run, alternating rounds.
 *
 * Send: one socket writes to a sink socket nobody reads, for --ms.
 * Receive (the headline figure): fill and drain. A native sender in the same
 * thread queues 64 datagrams (they fit in even Deno's default 208 KiB receive
 * buffer), then only the reads that drain them are timed; repeated for --ms.
 * This measures the receive path itself, with no sender competing for the
 * 2 CPUs. Receive under load (secondary): a worker blasts with sendmmsg for
 * --ms and the receiver counts what it reads; on this shared 2-CPU VM that
 * figure mostly measures scheduling.
 *
 *   deno run -A bench/udp.ts [--ms=1000] [--rounds=3]
 *
 * @module
 */
import { NativeUdpSocket } from "../edge/native_udp.ts";

const arg = (name: string, fallback: number) =>
  Number(Deno.args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const MS = arg("ms", 1000);
const ROUNDS = arg("rounds", 3);
const SIZE = 1200;
const payload = new Uint8Array(SIZE);

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function withSink<T>(run: (port: number) => Promise<T>): Promise<T> {
  const sink = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0, receiveBufferBytes: 0 });
  try {
    return await run(sink.localAddr.port);
  } finally {
    await sink.close();
  }
}

function nativeSendSingle(): Promise<number> {
  return withSink((port) => {
    const s = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
    const to = { hostname: "127.0.0.1", port };
    const end = performance.now() + MS;
    const start = performance.now();
    let n = 0;
    while (performance.now() < end) {
      for (let i = 0; i < 64; i++) if (s.send(payload, to)) n++;
    }
    const pps = n / ((performance.now() - start) / 1000);
    return s.close().then(() => pps);
  });
}

function nativeSendBatch(): Promise<number> {
  return withSink((port) => {
    const s = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
    const to = { hostname: "127.0.0.1", port };
    const batch = Array.from({ length: 32 }, () => payload);
    const end = performance.now() + MS;
    const start = performance.now();
    let n = 0;
    while (performance.now() < end) n += s.sendBatch(batch, to);
    const pps = n / ((performance.now() - start) / 1000);
    return s.close().then(() => pps);
  });
}

function denoSend(): Promise<number> {
  return withSink(async (port) => {
    const s = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
    const end = performance.now() + MS;
    const start = performance.now();
    let n = 0;
    try {
      while (performance.now() < end) {
        // One at a time, as edge/udp_socket.ts does to keep datagrams in order.
        await s.send(payload, to);
        n++;
      }
    } finally {
      s.close();
    }
    return n / ((performance.now() - start) / 1000);
  });
}

/** Starts the blaster worker at `port`; returns a stop function resolving to what it sent. */
async function blast(port: number): Promise<() => Promise<number>> {
  const stop = new SharedArrayBuffer(4);
  const worker = new Worker(new URL("./udp_blaster.ts", import.meta.url).href, { type: "module" });
  let resolveSent!: (n: number) => void;
  const sent = new Promise<number>((r) => (resolveSent = r));
  const started = new Promise<void>((resolve) => {
    worker.onmessage = (e) => {
      if (e.data.started) resolve();
      else resolveSent(e.data.sent);
    };
  });
  worker.postMessage({ port, stop });
  await started;
  return async () => {
    Atomics.store(new Int32Array(stop), 0, 1);
    const n = await sent;
    worker.terminate();
    return n;
  };
}

const FILL = 64;

/** Time to drain FILL queued datagrams, repeated for MS of drain time; returns datagrams/s. */
async function fillDrain(port: number, drain: () => Promise<number>): Promise<number> {
  const sender = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  const to = { hostname: "127.0.0.1", port };
  const batch = Array.from({ length: FILL }, () => payload);
  let spent = 0;
  let n = 0;
  try {
    while (spent < MS) {
      if (sender.sendBatch(batch, to) !== FILL) throw new Error("sender refused");
      const start = performance.now();
      let got = 0;
      while (got < FILL) got += await drain();
      spent += performance.now() - start;
      n += got;
    }
  } finally {
    await sender.close();
  }
  return n / (spent / 1000);
}

async function nativeReceive(): Promise<number> {
  const s = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  let reuse: ArrayBuffer | undefined;
  try {
    return await fillDrain(s.localAddr.port, async () => {
      const batch = await s.receiveBatch(64, 1000, { reuse });
      reuse = batch.buffer;
      return batch.count;
    });
  } finally {
    await s.close();
  }
}

async function denoReceive(): Promise<number> {
  const s = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    return await fillDrain((s.addr as Deno.NetAddr).port, async () => {
      await s.receive();
      return 1;
    });
  } finally {
    s.close();
  }
}

async function nativeReceiveLoaded(): Promise<number> {
  const s = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  const stop = await blast(s.localAddr.port);
  try {
    await s.receiveBatch(64, 1000); // warm: the blaster is running
    let reuse: ArrayBuffer | undefined;
    const start = performance.now();
    const end = start + MS;
    let n = 0;
    while (performance.now() < end) {
      const batch = await s.receiveBatch(64, 100, { reuse });
      n += batch.count;
      reuse = batch.buffer;
    }
    return n / ((performance.now() - start) / 1000);
  } finally {
    await stop();
    await s.close();
  }
}

async function denoReceiveLoaded(): Promise<number> {
  const s = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const stop = await blast((s.addr as Deno.NetAddr).port);
  try {
    await s.receive();
    const start = performance.now();
    const end = start + MS;
    let n = 0;
    while (performance.now() < end) {
      await s.receive();
      n++;
    }
    return n / ((performance.now() - start) / 1000);
  } finally {
    await stop();
    s.close();
  }
}

const results: Record<string, number[]> = {
  native_single: [],
  native_batch: [],
  deno_send: [],
  native_recv: [],
  deno_recv: [],
  native_recv_loaded: [],
  deno_recv_loaded: [],
};
for (let round = 0; round < ROUNDS; round++) {
  results.native_single.push(await nativeSendSingle());
  results.native_batch.push(await nativeSendBatch());
  results.deno_send.push(await denoSend());
  results.native_recv.push(await nativeReceive());
  results.deno_recv.push(await denoReceive());
  results.native_recv_loaded.push(await nativeReceiveLoaded());
  results.deno_recv_loaded.push(await denoReceiveLoaded());
  console.log(
    `round ${round + 1}: ` +
      Object.entries(results).map(([k, v]) => `${k}=${Math.round(v[round])}`).join(" "),
  );
}
const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, Math.round(median(v))]));
console.log(
  `median of ${ROUNDS} rounds of ${MS} ms, ${SIZE}-byte datagrams, loopback; ` +
    `send ratios vs Deno: single ${(m.native_single / m.deno_send).toFixed(2)}, ` +
    `batched ${(m.native_batch / m.deno_send).toFixed(2)}; ` +
    `receive ratio ${(m.native_recv / m.deno_recv).toFixed(2)} ` +
    `(under a concurrent blaster: ${(m.native_recv_loaded / m.deno_recv_loaded).toFixed(2)})`,
);
console.log(`command: deno run -A bench/udp.ts --ms=${MS} --rounds=${ROUNDS}`);
console.log(
  `native_send_pps=${m.native_batch} native_recv_pps=${m.native_recv} ` +
    `deno_send_pps=${m.deno_send} deno_recv_pps=${m.deno_recv} ` +
    `native_single_send_pps=${m.native_single} ` +
    `send_ratio=${(m.native_batch / m.deno_send).toFixed(2)} ` +
    `single_send_ratio=${(m.native_single / m.deno_send).toFixed(2)} ` +
    `recv_ratio=${(m.native_recv / m.deno_recv).toFixed(2)} ` +
    `native_recv_loaded_pps=${m.native_recv_loaded} deno_recv_loaded_pps=${m.deno_recv_loaded}`,
);
