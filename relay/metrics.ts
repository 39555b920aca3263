/**
 * The relay's Prometheus metrics, fed from the counters the forwarder worker
 * posts (the main thread never touches a packet). Cumulative worker counters
 * become Prometheus counters by adding their increase since the last update.
 *
 * @module
 */

import client from "prom-client";
import { DROP_KINDS, type DropKind } from "./binding_table.ts";
import type { ForwarderStats } from "./worker_protocol.ts";

/** Prometheus metrics of one relay process. */
export class RelayMetrics {
  readonly #registry = new client.Registry();
  readonly #drops: client.Counter<"kind">;
  readonly #counters: Record<string, client.Counter>;
  readonly #sessions: client.Gauge;
  readonly #ready: client.Gauge;
  readonly #bound: client.Gauge;
  readonly #registered: client.Gauge;
  readonly #heartbeatFailures: client.Counter<"kind">;
  #last: ForwarderStats | undefined;

  /** @param relayId the `relay` label on every series. */
  constructor(relayId: string) {
    this.#registry.setDefaultLabels({ relay: relayId });
    const registers = [this.#registry];
    this.#drops = new client.Counter({
      name: "wavry_relay_dropped_total",
      help: "Datagrams the relay refused or dropped, by kind",
      labelNames: ["kind"],
      registers,
    });
    // Every kind is exported from the start, at 0, so dashboards see the full set.
    for (const kind of DROP_KINDS) this.#drops.inc({ kind }, 0);
    const counter = (name: string, help: string) => new client.Counter({ name, help, registers });
    this.#counters = {
      datagramsIn: counter("wavry_relay_received_datagrams_total", "Datagrams received"),
      bytesIn: counter("wavry_relay_received_bytes_total", "Bytes received"),
      forwardedPackets: counter("wavry_relay_forwarded_datagrams_total", "Datagrams forwarded"),
      forwardedBytes: counter("wavry_relay_forwarded_bytes_total", "Bytes forwarded"),
      replies: counter("wavry_relay_replies_total", "BIND_ACK and BIND_ERROR replies sent"),
      replyBytes: counter("wavry_relay_reply_bytes_total", "Bytes of replies sent"),
      bindsAccepted: counter("wavry_relay_binds_accepted_total", "Binding requests accepted"),
      bindingsExpired: counter("wavry_relay_bindings_expired_total", "Peer bindings idled out"),
      sessionsExpired: counter("wavry_relay_sessions_expired_total", "Sessions whose lease ended"),
      sendErrors: counter("wavry_relay_send_errors_total", "Sends the kernel refused"),
      receiveErrors: counter("wavry_relay_receive_errors_total", "Failed receive calls"),
      exceptions: counter("wavry_relay_exceptions_total", "Exceptions caught per datagram"),
      receiveCalls: counter(
        "wavry_relay_receive_calls_total",
        "Receive calls that returned datagrams (native: batches)",
      ),
      stunAnswered: counter(
        "wavry_relay_stun_answered_total",
        "STUN Binding success responses sent from the relay port",
      ),
      stunErrors: counter(
        "wavry_relay_stun_error_responses_total",
        "STUN error responses sent from the relay port",
      ),
      stunDropped: counter(
        "wavry_relay_stun_dropped_total",
        "Datagrams with first byte 0-3 left unanswered (not a STUN request)",
      ),
      stunRateLimited: counter(
        "wavry_relay_stun_rate_limited_total",
        "STUN requests unanswered: reply budget spent",
      ),
      truncated: counter(
        "wavry_relay_truncated_total",
        "Datagrams longer than a native receive slot, dropped",
      ),
    };
    this.#sessions = new client.Gauge({
      name: "wavry_relay_sessions",
      help: "Sessions held",
      registers,
    });
    this.#ready = new client.Gauge({
      name: "wavry_relay_ready_sessions",
      help: "Sessions with both peers bound",
      registers,
    });
    this.#bound = new client.Gauge({
      name: "wavry_relay_bound_peers",
      help: "Peer bindings held",
      registers,
    });
    this.#registered = new client.Gauge({
      name: "wavry_relay_gateway_registered",
      help: "1 while the last heartbeat to the gateway succeeded",
      registers,
    });
    this.#heartbeatFailures = new client.Counter({
      name: "wavry_relay_gateway_failures_total",
      help: "Failed calls to the gateway, by kind",
      labelNames: ["kind"],
      registers,
    });
  }

  /** Applies a counters message from the worker. */
  update(stats: ForwarderStats): void {
    const last = this.#last;
    const delta = (now: number, before: number | undefined) =>
      // A smaller value means a new worker started from zero.
      before === undefined || now < before ? now : now - before;
    for (const kind of DROP_KINDS) {
      const d = delta(stats.counters.drops[kind], last?.counters.drops[kind as DropKind]);
      if (d > 0) this.#drops.inc({ kind }, d);
    }
    const flat = (s: ForwarderStats): Record<string, number> => ({
      ...s.counters,
      sendErrors: s.sendErrors,
      receiveErrors: s.receiveErrors,
      exceptions: s.exceptions,
      receiveCalls: s.receiveCalls,
      truncated: s.truncated,
      stunAnswered: s.stunAnswered,
      stunErrors: s.stunErrors,
      stunDropped: s.stunDropped,
      stunRateLimited: s.stunRateLimited,
    } as unknown as Record<string, number>);
    const now = flat(stats);
    const before = last ? flat(last) : undefined;
    for (const [name, c] of Object.entries(this.#counters)) {
      const d = delta(now[name], before?.[name]);
      if (d > 0) c.inc(d);
    }
    this.#sessions.set(stats.sessions);
    this.#ready.set(stats.readySessions);
    this.#bound.set(stats.boundPeers);
    this.#last = stats;
  }

  /** Records whether the gateway accepted the last heartbeat. */
  registered(ok: boolean): void {
    this.#registered.set(ok ? 1 : 0);
  }

  /** Counts a failed call to the gateway. */
  gatewayFailure(kind: string): void {
    this.#heartbeatFailures.inc({ kind });
  }

  /** Prometheus text exposition. */
  prometheus(): Promise<string> {
    return this.#registry.metrics();
  }

  /** Content type of {@linkcode RelayMetrics.prometheus}. */
  get contentType(): string {
    return this.#registry.contentType;
  }
}
