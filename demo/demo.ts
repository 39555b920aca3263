/**
 * The live stream on one machine: a display (Xvfb when there is none) running
 * the moving test scene, a host streaming it, a client to that host on
 * loopback, and optionally headless Chromium as the viewer.
 *
 * Glass-to-glass is read from pixels on both ends: the scene draws its frame
 * counter and CLOCK_MONOTONIC time into the picture; the page reads them back
 * from its canvas right after painting. Input latency runs from the page's key
 * event to the moment the injected X event reaches the scene's X client.
 *
 * @module
 */
import { generateIdentity } from "../crypto/identity.ts";
import { WavryClient } from "../client/client.ts";
import { launchChromium } from "../client/player/testing.ts";
import type { PlayerPaintReport } from "../client/player/protocol.ts";
import { WavryHost } from "../host/host.ts";
import { startXvfb, type VirtualDisplay } from "../tools/display/xvfb.ts";
import { XProbe } from "../tools/display/xprobe.ts";
import { startReachServices } from "./reach.ts";
import { GatewayLink } from "../host/gateway_link.ts";
import { GatewaySession, loginAsUser } from "../client/gateway_connect.ts";
import { GatewayClient } from "../gateway/client.ts";
import { encodePeerKey } from "../crypto/lease.ts";

/** How to run the demo. */
export interface DemoOptions {
  /** Stop after this long (default: until `signal` aborts). */
  seconds?: number;
  /** Stops the demo. */
  signal?: AbortSignal;
  /** Picture size when the demo starts its own display (default 1280x720). */
  width?: number;
  /** Picture size when the demo starts its own display. */
  height?: number;
  /** Frames per second (default 60). */
  fps?: number;
  /** Video bitrate (default 8 Mbit/s). */
  bitrateBps?: number;
  /** "headless": drive Debian's Chromium as the viewer; "none": print the URL only. */
  browser?: "headless" | "none";
  /** Use this X display instead of starting Xvfb (the scene is drawn only on displays the demo starts). */
  display?: string;
  /** "demo" (default): drifting colours and bouncing balls; "pattern": the test pattern. */
  scene?: "demo" | "pattern";
  /** A key is pressed in the page this often (headless only), to measure input latency. */
  keyIntervalMs?: number;
  /** Receives the player URL once it is up. */
  onUrl?: (url: string) => void;
  /** Receives a one-line status every second. */
  onStatus?: (line: string) => void;
  /**
   * Connect through a gateway, a STUN server and a relay started on loopback
   * (real programs, KV in a temporary directory): the host registers and
   * answers the client's connect request with ICE (docs/CONNECT.md).
   */
  viaGateway?: boolean;
  /**
   * With `viaGateway`: neither side offers a candidate (no host addresses, no
   * STUN), so the checks fail at the bound and the stream goes through the relay.
   */
  forceRelay?: boolean;
  /** Log lines of the gateway path (connect procedure, path chosen). */
  onLog?: (line: string) => void;
}

/** What a demo run measured. */
export interface DemoResult {
  /** Frames the host sent. */
  readonly framesSent: number;
  /** Frames the page decoded. */
  readonly framesDecoded: number;
  /** Frames the page painted. */
  readonly framesPainted: number;
  /** Painted frames per second over the run. */
  readonly fps: number;
  /** Glass-to-glass samples (ms): scene drew the frame -> page painted it. */
  readonly glassToGlassMs: readonly number[];
  /** Input samples (ms): page key event -> X event at the scene's client. */
  readonly inputMs: readonly number[];
  /** Paint reports whose read-back counter went backwards (should be 0). */
  readonly counterRegressions: number;
  /** Per-stage percentiles from the client's metrics. */
  readonly stages: Record<string, { p50: number; p99: number }>;
  /** Encode + decode per frame (ms): the codec-only time, from the same run. */
  readonly codecMs: readonly number[];
  /** Capture (ms) per frame, host side. */
  readonly captureMs: readonly number[];
  /** Paint (ms) per frame in the page. */
  readonly paintMs: readonly number[];
}

