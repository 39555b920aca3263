/**
 * Calibration of the userspace link emulator (tools/linkemu) over loopback,
 * printed as measured/configured ratios, plus an optional cross-check of the
 * rate limit against the kernel's `tbf` qdisc.
 *
 *   deno run -A bench/linkemu.ts [--tbf]
 *
 * Scenarios (tools/linkemu/calibrate.ts; the same ones the calibration test
 * asserts): a fixed 20 ms delay with the direct loopback path as baseline; a
 * 10 Mbit/s cap with a 50 ms queue saturated at 12 Mbit/s; a capacity step
 * 10 -> 4 Mbit/s; two flows through one bottleneck; Bernoulli loss 5%;
 * Gilbert-Elliott loss (mean 5%, bursts of 3); jitter 5 ms with reordering;
 * the first 2 s of the Verizon-LTE-short.down trace, saturated.
 *
 * `--tbf` (root, iproute2): builds a veth pair into a network namespace made
 * for the run, puts `tbf rate 10mbit burst 3000 limit 62500` on the host end,
 * sends the same 12 Mbit/s probe through it, and removes it all in `finally`.
 * tbf counts whole frames (payload + 42 bytes of UDP/IPv4/Ethernet headers),
 * the emulator counts UDP payload, so tbf's payload rate is compared with
 * 10 Mbit/s × 1200 / 1242.
 *
 * Last line: `delay_ratio=F rate_ratio=F loss_ratio=F added_jitter_ms_p99=F ...`
 * where delay_ratio = median one-way delay / configured, rate_ratio =
 * delivered / configured, loss_ratio = measured / configured Bernoulli loss,
 * added_jitter_ms_p99 = (p99 − p50 of the one-way delay through the emulator)
 * − (the same on the direct loopback path, measured in the same run);
 * e2e_jitter_ms_p99 is the first term alone, release_late_ms_p99 the
 * emulator's own timing error (actual − scheduled release, from its log).
 */
import {
  calibrateDelay,
  calibrateJitter,
  calibrateLoss,
  calibrateRate,
  calibrateSchedule,
  calibrateSharedBottleneck,
  calibrateTrace,
  GE_CALIBRATION,
  runProbe,
} from "../tools/linkemu/calibrate.ts";
import { setThreadRealtime } from "../tools/linkemu/realtime.ts";
import { Link, type LossModel } from "../core/sim/link.ts";
import { Rng } from "../core/sim/rng.ts";

const f3 = (x: number) => x.toFixed(3);
const f4 = (x: number) => x.toFixed(4);

