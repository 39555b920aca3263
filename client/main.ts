/**
 * `./wavry client HOST:PORT`: connects to a Wavry host and serves the player.
 *
 *   ./wavry client HOST:PORT [--port 8080] [--identity ~/.config/wavry/client.key]
 *                  [--expect-host HOST_KEY] [--no-open]
 *   ./wavry client --gateway URL (--host-name NAME | --host-key KEY) [--stun IP:PORT]
 *                  [--name NAME] [--pairing-code CODE] [--ice-loopback] [--port 8080] ...
 *
 * Through the gateway the client logs in (registering its key as a user the
 * first time), finds the host among those that authorise it, and connects
 * with ICE on its session socket, falling back to a relay lease when no
 * direct path works within 4 s (docs/CONNECT.md). With `--host-key` the
 * host's identity is also pinned for the handshake.
 *
 * The player opens in the default browser when this session has one (a
 * DISPLAY or WAYLAND_DISPLAY and xdg-open); the URL is printed either way.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { decodeIdentityPublicKey, identityFingerprint } from "../crypto/identity.ts";
import { loadOrCreateIdentity } from "../crypto/identity_file.ts";
import { defaultIdentityPath, joinOptionValues, parseAddress } from "../edge/cli.ts";
import { WavryClient } from "./client.ts";
import { GatewaySession } from "./gateway_connect.ts";

const { values, positionals } = parseArgs({
  // A base64url key may start with "-": keep it the option's value.
  args: joinOptionValues(Deno.args, ["expect-host", "host-key", "pairing-code"]),
  allowPositionals: true,
  options: {
    port: { type: "string", default: "0" },
    identity: { type: "string" },
    "expect-host": { type: "string" },
    "no-open": { type: "boolean", default: false },
    gateway: { type: "string" },
    "host-name": { type: "string" },
    "host-key": { type: "string" },
    stun: { type: "string" },
    name: { type: "string" },
    "pairing-code": { type: "string" },
    "ice-loopback": { type: "boolean", default: false },
  },
});
const viaGateway = values.gateway !== undefined;
if (
  viaGateway
    ? positionals.length !== 0 || (values["host-name"] === undefined) ===
        (values["host-key"] === undefined)
    : positionals.length !== 1
) {
  console.error(
    "usage: ./wavry client HOST:PORT [--port N] [--expect-host KEY] [--no-open]\n" +
      "       ./wavry client --gateway URL (--host-name NAME | --host-key KEY) [--stun IP:PORT] " +
      "[--name NAME] [--pairing-code CODE] [--port N] [--no-open]",
  );
  Deno.exit(2);
}
const identity = await loadOrCreateIdentity(values.identity ?? defaultIdentityPath("client"));
let expected: Uint8Array | undefined;
const pinned = values["expect-host"] ?? values["host-key"];
if (pinned !== undefined) {
  const key = decodeIdentityPublicKey(pinned);
  if (key === undefined) {
    console.error(`wavry client: ${pinned} is not an identity public key`);
    Deno.exit(2);
  }
  expected = key;
} else {
  if (!viaGateway) {
    console.error("wavry client: no --expect-host given: any host identity is accepted");
  }
}
const log = (line: string) => console.error(`wavry client: ${line}`);
let client: WavryClient;
let session: GatewaySession | undefined;
let target = positionals[0];
try {
  if (viaGateway) {
    session = await GatewaySession.open({
      url: values.gateway!,
      identity,
      name: values.name ?? `${Deno.hostname()}-client`,
      host: values["host-key"] !== undefined
        ? { key: values["host-key"] }
        : { name: values["host-name"]! },
      pairingCode: values["pairing-code"],
      log,
    });
    target = `${session.host.name} via ${values.gateway}`;
    // The handshake must prove the identity the gateway listed for that host.
    expected ??= decodeIdentityPublicKey(session.host.publicKey);
  }
  client = await WavryClient.start({
    host: viaGateway ? { hostname: "0.0.0.0", port: 0 } : parseAddress(positionals[0]),
    identity,
    expectHost: expected,
    playerPort: Number(values.port),
    ice: session === undefined ? undefined : {
      options: {
        stunServer: values.stun === undefined ? undefined : parseAddress(values.stun),
        includeLoopback: values["ice-loopback"],
      },
      signaling: session,
    },
  });
} catch (error) {
  await session?.close();
  console.error(`wavry client: ${(error as Error).message}`);
  Deno.exit(1);
}
const host = client.connection.peerIdentity;
console.log(
  `wavry client: connected to ${target} (host ${
    identityFingerprint(host)
  }); path ${client.connection.path} ` +
    `${client.connection.remote.hostname}:${client.connection.remote.port}; ` +
    `player ${client.player.url} ; metrics ${client.player.url.replace(/\/$/, "")}/metrics`,
);
if (!client.connection.inputThreadRealtime) {
  console.error(
    "wavry client: input thread at normal priority (SCHED_FIFO needs root or CAP_SYS_NICE)",
  );
}
const hasScreen = Boolean(Deno.env.get("DISPLAY") || Deno.env.get("WAYLAND_DISPLAY"));
if (!values["no-open"] && hasScreen) {
  try {
    const opener = new Deno.Command("xdg-open", {
      args: [client.player.url],
      stdout: "null",
      stderr: "null",
    }).spawn();
    opener.status.then((s) => {
      if (!s.success) console.error("wavry client: could not open a browser; open the URL above");
    });
  } catch {
    console.error("wavry client: no xdg-open here; open the player URL above yourself");
  }
}
const stop = async () => {
  await client.stop();
  await session?.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
const closed = await client.closed;
console.error(`wavry client: session closed (${closed.reason || `code ${closed.code}`})`);
await client.player.close();
await session?.close();
Deno.exit(closed.byPeer ? 0 : 1);
