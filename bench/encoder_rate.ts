/**
 * Does the encoder produce what it is asked for? libx264 on the race's
 * synthetic picture (media/pattern.ts, as the host streams it), at fixed
 * targets and at a target that steps every 10 frames, with the frame-rate
 * lowering of host/media_worker.ts (frames left out evenly, the encoder's
 * bitrate scaled by source fps / encoded fps). Reports, per target, the
 * produced bit rate over the target and the largest frame over the per-frame
 * budget. Not timed: frames are encoded as fast as the machine allows, the
 * rate control sees the stream's timestamps only.
 *
 *   deno run -A bench/encoder_rate.ts [--width=640 --height=360 --fps=60 --seconds=6]
 *
 * Last line: `cases=N mean_ratio=F max_ratio=F max_frame_over_budget=F`.
 *
 * @module
 */
import { FfmpegVideoEncoder } from "../media/linux/video_encoder.ts";
import { SyntheticCapturer } from "../media/synthetic_capture.ts";

function arg(name: string, fallback: number): number {
  const hit = Deno.args.find((a) => a.startsWith(`--${name}=`));
  return hit === undefined ? fallback : Number(hit.slice(name.length + 3));
}

const width = arg("width", 640);
const height = arg("height", 360);
const fps = arg("fps", 60);
const seconds = arg("seconds", 6);

interface Row {
  label: string;
  ratio: number;
  maxOverBudget: number;
}

/** Encodes `seconds` of the pattern; `targetAt(i)` gives the stream target for source frame i. */
async function run(
  label: string,
  encodedFps: number,
  targetAt: (i: number) => number,
): Promise<Row> {
  let t = 0;
  const capturer = new SyntheticCapturer({ width, height }, () => (t += 1e6 / fps));
  const encoder = FfmpegVideoEncoder.open({
    width,
    height,
    fps,
    bitrateBps: Math.round(targetAt(0) * fps / encodedFps),
    encoder: "libx264",
    log: false,
  });
  try {
    let bits = 0, wanted = 0, maxOver = 0, credit = 0;
    const frames = seconds * fps;
    const skip = fps; // the first second holds the keyframe
    for (let i = 0; i < frames; i++) {
      const frame = await capturer.capture();
      credit = Math.min(1, credit + encodedFps / fps);
      if (credit < 1 - 1e-9) continue;
      credit -= 1;
      const target = targetAt(i);
      const scaled = Math.round(target * fps / encodedFps);
      if (scaled !== encoder.bitrateBps) encoder.setBitrate(scaled);
      const au = await encoder.encode(frame);
      if (i < skip) continue;
      bits += au.data.length * 8;
      wanted += target / encodedFps;
      maxOver = Math.max(maxOver, (au.data.length * 8) / (target / encodedFps));
    }
    return { label, ratio: bits / wanted, maxOverBudget: maxOver };
  } finally {
    encoder.close();
    capturer.close();
  }
}

const rows: Row[] = [];
for (const kbps of [150, 300, 600, 1000, 2000, 4000, 10000]) {
  for (const encodedFps of [60, 30]) {
    rows.push(await run(`${kbps} kbit/s @${encodedFps}`, encodedFps, () => kbps * 1000));
  }
}
const steps = [300, 1000, 600, 2500, 400].map((k) => k * 1000);
rows.push(
  await run("steps 300..2500 kbit/s every 10 frames @60", 60, (i) => steps[Math.floor(i / 10) % 5]),
);

console.log(
  `libx264 ${width}x${height}, source ${fps} fps, ${seconds} s each (first second excluded)`,
);
console.log("target                                    produced/target  max frame/budget");
for (const r of rows) {
  console.log(
    `${r.label.padEnd(42)} ${r.ratio.toFixed(3).padStart(15)} ${
      r.maxOverBudget.toFixed(2).padStart(17)
    }`,
  );
}
const ratios = rows.map((r) => r.ratio);
console.log(
  `cases=${rows.length} mean_ratio=${
    (ratios.reduce((a, b) => a + b, 0) / rows.length).toFixed(3)
  } ` +
    `max_ratio=${Math.max(...ratios).toFixed(3)} ` +
    `max_frame_over_budget=${Math.max(...rows.map((r) => r.maxOverBudget)).toFixed(2)}`,
);
console.log(`command: deno run -A bench/encoder_rate.ts ${Deno.args.join(" ")}`.trim());
