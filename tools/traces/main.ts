/**
 * Outages of Mahimahi traces: per file, the mean capacity over the first
 * `--until-ms`, the seconds under `--floor-bps`, the time spent in gaps of
 * more than `--gap-ms` without a delivery opportunity, and the longest gap.
 *
 *   deno run -A tools/traces/main.ts [--until-ms 120000] [--gap-ms 100] [--floor-bps 150000] FILE...
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseMahimahiTrace, traceOutages } from "../../core/sim/mod.ts";

/** The option's value as a positive number, or `fallback` when it is absent. */
function positive(values: Record<string, string | undefined>, name: string, fallback: number) {
  const text = values[name];
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!(value > 0)) throw new RangeError(`--${name} needs a positive number, got "${text}"`);
  return value;
}

if (import.meta.main) {
  const { values, positionals: files } = parseArgs({
    args: Deno.args,
    options: {
      "until-ms": { type: "string" },
      "gap-ms": { type: "string" },
      "floor-bps": { type: "string" },
    },
    allowPositionals: true,
  });
  const untilMs = positive(values, "until-ms", 120_000);
  const gapMs = positive(values, "gap-ms", 100);
  const floorBps = positive(values, "floor-bps", 150_000);
  if (files.length === 0) {
    console.error(
      "usage: deno run -A tools/traces/main.ts [--until-ms N] [--gap-ms N] [--floor-bps N] FILE...",
    );
    Deno.exit(2);
  }
  for (const file of files) {
    const o = traceOutages(
      parseMahimahiTrace(await Deno.readTextFile(file), file),
      untilMs,
      gapMs,
      floorBps,
    );
    console.log(
      `${file} mean_kbps=${
        (o.meanBps / 1000).toFixed(0)
      } seconds_below_floor=${o.secondsBelowFloor}/${Math.ceil(untilMs / 1000)} gap_total_s=${
        (o.gapTotalMs / 1000).toFixed(1)
      } longest_gap_ms=${o.longestGapMs}`,
    );
  }
}
