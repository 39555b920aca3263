/**
 * The emulator's command line: `deno run -A tools/linkemu/main.ts --help`.
 * See docs/LINKEMU.md.
 *
 * @module
 */

import { parseMahimahiTrace } from "../../core/sim/trace.ts";
import type { DeliveryTrace } from "../../core/sim/trace.ts";
import { cliLinkToConfig, parseArgs, USAGE } from "./cli.ts";
import { startLinkEmulator } from "./emulator.ts";
import type { LinkEmulatorStats } from "./types.ts";

function summary(s: LinkEmulatorStats): string {
  const d = (x: LinkEmulatorStats["up"]) =>
    `in=${x.received} out=${x.delivered} lost=${x.lostRandom} qdrop=${x.droppedQueue} ` +
    `queued=${x.queuedBytes}B late_mean=${x.releaseLateMeanMs.toFixed(3)}ms ` +
    `late_max=${x.releaseLateMaxMs.toFixed(3)}ms`;
  return `up: ${d(s.up)} | down: ${d(s.down)}`;
}

async function main(): Promise<number> {
  const parsed = parseArgs(Deno.args);
  if (!parsed.ok) {
    console.error(`linkemu: ${parsed.error.arg}: ${parsed.error.message}\n\n${USAGE}`);
    return 2;
  }
  const o = parsed.options;
  if (o.help) {
    console.log(USAGE);
    return 0;
  }
  const traces = new Map<string, DeliveryTrace>();
  for (const l of [o.up, o.down]) {
    if (l.tracePath === undefined || traces.has(l.tracePath)) continue;
    try {
      traces.set(
        l.tracePath,
        parseMahimahiTrace(await Deno.readTextFile(l.tracePath), l.tracePath),
      );
    } catch (e) {
      console.error(`linkemu: cannot use trace ${l.tracePath}: ${(e as Error).message}`);
      return 2;
    }
  }
  const trace = (p?: string) => p === undefined ? undefined : traces.get(p);
  let emu;
  try {
    emu = await startLinkEmulator({
      listen: o.listen,
      target: o.target,
      extraFlows: o.extraFlows,
      up: cliLinkToConfig(o.up, trace(o.up.tracePath)),
      down: cliLinkToConfig(o.down, trace(o.down.tracePath)),
      seed: o.seed,
      log: o.logPath !== undefined,
      realtimePriority: o.realtimePriority,
      spinMs: o.spinMs,
    });
  } catch (e) {
    console.error(`linkemu: ${(e as Error).message}`);
    return 1;
  }
  for (const [i, f] of emu.flows.entries()) {
    const t = i === 0 ? o.target : o.extraFlows[i - 1].target;
    console.log(
      `linkemu: flow ${i}: peers -> ${f.listenAddr.hostname}:${f.listenAddr.port} ` +
        `=> ${f.upstreamAddr.hostname}:${f.upstreamAddr.port} -> ${t.hostname}:${t.port}`,
    );
  }
  console.log(`linkemu: timer=${emu.timer} realtime=${emu.realtime}`);
  const { promise: stop, resolve } = Promise.withResolvers<void>();
  const onSignal = () => resolve();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const ticker = o.statsIntervalMs > 0
    ? setInterval(() => console.log(`linkemu: ${summary(emu.stats())}`), o.statsIntervalMs)
    : undefined;
  const timer = o.durationMs !== undefined ? setTimeout(resolve, o.durationMs) : undefined;
  await stop;
  clearInterval(ticker);
  clearTimeout(timer);
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  if (o.logPath !== undefined) {
    const log = await emu.packetLog();
    await Deno.writeTextFile(o.logPath, log.map((e) => JSON.stringify(e)).join("\n") + "\n");
    console.log(`linkemu: wrote ${log.length} log entries to ${o.logPath}`);
  }
  console.log(`linkemu: ${summary(emu.stats())}`);
  await emu.close();
  return 0;
}

if (import.meta.main) Deno.exit(await main());
