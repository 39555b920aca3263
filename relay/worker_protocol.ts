/**
 * Messages between the relay's main thread and its forwarder worker. Plain
 * structured-clone data: errors cross as values with a kind, never as throws.
 *
 * @module
 */

import type { BindingTableOptions, RelayAddress, RelayCounters } from "./binding_table.ts";

/**
 * Which UDP socket the worker forwards with: `native` = the shim's socket
 * (`edge/native_udp.ts`: recvmmsg/sendmmsg, batches of up to 64), `deno` =
 * `Deno.listenDatagram` (one op per datagram each way).
 */
export type ForwarderSocketKind = "native" | "deno";

/** What the worker is asked for: `auto` = native when the shim loads, else deno. */
export type ForwarderSocketChoice = ForwarderSocketKind | "auto";

/** Main → worker: bind the socket and start forwarding. */
export interface StartMessage {
  /** Message type. */
  type: "start";
  /** UDP address to bind. */
  hostname: string;
  /** UDP port to bind (0: ephemeral). */
  port: number;
  /** Binding table options (relay id, lease key, limits). */
  table: BindingTableOptions;
  /** How often the worker posts its counters (ms). */
  statsIntervalMs: number;
  /**
   * The native socket the main thread opened (`NativeUdpSocket.fd`), to
   * attach; undefined: bind a `Deno.listenDatagram` socket here.
   */
  nativeFd?: number;
  /** Answer STUN Binding requests (first bytes 0–3) on the relay socket. */
  stun: boolean;
}

/** Main → worker: the gateway's lease key changed. */
export interface LeaseKeyMessage {
  /** Message type. */
  type: "leaseKey";
  /** The new `k4.public.` key. */
  key: string;
}

/** Main → worker: close the socket and stop. */
export interface StopMessage {
  /** Message type. */
  type: "stop";
}

/** Anything the main thread sends. */
export type ToWorker = StartMessage | LeaseKeyMessage | StopMessage;

/**
 * Upper bounds (µs, exclusive) of the residence histogram's buckets; the last
 * is Infinity.
 */
export const RESIDENCE_BUCKETS_US: readonly number[] = [
  16,
  32,
  64,
  128,
  256,
  512,
  1_024,
  2_048,
  4_096,
  8_192,
  16_384,
  Infinity,
];

/** What the worker reports periodically and when it stops. */
export interface ForwarderStats {
  /** The binding table's counters. */
  counters: RelayCounters;
  /** Sessions held. */
  sessions: number;
  /** Sessions with both peers bound. */
  readySessions: number;
  /** Peer bindings held. */
  boundPeers: number;
  /** Sends the kernel refused. */
  sendErrors: number;
  /** Receive calls that failed (e.g. an ICMP error left on the socket). */
  receiveErrors: number;
  /** Exceptions caught in the forwarding loop. */
  exceptions: number;
  /** Receive calls that returned datagrams (native: one per batch; deno: one per datagram). */
  receiveCalls: number;
  /** Native socket: datagrams longer than a receive slot, dropped before the table saw them. */
  truncated: number;
  /**
   * Native socket: datagrams of each batch (forwarded, answered or dropped) by
   * time from their kernel arrival to the end of their batch's sends, counted
   * per bucket of {@linkcode RESIDENCE_BUCKETS_US} (cumulative). It covers
   * the worker's wake-up, the table and the send: the relay's own latency.
   * All zero with the deno socket (it has no arrival times).
   */
  residenceUs: number[];
  /** STUN Binding success responses sent. */
  stunAnswered: number;
  /** STUN error responses sent (400, 420). */
  stunErrors: number;
  /** Datagrams with first byte 0–3 left unanswered (not a well-framed request, indications…). */
  stunDropped: number;
  /** STUN requests left unanswered because the reply budget was spent. */
  stunRateLimited: number;
  /** When the snapshot was taken (ms since the epoch). */
  atMs: number;
}

/** Worker → main: the socket is bound. */
export interface ReadyMessage {
  /** Message type. */
  type: "ready";
  /** The bound address (the real port when 0 was asked). */
  address: RelayAddress;
}

/** Worker → main: periodic counters. */
export interface StatsMessage {
  /** Message type. */
  type: "stats";
  /** The counters. */
  stats: ForwarderStats;
}

/** Worker → main: the worker could not start (e.g. the port is taken). */
export interface FailedMessage {
  /** Message type. */
  type: "failed";
  /** Kind of failure. */
  kind: "BindFailed" | "BadOptions";
  /** Human-readable detail. */
  detail: string;
}

/** Worker → main: the socket is closed; final counters. */
export interface StoppedMessage {
  /** Message type. */
  type: "stopped";
  /** Final counters. */
  stats: ForwarderStats;
}

/** Anything the worker sends. */
export type FromWorker = ReadyMessage | StatsMessage | FailedMessage | StoppedMessage;
