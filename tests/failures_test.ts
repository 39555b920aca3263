/**
 * How the live stream fails: every failure gives a clear message, the other
 * side recovers or stops cleanly, and nothing is left running (each test
 * checks that the processes it started are gone; Deno's op and resource
 * sanitizers stay on).
 *
 * @module
 */
import assert from "node:assert/strict";
import { encodeIdentityPublicKey, generateIdentity } from "../crypto/identity.ts";
import { WavryClient } from "../client/client.ts";
import { launchChromium, waitFor } from "../client/player/testing.ts";
import { WavryHost } from "../host/host.ts";
import { browserPids, childrenOnDisplay, Cleanup, ProcessTracker } from "./support/leftovers.ts";
import { Subprocess } from "../tools/process/subprocess.ts";
import { XProbe } from "../tools/display/xprobe.ts";
import { startXvfb } from "../tools/display/xvfb.ts";

const W = 640, H = 360, FPS = 30;
const ROOT = new URL("..", import.meta.url).pathname;

/** A display with the moving scene on it, stopped by `cleanup`, its pids tracked. */
async function startDisplay(cleanup: Cleanup, processes: ProcessTracker): Promise<string> {
  const xvfb = await startXvfb(W, H);
  cleanup.defer("Xvfb", () => xvfb.stop());
  processes.add(`Xvfb ${xvfb.display}`, xvfb.pid);
  const probe = await XProbe.start(xvfb.display, { pattern: true, fps: FPS });
  cleanup.defer("xprobe", () => probe.stop());
  const probes = childrenOnDisplay("wavry-xprobe", xvfb.display);
  assert.equal(probes.length, 1, `xprobe processes on ${xvfb.display}: ${probes}`);
  processes.add("wavry-xprobe", ...probes);
  return xvfb.display;
}

/** Waits until `client` has received `n` more frames than now. */
function receives(client: WavryClient, n: number, what: string, timeoutMs = 15_000) {
  const from = client.framesReceived;
  return waitFor(() => client.framesReceived >= from + n, `${n} frames ${what}`, timeoutMs);
}

Deno.test("a client with an identity the host does not accept is refused, and the host keeps serving", async () => {
  const cleanup = new Cleanup();
  const processes = new ProcessTracker();
  try {
    const display = await startDisplay(cleanup, processes);
    const hostIdentity = generateIdentity();
    const good = generateIdentity(), bad = generateIdentity();
    const hostLog: string[] = [];
    const host = await WavryHost.start({
      listen: { hostname: "127.0.0.1", port: 0 },
      display,
      fps: FPS,
      bitrateBps: 2_000_000,
      identity: hostIdentity,
      allowedClients: [good.publicKey],
      log: (line) => hostLog.push(line),
    });
    cleanup.defer("host", () => host.stop());
    const where = `127.0.0.1:${host.addr.port}`;

    const started = performance.now();
    await assert.rejects(
      WavryClient.start({ host: host.addr, identity: bad, connectTimeoutMs: 2_000 }),
      (error: Error) => {
        assert.match(error.message, /does not accept this client's identity/);
        assert.ok(error.message.includes(where), `the message names ${where}: ${error.message}`);
        console.log(
          `refused in ${(performance.now() - started).toFixed(0)} ms: ${error.message}`,
        );
        return true;
      },
    );
    assert.equal(host.clients, 0, "the host serves the refused client");
    assert.equal(host.pipeline, undefined, "capture started for a refused client");
    assert.ok(!hostLog.some((l) => l.includes("connected")), `host log: ${hostLog}`);

    const client = await WavryClient.start({
      host: host.addr,
      identity: good,
      expectHost: hostIdentity.publicKey,
      connectTimeoutMs: 10_000,
    });
    cleanup.defer("client", () => client.stop());
    await receives(client, 10, "for the accepted client");
    assert.equal(host.clients, 1);
  } finally {
    await cleanup.run();
  }
  await processes.assertGone();
});

Deno.test("connecting to a host that is not running fails in time, naming the address", async () => {
  // A port nothing listens on: bound for a moment, then released.
  const probe = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const started = performance.now();
  await assert.rejects(
    WavryClient.start({
      host: { hostname: "127.0.0.1", port },
      identity: generateIdentity(),
      connectTimeoutMs: 1_000,
    }),
    (error: Error) => {
      assert.ok(
        error.message.includes(`127.0.0.1:${port}`),
        `the message names 127.0.0.1:${port}: ${error.message}`,
      );
      assert.match(error.message, /timed out after 1000 ms/);
      return true;
    },
  );
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 5_000, `gave up after ${elapsed.toFixed(0)} ms, not about 1000`);
});

