/**
 * Wire rate over DELTA's target, from the race's `--json` output
 * (`deno run -A bench/rfc8867.ts --only=delta --json=DIR`): the mean send
 * rate at the bottleneck (all of the contender's media flows) over the mean
 * encoder target and over the mean send budget (encoder + FEC + headers;
 * runs from before the budget was recorded: encoder target × (1 + FEC
 * ratio)), after the first 5 s. DELTA's figures are host 0's, times the
 * number of media flows (5.2 has two).
 *
 *   deno run -A bench/race_wire_ratio.ts DIR
 *
 * Last line: `cases=N wire_over_target_mean=F wire_over_encoder_mean=F`.
 *
 * @module
 */
interface Sample {
  t: number;
  bps: number;
  sendBps?: number;
  fecRatio?: number;
}

const dir = Deno.args[0];
if (dir === undefined) throw new Error("usage: deno run -A bench/race_wire_ratio.ts DIR");
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const overTarget: number[] = [], overEncoder: number[] = [];
for (
  const name of [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".json"))
    .sort()
) {
  const j = JSON.parse(Deno.readTextFileSync(`${dir}/${name}`));
  const flows: number = j.case.mediaFlows ?? 1;
  for (const r of j.runs) {
    if (r.name !== "DELTA" || !r.estimate?.length) continue;
    const wire = mean(
      r.metrics.series.filter((b: { t: number }) => b.t >= 5000).map((b: { sendBps: number }) =>
        b.sendBps
      ),
    );
    const e: Sample[] = r.estimate.filter((x: Sample) => x.t >= 5000);
    const encoder = mean(e.map((x) => x.bps)) * flows;
    const target = mean(e.map((x) => x.sendBps ?? x.bps * (1 + (x.fecRatio ?? NaN)))) * flows;
    overTarget.push(wire / target);
    overEncoder.push(wire / encoder);
    console.log(
      `${j.case.id.padEnd(8)} wire ${(wire / 1e6).toFixed(3)} Mbit/s, DELTA target ${
        (target / 1e6).toFixed(3)
      }, ` +
        `encoder ${(encoder / 1e6).toFixed(3)}: wire/target ${(wire / target).toFixed(3)}, ` +
        `wire/encoder ${(wire / encoder).toFixed(3)}, mean FEC ratio ${
          mean(e.map((x) => x.fecRatio ?? NaN)).toFixed(3)
        }; ` +
        `qdelay p95 ${r.metrics.qdelayP95Ms.toFixed(1)} ms, util ${
          r.metrics.utilisation.toFixed(3)
        }`,
    );
  }
}
console.log(
  `cases=${overTarget.length} wire_over_target_mean=${mean(overTarget).toFixed(3)} ` +
    `wire_over_encoder_mean=${mean(overEncoder).toFixed(3)}`,
);
