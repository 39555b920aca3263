/**
 * `./wavry demo --via-gateway` as a person runs it (no root needed): gateway,
 * STUN server and relay started on loopback as real programs, the host and
 * client connecting through them. Direct: ICE picks a direct path; with
 * `--force-relay` (no candidates on either side) the stream goes through the
 * relay after the 4 s bound. Both must stream and leave nothing running.
 *
 * @module
 */
import assert from "node:assert/strict";
import { descendants, running } from "./support/leftovers.ts";
import { Subprocess } from "../tools/process/subprocess.ts";

const ROOT = new URL("..", import.meta.url).pathname;

async function demo(extra: string[]): Promise<{ path: string; fps: number[]; lines: string[] }> {
  const p = new Subprocess("demo --via-gateway", Deno.execPath(), [
    "run",
    "-A",
    "demo/main.ts",
    "--via-gateway",
    "--seconds",
    "3",
    "--size",
    "320x240",
    ...extra,
  ], { cwd: ROOT, env: { DISPLAY: "" } });
  let children: number[] = [];
  try {
    await p.waitForLine((l) => l.includes("connected: path"), 40_000);
    children = descendants(p.pid);
    const { status, killed } = await p.finish(30_000);
    assert.equal(killed, false, "the demo ended by itself after --seconds");
    assert.equal(status.code, 0, p.stderr.join("\n"));
    assert.deepEqual(children.filter(running), [], "gateway, STUN, relay, Xvfb are gone");
    const line = p.stdout.find((l) => l.includes("connected: path"))!;
    const fps = p.stdout.flatMap((l) => {
      const m = /wavry demo: fps=(\d+)/.exec(l);
      return m ? [Number(m[1])] : [];
    });
    console.log(`${line.replace("wavry demo: ", "")}; client fps per second: ${fps.join(" ")}`);
    return { path: /path (\S+)/.exec(line)![1], fps, lines: [...p.stdout] };
  } finally {
    p.kill("SIGKILL");
    await p.finish(1_000).catch(() => {});
    for (const pid of children.filter(running)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }
}

Deno.test("demo --via-gateway: a direct path on loopback, and the stream arrives", async () => {
  const r = await demo([]);
  assert.ok(["host", "srflx", "prflx"].includes(r.path), `path ${r.path}`);
  assert.ok(r.lines.some((l) => l.includes("the client reports direct")), "outcome signaled");
  assert.ok(Math.max(...r.fps) >= 20, `client fps ${r.fps}`);
});

Deno.test("demo --via-gateway --force-relay: no candidates, relay after the bound, the stream arrives", async () => {
  const r = await demo(["--force-relay"]);
  assert.equal(r.path, "relay");
  const asked = r.lines.find((l) => l.includes("asking for a relay"));
  assert.ok(asked, "the client asked for a relay");
  const ms = Number(/after (\d+) ms/.exec(asked)![1]);
  assert.ok(ms >= 3900 && ms < 5000, `gave up direct after ${ms} ms (bound 4000)`);
  assert.ok(r.lines.some((l) => l.includes("relay binding ready")), "both bound at the relay");
  assert.ok(Math.max(...r.fps) >= 20, `client fps ${r.fps}`);
});
