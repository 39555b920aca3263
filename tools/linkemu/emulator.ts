/**
 * `startLinkEmulator`: the main-thread handle of a UDP link emulator whose
 * sockets and scheduler live in a dedicated worker (worker.ts).
 *
 * @module
 */

import { Link } from "../../core/sim/link.ts";
import { Rng } from "../../core/sim/rng.ts";
import { readStats, statsSlots } from "./stats_layout.ts";
import {
  completeLinkConfig,
  linkConfigToWire,
  type LinkEmulator,
  LinkEmulatorError,
  type LinkEmulatorOptions,
  type PacketLogEntry,
} from "./types.ts";
import type { FromWorker, StartMessage, ToWorker } from "./worker.ts";

/**
 * Default scheduler spin before each release, ms: none. Measured with the
 * worker at SCHED_FIFO 50 (jitter 5 ms, 2000 datagrams/s, loaded machine):
 * release lateness p50/p99/max 0.07/0.18/0.45 ms without spinning, but
 * 0.002/2.4-9.7/7-13 ms with a 0.3 ms spin, whose busy real-time thread keeps
 * the equal-priority sleeper threads that wake it off the CPU.
 */
export const DEFAULT_SPIN_MS = 0;

/** Default SCHED_FIFO priority of the worker thread (applied when permitted). */
export const DEFAULT_REALTIME_PRIORITY = 70;

/**
 * Starts an emulator: binds a listen socket and an upstream socket per flow
 * in a new worker and forwards datagrams both ways through the `up` and
 * `down` links. Rejects with a {@linkcode LinkEmulatorError} (kind
 * `InvalidConfig` before anything is started, `BindFailed`, `WorkerFailed`).
 */
export async function startLinkEmulator(o: LinkEmulatorOptions): Promise<LinkEmulator> {
  const up = completeLinkConfig(o.up);
  const down = completeLinkConfig(o.down);
  const specs = [{ listen: o.listen, target: o.target }, ...(o.extraFlows ?? [])];
  // Validate in this thread, with the very class the worker uses.
  try {
    new Link(up, new Rng(0));
    new Link(down, new Rng(0));
  } catch (e) {
    throw new LinkEmulatorError("InvalidConfig", (e as Error).message);
  }
  for (const [i, f] of specs.entries()) {
    if (!f.target || typeof f.target.hostname !== "string" || !validPort(f.target.port, false)) {
      throw new LinkEmulatorError("InvalidConfig", `flow ${i}: target needs a hostname and a port`);
    }
    if (f.listen?.port !== undefined && !validPort(f.listen.port, true)) {
      throw new LinkEmulatorError("InvalidConfig", `flow ${i}: bad listen port ${f.listen.port}`);
    }
  }
  const rtp = o.realtimePriority ?? DEFAULT_REALTIME_PRIORITY;
  if (!(Number.isInteger(rtp) && rtp >= 0 && rtp <= 99)) {
    throw new LinkEmulatorError("InvalidConfig", `realtimePriority must be 0..99, got ${rtp}`);
  }
  const spinMs = o.spinMs ?? DEFAULT_SPIN_MS;
  if (!(spinMs >= 0 && spinMs <= 5)) {
    throw new LinkEmulatorError("InvalidConfig", `spinMs must be in [0, 5], got ${spinMs}`);
  }
  const flows = specs.map((f) => ({
    listen: { hostname: f.listen?.hostname ?? "127.0.0.1", port: f.listen?.port ?? 0 },
    target: { hostname: f.target.hostname, port: f.target.port },
  }));
  const stats = new SharedArrayBuffer(8 * statsSlots(flows.length));
  const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
  const pendingLogs = new Map<number, (e: PacketLogEntry[]) => void>();
  let nextLogId = 0;
  let onClosed: (() => void) | undefined;
  let failure: LinkEmulatorError | undefined;

  const started = new Promise<Extract<FromWorker, { type: "started" }>>((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<FromWorker>) => {
      const m = e.data;
      switch (m.type) {
        case "started":
          resolve(m);
          return;
        case "log":
          pendingLogs.get(m.id)?.(m.entries);
          pendingLogs.delete(m.id);
          return;
        case "error":
          failure = new LinkEmulatorError(m.kind, m.message);
          reject(failure);
          return;
        case "closed":
          onClosed?.();
          return;
      }
    };
    worker.onerror = (e) => {
      e.preventDefault();
      failure = new LinkEmulatorError("WorkerFailed", e.message);
      reject(failure);
      onClosed?.();
    };
  });
  const send = (m: ToWorker) => worker.postMessage(m);
  const start: StartMessage = {
    type: "start",
    flows,
    up: linkConfigToWire(up),
    down: linkConfigToWire(down),
    seed: o.seed ?? 1,
    log: o.log ?? false,
    logLimit: o.logLimit ?? 1_000_000,
    spinMs,
    upstreamHostname: o.upstreamHostname,
    realtimePriority: o.realtimePriority ?? DEFAULT_REALTIME_PRIORITY,
    stats,
  };
  send(start);
  let info: Extract<FromWorker, { type: "started" }>;
  try {
    info = await started;
  } catch (e) {
    worker.terminate();
    throw e;
  }
  const view = new Float64Array(stats);
  let closing: Promise<void> | undefined;
  return {
    listenAddr: info.flows[0].listenAddr,
    upstreamAddr: info.flows[0].upstreamAddr,
    flows: info.flows,
    timer: info.timer,
    realtime: info.realtime,
    clockZeroEpochMs: info.clockZeroEpochMs,
    stats: () => readStats(view, flows.length),
    packetLog: () => {
      if (closing || failure) return Promise.resolve([]);
      const id = nextLogId++;
      return new Promise((resolve) => {
        pendingLogs.set(id, resolve);
        send({ type: "log", id });
      });
    },
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        if (failure) {
          worker.terminate();
          resolve();
          return;
        }
        onClosed = () => {
          worker.terminate();
          for (const r of pendingLogs.values()) r([]);
          resolve();
        };
        send({ type: "close" });
      });
      return closing;
    },
  };
}

function validPort(p: unknown, zeroOk: boolean): boolean {
  return typeof p === "number" && Number.isInteger(p) && p >= (zeroOk ? 0 : 1) && p <= 65535;
}
