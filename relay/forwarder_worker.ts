/**
 * The relay's UDP forwarder, run as a dedicated Web Worker: it owns the
 * `Deno.listenDatagram` socket and the {@linkcode BindingTable}, so every
 * per-packet step (receive, table lookup, send) happens here and the main
 * thread only sees counters, posted every `statsIntervalMs`.
 *
 * Started by {@linkcode RelayForwarder} (`forwarder.ts`); the messages are in
 * `worker_protocol.ts`.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { BindingTable, type RelayAddress } from "./binding_table.ts";
import type { ForwarderStats, FromWorker, StartMessage, ToWorker } from "./worker_protocol.ts";

/** Wall-clock ms (leases carry wall-clock times), advancing monotonically within the worker. */
const nowMs = (): number => performance.timeOrigin + performance.now();

let conn: Deno.DatagramConn | undefined;
let table: BindingTable | undefined;
let timer: ReturnType<typeof setTimeout> | undefined;
let timerAt: number | undefined;
let statsTimer: ReturnType<typeof setInterval> | undefined;
let stopping = false;
let loop: Promise<void> | undefined;
const io = { sendErrors: 0, receiveErrors: 0, exceptions: 0 };

/** Sends leave in order: Deno's concurrent send ops could otherwise reorder a peer's datagrams. */
const sendQueue: { bytes: Uint8Array; to: RelayAddress }[] = [];
let sending: Promise<void> | undefined;

function post(message: FromWorker): void {
  self.postMessage(message);
}

function stats(): ForwarderStats {
  return {
    counters: table!.snapshotCounters(),
    sessions: table!.sessionCount,
    readySessions: table!.readySessionCount,
    boundPeers: table!.boundPeerCount,
    ...io,
    atMs: nowMs(),
  };
}

function send(bytes: Uint8Array, to: RelayAddress): void {
  sendQueue.push({ bytes, to });
  sending ??= sendLoop();
}

async function sendLoop(): Promise<void> {
  for (let next; (next = sendQueue.shift()) !== undefined;) {
    if (stopping) break;
    try {
      await conn!.send(next.bytes, {
        transport: "udp",
        hostname: next.to.hostname,
        port: next.to.port,
      });
    } catch {
      io.sendErrors++;
    }
  }
  sendQueue.length = 0;
  sending = undefined;
}

function armTimer(): void {
  const at = table!.pollTimeout();
  if (at === undefined || (timerAt !== undefined && timerAt <= at)) return;
  if (timer !== undefined) clearTimeout(timer);
  timerAt = at;
  timer = setTimeout(onTimer, Math.max(0, at - nowMs()));
}

function onTimer(): void {
  timer = undefined;
  timerAt = undefined;
  if (stopping) return;
  table!.handleTimeout(nowMs());
  armTimer();
}

/**
 * One receive buffer for the socket's life: `receive()` without one allocates
 * (and zeroes) 64 KiB per datagram. Each datagram is then copied out at its
 * own size, since a forward is sent after the next receive has begun.
 */
const receiveBuffer = new Uint8Array(65_536);

async function receiveLoop(): Promise<void> {
  while (!stopping) {
    let received: [Uint8Array, Deno.Addr];
    try {
      received = await conn!.receive(receiveBuffer);
    } catch (error) {
      if (stopping || error instanceof Deno.errors.BadResource) return;
      io.receiveErrors++;
      continue;
    }
    try {
      const from = received[1] as Deno.NetAddr;
      const r = table!.handle(received[0].slice(), from, nowMs());
      if (r.forward) send(r.forward.bytes, r.forward.to);
      else if (r.reply) {
        send(r.reply.bytes, r.reply.to);
        if (r.drop === undefined) armTimer();
      }
    } catch {
      io.exceptions++;
    }
  }
}

function start(m: StartMessage): void {
  try {
    table = new BindingTable(m.table, nowMs());
  } catch (e) {
    post({ type: "failed", kind: "BadOptions", detail: String(e) });
    return;
  }
  try {
    conn = Deno.listenDatagram({ hostname: m.hostname, port: m.port, transport: "udp" });
  } catch (e) {
    post({
      type: "failed",
      kind: "BindFailed",
      detail: e instanceof Error ? e.message : String(e),
    });
    return;
  }
  const addr = conn.addr as Deno.NetAddr;
  post({ type: "ready", address: { hostname: addr.hostname, port: addr.port } });
  // A first snapshot at once, so /health is right from the start.
  post({ type: "stats", stats: stats() });
  statsTimer = setInterval(() => post({ type: "stats", stats: stats() }), m.statsIntervalMs);
  loop = receiveLoop();
}

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  if (timer !== undefined) clearTimeout(timer);
  if (statsTimer !== undefined) clearInterval(statsTimer);
  try {
    conn?.close();
  } catch {
    // already closed
  }
  // The socket is released only once its pending receive has ended.
  await loop;
  await sending;
  if (table) post({ type: "stopped", stats: stats() });
  self.close();
}

self.onmessage = (e: MessageEvent<ToWorker>) => {
  const m = e.data;
  if (m.type === "start") start(m);
  else if (m.type === "leaseKey") table?.setLeasePublicKey(m.key);
  else if (m.type === "stop") stop();
};
