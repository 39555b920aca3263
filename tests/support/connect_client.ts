/**
 * A Wavry client for tests/connect_netns_test.ts, run inside a namespace:
 * the real gateway path (client/gateway_connect.ts: login, pairing, connect,
 * ICE offers, relay lease) and the real session workers
 * (client/connection.ts), without the web player. Prints one JSON line per
 * event on stdout:
 *
 *   {"ev":"connected","path":"srflx","remote":"198.51.100.2:7700","ms":812}
 *   {"ev":"frames","n":123,"lost":0}          every 500 ms
 *   {"ev":"closed","code":0,"reason":"...","byPeer":false}
 *   {"ev":"error","message":"..."}
 *
 *   deno run -A tests/support/connect_client.ts --gateway URL --host-key KEY
 *     [--pairing-code CODE] [--stun IP:PORT] [--idle-ms N]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { generateIdentity } from "../../crypto/identity.ts";
import { ClientConnection } from "../../client/connection.ts";
import { GatewaySession } from "../../client/gateway_connect.ts";
import { decodeIdentityPublicKey } from "../../crypto/identity.ts";
import { parseAddress } from "../../edge/cli.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    gateway: { type: "string" },
    "host-key": { type: "string" },
    "pairing-code": { type: "string" },
    stun: { type: "string" },
    "idle-ms": { type: "string" },
  },
});
const say = (o: Record<string, unknown>) => console.log(JSON.stringify(o));

const started = performance.now();
let session: GatewaySession | undefined;
try {
  const identity = generateIdentity();
  session = await GatewaySession.open({
    url: values.gateway!,
    identity,
    name: "nat-client",
    host: { key: values["host-key"]! },
    pairingCode: values["pairing-code"],
    log: (line) => console.error(`client: ${line}`),
  });
  const idle = values["idle-ms"] === undefined ? undefined : Number(values["idle-ms"]);
  const connection = await ClientConnection.connect({
    remote: { hostname: "0.0.0.0", port: 0 },
    identity,
    expectHost: decodeIdentityPublicKey(values["host-key"]!),
    ice: { stunServer: values.stun === undefined ? undefined : parseAddress(values.stun) },
    signaling: session,
    config: idle === undefined ? undefined : { idleTimeoutMs: idle },
  });
  say({
    ev: "connected",
    path: connection.path,
    remote: `${connection.remote.hostname}:${connection.remote.port}`,
    ms: Math.round(performance.now() - started),
  });
  let frames = 0, lost = 0;
  const timer = setInterval(() => say({ ev: "frames", n: frames, lost }), 500);
  for await (const e of connection.events()) {
    if (e.type === "video-frame") frames++;
    else if (e.type === "video-frame-lost") lost++;
    else if (e.type === "closed") {
      clearInterval(timer);
      say({ ev: "frames", n: frames, lost });
      say({ ev: "closed", code: e.code, reason: e.reason, byPeer: e.byPeer });
    }
  }
} catch (error) {
  say({ ev: "error", message: (error as Error).message });
} finally {
  await session?.close();
}
Deno.exit(0);
