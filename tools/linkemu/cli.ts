/**
 * Command-line parsing of the emulator (pure: strings in, options out; reading
 * trace files is main.ts's business).
 *
 * Every link option applies to both directions, or to one with an `up-` or
 * `down-` prefix (`--down-trace PATH`). Units follow tc(8): rates in bit,
 * kbit, mbit, gbit, or bps/kbps/mbps (bytes per second); sizes in b, k/kb,
 * m/mb (1024-based); times in ms or s.
 *
 * @module
 */

import type { LossModel } from "../../core/sim/link.ts";
import type { RateStep } from "../../core/sim/rate_schedule.ts";
import { gilbertElliott } from "../../core/sim/link.ts";
import type { DeliveryTrace } from "../../core/sim/trace.ts";
import type { HostPort, LinkConfig } from "./types.ts";

/** Per-direction settings from the command line. */
export interface CliLink {
  delayMs?: number;
  jitterMs?: number;
  reorder?: boolean;
  duplicateProbability?: number;
  loss?: LossModel;
  rateBps?: number;
  queueBytes?: number;
  queueMs?: number;
  rateSchedule?: RateStep[];
  /** Path of a Mahimahi trace file (read by the caller). */
  tracePath?: string;
  mtu?: number;
}

/** Everything the command line can say. */
export interface CliOptions {
  listen: { hostname: string; port: number };
  target: HostPort;
  /** More flows through the same bottlenecks. */
  extraFlows: { listen: { hostname: string; port: number }; target: HostPort }[];
  up: CliLink;
  down: CliLink;
  seed: number;
  /** Write the per-packet log here (JSON lines) on exit. */
  logPath?: string;
  /** Print counters every this many ms (0 = only at exit). */
  statsIntervalMs: number;
  /** Stop after this many ms (undefined = until SIGINT/SIGTERM). */
  durationMs?: number;
  realtimePriority?: number;
  spinMs?: number;
  help: boolean;
}

/** A bad command line: which argument and why. */
export interface CliError {
  kind: "BadArgument";
  arg: string;
  message: string;
}

/** Result of {@linkcode parseArgs}. */
export type CliResult = { ok: true; options: CliOptions } | { ok: false; error: CliError };

/** Usage text. */
export const USAGE = `usage: deno run -A tools/linkemu/main.ts --target HOST:PORT [options]

  --listen HOST:PORT     where peers send (default 127.0.0.1:9000)
  --target HOST:PORT     where their datagrams go (required)
  --flow L=T             one more flow (listen L, target T) sharing the bottlenecks; repeatable
Link options (both directions; prefix with up- or down- for one, e.g. --down-rate):
  --delay MS             one-way delay
  --jitter MS            extra uniform delay in [0, MS)
  --reorder              let jitter reorder packets (default: keep order)
  --dup P                duplication probability
  --loss P               Bernoulli loss probability
  --ge p,r[,h[,k]]       Gilbert-Elliott: p=P(good->bad), r=P(bad->good),
                         h=P(delivered | bad) (default 0), k=P(delivered | good) (default 1)
  --ge-mean LOSS,BURST   Gilbert-Elliott from a mean loss rate and mean burst length
  --rate RATE            bottleneck rate, e.g. 10mbit, 500kbit, 2mbps (bytes/s)
  --schedule T:RATE,...  capacity steps, e.g. 0:10mbit,5000:5mbit (T in ms since start)
  --trace PATH           Mahimahi trace driving the bottleneck
  --queue SIZE           drop-tail limit: 50ms or 64kb / 100000b (default 64kb)
  --mtu BYTES            drop larger datagrams
Other:
  --seed N               randomness seed (default 1)
  --log PATH             write the per-packet log (JSON lines) on exit
  --stats MS             print counters every MS ms
  --duration MS          stop after MS ms (default: until Ctrl-C)
  --rt PRIO              SCHED_FIFO priority of the worker, 0 = off (default 70)
  --spin MS              spin this long before each release (default 0)
  --help`;

const RATE_UNITS: Record<string, number> = {
  "": 1,
  bit: 1,
  kbit: 1e3,
  mbit: 1e6,
  gbit: 1e9,
  bps: 8,
  kbps: 8e3,
  mbps: 8e6,
  gbps: 8e9,
};

/** Parses a tc-style rate into bit/s (`10mbit`, `2mbps` = 16 Mbit/s, `1e6`). */
export function parseRate(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)([a-z]*)$/i.exec(s.trim());
  if (!m) return undefined;
  const unit = RATE_UNITS[m[2].toLowerCase()];
  const v = Number(m[1]) * (unit ?? NaN);
  return Number.isFinite(v) && v > 0 ? v : undefined;
}

