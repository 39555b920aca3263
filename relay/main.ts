/**
 * `./wavry relay`: the blind relay.
 *
 *   ./wavry relay [--master-url http://localhost:8080] [--lease-key k4.public.…]
 *                 [--listen 0.0.0.0:7300] [--public-address IP:PORT] [--http 127.0.0.1:9300]
 *                 [--identity ~/.config/wavry/relay.key] [--relay-id ID] [--name NAME]
 *                 [--capacity-mbps 1000] [--max-sessions 10000] [--idle-timeout-ms 30000]
 *                 [--socket auto|native|deno]
 *
 * With `--master-url` it registers with the gateway, heartbeats, and takes the
 * lease key from it; `--lease-key` gives the key directly (then no gateway is
 * needed). See docs/RELAY.md.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { identityFingerprint } from "../crypto/identity.ts";
import { loadOrCreateIdentity } from "../crypto/identity_file.ts";
import type { RelayAddress } from "./binding_table.ts";
import { HttpGatewayLink } from "./registration.ts";
import { startRelay } from "./server.ts";

function fail(message: string): never {
  console.error(`wavry relay: ${message}`);
  Deno.exit(2);
}

function parseAddress(text: string, flag: string): RelayAddress {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) fail(`${flag} ${text} is not host:port`);
  return { hostname: m[1] ?? m[2], port };
}

function positive(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) fail(`${flag} must be a positive number`);
  return n;
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "master-url": { type: "string" },
    "lease-key": { type: "string" },
    listen: { type: "string", default: "0.0.0.0:7300" },
    "public-address": { type: "string" },
    http: { type: "string", default: "127.0.0.1:9300" },
    identity: { type: "string" },
    "relay-id": { type: "string" },
    name: { type: "string" },
    "capacity-mbps": { type: "string", default: "1000" },
    "max-sessions": { type: "string", default: "10000" },
    "idle-timeout-ms": { type: "string", default: "30000" },
    socket: { type: "string", default: "auto" },
  },
});

const socket = values.socket;
if (socket !== "auto" && socket !== "native" && socket !== "deno") {
  fail("--socket must be auto, native or deno");
}
const masterUrl = values["master-url"];
const leaseKey = values["lease-key"];
if (masterUrl === undefined && leaseKey === undefined) {
  fail("give --master-url (register with the gateway) or --lease-key k4.public.… (standalone)");
}
if (leaseKey !== undefined && !/^k4\.public\.[A-Za-z0-9_-]{43}$/.test(leaseKey)) {
  fail("--lease-key must be a PASERK k4.public key");
}
const configHome = Deno.env.get("XDG_CONFIG_HOME") ?? `${Deno.env.get("HOME") ?? "."}/.config`;
const identity = await loadOrCreateIdentity(values.identity ?? `${configHome}/wavry/relay.key`);
const fingerprint = identityFingerprint(identity.publicKey);
const relayId = values["relay-id"] ?? `relay-${fingerprint.replaceAll("-", "")}`;
if (!/^[A-Za-z0-9._:-]{1,64}$/.test(relayId)) fail("--relay-id must be [A-Za-z0-9._:-]{1,64}");
const log = (line: string) => console.error(`wavry relay: ${line}`);

const relay = await startRelay({
  relayId,
  listen: parseAddress(values.listen, "--listen"),
  publicAddress: values["public-address"]
    ? parseAddress(values["public-address"], "--public-address")
    : undefined,
  http: parseAddress(values.http, "--http"),
  leasePublicKey: leaseKey,
  gateway: masterUrl === undefined
    ? undefined
    : new HttpGatewayLink(masterUrl, identity, values.name ?? relayId),
  capacityBps: positive(values["capacity-mbps"], "--capacity-mbps") * 1e6,
  table: {
    maxSessions: Math.floor(positive(values["max-sessions"], "--max-sessions")),
    idleTimeoutMs: positive(values["idle-timeout-ms"], "--idle-timeout-ms"),
  },
  socket,
  log,
});
log(
  `relay ${relayId} (identity ${fingerprint}) forwarding on udp ${relay.udp.hostname}:${relay.udp.port}; ` +
    `metrics http://${relay.http.hostname}:${relay.http.port}/metrics` +
    (masterUrl ? `; gateway ${masterUrl}` : "; standalone (--lease-key)"),
);

let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  log("stopping");
  await relay.stop();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", shutdown);
Deno.addSignalListener("SIGTERM", shutdown);
