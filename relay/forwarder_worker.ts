/**
 * The relay's UDP forwarder, run as a dedicated Web Worker: it owns the UDP
 * socket and the {@linkcode BindingTable}, so every per-packet step (receive,
 * table lookup, send) happens here and the main thread only sees counters,
 * posted every `statsIntervalMs`.
 *
 * Two sockets, one table. When the native shim loads, the main thread opens
 * the shim's socket (`edge/native_udp.ts`) and this worker attaches to it: it
 * receives up to {@linkcode NATIVE_BATCH} datagrams per call (recvmmsg) and
 * sends a batch's forwards grouped by destination, one sendmmsg each. This
 * worker's thread waits for datagrams IN the native call (`receiveBatchSync`,
 * at most {@linkcode NATIVE_WAIT_MS} at a time): one thread wake-up per
 * arrival, as in a C relay, where an async receive would add a hop through
 * Deno's blocking pool. Between waits it yields to its event loop, so timers
 * and messages still run; the main thread's `wake()` cuts a wait short.
 * Without the shim (or with `socket: "deno"`) a `Deno.listenDatagram` socket
 * costs one receive op and one send op per datagram. The table sees the same
 * datagrams either way.
 *
 * Started by {@linkcode RelayForwarder} (`forwarder.ts`); the messages are in
 * `worker_protocol.ts`.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { NativeUdpSocket, type ReceivedBatch } from "../edge/native_udp.ts";
import { monotonicMicros } from "../ffi/library.ts";
import { StunServerCore } from "../core/stun/server.ts";
import { BindingTable, type RelayAddress, type Send } from "./binding_table.ts";
import { TokenBucket } from "./token_bucket.ts";
import {
  type ForwarderStats,
  type FromWorker,
  RESIDENCE_BUCKETS_US,
  type StartMessage,
  type ToWorker,
} from "./worker_protocol.ts";

/** Most datagrams one native receive call returns. */
export const NATIVE_BATCH = 64;
/**
 * Native receive slot: holds the largest BIND_REQUEST (a lease of up to 4 KiB
 * plus its envelope) and any RIFT datagram; a longer datagram is dropped
 * (counted as `truncated`) rather than forwarded cut.
 */
export const NATIVE_SLOT_BYTES = 8192;
/** Longest one native wait blocks this thread (ms): the loop's own clock checks run this often. */
export const NATIVE_WAIT_MS = 20;
/**
 * Under steady traffic, the event loop still gets a turn this often (ms), in
 * case a message came without a `wake()`. A turn costs about 0.1–0.5 ms (see
 * `nextTurn`), so the native loop does not take one per batch: it posts its
 * stats and runs the table's timer itself.
 */
const TURN_EVERY_MS = 1_000;

/** Wall-clock ms (leases carry wall-clock times), advancing monotonically within the worker. */
const nowMs = (): number => performance.timeOrigin + performance.now();

let conn: Deno.DatagramConn | undefined;
let native: NativeUdpSocket | undefined;
let table: BindingTable | undefined;
let timer: ReturnType<typeof setTimeout> | undefined;
let timerAt: number | undefined;
let statsTimer: ReturnType<typeof setInterval> | undefined;
let stopping = false;
let loop: Promise<void> | undefined;
const io = {
  sendErrors: 0,
  receiveErrors: 0,
  exceptions: 0,
  receiveCalls: 0,
  truncated: 0,
  stunAnswered: 0,
  stunErrors: 0,
  stunDropped: 0,
  stunRateLimited: 0,
};

/**
 * STUN on the relay port (first bytes 0–3, RFC 7983): one public port gives
 * peers their reflexive address and the relay. Binding is stateless; the
 * replies are capped globally, since a response is larger than its request
 * (a spoofed source could otherwise use the relay as a small amplifier).
 */
let stun: StunServerCore | undefined;
/** STUN replies per second, all sources together (and the burst). */
export const STUN_REPLIES_PER_SECOND = 2_000;
let stunBucket: TokenBucket | undefined;

