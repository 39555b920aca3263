/**
 * Connecting through the gateway across real Linux NAT routers
 * (tests/support/netns.ts): gateway, STUN server and relay (the real
 * programs, demo/reach.ts) in the public segment; the real host program
 * (`host/main.ts --gateway`, capturing an Xvfb display) behind one router
 * and a client (tests/support/connect_client.ts: client/gateway_connect.ts +
 * the client's session workers) behind another. The host pairs the client
 * with a one-time code. Needs root, `ip`, `iptables`, `conntrack`, Xvfb.
 * docs/CONNECT.md records the outcomes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type NatType, NetnsTopology } from "./support/netns.ts";
import type { Subprocess } from "../tools/process/subprocess.ts";
import { startXvfb } from "../tools/display/xvfb.ts";
import { type ReachServices, startReachServices } from "../demo/reach.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const HOST_PORT = 7700;

interface ClientEvent {
  ev: string;
  path?: string;
  remote?: string;
  ms?: number;
  n?: number;
  lost?: number;
  reason?: string;
  message?: string;
}

function events(p: Subprocess): ClientEvent[] {
  return p.stdout.flatMap((l) => {
    try {
      return [JSON.parse(l) as ClientEvent];
    } catch {
      return [];
    }
  });
}

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function framesNow(client: Subprocess): number {
  const f = events(client).filter((e) => e.ev === "frames");
  return f.length === 0 ? 0 : f[f.length - 1].n!;
}

interface Scene {
  topo: NetnsTopology;
  reach: ReachServices;
  host: Subprocess;
  client: Subprocess;
  connected: ClientEvent;
}

/** Builds the topology, starts everything, connects; `body` runs while it streams. */
async function across(
  natHost: NatType,
  natClient: NatType,
  body: (s: Scene) => Promise<void>,
): Promise<void> {
  const t0 = performance.now();
  const xvfb = await startXvfb(640, 360);
  const dir = await Deno.makeTempDir({ prefix: "wavry-connect-netns-" });
  let reach: ReachServices | undefined;
  try {
    await using topo = await NetnsTopology.create({
      public: ["gw"],
      private: [{ name: "h", nat: natHost }, { name: "c", nat: natClient }],
    });
    const pub = topo.publicAddr("gw");
    reach = await startReachServices({
      hostname: pub,
      spawn: (name, script, args) =>
        topo.spawnDeno(topo.publicNs("gw"), script, args, { name, cwd: ROOT }),
      ports: { gateway: 8080, stun: 3478, relay: 7300, relayHttp: 9300 },
    });
    const stun = `${reach.stun.hostname}:${reach.stun.port}`;
    // The real host program; the display is reached through its file-system socket
    // (an X server's abstract socket is per network namespace, the path is not).
    const host = topo.spawnDeno(topo.hostNs("h"), `${ROOT}host/main.ts`, [
      "--listen",
      `0.0.0.0:${HOST_PORT}`,
      "--display",
      xvfb.display,
      "--no-audio",
      "--fps",
      "30",
      "--bitrate",
      "2",
      "--gateway",
      reach.gatewayUrl,
      "--stun",
      stun,
      "--pairing",
      "--name",
      "nat-host",
      "--identity",
      `${dir}/host.key`,
      "--metrics-port",
      "9701",
    ], { name: `host (${natHost})`, cwd: ROOT });
    const listening = await host.waitForLine((l) => l.includes("listening on"), 40_000);
    const hostKey = /identity (\S+) \(/.exec(listening)![1];
    const code = await until("pairing code", 20_000, () => {
      const line = host.stderr.find((l) => l.includes("pairing code"));
      return line === undefined ? undefined : /pairing code (\S+)/.exec(line)![1];
    });
    await until("host online", 20_000, () => host.stderr.find((l) => l.includes("online at")));
    const client = topo.spawnDeno(topo.hostNs("c"), `${ROOT}tests/support/connect_client.ts`, [
      "--gateway",
      reach.gatewayUrl,
      // "=": a base64url key may start with "-", which parseArgs would take for an option.
      `--host-key=${hostKey}`,
      "--pairing-code",
      code,
      "--stun",
      stun,
      "--idle-ms",
      "4000",
    ], { name: `client (${natClient})`, cwd: ROOT });
    const connected = await until(
      "client outcome",
      40_000,
      () => events(client).find((e) => e.ev === "connected" || e.ev === "error"),
    ).catch((error) => {
      throw new Error(
        `${error.message}; client: ${client.stderr.join(" | ")}; host: ${host.stderr.join(" | ")}`,
      );
    });
    assert.equal(
      connected.ev,
      "connected",
      `${JSON.stringify(connected)}; host: ${host.stderr.join(" | ")}`,
    );
    console.log(
      `${natHost} host ↔ ${natClient} client: path ${connected.path} to ${connected.remote}, ` +
        `connected ${connected.ms} ms after the client started (${
          Math.round(performance.now() - t0)
        } ms into the case)`,
    );
    await body({ topo, reach, host, client, connected });
  } finally {
    await reach?.stop();
    await xvfb.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Waits until the client has received `n` more video frames than now. */
async function framesFlow(client: Subprocess, n: number, timeoutMs = 15_000): Promise<number> {
  const start = framesNow(client);
  const t = performance.now();
  await until(
    `${n} more video frames (have ${start})`,
    timeoutMs,
    () => framesNow(client) >= start + n ? true : undefined,
  );
  return performance.now() - t;
}

Deno.test("connect across NATs 1: eim ↔ eim: direct (srflx) path, frames flow, and keep flowing after both NAT tables are flushed", async () => {
  await across("eim", "eim", async ({ topo, client, connected }) => {
    assert.equal(connected.path, "srflx", "the host's router's mapping of :7700");
    assert.equal(connected.remote, `${topo.routerWanAddr("h")}:${HOST_PORT}`);
    const ms = await framesFlow(client, 30);
    console.log(`30 video frames in ${Math.round(ms)} ms over the direct path`);
    await Promise.all([topo.flushNat("h"), topo.flushNat("c")]);
    const after = await framesFlow(client, 30);
    console.log(`after conntrack -F on both routers: 30 more frames in ${Math.round(after)} ms`);
  });
});

Deno.test("connect across NATs 2: restricted-cone host ↔ symmetric client: direct to the client's peer-reflexive port", async () => {
  // The client's symmetric router picks a new port toward the host; the host's address-restricted
  // router admits the client's check from it (same address it sent to), and the host learns it
  // as peer-reflexive. The client reaches the host's srflx mapping.
  await across("restricted-cone", "symmetric", async ({ topo, client, connected }) => {
    assert.equal(connected.path, "srflx");
    assert.equal(connected.remote, `${topo.routerWanAddr("h")}:${HOST_PORT}`);
    await framesFlow(client, 30);
  });
});

Deno.test("connect across NATs 2b: symmetric host ↔ restricted-cone client: direct to the host's peer-reflexive port; then the host's mapping flushed", async () => {
  // Mirror image: the host's symmetric router picks a new port toward the client; the client's
  // address-restricted router admits the host's check from it; the client learns it as prflx.
  await across("symmetric", "restricted-cone", async ({ topo, client, connected }) => {
    assert.equal(connected.path, "prflx");
    const [ip, port] = connected.remote!.split(":");
    assert.equal(ip, topo.routerWanAddr("h"));
    assert.notEqual(Number(port), HOST_PORT, "a port the host's router picked, not :7700");
    await framesFlow(client, 30);
    // Flushing a symmetric router's table gives the host's flow a new random port: the client's
    // ICE routes RIFT only from the selected remote and the host's replies to the old mapping
    // die at the router, so the session cannot carry on. It must end with a clear message.
    const flushedAt = performance.now();
    await topo.flushNat("h");
    const outcome = await until("the session to recover or end", 15_000, () => {
      const closed = events(client).find((e) => e.ev === "closed");
      if (closed) return `ended: ${closed.reason}`;
      return undefined;
    });
    console.log(
      `host's symmetric mapping flushed: ${outcome} ${
        Math.round(performance.now() - flushedAt)
      } ms later`,
    );
    assert.match(outcome, /idle|timeout|silent/i);
  });
});

Deno.test("connect across NATs 2c: eim host ↔ symmetric client: no direct pair in theory, relay", async () => {
  // The client's new random port toward the host is unknown and the host's router filters by
  // address and port; the host's checks go to the client's srflx port, which the client's router
  // keeps for the STUN server only. Nothing crosses: the relay is the best the theory allows.
  await across("eim", "symmetric", async ({ reach, client, connected }) => {
    assert.equal(connected.path, "relay");
    assert.equal(connected.remote, `${reach.relay.hostname}:${reach.relay.port}`);
    await framesFlow(client, 30);
  });
});

Deno.test("connect across NATs 3+4: symmetric ↔ symmetric: relayed stream; the relay killed mid-stream ends the session with a clear message", async () => {
  await across("symmetric", "symmetric", async ({ reach, client, connected }) => {
    assert.equal(connected.path, "relay");
    assert.equal(connected.remote, `${reach.relay.hostname}:${reach.relay.port}`);
    const ms = await framesFlow(client, 30);
    console.log(`30 video frames in ${Math.round(ms)} ms through the relay`);
    const killedAt = performance.now();
    reach.relayProcess.kill("SIGKILL");
    const closed = await until(
      "the client's session to end",
      15_000,
      () => events(client).find((e) => e.ev === "closed"),
    );
    console.log(
      `relay killed: the client's session ended ${
        Math.round(performance.now() - killedAt)
      } ms later: ${closed.reason}`,
    );
    assert.match(closed.reason!, /idle|silent|timeout/i);
  });
});
