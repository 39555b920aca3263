/**
 * Desktop audio end to end: a tone played on the host's PulseAudio sink is
 * recorded from its monitor, sent as Opus over RIFT, decoded by WebCodecs in
 * headless Chromium and measured there.
 */
import assert from "node:assert/strict";
import { generateIdentity } from "../crypto/identity.ts";
import { WavryClient } from "../client/client.ts";
import { launchChromium, waitFor } from "../client/player/testing.ts";
import type { PlayerSummaryStats } from "../client/player/protocol.ts";
import { ToneGenerator } from "../media/audio_analysis.ts";
import { PulseAudioSink } from "../media/linux/audio_pulse.ts";
import { startPulse } from "./support/pulse.ts";
import { startXvfb } from "../tools/display/xvfb.ts";
import { WavryHost } from "../host/host.ts";

Deno.test("audio: a 440 Hz tone on the host plays in the page at 440 Hz", async () => {
  const pulse = await startPulse();
  const xvfb = await startXvfb(320, 240);
  const stops: (() => Promise<void> | void)[] = [() => xvfb.stop(), () => pulse.stop()];
  try {
    const hostIdentity = generateIdentity();
    const host = await WavryHost.start({
      listen: { hostname: "127.0.0.1", port: 0 },
      display: xvfb.display,
      fps: 30,
      bitrateBps: 1_000_000,
      identity: hostIdentity,
      audio: { server: pulse.server, source: pulse.monitor },
    });
    stops.unshift(() => host.stop());
    const client = await WavryClient.start({ host: host.addr, identity: generateIdentity() });
    stops.unshift(() => client.stop());
    const summaries: PlayerSummaryStats[] = [];
    client.player.onStats((s) => {
      if (s.t === "stats") summaries.push(s);
    });
    const browser = await launchChromium();
    stops.unshift(() => browser.close());
    const page = await browser.newPage();
    await page.goto(client.player.url);

    // Play the tone into the host's sink for as long as the test listens. The feeder is this
    // test's own loop, sharing its event loop with the host, client and Playwright: a 30 ms
    // buffer (the default) ran dry once on CI, and the silence read as 540 Hz. 250 ms does not.
    const sink = await PulseAudioSink.open({
      server: pulse.server,
      sink: pulse.sink,
      channels: 2,
      targetLatencyMs: 250,
    });
    const tone = new ToneGenerator(440, -12, 2);
    let playing = true;
    const player = (async () => {
      while (playing) await sink.write(tone.next());
    })();
    stops.unshift(async () => {
      playing = false;
      await player.catch(() => {});
      sink.close();
    });

    await waitFor(
      () => summaries.some((s) => s.audioPackets > 100 && s.audioFrequencyHz !== null),
      "the page to decode 1 s of audio",
      15_000,
    );
    // Skip the start (silence before the tone reached the monitor): take the last reports.
    await new Promise((r) => setTimeout(r, 1_000));
    const recent = summaries.filter((s) => s.audioLevelDb !== null && s.audioLevelDb > -40).slice(
      -3,
    );
    assert.ok(recent.length > 0, `no audible audio in ${JSON.stringify(summaries.slice(-3))}`);
    for (const s of recent) {
      assert.ok(
        Math.abs(s.audioFrequencyHz! - 440) / 440 < 0.03,
        `frequency ${s.audioFrequencyHz} Hz`,
      );
      assert.ok(Math.abs(s.audioLevelDb! - -12) < 3, `level ${s.audioLevelDb} dBFS`);
    }
    assert.ok(host.audioPacketsSent > 100);
    console.log(
      `page audio: ${
        recent.map((s) => `${s.audioFrequencyHz!.toFixed(1)} Hz ${s.audioLevelDb!.toFixed(1)} dBFS`)
          .join("; ")
      }; ` +
        `context ${recent.at(-1)!.audioState}`,
    );
  } finally {
    for (const stop of stops) {
      try {
        await stop();
      } catch {
        // keep stopping the rest
      }
    }
  }
});
