import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { TransportAddress } from "./ip.ts";
import { type NatBehaviour, NatDiscovery, type NatDiscoveryResult } from "./discovery.ts";
import { type LocalSocket, StunServerCore } from "./server.ts";

const A1 = "198.51.100.1", A2 = "198.51.100.2", P1 = 3478, P2 = 3479;
const PRIVATE: TransportAddress = { hostname: "10.0.0.2", port: 5000, family: "IPv4" };
const PUBLIC_IP = "203.0.113.1";

/**
 * A NAT in pure TS (RFC 4787 behaviours): mappings keyed by what the
 * mapping behaviour says, filtering by the remote endpoints the mapping has
 * sent to. Ports are allocated sequentially, never preserved.
 */
class SimNat {
  #nextPort = 20000;
  readonly #mappings = new Map<string, number>();
  /** public port → remotes this mapping has sent to */
  readonly #sentTo = new Map<number, Set<string>>();
  constructor(readonly mapping: NatBehaviour, readonly filtering: NatBehaviour) {}

  outbound(to: TransportAddress): TransportAddress {
    const key = this.mapping === "endpoint-independent"
      ? ""
      : this.mapping === "address-dependent"
      ? to.hostname
      : `${to.hostname}:${to.port}`;
    let port = this.#mappings.get(key);
    if (port === undefined) {
      port = this.#nextPort++;
      this.#mappings.set(key, port);
      this.#sentTo.set(port, new Set());
    }
    const sent = this.#sentTo.get(port)!;
    sent.add(to.hostname);
    sent.add(`${to.hostname}:${to.port}`);
    return { hostname: PUBLIC_IP, port, family: "IPv4" };
  }

  /** Whether a datagram from `from` to public `port` is let in. */
  inbound(from: TransportAddress, port: number): boolean {
    const sent = this.#sentTo.get(port);
    if (!sent) return false;
    if (this.filtering === "endpoint-independent") return true;
    if (this.filtering === "address-dependent") return sent.has(from.hostname);
    return sent.has(`${from.hostname}:${from.port}`);
  }
}

function socketFor(to: TransportAddress): LocalSocket {
  return {
    ip: to.hostname === A1 ? "primary" : "alternate",
    port: to.port === P1 ? "primary" : "alternate",
  };
}

/** Runs a discovery through `nat` against a real server core, in simulated time. */
function run(
  nat: SimNat | undefined,
  opts: { alternate?: boolean; serverDown?: boolean } = {},
): { result: NatDiscoveryResult; elapsed: number; sent: number } {
  const core = new StunServerCore({
    primary: { hostname: A1, port: P1, family: "IPv4" },
    alternate: opts.alternate === false ? undefined : { hostname: A2, port: P2, family: "IPv4" },
  });
  const local = nat ? PRIVATE : { hostname: "192.0.2.9", port: 5000, family: "IPv4" as const };
  const d = new NatDiscovery({
    server: { hostname: A1, port: P1, family: "IPv4" },
    localAddress: local,
  }, 0);
  let now = 0, sent = 0;
  for (let guard = 0; guard < 1000 && !d.result(); guard++) {
    for (let t = d.pollTransmit(now); t; t = d.pollTransmit(now)) {
      sent++;
      if (opts.serverDown) continue;
      const from = nat ? nat.outbound(t.to) : local;
      const action = core.handle(t.bytes, from, socketFor(t.to));
      if (action.action !== "reply") continue;
      const replyFrom = core.addressOf(action.sendFrom);
      if (nat && !nat.inbound(replyFrom, action.to.port)) continue;
      d.handleDatagram(action.bytes, now + 10);
    }
    if (d.result()) break;
    const next = d.pollTimeout();
    if (next === undefined) break;
    now = next;
    d.handleTimeout(now);
  }
  const result = d.result();
  assert(result, "discovery finished");
  return { result, elapsed: now, sent };
}

const behaviours: NatBehaviour[] = [
  "endpoint-independent",
  "address-dependent",
  "address-and-port-dependent",
];

for (const mapping of behaviours) {
  for (const filtering of behaviours) {
    Deno.test(`discovery through a simulated NAT: mapping ${mapping}, filtering ${filtering}`, () => {
      const { result } = run(new SimNat(mapping, filtering));
      assert(result.ok, JSON.stringify(result));
      assertEquals(result.mapping, mapping);
      assertEquals(result.filtering, filtering);
      assertEquals(result.natPresent, true);
      assertEquals(result.mapped.hostname, PUBLIC_IP);
    });
  }
}

Deno.test("discovery with no NAT: endpoint-independent both ways, natPresent false", () => {
  const { result } = run(undefined);
  assert(result.ok);
  assertEquals([result.mapping, result.filtering, result.natPresent], [
    "endpoint-independent",
    "endpoint-independent",
    false,
  ]);
});

Deno.test("discovery against a single-address server: NoRfc5780 after test I", () => {
  const { result, sent } = run(new SimNat("endpoint-independent", "endpoint-independent"), {
    alternate: false,
  });
  assert(!result.ok);
  assertEquals(result.kind, "NoRfc5780");
  assertEquals(sent, 1);
});

Deno.test("discovery with the server down: ServerUnreachable, bounded by one transaction", () => {
  const { result, elapsed, sent } = run(undefined, { serverDown: true });
  assert(!result.ok);
  assertEquals(result.kind, "ServerUnreachable");
  assertEquals(sent, 7);
  assertEquals(elapsed, 39500);
});
