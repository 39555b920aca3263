/**
 * The client's local web player server: a Hono app on `Deno.serve` that
 * serves the player page (`page.html`, `page.js`) and a WebSocket at `/ws`.
 * The client program feeds it the access units it reassembled; every
 * connected page decodes them with WebCodecs and paints them on a canvas,
 * and sends back input events, paint reports and stats.
 *
 * @example
 * ```ts
 * const player = await PlayerServer.start({ port: 0 });
 * player.onKeyframeRequest(() => encoderOrHost.requestKeyframe());
 * player.onInput((e) => console.log(e));
 * player.configure({ ...encoder.config, width: 1280, height: 720 });
 * player.sendFrame({ ...accessUnit, frameId: 1 });
 * ```
 *
 * @module
 */
import { Hono } from "npm:hono@4.13.19";
import { annexBToLengthPrefixed } from "../../media/h264.ts";
import type { CodecConfig, EncodedAccessUnit } from "../../media/types.ts";
import {
  type BitstreamFormat,
  type ConfigMessage,
  encodeAudioMessage,
  encodeFrameMessage,
  type OverlayMessage,
  parsePageMessage,
  type PlayerInput,
  type PlayerStats,
} from "./protocol.ts";

export type {
  PlayerInput,
  PlayerPaintReport,
  PlayerStats,
  PlayerSummaryStats,
} from "./protocol.ts";

/** Options of {@linkcode PlayerServer.start}. */
export interface PlayerServerOptions {
  /** TCP port (0 or undefined: an ephemeral one). */
  port?: number;
  /** Interface to listen on (default "127.0.0.1": the page is local). */
  hostname?: string;
  /**
   * Bitstream form for the page (default "annexb": Annex-B chunks, no
   * `description`, SPS/PPS in band; "avc": `description` = avcc and
   * 4-byte length-prefixed chunks converted here).
   */
  format?: BitstreamFormat;
  /** Whether the page reads the xprobe pattern rows back after each paint (default true). */
  readback?: boolean;
  /**
   * A page whose socket has more than this many bytes queued skips frames
   * until the next keyframe and asks for one (default 4 MiB).
   */
  maxBufferedBytes?: number;
  /** Serves Prometheus text at /metrics when given (the client's figures). */
  metrics?: () => Promise<{ contentType: string; body: string }>;
}

/** Stream configuration for {@linkcode PlayerServer.configure}. */
export type PlayerConfig = CodecConfig & { width: number; height: number };

interface Page {
  /** Connection number, 1 for the first page that connected to this server. */
  readonly id: number;
  readonly socket: WebSocket;
  /** Skipping frames until a keyframe (its socket backed up). */
  waitingForKey: boolean;
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** Local wall clock in µs since the Unix epoch (the same clock the page uses). */
export function wallClockMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** The local web player: page, WebSocket, and the frame/input/stats plumbing. */
export class PlayerServer {
  /** Page address, e.g. "http://localhost:43121/". */
  readonly url: string;
  /** Port actually bound. */
  readonly port: number;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #pages = new Set<Page>();
  readonly #inputHandlers: ((e: PlayerInput, page: number) => void)[] = [];
  readonly #statsHandlers: ((s: PlayerStats, page: number) => void)[] = [];
  readonly #keyHandlers: ((reason: string, page: number) => void)[] = [];
  readonly #connectionHandlers: ((count: number) => void)[] = [];
  readonly #format: BitstreamFormat;
  readonly #readback: boolean;
  readonly #maxBuffered: number;
  #config: ConfigMessage | undefined;
  #overlay: OverlayMessage | undefined;
  #framesSent = 0;
  #nextPageId = 1;
  #framesSkipped = 0;
  #closed = false;

  private constructor(
    server: Deno.HttpServer<Deno.NetAddr>,
    hostname: string,
    options: PlayerServerOptions,
  ) {
    this.#server = server;
    this.port = server.addr.port;
    const host = hostname === "127.0.0.1" || hostname === "0.0.0.0" ? "localhost" : hostname;
    this.url = `http://${host.includes(":") ? `[${host}]` : host}:${this.port}/`;
    this.#format = options.format ?? "annexb";
    this.#readback = options.readback ?? true;
    this.#maxBuffered = options.maxBufferedBytes ?? 4 * 1024 * 1024;
  }

  /**
   * Starts the server. The page is at {@linkcode PlayerServer.url} (use
   * "localhost": WebCodecs needs a secure context, and http://localhost is one).
   */
  static async start(options: PlayerServerOptions = {}): Promise<PlayerServer> {
    const [html, js] = await Promise.all([
      Deno.readTextFile(new URL("./page.html", import.meta.url)),
      Deno.readTextFile(new URL("./page.js", import.meta.url)),
    ]);
    const app = new Hono();
    const self: { player?: PlayerServer } = {};
    const noStore = { "cache-control": "no-store" };
    app.get("/", (c) => c.html(html, 200, noStore));
    app.get("/page.js", (c) => c.body(js, 200, { ...noStore, "content-type": "text/javascript" }));
    const metrics = options.metrics;
    if (metrics !== undefined) {
      app.get("/metrics", async (c) => {
        const { contentType, body } = await metrics();
        return c.body(body, 200, { ...noStore, "content-type": contentType });
      });
    }
    app.get("/ws", (c) => {
      if (c.req.header("upgrade")?.toLowerCase() !== "websocket" || self.player === undefined) {
        return c.text("expected a WebSocket upgrade", 426);
      }
      const { socket, response } = Deno.upgradeWebSocket(c.req.raw, { idleTimeout: 0 });
      self.player.#accept(socket);
      return response;
    });
    const hostname = options.hostname ?? "127.0.0.1";
    const { promise: listening, resolve } = Promise.withResolvers<void>();
    const server = Deno.serve(
      { port: options.port ?? 0, hostname, onListen: () => resolve() },
      app.fetch,
    );
    await listening;
    self.player = new PlayerServer(server, hostname, options);
    return self.player;
  }

