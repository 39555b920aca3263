/**
 * Video pipeline benchmark: capture, convert, encode and decode per frame.
 *
 *   deno run -A bench/media.ts [--frames N] [--sweep]
 *
 * For 1280x720 and 1920x1080 it starts Xvfb and the xprobe moving scene
 * (or, with DISPLAY set, captures that screen at its own size), captures N
 * frames (default 300) with MIT-SHM, then runs the SAME frames through our
 * encoder (convert + encode, nonblocking FFI) and decoder, and through the
 * `ffmpeg` command line with the same x264 settings (raw BGRA file ->
 * libx264 -> null muxer). CLI per-frame time = (wall(N) - wall(1)) / (N - 1),
 * which cancels process start-up; ours = mean(convert + encode).
 * With --sweep it also times the colour-conversion variants at 1080p.
 *
 * Last line: capture/encode/decode p50 and the ratio are the 1080p numbers;
 * psnr_db is 720p at 4 Mbit/s with the default 4:2:0 chroma.
 */
import { startXvfb, type VirtualDisplay } from "../tools/display/xvfb.ts";
import { XProbe } from "../tools/display/xprobe.ts";
import { psnr } from "../media/image.ts";
import { X11Capturer } from "../media/linux/capture_x11.ts";
import { FfmpegVideoDecoder } from "../media/linux/video_decoder.ts";
import { type FfmpegEncoderOptions, FfmpegVideoEncoder } from "../media/linux/video_encoder.ts";
import type { CapturedFrame } from "../media/types.ts";
import { numberFlag } from "./args.ts";

const FRAMES = numberFlag("frames", 300);
const SWEEP = Deno.args.includes("--sweep");
const FPS = 60;
const PRESET = "ultrafast";

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p + 0.5))];
}

const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
const f2 = (v: number): string => v.toFixed(2);

interface Row {
  size: string;
  stage: string;
  p50: number;
  p99: number;
}

const rows: Row[] = [];
function record(size: string, stage: string, values: number[]): void {
  rows.push({ size, stage, p50: percentile(values, 0.5), p99: percentile(values, 0.99) });
}

