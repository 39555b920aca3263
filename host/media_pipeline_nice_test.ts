/**
 * The capture/encode worker's nice option: applied (and said once) before the
 * encoder opens, refused with a typed error when out of range. A small
 * synthetic source, no display needed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MediaPipeline, MediaPipelineError } from "./media_pipeline.ts";

const SOURCE = { kind: "pattern", width: 320, height: 240, seed: 1 } as const;

Deno.test({
  name: "media pipeline: nice is applied to the capture/encode threads and logged once",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const lines: string[] = [];
    const pipeline = await MediaPipeline.start({
      source: SOURCE,
      fps: 30,
      bitrateBps: 500_000,
      encoder: "libx264",
      nice: 6,
      log: (line) => lines.push(line),
    });
    try {
      for await (const _frame of pipeline.frames()) break;
      assert.deepEqual(lines, ["capture/encode threads at nice 6"]);
    } finally {
      await pipeline.stop();
    }
    assert.equal(pipeline.released, true);
  },
});

Deno.test("media pipeline: an out-of-range nice rejects start with an Open error", async () => {
  await assert.rejects(
    MediaPipeline.start({ source: SOURCE, fps: 30, bitrateBps: 500_000, nice: 40 }),
    (e) => e instanceof MediaPipelineError && e.kind === "Open" && /nice/.test(e.message),
  );
});