Deno.test("a client that disappears mid-stream is closed after the idle timeout; the host streams to the next one", async () => {
  const IDLE_MS = 1_500;
  const cleanup = new Cleanup();
  const processes = new ProcessTracker();
  try {
    const display = await startDisplay(cleanup, processes);
    const hostIdentity = generateIdentity();
    const hostLog: string[] = [];
    const host = await WavryHost.start({
      listen: { hostname: "127.0.0.1", port: 0 },
      display,
      fps: FPS,
      bitrateBps: 2_000_000,
      identity: hostIdentity,
      sessionConfig: { idleTimeoutMs: IDLE_MS },
      log: (line) => hostLog.push(line),
    });
    cleanup.defer("host", () => host.stop());

    // The client program in its own process, killed without a chance to send CLOSE.
    const dir = await Deno.makeTempDir({ prefix: "wavry-failures-" });
    cleanup.defer("temp dir", () => Deno.remove(dir, { recursive: true }));
    const child = new Subprocess("client/main.ts", Deno.execPath(), [
      "run",
      "-A",
      "client/main.ts",
      `127.0.0.1:${host.addr.port}`,
      "--identity",
      `${dir}/client.key`,
      "--expect-host",
      encodeIdentityPublicKey(hostIdentity.publicKey),
    ], { cwd: ROOT });
    cleanup.defer("client process", async () => void await child.finish(0));
    processes.add("client/main.ts", child.pid);
    await child.waitForLine((l) => l.startsWith("wavry client: connected"), 30_000);
    const sent = host.framesSent;
    await waitFor(() => host.framesSent >= sent + 10, "the host to stream to the client", 10_000);
    assert.equal(host.clients, 1);
    const firstPipeline = host.pipeline;
    assert.ok(firstPipeline, "no pipeline while streaming");

    child.kill("SIGKILL");
    const killedAt = performance.now();
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL");
    await waitFor(
      () => host.clients === 0,
      "the host to drop the vanished client",
      IDLE_MS + 8_000,
    );
    const closedAfter = performance.now() - killedAt;
    assert.ok(
      hostLog.some((l) => /^client disconnected: .*idle timeout/.test(l)),
      `host log: ${hostLog.join(" | ")}`,
    );
    await waitFor(() => host.pipeline === undefined, "the host to stop capturing", 5_000);
    // The host stops it in the background; stop() is idempotent, so this waits for that stop.
    await firstPipeline.stop();
    assert.equal(firstPipeline.released, true, "the media worker freed its capturer and encoder");

    // Still listening: a new client gets a fresh pipeline and frames.
    const client = await WavryClient.start({
      host: host.addr,
      identity: generateIdentity(),
      expectHost: hostIdentity.publicKey,
      connectTimeoutMs: 10_000,
    });
    cleanup.defer("client", () => client.stop());
    await receives(client, 10, "for the next client");
    assert.notEqual(host.pipeline, firstPipeline);
    assert.equal(hostLog.filter((l) => l.startsWith("streaming ")).length, 2, hostLog.join(" | "));
    console.log(
      `vanished client closed ${
        closedAfter.toFixed(0)
      } ms after SIGKILL (idle timeout ${IDLE_MS} ms)`,
    );
  } finally {
    await cleanup.run();
  }
  await processes.assertGone();
});

Deno.test("a page that reloads decodes again without restarting host or client", async () => {
  const cleanup = new Cleanup();
  const processes = new ProcessTracker();
  try {
    const display = await startDisplay(cleanup, processes);
    const hostIdentity = generateIdentity();
    const hostLog: string[] = [];
    const host = await WavryHost.start({
      listen: { hostname: "127.0.0.1", port: 0 },
      display,
      fps: FPS,
      bitrateBps: 2_000_000,
      identity: hostIdentity,
      log: (line) => hostLog.push(line),
    });
    cleanup.defer("host", () => host.stop());
    const client = await WavryClient.start({
      host: host.addr,
      identity: generateIdentity(),
      expectHost: hostIdentity.publicKey,
      connectTimeoutMs: 10_000,
    });
    cleanup.defer("client", () => client.stop());
    const painted = new Map<number, number>(); // page connection -> frames painted
    client.player.onStats((s, pageId) => {
      if (s.t === "paint") painted.set(pageId, (painted.get(pageId) ?? 0) + 1);
    });

    const browser = await launchChromium();
    cleanup.defer("Chromium", () => browser.close());
    processes.add("Chromium", ...await browserPids(browser));
    const page = await browser.newPage({ viewport: { width: W, height: H } });
    await page.goto(client.player.url);
    await waitFor(() => (painted.get(1) ?? 0) >= 20, "20 frames painted by the page", 20_000);
    const pipeline = host.pipeline;

    await page.reload();
    await waitFor(
      () => (painted.get(2) ?? 0) >= 20,
      `20 frames painted after the reload (before: ${painted.get(1)})`,
      20_000,
    );
    const inPage = await page.evaluate(`globalThis.wavryPlayer.totals`) as {
      framesPainted: number;
      decodeErrors: number;
    };
    assert.ok(inPage.framesPainted >= 20, `the reloaded page: ${JSON.stringify(inPage)}`);
    assert.equal(client.player.connections, 1, "the old page's connection is still counted");
    assert.equal(host.clients, 1);
    assert.equal(host.pipeline, pipeline, "the host restarted its pipeline");
    assert.equal(hostLog.filter((l) => l.startsWith("streaming ")).length, 1, hostLog.join(" | "));
    const stillOpen = await Promise.race([client.closed.then(() => false), Promise.resolve(true)]);
    assert.ok(stillOpen, "the client's session closed");
    console.log(
      `painted ${painted.get(1)} frames before the reload, ${painted.get(2)} after (page: ${
        JSON.stringify(inPage)
      })`,
    );
  } finally {
    await cleanup.run();
  }
  await processes.assertGone();
});

