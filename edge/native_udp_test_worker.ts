/**
 * Worker used by native_udp_test.ts: attaches to a socket the test opened
 * and either sends numbered datagrams or receives and checks them. Progress
 * is shared through a SharedArrayBuffer so the sender never runs more than a
 * window ahead of the receiver (UDP drops what the receive buffer cannot hold).
 *
 * @module
 */
import { NativeUdpSocket } from "./native_udp.ts";
import type { PeerAddress } from "./udp_socket.ts";

/** What the test asks a worker to do. */
export interface WorkerJob {
  role: "send" | "receive";
  fd: number;
  count: number;
  size: number;
  /** Int32 [0] = datagrams received so far (written by the receiver). */
  progress: SharedArrayBuffer;
  window: number;
  to?: PeerAddress;
}

/** What a worker reports. */
export interface WorkerResult {
  role: "send" | "receive";
  done: number;
  inOrder: boolean;
  firstBad: number;
  closedSeen: boolean;
  closeLatencyMs: number;
  errors: string[];
  sendErrors: number;
}

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent<WorkerJob>) => void) | null;
  postMessage(message: unknown): void;
};

async function send(job: WorkerJob, socket: NativeUdpSocket, result: WorkerResult) {
  const progress = new Int32Array(job.progress);
  const datagrams: Uint8Array[] = [];
  let seq = 0;
  while (seq < job.count) {
    const received = Atomics.load(progress, 0);
    if (seq - received >= job.window) {
      Atomics.wait(progress, 0, received, 5);
      continue;
    }
    datagrams.length = 0;
    const n = Math.min(32, job.count - seq, job.window - (seq - received));
    for (let i = 0; i < n; i++) {
      const d = new Uint8Array(job.size);
      new DataView(d.buffer).setUint32(0, seq + i);
      datagrams.push(d);
    }
    const sent = socket.sendBatch(datagrams, job.to!);
    seq += sent;
    if (sent < n) await new Promise((r) => setTimeout(r, 1)); // buffer full: let it drain
  }
  result.done = seq;
  const e = socket.counters.sendErrors;
  result.sendErrors = e.refused + e.unreachable + e.tooBig + e.other;
}

async function receive(job: WorkerJob, socket: NativeUdpSocket, result: WorkerResult) {
  const progress = new Int32Array(job.progress);
  while (result.done < job.count) {
    const batch = await socket.receiveBatch(64, 5000);
    if (batch.closed) break;
    if (batch.count === 0) {
      result.errors.push(`no datagram for 5 s after ${result.done}`);
      return;
    }
    for (let i = 0; i < batch.count; i++) {
      const seq = new DataView(batch.buffer, batch.datagram(i).byteOffset).getUint32(0);
      if (result.inOrder && seq !== result.done) {
        result.inOrder = false;
        result.firstBad = seq;
      }
      result.done++;
    }
    Atomics.store(progress, 0, result.done);
    Atomics.notify(progress, 0);
  }
  self.postMessage({ received: result.done });
  // Now block until the opener closes the socket from the main thread.
  const started = performance.now();
  const last = await socket.receiveBatch(64, 10_000);
  result.closedSeen = last.closed;
  result.closeLatencyMs = performance.now() - started;
}

self.onmessage = async (event) => {
  const job = event.data;
  const result: WorkerResult = {
    role: job.role,
    done: 0,
    inOrder: true,
    firstBad: -1,
    closedSeen: false,
    closeLatencyMs: -1,
    errors: [],
    sendErrors: 0,
  };
  let socket: NativeUdpSocket | undefined;
  try {
    socket = NativeUdpSocket.attach(job.fd);
    if (job.role === "send") await send(job, socket, result);
    else await receive(job, socket, result);
  } catch (error) {
    result.errors.push(String(error));
  } finally {
    await socket?.detach();
  }
  self.postMessage(result);
};
