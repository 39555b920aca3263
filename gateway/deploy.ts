/**
 * Deno Deploy entrypoint: the same gateway over the platform's KV.
 *
 * Set `WAVRY_GATEWAY_SEED` to the base64url (no padding) 32-byte Ed25519
 * seed of the gateway's key (a Deploy isolate has no file system to keep a
 * key file in), and optionally `WAVRY_GATEWAY_ID`. `WAVRY_GATEWAY_KV` (a path or
 * URL) is for running this entrypoint elsewhere, e.g. `deno serve`; on Deploy
 * leave it unset so the platform's KV is used. Every isolate builds its
 * own app; all shared state is in KV, so any number of isolates act as one.
 *
 * @module
 */
import { leaseSecretKeyFromSeed } from "../crypto/lease.ts";
import { createGateway } from "./app.ts";

const seedText = Deno.env.get("WAVRY_GATEWAY_SEED") ?? "";
const bin = atob(seedText.replace(/-/g, "+").replace(/_/g, "/") + "=");
if (!/^[A-Za-z0-9_-]{43}$/.test(seedText) || bin.length !== 32) {
  throw new Error("WAVRY_GATEWAY_SEED must be a 32-byte Ed25519 seed in base64url");
}
const seed = Uint8Array.from(bin, (c) => c.charCodeAt(0));
const gateway = createGateway({
  kv: await Deno.openKv(Deno.env.get("WAVRY_GATEWAY_KV") || undefined),
  leaseSecretKey: leaseSecretKeyFromSeed(seed),
  gatewayId: Deno.env.get("WAVRY_GATEWAY_ID") ?? "wavry-gateway",
});

export default { fetch: gateway.fetch } satisfies Deno.ServeDefaultExport;
