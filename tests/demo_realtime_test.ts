/**
 * `./wavry demo` as a person runs it: headless, stopped with Ctrl-C. It must
 * print its summary line, exit 0, and leave nothing running.
 */
import assert from "node:assert/strict";
import { descendants, running } from "./support/leftovers.ts";
import { Subprocess } from "../tools/process/subprocess.ts";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("demo: headless stream, Ctrl-C prints the summary, exits 0, leaves nothing running", async () => {
  const demo = new Subprocess("demo", Deno.execPath(), [
    "run",
    "-A",
    "demo/main.ts",
    "--browser",
    "headless",
    // No DISPLAY: the demo starts its own Xvfb and scene, as on a machine without a screen.
  ], { cwd: ROOT, env: { DISPLAY: "" } });
  let children: number[] = [];
  try {
    await demo.waitForLine((l) => /painted=([1-9]\d{2,})/.test(l), 30_000);
    children = descendants(demo.pid);
    assert.ok(children.length >= 2, `Xvfb, xprobe and Chromium run under the demo: ${children}`);
    demo.kill("SIGINT");
    const { status, killed } = await demo.finish(20_000);
    assert.equal(killed, false, "the demo stopped by itself after Ctrl-C");
    assert.equal(status.code, 0, demo.stderr.join("\n"));
    const summary = demo.stdout.at(-1) ?? "";
    const m =
      /^frames_decoded=(\d+) fps=([\d.]+) glass_to_glass_ms_p50=([\d.]+) glass_to_glass_ms_p99=([\d.]+) input_ms_p50=([\d.]+) input_ms_p99=([\d.]+)$/
        .exec(summary);
    assert.ok(m, `summary line: ${summary}`);
    assert.ok(Number(m[1]) >= 100, `${m[1]} frames decoded`);
    const leftovers = children.filter(running);
    assert.deepEqual(leftovers, [], "processes the demo started are gone");
  } finally {
    demo.kill("SIGKILL");
    await demo.finish(1_000).catch(() => {});
    for (const pid of children.filter(running)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }
});
