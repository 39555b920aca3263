/**
 * One relay process, minus argument parsing: the forwarder worker, the HTTP
 * endpoint (`/metrics`, `/health`) and, with a gateway, registration and
 * heartbeats. The main thread does no per-packet work.
 *
 * @module
 */

import type { LeasePublicKey } from "../crypto/lease.ts";
import type { BindingTableOptions, RelayAddress } from "./binding_table.ts";
import { RelayForwarder } from "./forwarder.ts";
import { RelayMetrics } from "./metrics.ts";
import { RelayRegistration } from "./registration.ts";
import type { RelayGatewayLink } from "./registration.ts";
import type { ForwarderSocketChoice, ForwarderStats } from "./worker_protocol.ts";

/** Options of {@linkcode startRelay}. */
export interface RelayServerOptions {
  /** This relay's id (leases name it as `rid`; heartbeats carry it). */
  relayId: string;
  /** UDP address to forward on. */
  listen: RelayAddress;
  /** The address peers are told (heartbeat `address`); default: `listen`, or 127.0.0.1 for a wildcard. */
  publicAddress?: RelayAddress;
  /** HTTP address for `/metrics` and `/health`. */
  http: RelayAddress;
  /** The lease key, if known up front (`--lease-key`); otherwise the gateway's is fetched. */
  leasePublicKey?: LeasePublicKey;
  /** The gateway, if the relay registers with one. */
  gateway?: RelayGatewayLink;
  /** Forwarding capacity reported to the gateway, bit/s. */
  capacityBps?: number;
  /** Heartbeat period (ms). */
  heartbeatIntervalMs?: number;
  /** How often the worker posts counters (ms); default 1,000. */
  statsIntervalMs?: number;
  /** The forwarder's UDP socket (`ForwarderOptions.socket`); default "auto". */
  socket?: ForwarderSocketChoice;
  /** Binding table limits (relay id and lease key are filled in). */
  table?: Omit<BindingTableOptions, "relayId" | "leasePublicKey">;
  /** Log lines. */
  log?: (line: string) => void;
}

/** A running relay. */
export interface RunningRelay {
  /** The bound UDP address. */
  readonly udp: RelayAddress;
  /** The bound HTTP address. */
  readonly http: RelayAddress;
  /** The forwarder worker. */
  readonly forwarder: RelayForwarder;
  /** The metrics. */
  readonly metrics: RelayMetrics;
  /** Stops heartbeats, HTTP and the worker. Idempotent. */
  stop(): Promise<void>;
}

function formatAddress(a: RelayAddress): string {
  return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
}

async function resolveLeaseKey(o: RelayServerOptions): Promise<LeasePublicKey> {
  if (o.leasePublicKey !== undefined) return o.leasePublicKey;
  if (o.gateway === undefined) throw new Error("a lease key or a gateway is needed");
  // The gateway may start after the relay: keep asking.
  for (let attempt = 1;; attempt++) {
    try {
      return await o.gateway.leaseKey();
    } catch (e) {
      o.log?.(`lease key not available yet (attempt ${attempt}): ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, Math.min(5_000, 250 * attempt)));
    }
  }
}

/** Starts a relay: worker, HTTP endpoint, and (with a gateway) registration. */
export async function startRelay(o: RelayServerOptions): Promise<RunningRelay> {
  const log = o.log ?? (() => {});
  const leasePublicKey = await resolveLeaseKey(o);
  const maxSessions = o.table?.maxSessions ?? 10_000;
  const capacityBps = o.capacityBps ?? 1_000_000_000;
  const statsIntervalMs = o.statsIntervalMs ?? 1_000;
  const forwarder = await RelayForwarder.start({
    hostname: o.listen.hostname,
    port: o.listen.port,
    table: { ...o.table, relayId: o.relayId, leasePublicKey },
    statsIntervalMs,
    socket: o.socket,
  });
  log(
    forwarder.socket === "native"
      ? "forwarding with the native batched UDP socket (recvmmsg/sendmmsg)"
      : `forwarding with Deno's UDP socket${
        forwarder.fallbackReason ? ` (native shim unavailable: ${forwarder.fallbackReason})` : ""
      }`,
  );
  const metrics = new RelayMetrics(o.relayId);
  let load = 0;
  let previous: ForwarderStats | undefined;
  forwarder.onStats((s) => {
    metrics.update(s);
    if (previous !== undefined && s.atMs > previous.atMs) {
      const bps = ((s.counters.forwardedBytes - previous.counters.forwardedBytes) * 8 * 1000) /
        (s.atMs - previous.atMs);
      load = Math.min(1, Math.max(0, bps / capacityBps, s.sessions / maxSessions));
    }
    previous = s;
  });

  const udp = forwarder.address;
  const publicAddress = o.publicAddress ??
    (udp.hostname === "0.0.0.0" || udp.hostname === "::"
      ? { hostname: "127.0.0.1", port: udp.port }
      : udp);
  let registered: boolean | undefined;
  let registration: RelayRegistration | undefined;
  if (o.gateway !== undefined) {
    registration = new RelayRegistration(o.gateway, {
      intervalMs: o.heartbeatIntervalMs,
      heartbeat: () => ({
        relayId: o.relayId,
        address: formatAddress(publicAddress),
        load: Math.round(load * 1000) / 1000,
        capacityBps: Math.round(capacityBps),
      }),
      onLeaseKey: (key) => {
        if (key !== leasePublicKey) log("the gateway's lease key changed; the worker uses it now");
        forwarder.setLeasePublicKey(key);
      },
      onResult: (ok, error) => {
        metrics.registered(ok);
        if (!ok) metrics.gatewayFailure(error?.kind ?? "Unknown");
        if (ok !== registered) {
          log(ok ? "registered with the gateway" : `gateway: ${error?.message}`);
        }
        registered = ok;
      },
    });
    registration.start();
  }

  const server = Deno.serve({
    hostname: o.http.hostname,
    port: o.http.port,
    onListen: () => {},
  }, async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/metrics") {
      return new Response(await metrics.prometheus(), {
        headers: { "content-type": metrics.contentType },
      });
    }
    if (path === "/health") {
      const s = forwarder.stats;
      // The worker posts counters every statsIntervalMs: silence means it is stuck or gone.
      const ageMs = s === undefined ? undefined : Date.now() - s.atMs;
      const workerOk = ageMs !== undefined && ageMs < 3 * statsIntervalMs + 1_000;
      const body = {
        status: workerOk ? "ok" : "unhealthy",
        relayId: o.relayId,
        udp: formatAddress(udp),
        socket: forwarder.socket,
        socketFallbackReason: forwarder.fallbackReason ?? null,
        publicAddress: formatAddress(publicAddress),
        sessions: s?.sessions ?? 0,
        readySessions: s?.readySessions ?? 0,
        statsAgeMs: ageMs === undefined ? null : Math.round(ageMs),
        gatewayRegistered: o.gateway === undefined ? null : registered === true,
        load,
      };
      return Response.json(body, { status: workerOk ? 200 : 503 });
    }
    return new Response("not found\n", { status: 404 });
  });
  const httpAddr = server.addr as Deno.NetAddr;

  let stopping: Promise<void> | undefined;
  return {
    udp,
    http: { hostname: httpAddr.hostname, port: httpAddr.port },
    forwarder,
    metrics,
    stop() {
      stopping ??= (async () => {
        await registration?.stop();
        await forwarder.stop();
        await server.shutdown();
      })();
      return stopping;
    },
  };
}
