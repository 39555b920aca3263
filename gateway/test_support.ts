/**
 * Test helpers: a real gateway on `Deno.serve` (port 0) over an in-memory or
 * file KV, with a clock the test can move, and identities.
 *
 * @module
 */
import { generateIdentity, type IdentityKeyPair } from "../crypto/identity.ts";
import { leaseSecretKeyFromSeed } from "../crypto/lease.ts";
import { createGateway, type Gateway, type GatewayOptions } from "./app.ts";
import { GatewayClient } from "./client.ts";

/** A running gateway for a test. */
export interface TestGateway {
  url: string;
  gateway: Gateway;
  kv: Deno.Kv;
  /** Moves the gateway's clock forward. */
  advance(ms: number): void;
  /** Creates, registers and logs in a fresh identity. */
  peer(name: string, kind: "user" | "host" | "relay"): Promise<GatewayClient>;
  stop(): Promise<void>;
}

/** Starts a gateway on 127.0.0.1 with a random port. */
export async function startTestGateway(
  opts: Partial<GatewayOptions> = {},
  kvPath = ":memory:",
): Promise<TestGateway> {
  const kv = opts.kv ?? await Deno.openKv(kvPath);
  let offset = 0;
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const gateway = createGateway({
    leaseSecretKey: leaseSecretKeyFromSeed(seed),
    gatewayId: "test-gateway",
    now: () => Date.now() + offset,
    ...opts,
    kv,
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, gateway.fetch);
  const url = `http://127.0.0.1:${server.addr.port}`;
  return {
    url,
    gateway,
    kv,
    advance: (ms) => offset += ms,
    async peer(name, kind) {
      const c = new GatewayClient(url, generateIdentity());
      await c.register(name, kind);
      await c.login();
      return c;
    },
    async stop() {
      await gateway.close();
      await server.shutdown();
      if (!opts.kv) kv.close();
    },
  };
}

/** A fresh identity and a client for it (not registered). */
export function newClient(url: string): { identity: IdentityKeyPair; client: GatewayClient } {
  const identity = generateIdentity();
  return { identity, client: new GatewayClient(url, identity) };
}

/** The value of one Prometheus series in a text exposition, 0 if absent. */
export function metricValue(text: string, series: string): number {
  for (const line of text.split("\n")) {
    if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  }
  return 0;
}
