/**
 * Worker for bench/udp.ts: sends 1200-byte datagrams to a port as fast as
 * native sendmmsg allows until the stop flag is set, so a receiver is always
 * offered more than it can read.
 *
 * @module
 */
import { NativeUdpSocket } from "../edge/native_udp.ts";

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent<{ port: number; stop: SharedArrayBuffer }>) => void) | null;
  postMessage(message: unknown): void;
};

self.onmessage = async (event) => {
  const stop = new Int32Array(event.data.stop);
  const socket = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  const to = { hostname: "127.0.0.1", port: event.data.port };
  const batch = Array.from({ length: 32 }, () => new Uint8Array(1200));
  let sent = 0;
  self.postMessage({ started: true });
  while (Atomics.load(stop, 0) === 0) {
    sent += socket.sendBatch(batch, to);
    // Let the stop message in now and then; the flag is what stops us.
    if ((sent & 0x3fff) < 32) await new Promise((r) => setTimeout(r, 0));
  }
  await socket.close();
  self.postMessage({ sent });
};