/** The STUN reply to a datagram whose first byte is 0–3, or undefined (counted either way). */
function answerStun(bytes: Uint8Array, from: RelayAddress): Send | undefined {
  const family = from.hostname.includes(":") ? "IPv6" : "IPv4";
  const a = stun!.handle(bytes, { hostname: from.hostname, port: from.port, family });
  if (a.action === "drop") {
    io.stunDropped++;
    return undefined;
  }
  // The budget is spent on replies only, so junk cannot use it up.
  if (!stunBucket!.take(1, nowMs())) {
    io.stunRateLimited++;
    return undefined;
  }
  if (a.errorCode === 0) io.stunAnswered++;
  else io.stunErrors++;
  return { to: { hostname: a.to.hostname, port: a.to.port }, bytes: a.bytes };
}

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
    residenceUs: residence.slice(),
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
  // The native loop polls the table's timer itself (see nativeReceiveLoop).
  if (native !== undefined) return;
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

async function denoReceiveLoop(): Promise<void> {
  while (!stopping) {
    let received: [Uint8Array, Deno.Addr];
    try {
      received = await conn!.receive(receiveBuffer);
    } catch (error) {
      if (stopping || error instanceof Deno.errors.BadResource) return;
      io.receiveErrors++;
      continue;
    }
    io.receiveCalls++;
    try {
      const from = received[1] as Deno.NetAddr;
      if (stun !== undefined && received[0].length > 0 && received[0][0] <= 3) {
        const reply = answerStun(received[0], from);
        if (reply !== undefined) send(reply.bytes.slice(), reply.to);
        continue;
      }
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

/** The sends of one batch, grouped by destination (in arrival order within each group). */
interface SendGroup {
  to: RelayAddress;
  datagrams: Uint8Array[];
}
const groups: SendGroup[] = [];
let groupCount = 0;

function queueNative(bytes: Uint8Array, to: RelayAddress): void {
  for (let g = 0; g < groupCount; g++) {
    const group = groups[g];
    // A forward's `to` is its slot's address object: identity is the usual hit.
    if (group.to === to || (group.to.port === to.port && group.to.hostname === to.hostname)) {
      group.datagrams.push(bytes);
      return;
    }
  }
  const group = groups[groupCount] ??= { to, datagrams: [] };
  group.to = to;
  group.datagrams.push(bytes);
  groupCount++;
}

/** Sends every group with one sendmmsg each; what the kernel refuses is counted, not retried. */
function flushNative(): void {
  for (let g = 0; g < groupCount; g++) {
    const group = groups[g];
    try {
      const sent = native!.sendBatch(group.datagrams, group.to);
      io.sendErrors += group.datagrams.length - sent;
    } catch {
      io.sendErrors += group.datagrams.length;
    }
    group.datagrams.length = 0;
  }
  groupCount = 0;
}

/**
 * A turn of the event loop, so messages from the main thread (and timers)
 * run: a message through a fresh MessageChannel, about 0.1–0.5 ms, where a
 * `setTimeout(0)` costs 1–4 ms in Deno. (One long-lived channel is not
 * enough: Deno then keeps serving that port and reaches neither this worker's
 * timers nor its messages.)
 */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(0);
  });
}

/** Runs one batch through the table and sends what it decided. */
/** Native socket: datagrams by residence time, bucketed as RESIDENCE_BUCKETS_US. */
const residence: number[] = RESIDENCE_BUCKETS_US.map(() => 0);