/** Parses a queue limit: a time (`50ms`, `0.2s`) or a size (`64kb`, `1500b`, `1m`). */
export function parseQueue(s: string): { ms: number } | { bytes: number } | undefined {
  const m = /^(\d+(?:\.\d+)?)([a-z]*)$/i.exec(s.trim());
  if (!m) return undefined;
  const v = Number(m[1]);
  if (!(v > 0) || !Number.isFinite(v)) return undefined;
  switch (m[2].toLowerCase()) {
    case "ms":
      return { ms: v };
    case "s":
      return { ms: v * 1000 };
    case "":
    case "b":
      return Number.isInteger(v) ? { bytes: v } : undefined;
    case "k":
    case "kb":
      return { bytes: Math.round(v * 1024) };
    case "m":
    case "mb":
      return { bytes: Math.round(v * 1024 * 1024) };
    default:
      return undefined;
  }
}

/** Parses `host:port` (IPv6 in brackets: `[::1]:9000`). */
export function parseHostPort(s: string, zeroOk = false): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s\[\]]+)):(\d{1,5})$/.exec(s.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535 || (!zeroOk && port === 0)) return undefined;
  return { hostname: m[1] ?? m[2], port };
}

function num(s: string, min: number, max: number): number | undefined {
  if (!/^-?\d+(?:\.\d+)?(?:e-?\d+)?$/i.test(s.trim())) return undefined;
  const v = Number(s);
  return v >= min && v <= max ? v : undefined;
}

function prob(s: string): number | undefined {
  return num(s, 0, 1);
}

type Setter = (l: CliLink, v: string | undefined) => string | undefined;

/** Link options: name -> (whether it takes a value, how to apply it; returns an error message). */
const LINK_OPTIONS: Record<string, { value: boolean; set: Setter }> = {
  delay: {
    value: true,
    set: (l, v) => (l.delayMs = num(v!, 0, 1e7)) === undefined ? "expects ms >= 0" : undefined,
  },
  jitter: {
    value: true,
    set: (l, v) => (l.jitterMs = num(v!, 0, 1e7)) === undefined ? "expects ms >= 0" : undefined,
  },
  reorder: { value: false, set: (l) => void (l.reorder = true) },
  dup: {
    value: true,
    set: (l, v) =>
      (l.duplicateProbability = prob(v!)) === undefined ? "expects a probability" : undefined,
  },
  loss: {
    value: true,
    set: (l, v) => {
      const p = prob(v!);
      if (p === undefined) return "expects a probability";
      l.loss = { kind: "bernoulli", p };
    },
  },
  ge: {
    value: true,
    set: (l, v) => {
      const parts = v!.split(",").map(prob);
      if (parts.length < 2 || parts.length > 4 || parts.some((x) => x === undefined)) {
        return "expects p,r[,h[,k]] with probabilities";
      }
      const [p, r, h = 0, k = 1] = parts as number[];
      l.loss = {
        kind: "gilbert-elliott",
        pGoodToBad: p,
        pBadToGood: r,
        lossInBad: 1 - h,
        lossInGood: 1 - k,
      };
    },
  },
  "ge-mean": {
    value: true,
    set: (l, v) => {
      const parts = v!.split(",");
      const loss = parts.length === 2 ? num(parts[0], 0, 0.999999) : undefined;
      const burst = parts.length === 2 ? num(parts[1], 1, 1e9) : undefined;
      if (loss === undefined || burst === undefined) return "expects LOSS,BURST";
      try {
        l.loss = gilbertElliott(loss, burst);
      } catch (e) {
        return (e as Error).message;
      }
    },
  },
  rate: {
    value: true,
    set: (l, v) =>
      (l.rateBps = parseRate(v!)) === undefined ? "expects a rate like 10mbit" : undefined,
  },
  schedule: {
    value: true,
    set: (l, v) => {
      const steps: RateStep[] = [];
      for (const part of v!.split(",")) {
        const [t, r, extra] = part.split(":");
        const atMs = t === undefined ? undefined : num(t, 0, 1e12);
        const bps = r === undefined ? undefined : parseRate(r);
        if (atMs === undefined || bps === undefined || extra !== undefined) {
          return `bad step "${part}", expects MS:RATE`;
        }
        if (steps.length > 0 && atMs <= steps[steps.length - 1].atMs) {
          return "step times must increase";
        }
        steps.push({ atMs, bps });
      }
      l.rateSchedule = steps;
    },
  },
  trace: {
    value: true,
    set: (l, v) => v!.length === 0 ? "expects a path" : void (l.tracePath = v),
  },
  queue: {
    value: true,
    set: (l, v) => {
      const q = parseQueue(v!);
      if (q === undefined) return "expects 50ms or 64kb";
      if ("ms" in q) l.queueMs = q.ms;
      else l.queueBytes = q.bytes;
    },
  },
  mtu: {
    value: true,
    set: (l, v) => {
      const n = num(v!, 1, 65535);
      if (n === undefined || !Number.isInteger(n)) return "expects 1..65535";
      l.mtu = n;
    },
  },
};

