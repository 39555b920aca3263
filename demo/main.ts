/**
 * `./wavry demo`: the live stream on this machine, on embedded defaults.
 *
 *   ./wavry demo [--seconds N] [--browser headless|none] [--fps 60] [--size 1280x720]
 *                [--via-gateway [--force-relay]]
 *
 * `--via-gateway` starts a gateway, a STUN server and a relay on loopback and
 * connects host and client through them (ICE; docs/CONNECT.md); with
 * `--force-relay` neither side offers a candidate, so the stream takes the relay.
 *
 * Without DISPLAY it starts Xvfb with a moving scene; it prints the player's
 * URL and a status line every second, stops on Ctrl-C or after --seconds, and
 * ends with one summary line.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { runDemo, summaryLine } from "./demo.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string" },
    browser: { type: "string", default: "none" },
    fps: { type: "string", default: "60" },
    size: { type: "string", default: "1280x720" },
    "via-gateway": { type: "boolean", default: false },
    "force-relay": { type: "boolean", default: false },
  },
});
if (values.browser !== "headless" && values.browser !== "none") {
  console.error(`wavry demo: --browser ${values.browser}: use "headless" or "none"`);
  Deno.exit(2);
}
const size = /^(\d+)x(\d+)$/.exec(values.size);
if (!size) {
  console.error(`wavry demo: --size ${values.size} is not WIDTHxHEIGHT`);
  Deno.exit(2);
}
const controller = new AbortController();
Deno.addSignalListener("SIGINT", () => controller.abort());
const result = await runDemo({
  seconds: values.seconds === undefined ? undefined : Number(values.seconds),
  signal: controller.signal,
  browser: values.browser,
  fps: Number(values.fps),
  width: Number(size[1]),
  height: Number(size[2]),
  onUrl: (url) =>
    console.log(
      `wavry demo: player at ${url}` +
        (values.browser === "none"
          ? " (open it in a browser, or run with --browser headless; Ctrl-C stops)"
          : ""),
    ),
  onStatus: (line) => console.log(`wavry demo: ${line}`),
  viaGateway: values["via-gateway"],
  forceRelay: values["force-relay"],
  onLog: (line) => console.log(`wavry demo: ${line}`),
});
console.log(summaryLine(result));
Deno.exit(0);
