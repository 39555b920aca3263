/**
 * `./wavry client HOST:PORT`: connects to a Wavry host and serves the player.
 *
 *   ./wavry client HOST:PORT [--port 8080] [--identity ~/.config/wavry/client.key]
 *                  [--expect-host HOST_KEY] [--no-open]
 *
 * The player opens in the default browser when this session has one (a
 * DISPLAY or WAYLAND_DISPLAY and xdg-open); the URL is printed either way.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { decodeIdentityPublicKey, identityFingerprint } from "../crypto/identity.ts";
import { loadOrCreateIdentity } from "../crypto/identity_file.ts";
import { defaultIdentityPath, parseAddress } from "../edge/cli.ts";
import { WavryClient } from "./client.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    port: { type: "string", default: "0" },
    identity: { type: "string" },
    "expect-host": { type: "string" },
    "no-open": { type: "boolean", default: false },
  },
});
if (positionals.length !== 1) {
  console.error("usage: ./wavry client HOST:PORT [--port N] [--expect-host KEY] [--no-open]");
  Deno.exit(2);
}
const identity = await loadOrCreateIdentity(values.identity ?? defaultIdentityPath("client"));
let expected: Uint8Array | undefined;
if (values["expect-host"] !== undefined) {
  const key = decodeIdentityPublicKey(values["expect-host"]);
  if (key === undefined) {
    console.error(
      `wavry client: --expect-host ${values["expect-host"]} is not an identity public key`,
    );
    Deno.exit(2);
  }
  expected = key;
} else {
  console.error("wavry client: no --expect-host given: any host identity is accepted");
}
let client: WavryClient;
try {
  client = await WavryClient.start({
    host: parseAddress(positionals[0]),
    identity,
    expectHost: expected,
    playerPort: Number(values.port),
  });
} catch (error) {
  console.error(`wavry client: ${(error as Error).message}`);
  Deno.exit(1);
}
const host = client.connection.peerIdentity;
console.log(
  `wavry client: connected to ${positionals[0]} (host ${identityFingerprint(host)}); ` +
    `player ${client.player.url} ; metrics ${client.player.url.replace(/\/$/, "")}/metrics`,
);
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
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
const closed = await client.closed;
console.error(`wavry client: session closed (${closed.reason || `code ${closed.code}`})`);
await client.player.close();
Deno.exit(closed.byPeer ? 0 : 1);