/**
 * Parses the arguments (`--name value` or `--name=value`). Never throws: a bad
 * argument is a {@linkcode CliError}.
 */
export function parseArgs(argv: readonly string[]): CliResult {
  const o: CliOptions = {
    listen: { hostname: "127.0.0.1", port: 9000 },
    target: { hostname: "", port: 0 },
    extraFlows: [],
    up: {},
    down: {},
    seed: 1,
    statsIntervalMs: 0,
    help: false,
  };
  let haveTarget = false;
  const fail = (arg: string, message: string): CliResult => ({
    ok: false,
    error: { kind: "BadArgument", arg, message },
  });
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i];
    if (!raw.startsWith("--")) return fail(raw, "unexpected argument");
    const eq = raw.indexOf("=");
    const name = eq < 0 ? raw.slice(2) : raw.slice(2, eq);
    let inline: string | undefined = eq < 0 ? undefined : raw.slice(eq + 1);
    const takeValue = (): string | undefined => {
      if (inline !== undefined) {
        const v = inline;
        inline = undefined;
        return v;
      }
      if (i + 1 < argv.length) return argv[++i];
      return undefined;
    };
    const dirMatch = /^(up|down)-(.+)$/.exec(name);
    const linkName = dirMatch ? dirMatch[2] : name;
    const linkOpt = Object.hasOwn(LINK_OPTIONS, linkName) ? LINK_OPTIONS[linkName] : undefined;
    if (linkOpt) {
      const v = linkOpt.value ? takeValue() : undefined;
      if (linkOpt.value && v === undefined) return fail(raw, "needs a value");
      if (!linkOpt.value && inline !== undefined) return fail(raw, "takes no value");
      const targets = dirMatch ? [dirMatch[1] === "up" ? o.up : o.down] : [o.up, o.down];
      for (const l of targets) {
        const err = linkOpt.set(l, v);
        if (err !== undefined) return fail(raw, err);
      }
      continue;
    }
    if (name === "help") {
      o.help = true;
      continue;
    }
    const v = takeValue();
    if (v === undefined) return fail(raw, name === "" ? "unknown option" : "needs a value");
    switch (name) {
      case "listen": {
        const a = parseHostPort(v, true);
        if (!a) return fail(raw, "expects HOST:PORT");
        o.listen = a;
        break;
      }
      case "target": {
        const a = parseHostPort(v);
        if (!a) return fail(raw, "expects HOST:PORT");
        o.target = a;
        haveTarget = true;
        break;
      }
      case "flow": {
        const [l, t, extra] = v.split("=");
        const la = l === undefined ? undefined : parseHostPort(l, true);
        const ta = t === undefined ? undefined : parseHostPort(t);
        if (!la || !ta || extra !== undefined) return fail(raw, "expects LISTEN=TARGET");
        o.extraFlows.push({ listen: la, target: ta });
        break;
      }
      case "seed": {
        const n = num(v, -(2 ** 53), 2 ** 53);
        if (n === undefined) return fail(raw, "expects a number");
        o.seed = n;
        break;
      }
      case "log":
        o.logPath = v;
        break;
      case "stats": {
        const n = num(v, 0, 1e9);
        if (n === undefined) return fail(raw, "expects ms >= 0");
        o.statsIntervalMs = n;
        break;
      }
      case "duration": {
        const n = num(v, 0, 1e12);
        if (n === undefined) return fail(raw, "expects ms >= 0");
        o.durationMs = n;
        break;
      }
      case "rt": {
        const n = num(v, 0, 99);
        if (n === undefined || !Number.isInteger(n)) return fail(raw, "expects 0..99");
        o.realtimePriority = n;
        break;
      }
      case "spin": {
        const n = num(v, 0, 5);
        if (n === undefined) return fail(raw, "expects 0..5 ms");
        o.spinMs = n;
        break;
      }
      default:
        return fail(raw, "unknown option");
    }
  }
  if (!haveTarget && !o.help) return fail("--target", "is required");
  for (const [dir, l] of [["up", o.up], ["down", o.down]] as const) {
    if (l.tracePath !== undefined && (l.rateBps !== undefined || l.rateSchedule !== undefined)) {
      return fail(`--${dir}-trace`, "a trace excludes --rate and --schedule");
    }
  }
  return { ok: true, options: o };
}

/** The link configuration for one direction, given the parsed trace (if `tracePath` is set). */
export function cliLinkToConfig(l: CliLink, trace?: DeliveryTrace): Partial<LinkConfig> {
  const { tracePath: _, ...rest } = l;
  const out: Partial<LinkConfig> = {};
  for (const [k, v] of Object.entries(rest)) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  if (trace !== undefined) out.trace = trace;
  return out;
}