function forwardBatch(batch: ReceivedBatch): void {
  io.receiveCalls++;
  const now = nowMs();
  let bound = false;
  for (let i = 0; i < batch.count; i++) {
    if (batch.truncated(i)) {
      io.truncated++;
      continue;
    }
    try {
      const datagram = batch.datagram(i);
      if (stun !== undefined && datagram.length > 0 && datagram[0] <= 3) {
        const reply = answerStun(datagram, batch.source(i));
        if (reply !== undefined) queueNative(reply.bytes, reply.to);
        continue;
      }
      const r = table!.handle(datagram, batch.source(i), now);
      if (r.forward) queueNative(r.forward.bytes, r.forward.to);
      else if (r.reply) {
        queueNative(r.reply.bytes, r.reply.to);
        if (r.drop === undefined) bound = true;
      }
    } catch {
      io.exceptions++;
    }
  }
  flushNative();
  // Kernel arrival (SO_TIMESTAMPNS) to sent: this thread's wake-up, the table, the send.
  const sentAt = monotonicMicros();
  for (let i = 0; i < batch.count; i++) {
    const us = sentAt - batch.receivedAtMicros(i);
    let b = 0;
    while (us >= RESIDENCE_BUCKETS_US[b]) b++;
    residence[b]++;
  }
  if (bound) armTimer();
}

/**
 * Wait in the native call, forward the batch, repeat. Between waits, the loop
 * posts the stats and runs the table's timer when due (its own clock checks:
 * no timer of the event loop is involved). It gives the event loop a turn
 * (for messages) after a `wake()` (the main thread wakes it after each
 * message) and every {@linkcode TURN_EVERY_MS} anyway. The datagrams are views into the batch
 * buffer, reused only after every send of the batch has returned (sends are
 * synchronous), so nothing is copied on the way through.
 */
async function nativeReceiveLoop(statsIntervalMs: number): Promise<void> {
  const socket = native!;
  let reuse: ArrayBuffer | undefined;
  let lastTurn = performance.now();
  let nextStatsAt = nowMs() + statsIntervalMs;
  while (!stopping) {
    let now = nowMs();
    const tableAt = table!.pollTimeout() ?? Infinity;
    const waitMs = Math.max(0, Math.min(NATIVE_WAIT_MS, nextStatsAt - now, tableAt - now));
    let batch: ReceivedBatch;
    try {
      batch = socket.receiveBatchSync(NATIVE_BATCH, waitMs, {
        slotBytes: NATIVE_SLOT_BYTES,
        reuse,
      });
    } catch {
      if (stopping || socket.closed) return;
      io.receiveErrors++;
      await nextTurn();
      continue;
    }
    if (batch.closed) return;
    reuse = batch.buffer;
    if (batch.count > 0) forwardBatch(batch);
    now = nowMs();
    if (now >= (table!.pollTimeout() ?? Infinity)) table!.handleTimeout(now);
    if (now >= nextStatsAt) {
      post({ type: "stats", stats: stats() });
      nextStatsAt = now + statsIntervalMs;
    }
    const t = performance.now();
    if (batch.woken || t - lastTurn >= TURN_EVERY_MS) {
      await nextTurn();
      lastTurn = performance.now();
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
  let address: RelayAddress;
  if (m.nativeFd !== undefined) {
    try {
      native = NativeUdpSocket.attach(m.nativeFd);
    } catch (e) {
      post({
        type: "failed",
        kind: "BindFailed",
        detail: e instanceof Error ? e.message : String(e),
      });
      return;
    }
    address = { hostname: m.hostname, port: native.localAddr.port };
  } else {
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
    address = { hostname: addr.hostname, port: addr.port };
  }
  if (m.stun) {
    const family = address.hostname.includes(":") ? "IPv6" : "IPv4";
    stun = new StunServerCore({ primary: { ...address, family } });
    stunBucket = new TokenBucket(STUN_REPLIES_PER_SECOND, STUN_REPLIES_PER_SECOND, nowMs());
  }
  post({ type: "ready", address });
  // A first snapshot at once, so /health is right from the start.
  post({ type: "stats", stats: stats() });
  if (native !== undefined) {
    loop = nativeReceiveLoop(m.statsIntervalMs);
  } else {
    statsTimer = setInterval(() => post({ type: "stats", stats: stats() }), m.statsIntervalMs);
    loop = denoReceiveLoop();
  }
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
  // The socket is released only once its pending receive has ended. The main
  // thread owns the native socket and closes it after `stopped`.
  await loop;
  await native?.detach();
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
