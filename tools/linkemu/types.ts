/**
 * Public types of the link emulator, and the plain-data form its link
 * configurations take across the worker boundary.
 *
 * @module
 */

import type { LinkConfig, LinkStats } from "../../core/sim/link.ts";
import { DeliveryTrace } from "../../core/sim/trace.ts";

export type { LinkConfig, LinkStats };

/** A UDP address. */
export interface HostPort {
  /** IPv4/IPv6 literal or host name. */
  hostname: string;
  /** UDP port. */
  port: number;
}

/** Where a flow listens and where it forwards to. */
export interface FlowSpec {
  /** Local address peers send to (default 127.0.0.1, any free port). */
  listen?: { hostname?: string; port?: number };
  /** Where packets from the listen side go. */
  target: HostPort;
}

/**
 * Options of {@linkcode startLinkEmulator}. `listen`/`target` are flow 0;
 * `extraFlows` are more flows through the same two bottlenecks (RFC 8867 §5.2):
 * every flow has its own listen and upstream sockets, and all flows share one
 * `up` link and one `down` link (one queue per direction, one loss process).
 */
export interface LinkEmulatorOptions {
  /** Address of flow 0's listen socket (default 127.0.0.1, any free port). */
  listen?: { hostname?: string; port?: number };
  /** Flow 0's target. */
  target: HostPort;
  /** Further flows sharing the bottlenecks; flow i+1 is `extraFlows[i]`. */
  extraFlows?: FlowSpec[];
  /** Listen-side peer -> target. Missing fields default to a perfect link. */
  up: Partial<LinkConfig>;
  /** Target -> listen-side peer. Missing fields default to a perfect link. */
  down: Partial<LinkConfig>;
  /** Seed of the loss/jitter/duplication randomness (default 1). */
  seed?: number;
  /** Keep a per-packet log for delay and queue analysis (default false). */
  log?: boolean;
  /** Most log entries kept (the first ones; default 1 000 000). */
  logLimit?: number;
  /**
   * How long before a release the scheduler stops sleeping and spins,
   * yielding to I/O (ms, 0..5, default 0 = sleep only). Spinning makes the
   * median release exact but, under real-time scheduling, the tail worse.
   */
  spinMs?: number;
  /** Address the upstream sockets bind to (default: the flow's listen hostname). */
  upstreamHostname?: string;
  /**
   * SCHED_FIFO priority of the worker thread, 1..99, applied when the process
   * may (root/CAP_SYS_NICE); 0 = ordinary scheduling. Default 70 (above
   * libwebrtc's encoder and pacer threads, 49). See realtime.ts.
   */
  realtimePriority?: number;
}

/** Counters of one direction: the shared link's, plus the socket side's. */
export interface DirectionStats extends LinkStats {
  /** Datagrams read from the sockets into this direction (= `sent`). */
  received: number;
  /** Delivered datagrams with nowhere to go (down before the peer was seen). */
  noPeer: number;
  /** Socket send failures. */
  sendErrors: number;
  /** Bytes in the bottleneck queue now. */
  queuedBytes: number;
  /** Mean of (actual release − scheduled arrival) over delivered datagrams, ms. */
  releaseLateMeanMs: number;
  /** Largest such lateness, ms. */
  releaseLateMaxMs: number;
}

/** Per-flow counters of one direction. */
export interface FlowDirectionStats {
  /** Datagrams this flow put into the direction. */
  received: number;
  /** Datagrams of this flow released to their destination. */
  forwarded: number;
  /** Bytes of this flow released. */
  bytesForwarded: number;
}

/** Snapshot returned by `stats()`. */
export interface LinkEmulatorStats {
  /** The shared up link. */
  up: DirectionStats;
  /** The shared down link. */
  down: DirectionStats;
  /** Per flow, in flow order. */
  flows: { up: FlowDirectionStats; down: FlowDirectionStats }[];
}

/** What happened to one datagram. */
export type PacketFate =
  | "delivered"
  | "in-flight"
  | "lost"
  | "dropped-queue"
  | "dropped-mtu"
  | "no-peer";

/** One line of the per-packet log. Times are ms on the emulator's clock (0 = start). */
export interface PacketLogEntry {
  /** Direction. */
  dir: "up" | "down";
  /** Flow index. */
  flow: number;
  /** Datagram length. */
  bytes: number;
  /** When the emulator read it from the socket. */
  inAt: number;
  /** Its fate; "in-flight" while still inside the emulator. */
  fate: PacketFate;
  /** When its last bit left the bottleneck (queued datagrams). */
  departAt?: number;
  /** Scheduled arrival: departure + delay + jitter. */
  dueAt?: number;
  /** When the emulator actually handed it to the socket. */
  outAt?: number;
  /** True for a duplicate copy. */
  duplicate?: boolean;
}

/** A running emulator. */
export interface LinkEmulator {
  /** Flow 0's listen address: peers send here. */
  readonly listenAddr: HostPort;
  /** The address flow 0's target sees packets from. */
  readonly upstreamAddr: HostPort;
  /** Every flow's addresses, flow 0 first. */
  readonly flows: readonly { listenAddr: HostPort; upstreamAddr: HostPort }[];
  /** How the scheduler sleeps ("libc-usleep" normally). */
  readonly timer: string;
  /** Whether the worker thread got real-time scheduling. */
  readonly realtime: boolean;
  /** `performance.timeOrigin + performance.now()` in the worker at its clock's 0. */
  readonly clockZeroEpochMs: number;
  /** Counters, read synchronously from memory shared with the worker. */
  stats(): LinkEmulatorStats;
  /** The per-packet log (empty unless `log: true`). */
  packetLog(): Promise<PacketLogEntry[]>;
  /** Stops forwarding, closes the sockets and the worker. */
  close(): Promise<void>;
}

/** Why the emulator could not start or failed. */
export type LinkEmulatorErrorKind = "InvalidConfig" | "BindFailed" | "WorkerFailed";

/** A typed emulator error. */
export class LinkEmulatorError extends Error {
  /** Which kind of failure. */
  readonly kind: LinkEmulatorErrorKind;
  /** @param kind failure kind @param message details */
  constructor(kind: LinkEmulatorErrorKind, message: string) {
    super(`${kind}: ${message}`);
    this.name = "LinkEmulatorError";
    this.kind = kind;
  }
}

/** Fills the defaults of a partial link configuration (a perfect link). */
export function completeLinkConfig(c: Partial<LinkConfig>): LinkConfig {
  return {
    delayMs: 0,
    jitterMs: 0,
    reorder: false,
    duplicateProbability: 0,
    loss: { kind: "none" },
    ...c,
  };
}

/** A LinkConfig as structured-clonable data (the trace as its opportunity times). */
export interface WireLinkConfig {
  /** Everything but the trace. */
  config: Omit<LinkConfig, "trace">;
  /** One period of the trace's opportunity times, if any. */
  traceTimes?: Float64Array;
}

/** To plain data for postMessage. */
export function linkConfigToWire(c: LinkConfig): WireLinkConfig {
  const { trace, ...config } = c;
  if (trace === undefined) return { config };
  const n = trace.opportunitiesPerPeriod;
  const traceTimes = new Float64Array(n);
  for (let i = 0; i < n; i++) traceTimes[i] = trace.opportunityTime(i);
  return { config, traceTimes };
}

/** Back from plain data. */
export function linkConfigFromWire(w: WireLinkConfig): LinkConfig {
  return w.traceTimes === undefined
    ? { ...w.config }
    : { ...w.config, trace: new DeliveryTrace(Array.from(w.traceTimes)) };
}
