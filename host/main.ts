/**
 * `./wavry host`: streams this machine's X display to Wavry clients.
 *
 *   ./wavry host [--listen 0.0.0.0:7700] [--display :0] [--fps 60] [--bitrate 8]
 *                [--identity ~/.config/wavry/host.key] [--allow CLIENT_KEY ...] [--metrics-port 9700]
 *                [--no-audio] [--audio-source PULSE_SOURCE]
 *                [--fixed-bitrate [--fec PARITY_RATIO]] [--max-bitrate MBPS]
 *                [--gateway URL [--name NAME] [--stun IP:PORT] [--pairing] [--ice-loopback]]
 *
 * With `--gateway` the host registers (or logs in) as a host, keeps presence
 * on the gateway's WebSocket and answers connect requests with ICE on its
 * RIFT socket (relay fallback with a lease); `--allow` keys then also go to
 * the gateway's allow list, and `--pairing` prints a one-time pairing code
 * (docs/CONNECT.md). Without it the host just listens on `--listen`.
 *
 * By default DELTA congestion control picks the bitrate, frame rate, FEC and pacing
 * (docs/DELTA.md); `--fixed-bitrate` streams at `--bitrate` with `--fec` parity instead.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  decodeIdentityPublicKey,
  encodeIdentityPublicKey,
  identityFingerprint,
} from "../crypto/identity.ts";
import { loadOrCreateIdentity } from "../crypto/identity_file.ts";
import { WavryHost } from "./host.ts";
import { DEFAULT_VIDEO_FEC } from "../core/fec/video.ts";
import { defaultIdentityPath, joinOptionValues, parseAddress } from "../edge/cli.ts";
import { GatewayLink } from "./gateway_link.ts";
import { encodePeerKey } from "../crypto/lease.ts";

const { values } = parseArgs({
  // A base64url key may start with "-": keep it the option's value.
  args: joinOptionValues(Deno.args, ["allow"]),
  options: {
    listen: { type: "string", default: "0.0.0.0:7700" },
    display: { type: "string" },
    fps: { type: "string", default: "60" },
    bitrate: { type: "string", default: "8" },
    identity: { type: "string" },
    allow: { type: "string", multiple: true },
    "metrics-port": { type: "string", default: "9700" },
    "no-audio": { type: "boolean", default: false },
    fec: { type: "string", default: "0" },
    "fixed-bitrate": { type: "boolean", default: false },
    "max-bitrate": { type: "string" },
    "audio-source": { type: "string" },
    gateway: { type: "string" },
    name: { type: "string" },
    stun: { type: "string" },
    pairing: { type: "boolean", default: false },
    "ice-loopback": { type: "boolean", default: false },
  },
});

const display = values.display ?? Deno.env.get("DISPLAY");
if (!display) {
  console.error("wavry host: no X display: set DISPLAY or pass --display");
  Deno.exit(2);
}
const identity = await loadOrCreateIdentity(values.identity ?? defaultIdentityPath("host"));
const allowed = (values.allow ?? []).map((text) => {
  const key = decodeIdentityPublicKey(text);
  if (key === undefined) {
    console.error(`wavry host: --allow ${text} is not an identity public key`);
    Deno.exit(2);
  }
  return key;
});
if (allowed.length === 0) {
  console.error(
    values.gateway === undefined
      ? "wavry host: no --allow given: any client identity may connect"
      : "wavry host: no --allow given: clients the gateway authorises (allow list, pairing) may connect",
  );
}
const log = (line: string) => console.error(`wavry host: ${line}`);
let link: GatewayLink | undefined;
if (values.gateway !== undefined) {
  try {
    link = await GatewayLink.start({
      url: values.gateway,
      identity,
      name: values.name ?? Deno.hostname(),
      allow: allowed.map((key) => encodePeerKey(key)),
      pairing: values.pairing,
      log,
    });
  } catch (error) {
    console.error(`wavry host: gateway ${values.gateway}: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
const host = await WavryHost.start({
  listen: parseAddress(values.listen),
  display,
  fps: Number(values.fps),
  bitrateBps: Number(values.bitrate) * 1e6,
  identity,
  allowedClients: allowed.length === 0 ? undefined : allowed,
  audio: values["no-audio"] ? undefined : { source: values["audio-source"] },
  congestionControl: !values["fixed-bitrate"],
  maxBitrateBps: values["max-bitrate"] === undefined
    ? undefined
    : Number(values["max-bitrate"]) * 1e6,
  // Reed-Solomon parity per video frame with --fixed-bitrate; 0.1 = one parity packet per ten.
  sessionConfig: { fec: { ...DEFAULT_VIDEO_FEC, parityRatio: Number(values.fec) } },
  ice: link === undefined ? undefined : {
    stunServer: values.stun === undefined ? undefined : parseAddress(values.stun),
    includeLoopback: values["ice-loopback"],
  },
  connectEvents: link,
  log,
});
await link?.serve(host.connector);
const metricsServer = Deno.serve(
  { port: Number(values["metrics-port"]), hostname: "127.0.0.1", onListen: () => {} },
  async () =>
    new Response(await host.metrics.prometheus(), {
      headers: { "content-type": host.metrics.contentType },
    }),
);
console.log(
  `wavry host: listening on ${host.addr.hostname}:${host.addr.port} (display ${display}); ` +
    `identity ${encodeIdentityPublicKey(identity.publicKey)} (${
      identityFingerprint(identity.publicKey)
    }); ` +
    `metrics http://127.0.0.1:${values["metrics-port"]}/metrics`,
);
const stop = async () => {
  await link?.stop();
  await host.stop();
  await metricsServer.shutdown();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
