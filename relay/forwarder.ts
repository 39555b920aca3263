/**
 * The main thread's handle on the forwarder worker: starts it, learns its
 * bound address, keeps the latest counters it posts, forwards lease key
 * changes, and stops it.
 *
 * @module
 */

import type { BindingTableOptions, RelayAddress } from "./binding_table.ts";
import type { ForwarderStats, FromWorker, ToWorker } from "./worker_protocol.ts";

/** Options of {@linkcode RelayForwarder.start}. */
export interface ForwarderOptions {
  /** UDP address to bind; default "0.0.0.0". */
  hostname?: string;
  /** UDP port; 0 for an ephemeral one. */
  port: number;
  /** Binding table options (relay id, lease key, limits). */
  table: BindingTableOptions;
  /** How often the worker posts counters (ms); default 1,000. */
  statsIntervalMs?: number;
}

/** Thrown by {@linkcode RelayForwarder.start} when the worker cannot start. */
export class ForwarderStartError extends Error {
  /** Why. */
  readonly kind: "BindFailed" | "BadOptions" | "WorkerFailed";

  /** Creates the error. */
  constructor(kind: "BindFailed" | "BadOptions" | "WorkerFailed", detail: string) {
    super(`relay forwarder did not start (${kind}): ${detail}`);
    this.name = "ForwarderStartError";
    this.kind = kind;
  }
}

/** A running forwarder worker. */
export class RelayForwarder {
  /** The bound UDP address. */
  readonly address: RelayAddress;
  readonly #worker: Worker;
  #latest: ForwarderStats | undefined;
  #listeners = new Set<(s: ForwarderStats) => void>();
  #stopped: Promise<ForwarderStats | undefined> | undefined;
  #resolveStopped: ((s: ForwarderStats | undefined) => void) | undefined;
  #terminated = false;

  private constructor(worker: Worker, address: RelayAddress) {
    this.#worker = worker;
    this.address = address;
  }

  /** Starts the worker and waits until its socket is bound. */
  static start(options: ForwarderOptions): Promise<RelayForwarder> {
    const worker = new Worker(new URL("./forwarder_worker.ts", import.meta.url), {
      type: "module",
      name: "wavry-relay-forwarder",
    });
    return new Promise((resolve, reject) => {
      let forwarder: RelayForwarder | undefined;
      worker.onerror = (e) => {
        e.preventDefault();
        if (forwarder === undefined) {
          worker.terminate();
          reject(new ForwarderStartError("WorkerFailed", e.message));
        }
      };
      worker.onmessage = (e: MessageEvent<FromWorker>) => {
        const m = e.data;
        if (m.type === "ready") {
          forwarder = new RelayForwarder(worker, m.address);
          resolve(forwarder);
        } else if (m.type === "failed") {
          worker.terminate();
          reject(new ForwarderStartError(m.kind, m.detail));
        } else if (forwarder !== undefined) {
          forwarder.#onMessage(m);
        }
      };
      const start: ToWorker = {
        type: "start",
        hostname: options.hostname ?? "0.0.0.0",
        port: options.port,
        table: options.table,
        statsIntervalMs: options.statsIntervalMs ?? 1_000,
      };
      worker.postMessage(start);
    });
  }

  #onMessage(m: FromWorker): void {
    if (m.type === "stats" || m.type === "stopped") {
      this.#latest = m.stats;
      for (const l of this.#listeners) l(m.stats);
    }
    if (m.type === "stopped") {
      this.#worker.terminate();
      this.#terminated = true;
      this.#resolveStopped?.(m.stats);
    }
  }

  /** The latest counters the worker posted (undefined before the first). */
  get stats(): ForwarderStats | undefined {
    return this.#latest;
  }

  /** Calls `listener` with every counters message; returns a function that unsubscribes. */
  onStats(listener: (s: ForwarderStats) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Hands the worker a new lease verification key. */
  setLeasePublicKey(key: string): void {
    if (!this.#terminated) this.#worker.postMessage({ type: "leaseKey", key } satisfies ToWorker);
  }

  /**
   * Stops forwarding: the worker closes its socket, posts final counters and
   * ends. Resolves with those counters. Idempotent. If the worker does not
   * answer within `timeoutMs`, it is terminated.
   */
  stop(timeoutMs = 2_000): Promise<ForwarderStats | undefined> {
    if (this.#stopped) return this.#stopped;
    if (this.#terminated) return this.#stopped = Promise.resolve(this.#latest);
    this.#stopped = new Promise((resolve) => {
      const t = setTimeout(() => {
        this.kill();
        resolve(this.#latest);
      }, timeoutMs);
      this.#resolveStopped = (s) => {
        clearTimeout(t);
        resolve(s);
      };
    });
    this.#worker.postMessage({ type: "stop" } satisfies ToWorker);
    return this.#stopped;
  }

  /** Terminates the worker at once (its socket closes with it), as a crash would. */
  kill(): void {
    if (this.#terminated) return;
    this.#terminated = true;
    this.#worker.terminate();
    this.#resolveStopped?.(this.#latest);
  }
}