  #accept(socket: WebSocket): void {
    socket.binaryType = "arraybuffer";
    const page: Page = { id: this.#nextPageId++, socket, waitingForKey: false };
    socket.onopen = () => {
      if (this.#closed) {
        socket.close(1001, "server closing");
        return;
      }
      this.#pages.add(page);
      if (this.#config) socket.send(JSON.stringify(this.#config));
      if (this.#overlay) socket.send(JSON.stringify(this.#overlay));
      this.#emitConnections();
    };
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      const message = parsePageMessage(event.data);
      if (message === undefined) return;
      switch (message.t) {
        case "paint":
        case "stats":
          for (const h of this.#statsHandlers) h(message, page.id);
          break;
        case "keyreq":
          for (const h of this.#keyHandlers) h(message.reason, page.id);
          break;
        case "hello":
          break;
        default:
          for (const h of this.#inputHandlers) h(message, page.id);
      }
    };
    const drop = () => {
      if (this.#pages.delete(page)) this.#emitConnections();
    };
    socket.onclose = drop;
    socket.onerror = drop;
  }

  #emitConnections(): void {
    for (const h of this.#connectionHandlers) h(this.#pages.size);
  }

  #broadcastText(text: string): void {
    for (const page of this.#pages) {
      if (page.socket.readyState === WebSocket.OPEN) page.socket.send(text);
    }
  }

  /** Pages connected now. */
  get connections(): number {
    return this.#pages.size;
  }

  /** Frame messages sent (one per page per frame) and frames skipped for backed-up pages. */
  get counters(): { framesSent: number; framesSkipped: number } {
    return { framesSent: this.#framesSent, framesSkipped: this.#framesSkipped };
  }

  /** Sends the stream configuration to every page now and to pages that connect later. */
  configure(config: PlayerConfig): void {
    this.#config = {
      t: "config",
      codec: config.codec,
      width: config.width,
      height: config.height,
      format: this.#format,
      avcc: base64(config.avcc),
      readback: this.#readback,
    };
    this.#broadcastText(JSON.stringify(this.#config));
  }

  /**
   * Sends one access unit (Annex-B) to every page. `offsetUs` is the host ->
   * local clock offset (local wall clock µs = host µs + offset) when the
   * client program knows it, so the page can report capture-to-paint latency.
   */
  sendFrame(au: EncodedAccessUnit & { frameId: number; offsetUs?: number }): void {
    if (this.#pages.size === 0) return;
    const bitstream = this.#format === "avc" ? annexBToLengthPrefixed(au.data) : au.data;
    const message = encodeFrameMessage({
      frameId: au.frameId,
      keyframe: au.keyframe,
      captureTimeUs: au.captureTimeUs,
      offsetUs: au.offsetUs,
      sendUs: wallClockMicros(),
    }, bitstream);
    const backlogged: number[] = [];
    for (const page of this.#pages) {
      if (page.socket.readyState !== WebSocket.OPEN) continue;
      if (au.keyframe) page.waitingForKey = false;
      else if (!page.waitingForKey && page.socket.bufferedAmount > this.#maxBuffered) {
        // No queue: a page that cannot keep up skips to the next keyframe.
        page.waitingForKey = true;
        backlogged.push(page.id);
      }
      if (page.waitingForKey) {
        this.#framesSkipped++;
        continue;
      }
      page.socket.send(message);
      this.#framesSent++;
    }
    for (const id of backlogged) for (const h of this.#keyHandlers) h("backlog", id);
  }

  /** Sends one Opus packet (10 ms, 48 kHz) to every connected page, which plays it with WebAudio. */
  sendAudio(sequence: number, channels: number, captureTimeUs: number, packet: Uint8Array): void {
    if (this.#pages.size === 0) return;
    const message = encodeAudioMessage(sequence, channels, captureTimeUs, packet);
    for (const page of this.#pages) {
      // Late audio is worth nothing: a backed-up page skips it rather than queueing more.
      if (page.socket.readyState !== WebSocket.OPEN) continue;
      if (page.socket.bufferedAmount > this.#maxBuffered) continue;
      page.socket.send(message);
    }
  }

  /**
   * Registers a handler for the pages' input events; `page` numbers the
   * connection (1, 2, ... in connection order: a reloaded page is a new one).
   */
  onInput(handler: (event: PlayerInput, page: number) => void): void {
    this.#inputHandlers.push(handler);
  }

  /** Registers a handler for per-frame paint reports and the 250 ms summaries. */
  onStats(handler: (stats: PlayerStats, page: number) => void): void {
    this.#statsHandlers.push(handler);
  }

  /**
   * Registers a handler for keyframe requests: a page's decoder failed, a
   * page got a frame before any keyframe, saw a gap, or fell behind.
   */
  onKeyframeRequest(handler: (reason: string, page: number) => void): void {
    this.#keyHandlers.push(handler);
  }

  /** Registers a handler called with the page count whenever a page connects or leaves. */
  onConnectionChange(handler: (count: number) => void): void {
    this.#connectionHandlers.push(handler);
  }

  /** Overlay lines (name -> value) for every page, now and for pages that connect later. */
  pushOverlay(stats: Record<string, number | string>): void {
    this.#overlay = { t: "overlay", stats: { ...stats } };
    this.#broadcastText(JSON.stringify(this.#overlay));
  }

  /** Closes every page's socket and stops the server. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const page of this.#pages) {
      try {
        page.socket.close(1001, "player closing");
      } catch {
        // already closing
      }
    }
    this.#pages.clear();
    await this.#server.shutdown();
  }
}