async function captureFrames(
  width: number,
  height: number,
): Promise<{ frames: CapturedFrame[]; width: number; height: number }> {
  let xvfb: VirtualDisplay | undefined;
  let probe: XProbe | undefined;
  let display = Deno.env.get("DISPLAY");
  if (!display) {
    xvfb = await startXvfb(width, height);
    probe = await XProbe.start(xvfb.display, { pattern: true, fps: FPS });
    display = xvfb.display;
  }
  const direct = X11Capturer.open({ display });
  const copied = X11Capturer.open({ display, copy: true });
  const size = `${direct.width}x${direct.height}`;
  try {
    await new Promise((r) => setTimeout(r, 100));
    const frames: CapturedFrame[] = [];
    const times: number[] = [];
    const copyTimes: number[] = [];
    const period = 1000 / FPS;
    let next = performance.now();
    for (let i = 0; i < FRAMES; i++) {
      const t0 = performance.now();
      const frame = await direct.capture();
      times.push(performance.now() - t0);
      frames.push({ ...frame, data: frame.data.slice() });
      if (i < 60) {
        const t1 = performance.now();
        await copied.capture();
        copyTimes.push(performance.now() - t1);
      }
      next += period;
      const wait = next - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    record(size, "capture (SHM view, no copy)", times);
    record(size, "capture (copy out, 60 frames)", copyTimes);
    return { frames, width: direct.width, height: direct.height };
  } finally {
    direct.close();
    copied.close();
    await probe?.stop();
    await xvfb?.stop();
  }
}

async function encodeDecode(
  frames: CapturedFrame[],
  options: FfmpegEncoderOptions,
  decode: boolean,
): Promise<{ convert: number[]; encode: number[]; decode: number[]; psnr: number; bytes: number }> {
  const encoder = FfmpegVideoEncoder.open({ ...options, log: false });
  const decoder = FfmpegVideoDecoder.open();
  const convert: number[] = [],
    encode: number[] = [],
    decodeMs: number[] = [],
    scores: number[] = [];
  let bytes = 0;
  try {
    for (let i = 0; i < frames.length; i++) {
      const au = await encoder.encode(frames[i]);
      convert.push(au.convertMs);
      encode.push(au.encodeMs);
      bytes += au.data.length;
      if (!decode) continue;
      const picture = await decoder.decode(au.data);
      if (!picture) throw new Error(`frame ${i}: no picture`);
      decodeMs.push(picture.decodeMs);
      if (i % 10 === 0) scores.push(psnr(frames[i], picture));
    }
  } finally {
    encoder.close();
    decoder.close();
  }
  return { convert, encode, decode: decodeMs, psnr: scores.length ? mean(scores) : NaN, bytes };
}

function x264Args(bitrate: number): string[] {
  const kbps = Math.round(bitrate / 1000);
  return [
    "-c:v",
    "libx264",
    "-preset",
    PRESET,
    "-tune",
    "zerolatency",
    "-bf",
    "0",
    "-crf",
    "18",
    "-maxrate",
    `${kbps}k`,
    "-bufsize",
    `${Math.round((kbps * 2) / FPS)}k`,
    "-x264-params",
    "rc-lookahead=0:sync-lookahead=0:sliced-threads=1:scenecut=0",
    "-pix_fmt",
    "yuv420p",
    "-f",
    "null",
    "-",
  ];
}

async function ffmpegCli(
  file: string,
  width: number,
  height: number,
  frames: number,
  bitrate: number,
): Promise<{ perFrameMs: number; command: string }> {
  const input = [
    "-hide_banner",
    "-loglevel",
    "error",
    "-f",
    "rawvideo",
    "-pix_fmt",
    "bgra",
    "-s",
    `${width}x${height}`,
    "-r",
    String(FPS),
    "-i",
    file,
  ];
  const run = async (n: number): Promise<number> => {
    let best = Infinity;
    for (let k = 0; k < 3; k++) {
      const t0 = performance.now();
      const out = await new Deno.Command("ffmpeg", {
        args: [...input, "-frames:v", String(n), ...x264Args(bitrate)],
        stdout: "null",
        stderr: "piped",
      }).output();
      const wall = performance.now() - t0;
      if (!out.success) throw new Error(`ffmpeg failed: ${new TextDecoder().decode(out.stderr)}`);
      best = Math.min(best, wall);
    }
    return best;
  };
  const one = await run(1);
  const all = await run(frames);
  const command = [
    "ffmpeg",
    ...input,
    "-frames:v",
    String(frames),
    ...x264Args(bitrate),
  ]
    .join(" ");
  return { perFrameMs: (all - one) / (frames - 1), command };
}

async function writeRaw(frames: CapturedFrame[], width: number): Promise<string> {
  const file = await Deno.makeTempFile({ prefix: "wavry-bench-", suffix: ".bgra" });
  const out = await Deno.open(file, { write: true });
  try {
    for (const f of frames) {
      for (let y = 0; y < f.height; y++) {
        const row = f.data.subarray(y * f.stride, y * f.stride + width * 4);
        let written = 0;
        while (written < row.length) written += await out.write(row.subarray(written));
      }
    }
  } finally {
    out.close();
  }
  return file;
}

const summary: Record<string, number> = {};
const commands: string[] = [];
for (const [w, h, bitrate] of [[1280, 720, 4_000_000], [1920, 1080, 8_000_000]]) {
  const { frames, width, height } = await captureFrames(w, h);
  const size = `${width}x${height}`;
  const base = { width, height, fps: FPS, bitrateBps: bitrate };
  const ours = await encodeDecode(frames, base, true);
  record(size, "convert (BGRA -> yuv420p)", ours.convert);
  record(size, "encode (libx264)", ours.encode);
  record(
    size,
    "convert + encode",
    ours.convert.map((c, i) => c + ours.encode[i]),
  );
  record(size, "decode (+ BGRA)", ours.decode);
  const file = await writeRaw(frames, width);
  try {
    const cli = await ffmpegCli(file, width, height, frames.length, bitrate);
    commands.push(cli.command);
    const oursMean = mean(ours.convert.map((c, i) => c + ours.encode[i]));
    rows.push({ size, stage: "ffmpeg CLI per frame (mean)", p50: cli.perFrameMs, p99: NaN });
    rows.push({ size, stage: "ours convert+encode (mean)", p50: oursMean, p99: NaN });
    const kbps = (ours.bytes * 8 * FPS) / frames.length / 1000;
    console.log(
      `${size}: PSNR 4:2:0 ${f2(ours.psnr)} dB at ${kbps.toFixed(0)} kbit/s (target ${
        bitrate / 1000
      })`,
    );
    if (w === 1280) {
      summary.psnr = ours.psnr;
      const full = await encodeDecode(frames.slice(0, 120), { ...base, chroma: "444" }, true);
      console.log(`${size}: PSNR 4:4:4 ${f2(full.psnr)} dB`);
      record(size, "convert (BGRA -> yuv444p)", full.convert);
      record(size, "encode (libx264 4:4:4)", full.encode);
    } else {
      summary.capture = rows.find((r) =>
        r.size === size && r.stage.startsWith("capture (SHM")
      )!.p50;
      summary.encode = percentile(ours.convert.map((c, i) => c + ours.encode[i]), 0.5);
      summary.decode = percentile(ours.decode, 0.5);
      summary.ratio = oursMean / cli.perFrameMs;
      summary.captureConvert = summary.capture + percentile(ours.convert, 0.5);
      if (SWEEP) {
        const variants: [string, Partial<FfmpegEncoderOptions>][] = [
          ["wavry convert.c, threads auto (default)", {}],
          ["wavry convert.c, 1 thread", { scalerThreads: 1 }],
          ["swscale point, yuv420p, threads auto", { converter: "swscale" }],
          ["swscale point, yuv420p, 1 thread", { converter: "swscale", scalerThreads: 1 }],
          ["point, nv12", { pixelFormat: "nv12" }],
          ["fast_bilinear, yuv420p", { scaler: "fast_bilinear" }],
          ["fast_bilinear, yuv420p, 1 thread", { scaler: "fast_bilinear", scalerThreads: 1 }],
          ["bilinear, yuv420p", { scaler: "bilinear" }],
          ["bicubic, yuv420p", { scaler: "bicubic" }],
          ["preset superfast", { preset: "superfast" }],
        ];
        for (const [name, v] of variants) {
          const r = await encodeDecode(frames.slice(0, 120), { ...base, ...v }, false);
          record(size, `sweep: convert [${name}]`, r.convert);
          record(size, `sweep: encode [${name}]`, r.encode);
        }
      }
    }
  } finally {
    await Deno.remove(file).catch(() => {});
  }
  frames.length = 0;
}

console.log("");
console.log("| size | stage | p50 ms | p99 ms |");
console.log("|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.size} | ${r.stage} | ${f2(r.p50)} | ${Number.isNaN(r.p99) ? "-" : f2(r.p99)} |`,
  );
}
console.log("");
for (const c of commands) console.log(`ffmpeg CLI: ${c}`);
console.log(
  `# 1080p (8 Mbit/s): capture, convert+encode, decode p50 and the ratio (mean ours / mean CLI); ` +
    `capture+convert p50 ${f2(summary.captureConvert)} ms; psnr_db: 720p, 4 Mbit/s, 4:2:0`,
);
console.log(
  `capture_ms_p50=${f2(summary.capture)} encode_ms_p50=${f2(summary.encode)} ` +
    `decode_ms_p50=${f2(summary.decode)} psnr_db=${f2(summary.psnr)} ` +
    `encode_ratio_vs_ffmpeg_cli=${f2(summary.ratio)}`,
);
