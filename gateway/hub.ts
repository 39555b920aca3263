/**
 * Message delivery to peers: directly to sockets held by this instance, and
 * through KV to sockets held by another instance sharing the same KV.
 *
 * Cross-instance path: a message for a peer whose presence record names
 * another instance is written under `["gw","inbox",instance,t,sender,seq]`
 * and the instance's bell `["gw","bell",instance]` is rewritten. Each instance
 * watches its own bell (instant on Deno Deploy / KV Connect) and also polls
 * its inbox every `pollMs`: on Deno 2.9 a local SQLite KV file delivers
 * neither `watch` nor `listenQueue` events to another process (measured while
 * building this), so two processes sharing one file rely on the poll. Order
 * is kept per sender (time, then sender id, then sequence).
 *
 * @module
 */
import type { GatewayMessage } from "./schema.ts";
import { type GatewayStore, type InboxRecord, keys } from "./store.ts";
import type { GatewayMetrics } from "./metrics.ts";

/** One authenticated socket on this instance. */
export interface LocalConn {
  /** Connection id (random, unique per socket). */
  id: string;
  socket: WebSocket;
}

/** Delivery outcome. */
export type DeliverResult = "local" | "remote" | "offline";

/** Sockets of this instance and the KV inbox to other instances. */
export class Hub {
  readonly #store: GatewayStore;
  readonly #metrics: GatewayMetrics;
  readonly #instance: string;
  readonly #local = new Map<string, Map<string, LocalConn>>();
  readonly #pollMs: number;
  #seq = 0;
  #lastT = 0;
  #draining = false;
  #again = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #watch: ReadableStream<Deno.KvEntryMaybe<unknown>[]> | undefined;
  #closed = false;

  constructor(store: GatewayStore, metrics: GatewayMetrics, instance: string, pollMs: number) {
    this.#store = store;
    this.#metrics = metrics;
    this.#instance = instance;
    this.#pollMs = pollMs;
  }

  /** Starts watching and polling this instance's inbox. */
  start(): void {
    this.#timer = setInterval(() => this.#drain(), this.#pollMs);
    this.#watch = this.#store.kv.watch([keys.bell(this.#instance)]);
    const watch = this.#watch;
    (async () => {
      try {
        for await (const _ of watch) {
          if (this.#closed) break;
          this.#drain();
        }
      } catch {
        // The watch ends when the KV closes; polling covers the rest.
      }
    })();
  }

  /** Stops polling and watching. */
  async stop(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#watch?.cancel().catch(() => {});
    while (this.#draining) await new Promise((r) => setTimeout(r, 5));
  }

  /** Registers a local socket for `peer`. */
  add(peer: string, conn: LocalConn): void {
    let m = this.#local.get(peer);
    if (!m) this.#local.set(peer, m = new Map());
    m.set(conn.id, conn);
  }

  /** Forgets a local socket; true if it was the peer's last one here. */
  remove(peer: string, connId: string): boolean {
    const m = this.#local.get(peer);
    if (!m) return false;
    m.delete(connId);
    if (m.size > 0) return false;
    this.#local.delete(peer);
    return true;
  }

  /** Peers with at least one socket here. */
  localPeers(): string[] {
    return [...this.#local.keys()];
  }

  /** Sends to the peer's sockets on this instance; false if there are none. */
  sendLocal(peer: string, msg: GatewayMessage): boolean {
    const m = this.#local.get(peer);
    if (!m || m.size === 0) return false;
    const text = JSON.stringify(msg);
    for (const c of m.values()) {
      if (c.socket.readyState === WebSocket.OPEN) c.socket.send(text);
    }
    return true;
  }

  /** Delivers to `peer` wherever it is connected. */
  async deliver(peer: string, msg: GatewayMessage, sender: string): Promise<DeliverResult> {
    if (this.sendLocal(peer, msg)) return "local";
    const p = await this.#store.getPresence(peer);
    if (!p.value) return "offline";
    if (p.value.instance === this.#instance) {
      // Presence says here but the socket is gone (closing): nobody to deliver to.
      return "offline";
    }
    const t = this.#lastT = Math.max(this.#lastT, Date.now());
    const rec: InboxRecord = { to: peer, msg };
    await this.#store.kv.atomic()
      .set([...keys.inboxPrefix(p.value.instance), t, sender, this.#seq++], rec, {
        expireIn: 60_000,
      })
      // Any write to the bell wakes a watcher; expiring it keeps no garbage per
      // dead instance (Deploy isolates come and go).
      .set(keys.bell(p.value.instance), t, { expireIn: 60_000 })
      .commit();
    this.#metrics.crossInstance.inc({ direction: "out" });
    return "remote";
  }

  async #drain(): Promise<void> {
    if (this.#closed) return;
    if (this.#draining) {
      this.#again = true;
      return;
    }
    this.#draining = true;
    try {
      do {
        this.#again = false;
        const entries: Deno.KvEntry<InboxRecord>[] = [];
        const iter = this.#store.kv.list<InboxRecord>({
          prefix: keys.inboxPrefix(this.#instance),
        }, { limit: 500 });
        for await (const e of iter) entries.push(e);
        if (entries.length === 0) break;
        for (const e of entries) {
          this.sendLocal(e.value.to, e.value.msg as GatewayMessage);
          this.#metrics.crossInstance.inc({ direction: "in" });
        }
        for (let i = 0; i < entries.length; i += 100) {
          const op = this.#store.kv.atomic();
          for (const e of entries.slice(i, i + 100)) op.delete(e.key);
          await op.commit();
        }
        if (entries.length === 500) this.#again = true;
      } while (this.#again && !this.#closed);
    } catch {
      // KV closed under us (shutdown) or a transient error: the next poll retries.
    } finally {
      this.#draining = false;
    }
  }
}
