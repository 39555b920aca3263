/**
 * The gateway's Prometheus metrics, one registry per gateway instance (so
 * several gateways in one process, as in tests, do not share counters).
 *
 * @module
 */
import client from "prom-client";

/** Counters and gauges of one gateway instance. */
export class GatewayMetrics {
  /** The registry `/metrics` renders. */
  readonly registry: client.Registry = new client.Registry();
  /** Successful logins, by identity kind. */
  readonly logins: client.Counter<"kind">;
  /** Successful registrations, by identity kind. */
  readonly registrations: client.Counter<"kind">;
  /** Requests refused, by kind (rate limits, bad signatures, replays, ...). */
  readonly refusals: client.Counter<"kind">;
  /** Signaling messages received and accepted, by type. */
  readonly signaling: client.Counter<"type">;
  /** Error replies sent (HTTP and WebSocket), by code. */
  readonly errors: client.Counter<"code">;
  /** Peers with an authenticated WebSocket on this instance, by kind. */
  readonly connectedPeers: client.Gauge<"kind">;
  /** Relays whose last heartbeat is recent enough (read from KV at scrape time). */
  readonly liveRelays: client.Gauge;
  /** Leases issued. */
  readonly leases: client.Counter;
  /** Connection outcomes reported by peers. */
  readonly outcomes: client.Counter<"result">;
  /** Messages handed to another instance through KV, and received that way. */
  readonly crossInstance: client.Counter<"direction">;

  /** @param countLiveRelays called at scrape time to set the live relay gauge. */
  constructor(countLiveRelays: () => Promise<number>) {
    const registers = [this.registry];
    this.logins = new client.Counter({
      name: "wavry_gateway_logins_total",
      help: "Successful challenge-response logins.",
      labelNames: ["kind"],
      registers,
    });
    this.registrations = new client.Counter({
      name: "wavry_gateway_registrations_total",
      help: "Successful identity registrations.",
      labelNames: ["kind"],
      registers,
    });
    this.refusals = new client.Counter({
      name: "wavry_gateway_refusals_total",
      help: "Requests refused, by kind.",
      labelNames: ["kind"],
      registers,
    });
    this.signaling = new client.Counter({
      name: "wavry_gateway_signaling_messages_total",
      help: "Valid signaling messages received, by type.",
      labelNames: ["type"],
      registers,
    });
    this.errors = new client.Counter({
      name: "wavry_gateway_errors_total",
      help: "Error replies sent, by code.",
      labelNames: ["code"],
      registers,
    });
    this.connectedPeers = new client.Gauge({
      name: "wavry_gateway_connected_peers",
      help: "Authenticated WebSockets on this instance, by identity kind.",
      labelNames: ["kind"],
      registers,
    });
    this.liveRelays = new client.Gauge({
      name: "wavry_gateway_live_relays",
      help: "Relays with a recent heartbeat (shared across instances through KV).",
      registers,
      async collect() {
        this.set(await countLiveRelays());
      },
    });
    this.leases = new client.Counter({
      name: "wavry_gateway_leases_issued_total",
      help: "Relay leases issued.",
      registers,
    });
    this.outcomes = new client.Counter({
      name: "wavry_gateway_connection_outcomes_total",
      help: "Connection outcomes reported by peers.",
      labelNames: ["result"],
      registers,
    });
    this.crossInstance = new client.Counter({
      name: "wavry_gateway_cross_instance_messages_total",
      help: "Signaling messages passed between instances through KV.",
      labelNames: ["direction"],
      registers,
    });
    for (const kind of ["user", "host", "relay"]) this.connectedPeers.set({ kind }, 0);
  }
}