/** Percentile of `values` (0..1), or NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** The demo's summary line. */
export function summaryLine(r: DemoResult): string {
  const f = (v: number) => Number.isFinite(v) ? v.toFixed(1) : "NaN";
  return `frames_decoded=${r.framesDecoded} fps=${f(r.fps)} ` +
    `glass_to_glass_ms_p50=${f(percentile(r.glassToGlassMs, 0.5))} ` +
    `glass_to_glass_ms_p99=${f(percentile(r.glassToGlassMs, 0.99))} ` +
    `input_ms_p50=${f(percentile(r.inputMs, 0.5))} input_ms_p99=${f(percentile(r.inputMs, 0.99))}`;
}

/** Runs the demo until `seconds` pass or `signal` aborts, then stops everything it started. */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const width = options.width ?? 1280, height = options.height ?? 720;
  const fps = options.fps ?? 60;
  const cleanup: (() => Promise<void> | void)[] = [];
  try {
    let display = options.display ?? Deno.env.get("DISPLAY");
    let probe: XProbe | undefined;
    if (!display) {
      const xvfb: VirtualDisplay = await startXvfb(width, height);
      cleanup.push(() => xvfb.stop());
      display = xvfb.display;
      probe = await XProbe.start(display, { scene: options.scene !== "pattern", fps });
      cleanup.push(() => probe!.stop());
    }
    const hostIdentity = generateIdentity();
    const clientIdentity = generateIdentity();
    const log = options.onLog ?? (() => {});
    let reach:
      | { link: GatewayLink; url: string; stun: { hostname: string; port: number } }
      | undefined;
    if (options.viaGateway) {
      const services = await startReachServices();
      cleanup.push(() => services.stop());
      log(
        `gateway ${services.gatewayUrl}, stun ${services.stun.hostname}:${services.stun.port}, ` +
          `relay ${services.relay.hostname}:${services.relay.port}`,
      );
      // The client registers once; the host's owner then puts its key on the allow list.
      await loginAsUser(new GatewayClient(services.gatewayUrl, clientIdentity), "demo-client");
      const link = await GatewayLink.start({
        url: services.gatewayUrl,
        identity: hostIdentity,
        name: "demo-host",
        allow: [encodePeerKey(clientIdentity.publicKey)],
        log: (line) => log(`host: ${line}`),
      });
      cleanup.push(() => link.stop());
      reach = { link, url: services.gatewayUrl, stun: services.stun };
    }
    const host = await WavryHost.start({
      listen: { hostname: reach ? "0.0.0.0" : "127.0.0.1", port: 0 },
      display,
      fps,
      bitrateBps: options.bitrateBps ?? 8_000_000,
      identity: hostIdentity,
      ice: reach
        ? options.forceRelay
          ? { hostAddresses: [] }
          : { stunServer: reach.stun, includeLoopback: true }
        : undefined,
      connectEvents: reach?.link,
    });
    cleanup.push(() => host.stop());
    let session: GatewaySession | undefined;
    if (reach) {
      await reach.link.serve(host.connector);
      session = await GatewaySession.open({
        url: reach.url,
        identity: clientIdentity,
        name: "demo-client",
        host: { key: encodePeerKey(hostIdentity.publicKey) },
        log: (line) => log(`client: ${line}`),
      });
      cleanup.push(() => session!.close());
    }
    const client = await WavryClient.start({
      host: host.addr,
      identity: clientIdentity,
      expectHost: hostIdentity.publicKey,
      ice: session
        ? {
          options: options.forceRelay
            ? { hostAddresses: [] }
            : { stunServer: reach!.stun, includeLoopback: true },
          signaling: session,
        }
        : undefined,
    });
    cleanup.push(() => client.stop());
    log(
      `connected: path ${client.connection.path} to ${client.connection.remote.hostname}:${client.connection.remote.port}`,
    );
    options.onUrl?.(client.player.url);

    const paints: PlayerPaintReport[] = [];
    let framesDecoded = 0, framesPainted = 0;
    client.player.onStats((s) => {
      if (s.t === "paint") paints.push(s);
      else {
        framesDecoded = Math.max(framesDecoded, s.framesDecoded);
        framesPainted = Math.max(framesPainted, s.framesPainted);
      }
    });
    const keyTimes: number[] = [];
    client.player.onInput((input) => {
      if (input.t === "key" && input.down && input.code === "KeyA") keyTimes.push(input.ts);
    });

    let keyTimer: ReturnType<typeof setInterval> | undefined;
    if (options.browser === "headless") {
      const browser = await launchChromium();
      cleanup.push(() => browser.close());
      const page = await browser.newPage({ viewport: { width, height } });
      await page.goto(client.player.url);
      if (probe !== undefined) {
        keyTimer = setInterval(() => {
          page.keyboard.press("KeyA").catch(() => {});
        }, options.keyIntervalMs ?? 250);
        cleanup.push(() => clearInterval(keyTimer));
      }
    }

    const started = performance.now();
    const statusTimer = setInterval(() => {
      const s = client.metrics.snapshot(performance.now());
      const g2g = percentile(
        paints.slice(-120).flatMap((p) =>
          p.drawnToPresentUs === null ? [] : [p.drawnToPresentUs / 1000]
        ),
        0.5,
      );
      options.onStatus?.(
        `fps=${s.fps} bitrate=${(s.bitrateBps / 1e6).toFixed(2)}Mbit/s ` +
          `rtt=${s.rttMs.toFixed(2)}ms g2g_p50=${Number.isFinite(g2g) ? g2g.toFixed(1) : "-"}ms ` +
          `painted=${framesPainted}` +
          (s.congestion === undefined
            ? ""
            : ` target=${(s.congestion.targetBitrateBps / 1e6).toFixed(2)}Mbit/s ` +
              `cc=${s.congestion.state} fec=${s.congestion.fecRatio.toFixed(2)} ` +
              `enc_fps=${s.congestion.fps}`),
      );
    }, 1000);
    cleanup.push(() => clearInterval(statusTimer));
    await new Promise<void>((resolve) => {
      const timer = options.seconds === undefined
        ? undefined
        : setTimeout(resolve, options.seconds * 1000);
      options.signal?.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
    clearInterval(keyTimer);
    const elapsed = (performance.now() - started) / 1000;

    // Input: the k-th KeyA pressed in the page against the k-th "a" the scene's X client saw.
    const seen = probe?.events().filter((e) => e.type === "key" && e.press && e.name === "a") ?? [];
    const inputMs: number[] = [];
    for (let k = 0; k < Math.min(seen.length, keyTimes.length); k++) {
      const at = client.hostMonoToWallUs(seen[k].t_us);
      if (at !== undefined) inputMs.push((at - keyTimes[k]) / 1000);
    }
    let counterRegressions = 0;
    for (let i = 1; i < paints.length; i++) {
      const a = paints[i - 1].counter, b = paints[i].counter;
      if (a !== null && b !== null && b < a) counterRegressions++;
    }
    const snapshot = client.metrics.snapshot(performance.now());
    const hostSnapshot = host.metrics.snapshot(performance.now());
    const stages: Record<string, { p50: number; p99: number }> = {};
    for (const [name, s] of Object.entries({ ...hostSnapshot.stages, ...snapshot.stages })) {
      stages[name] = { p50: s.p50, p99: s.p99 };
    }
    const decodes = paints.map((p) => p.decodeMs);
    const encodes = host.encodeTimesMs;
    return {
      framesSent: host.framesSent,
      framesDecoded,
      framesPainted,
      fps: framesPainted / elapsed,
      glassToGlassMs: paints.flatMap((p) =>
        p.drawnToPresentUs === null ? [] : [p.drawnToPresentUs / 1000]
      ),
      inputMs,
      counterRegressions,
      stages,
      codecMs: decodes.map((d, i) => d + (encodes[i % Math.max(1, encodes.length)] ?? NaN)),
      captureMs: host.captureTimesMs,
      paintMs: paints.map((p) => p.paintMs),
    };
  } finally {
    for (const step of cleanup.reverse()) {
      try {
        await step();
      } catch {
        // Keep stopping the rest.
      }
    }
  }
}