async function run(cmd: string[], check = true): Promise<string> {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  if (check && !out.success) {
    throw new Error(`${cmd.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return text;
}

/** Receiver mode for the tbf check: runs inside the namespace, prints its receive rate. */
async function tbfReceiver(port: number, ms: number): Promise<void> {
  const s = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port });
  console.log("ready");
  const times: number[] = [], sizes: number[] = [];
  const stop = setTimeout(() => s.close(), ms);
  try {
    for (;;) {
      const [d] = await s.receive();
      times.push(performance.now());
      sizes.push(d.length);
    }
  } catch {
    // closed at the deadline
  }
  clearTimeout(stop);
  let bytes = 0;
  for (let i = 1; i < sizes.length; i++) bytes += sizes[i];
  const rate = (bytes * 8 * 1000) / (times[times.length - 1] - times[0]);
  console.log(JSON.stringify({ packets: times.length, rateBps: rate }));
}

/** The tbf cross-check; returns tbf's payload rate over the header-corrected cap. */
async function tbfCheck(): Promise<{ ratio: number; payloadBps: number; packets: number }> {
  const tag = (Deno.pid % 10000).toString();
  const ns = `wavry_le${tag}`, host = `vle0_${tag}`, peer = `vle1_${tag}`;
  const octet = 100 + (Deno.pid % 100);
  const hostIp = `10.213.${octet}.1`, peerIp = `10.213.${octet}.2`;
  let child: Deno.ChildProcess | undefined;
  try {
    await run(["ip", "netns", "add", ns]);
    await run(["ip", "link", "add", host, "type", "veth", "peer", "name", peer]);
    await run(["ip", "link", "set", peer, "netns", ns]);
    await run(["ip", "addr", "add", `${hostIp}/30`, "dev", host]);
    await run(["ip", "link", "set", host, "up"]);
    await run(["ip", "netns", "exec", ns, "ip", "addr", "add", `${peerIp}/30`, "dev", peer]);
    await run(["ip", "netns", "exec", ns, "ip", "link", "set", peer, "up"]);
    await run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
    await run([
      "tc",
      "qdisc",
      "add",
      "dev",
      host,
      "root",
      "tbf",
      "rate",
      "10mbit",
      "burst",
      "3000",
      "limit",
      "62500",
    ]); // deno-fmt-ignore
    const deno = Deno.execPath();
    const self = new URL(import.meta.url).pathname;
    child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, deno, "run", "-A", self, "--tbf-receiver", "9500", "4500"],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    while (!buf.includes("ready\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("tbf receiver exited early");
      buf += value;
    }
    // The probe's receivers are unused here: give it a dummy one.
    const dummy = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    await runProbe(
      [{
        to: { hostname: peerIp, port: 9500 },
        rateBps: 12e6,
        packetBytes: 1200,
        bindHostname: hostIp,
      }],
      [dummy],
      3000,
      200,
    );
    for (;;) {
      const { value, done } = await reader.read();
      if (value) buf += value;
      if (done) break;
    }
    await child.status;
    child = undefined;
    const line = buf.split("\n").find((l) => l.startsWith("{"));
    if (!line) throw new Error(`tbf receiver printed no result: ${buf}`);
    const r = JSON.parse(line) as { packets: number; rateBps: number };
    const cap = (10e6 * 1200) / 1242;
    return { ratio: r.rateBps / cap, payloadBps: r.rateBps, packets: r.packets };
  } finally {
    if (child) {
      try {
        child.kill("SIGKILL");
        await child.status;
      } catch {
        // already gone
      }
    }
    await run(["ip", "link", "del", host], false);
    await run(["ip", "netns", "del", ns], false);
  }
}

async function main(): Promise<void> {
  const i = Deno.args.indexOf("--tbf-receiver");
  if (i >= 0) {
    await tbfReceiver(Number(Deno.args[i + 1]), Number(Deno.args[i + 2]));
    return;
  }
  const withTbf = Deno.args.includes("--tbf");
  const probeRealtime = setThreadRealtime(60);
  const load = (await Deno.readTextFile("/proc/loadavg").catch(() => "?")).split(" ")[0];

  const delay = await calibrateDelay(20);
  const rate = await calibrateRate(10e6, 50, 10, 3000);
  const sched = await calibrateSchedule(10e6, 4e6, 1500, 3000);
  const shared = await calibrateSharedBottleneck(10e6, 2000);
  const bern = await calibrateLoss({ kind: "bernoulli", p: 0.05 }, 20000);
  const ge = await calibrateLoss(GE_CALIBRATION, 40000);
  // The same loss model in virtual time, same seed: the emulator must drop the very same packets.
  const modelLoss = (loss: LossModel, n: number) => {
    const link = new Link(
      { delayMs: 0, jitterMs: 0, reorder: false, duplicateProbability: 0, loss },
      new Rng(7).fork(),
    );
    let lost = 0;
    for (let k = 0; k < n; k++) if (link.send(new Uint8Array(1), 0) === "lost") lost++;
    return lost / n;
  };
  const bernModel = modelLoss({ kind: "bernoulli", p: 0.05 }, bern.sent);
  const geModel = modelLoss(GE_CALIBRATION, ge.sent);
  const jit = await calibrateJitter(10, 5, true);
  const trace = await calibrateTrace(4000);
  const tbf = withTbf ? await tbfCheck() : undefined;

  const rows: [string, string, string, string][] = [
    ["one-way delay p50 (ms)", f3(delay.owdP50Ms), "20", f4(delay.owdP50Ms / 20)],
    ["  direct loopback p50 (ms)", f3(delay.baselineOwdP50Ms), "-", "-"],
    ["  jitter p99-p50 (ms)", f3(delay.jitterP99Ms), "0", "-"],
    ["  direct loopback p99-p50 (ms)", f3(delay.baselineJitterP99Ms), "-", "-"],
    [
      "  release lateness p50/p99/max (ms)",
      `${f3(delay.lateP50Ms)}/${f3(delay.lateP99Ms)}/${f3(delay.lateMaxMs)}`,
      "0",
      "-",
    ],
    ["rate, saturated (Mbit/s)", f3(rate.deliveredBps / 1e6), "10", f4(rate.deliveredBps / 10e6)],
    [
      "  whole span incl. idle (Mbit/s), busy share",
      `${f3(rate.deliveredSpanBps / 1e6)}, ${f3(rate.busyFraction)}`,
      "10",
      f4(rate.deliveredSpanBps / 10e6),
    ],
    ["  queue delay max (ms)", f3(rate.maxQueueDelayMs), "50", f4(rate.maxQueueDelayMs / 50)],
    [
      "  one-way delay − 10 ms, p99/max (ms)",
      `${f3(rate.extraOwdP99Ms)}/${f3(rate.maxExtraOwdMs)}`,
      "≤50",
      "-",
    ],
    [
      "schedule, before step (Mbit/s)",
      f3(sched.deliveredFirstBps / 1e6),
      "10",
      f4(sched.deliveredFirstBps / 10e6),
    ],
    [
      "schedule, after step (Mbit/s)",
      f3(sched.deliveredSecondBps / 1e6),
      "4",
      f4(sched.deliveredSecondBps / 4e6),
    ],
    [
      "2 flows, total (Mbit/s)",
      f3(shared.deliveredBps / 1e6),
      "10",
      f4(shared.deliveredBps / 10e6),
    ],
    [
      "  per flow (Mbit/s, sent 8 and 7)",
      shared.perFlowBps.map((x) => f3(x / 1e6)).join(" / "),
      "-",
      "-",
    ],
    ["Bernoulli loss", f4(bern.lossRate), "0.05", f4(bern.lossRate / 0.05)],
    ["  core/sim Link, same seed and count", f4(bernModel), "-", f4(bern.lossRate / bernModel)],
    ["  lost by the sockets, not the model", String(bern.pathDrops), "0", "-"],
    ["GE mean loss", f4(ge.lossRate), "0.05", f4(ge.lossRate / 0.05)],
    ["  core/sim Link, same seed and count", f4(geModel), "-", f4(ge.lossRate / geModel)],
    ["  lost by the sockets, not the model", String(ge.pathDrops), "0", "-"],
    ["GE mean burst (packets)", f3(ge.meanBurst), "3", f4(ge.meanBurst / 3)],
    ["jitter 5 ms, mean extra (ms)", f3(jit.extraMeanMs), "2.5", f4(jit.extraMeanMs / 2.5)],
    ["  reordered datagrams (of 2000)", String(jit.reordered), ">0", "-"],
    [
      "trace, delivered vs trace window (Mbit/s)",
      f3(trace.deliveredBps / 1e6),
      f3(trace.windowCapacityBps / 1e6),
      f4(trace.deliveredBps / trace.windowCapacityBps),
    ],
    [
      "  trace mean over its period (Mbit/s)",
      f3(trace.traceMeanBps / 1e6),
      "-",
      f4(trace.deliveredBps / trace.traceMeanBps),
    ],
  ];
  if (tbf) {
    rows.push([
      "kernel tbf 10mbit, payload rate (Mbit/s)",
      f3(tbf.payloadBps / 1e6),
      f3((10e6 * 1200) / 1242 / 1e6),
      f4(tbf.ratio),
    ]);
  }
  const w = [44, 22, 10, 8];
  const fmt = (r: string[]) => r.map((c, k) => c.padEnd(w[k])).join(" ");
  console.log(fmt(["quantity", "measured", "config", "ratio"]));
  for (const r of rows) console.log(fmt(r));
  console.log(
    `\nemulator timer=${delay.timer} realtime=${delay.realtime} probe_realtime=${probeRealtime} ` +
      `loadavg=${load}`,
  );
  console.log(`command: deno run -A bench/linkemu.ts${withTbf ? " --tbf" : ""}`);
  console.log(
    `delay_ratio=${f4(delay.owdP50Ms / 20)} rate_ratio=${f4(rate.deliveredBps / 10e6)} ` +
      `loss_ratio=${f4(bern.lossRate / 0.05)} added_jitter_ms_p99=${f3(delay.addedJitterP99Ms)} ` +
      `e2e_jitter_ms_p99=${f3(delay.jitterP99Ms)} release_late_ms_p99=${f3(delay.lateP99Ms)} ` +
      `ge_loss_ratio=${f4(ge.lossRate / 0.05)} ge_burst_ratio=${f4(ge.meanBurst / 3)} ` +
      `trace_ratio=${f4(trace.deliveredBps / trace.windowCapacityBps)} ` +
      `sched_ratio=${f4(sched.deliveredSecondBps / 4e6)}` +
      (tbf ? ` tbf_ratio=${f4(tbf.ratio)}` : ""),
  );
}

if (import.meta.main) await main();