Deno.test("`./wavry client` to a port with no host exits non-zero with one clear line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wavry-failures-" });
  const processes = new ProcessTracker();
  try {
    const started = performance.now();
    const child = new Subprocess("./wavry client", `${ROOT}wavry`, [
      "client",
      "127.0.0.1:1",
      "--identity",
      `${dir}/client.key`,
      "--expect-host",
      encodeIdentityPublicKey(generateIdentity().publicKey),
    ], { cwd: ROOT });
    processes.add("./wavry client", child.pid);
    // The handshake gives up after its default 15 s.
    const { status, killed } = await child.finish(40_000);
    const seconds = (performance.now() - started) / 1000;
    assert.ok(!killed, `still running after 40 s; stderr: ${child.stderr.join(" | ")}`);
    assert.notEqual(status.code, 0, "exit code");
    const errors = child.stderr.filter((l) => l.trim() !== "");
    assert.equal(errors.length, 1, `one line on stderr: ${errors.join(" | ")}`);
    assert.match(errors[0], /^wavry client: .*127\.0\.0\.1:1\b/);
    assert.match(errors[0], /is the host running/);
    assert.deepEqual(child.stdout.filter((l) => l.trim() !== ""), []);
    console.log(`exit ${status.code} after ${seconds.toFixed(1)} s: ${errors[0]}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  await processes.assertGone();
});

Deno.test("a host whose display goes away tells its clients why and keeps listening", async () => {
  const cleanup = new Cleanup();
  try {
    const xvfb = await startXvfb(W, H);
    cleanup.defer("Xvfb", () => xvfb.stop());
    const probe = await XProbe.start(xvfb.display, { pattern: true, fps: FPS });
    cleanup.defer("xprobe", () => probe.stop());
    const hostLog: string[] = [];
    const host = await WavryHost.start({
      listen: { hostname: "127.0.0.1", port: 0 },
      display: xvfb.display,
      fps: FPS,
      bitrateBps: 1_000_000,
      identity: generateIdentity(),
      log: (line) => hostLog.push(line),
    });
    cleanup.defer("host", () => host.stop());
    const client = await WavryClient.start({ host: host.addr, identity: generateIdentity() });
    cleanup.defer("client", () => client.stop());
    await receives(client, 10, "before the display goes away");

    await probe.stop();
    await xvfb.stop();
    const closed = await client.closed;
    assert.match(closed.reason, /host media failed: .*X server was lost/);
    assert.equal(closed.byPeer, true);
    await waitFor(() => host.clients === 0, "the host to drop the client");
    assert.ok(hostLog.some((l) => l.startsWith("media pipeline failed:")), `host log: ${hostLog}`);
    // Still listening: a new handshake completes even though there is nothing to stream.
    const again = await WavryClient.start({
      host: host.addr,
      identity: generateIdentity(),
      connectTimeoutMs: 5_000,
    });
    await again.stop();
  } finally {
    await cleanup.run();
  }
});

Deno.test("a client that leaves and another that joins at once: the newcomer always gets a stream", async () => {
  const cleanup = new Cleanup();
  try {
    const xvfb = await startXvfb(W, H);
    cleanup.defer("Xvfb", () => xvfb.stop());
    const probe = await XProbe.start(xvfb.display, { pattern: true, fps: FPS });
    cleanup.defer("xprobe", () => probe.stop());
    const host = await WavryHost.start({
      listen: { hostname: "127.0.0.1", port: 0 },
      display: xvfb.display,
      fps: FPS,
      bitrateBps: 1_000_000,
      identity: generateIdentity(),
    });
    cleanup.defer("host", () => host.stop());
    for (let round = 0; round < 3; round++) {
      const first = await WavryClient.start({ host: host.addr, identity: generateIdentity() });
      await receives(first, 5, `round ${round}: first client`);
      // Leave and rejoin at once. Whether the join lands before, during or after the stop of the
      // old pipeline depends on timing; every order must end with the newcomer streaming.
      const leaving = first.stop();
      const next = await WavryClient.start({ host: host.addr, identity: generateIdentity() });
      await leaving;
      await receives(next, 10, `round ${round}: the client that joined during the stop`);
      await next.stop();
      await waitFor(() => host.clients === 0, "the host to see the client leave");
    }
  } finally {
    await cleanup.run();
  }
});
