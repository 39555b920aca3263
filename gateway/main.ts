/**
 * `./wavry gateway`: the gateway on `Deno.serve` with a Deno KV store.
 *
 * ```text
 * ./wavry gateway [--listen 0.0.0.0:8080] [--kv ~/.local/share/wavry/gateway.kv | --kv URL]
 *                 [--key ~/.config/wavry/gateway.key] [--id wavry-gateway]
 *                 [--relay-ttl 15] [--inbox-poll-ms 25]
 *                 [--login-limit 30/5] [--signaling-limit 400/200]
 * ```
 *
 * `--kv` is a file path (created if missing) or anything `Deno.openKv`
 * accepts (a KV Connect URL). `--key` is the gateway's Ed25519 identity file
 * (created with mode 0600 if missing): it signs session tokens and leases.
 * Prints `gateway: listening on http://HOST:PORT` once serving (with
 * `--listen 127.0.0.1:0` the port is the one the system chose).
 * `--login-limit` and `--signaling-limit` are `BURST/PER_SECOND` token
 * buckets applied per source address and per identity (benchmarks raise them).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadOrCreateIdentity } from "../crypto/identity_file.ts";
import { encodePeerKey, leaseSecretKeyFromSeed } from "../crypto/lease.ts";
import { createGateway } from "./app.ts";
import type { BucketSpec } from "./rate_limit.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    listen: { type: "string", default: "0.0.0.0:8080" },
    kv: { type: "string" },
    key: { type: "string" },
    id: { type: "string", default: "wavry-gateway" },
    "relay-ttl": { type: "string", default: "15" },
    "inbox-poll-ms": { type: "string", default: "25" },
    "login-limit": { type: "string" },
    "signaling-limit": { type: "string" },
  },
});

function bucket(flag: string, text: string | undefined): BucketSpec | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)\/(\d+(?:\.\d+)?)$/.exec(text);
  if (!m) {
    console.error(`wavry gateway: --${flag} ${text} is not BURST/PER_SECOND`);
    Deno.exit(2);
  }
  return { burst: Number(m[1]), perSecond: Number(m[2]) };
}
const loginBucket = bucket("login-limit", values["login-limit"]);
const signalingBucket = bucket("signaling-limit", values["signaling-limit"]);

const listen = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(values.listen);
if (!listen || Number(listen[3]) > 65535) {
  console.error(`wavry gateway: --listen ${values.listen} is not host:port`);
  Deno.exit(2);
}
const configBase = Deno.env.get("XDG_CONFIG_HOME") ?? `${Deno.env.get("HOME") ?? "."}/.config`;
const identity = await loadOrCreateIdentity(values.key ?? `${configBase}/wavry/gateway.key`);
// Default store beside the user's other Wavry state, not in the working directory
// (`./wavry` runs from the repository).
const dataBase = Deno.env.get("XDG_DATA_HOME") ?? `${Deno.env.get("HOME") ?? "."}/.local/share`;
const kvPath = values.kv ?? `${dataBase}/wavry/gateway.kv`;
if (values.kv === undefined) {
  await Deno.mkdir(`${dataBase}/wavry`, { recursive: true, mode: 0o700 });
}
const kv = await Deno.openKv(kvPath);
const gateway = createGateway({
  kv,
  leaseSecretKey: leaseSecretKeyFromSeed(identity.secretKey, identity.publicKey),
  gatewayId: values.id,
  relayTtlMs: Number(values["relay-ttl"]) * 1000,
  inboxPollMs: Number(values["inbox-poll-ms"]),
  loginLimit: loginBucket && { perAddress: loginBucket, perIdentity: loginBucket },
  signalingLimit: signalingBucket && { perAddress: signalingBucket, perIdentity: signalingBucket },
});
const server = Deno.serve({
  hostname: listen[1] ?? listen[2],
  port: Number(listen[3]),
  onListen: ({ hostname, port }) => {
    const host = hostname.includes(":") ? `[${hostname}]` : hostname;
    console.log(`gateway: listening on http://${host}:${port}`);
    console.log(
      `gateway: id ${values.id}, instance ${gateway.instance}, key ${
        encodePeerKey(identity.publicKey)
      }, kv ${kvPath}`,
    );
  },
}, gateway.fetch);

const stop = async () => {
  await gateway.close();
  await server.shutdown();
  kv.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
