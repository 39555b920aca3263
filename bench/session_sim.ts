/**
 * Handshake and control delivery over a lossy simulated link.
 *
 *   deno run -A bench/session_sim.ts [--seeds N] [--loss P] [--rtt MS]
 *
 * Runs the real session state machines over the deterministic link simulator
 * (50 ms RTT, 20% random loss each way by default) for many seeds. The
 * baseline is the physical limit: a handshake needs 1.5 round trips on a
 * perfect link, so `handshake_vs_ideal` says how many times that it took.
 * Last line: `handshake_ok=1 handshake_ms=N control_delivered=F ...`.
 */
import type { LinkConfig } from "../core/sim/link.ts";
import { sessionPair } from "../core/sim/pair.ts";
import { numberFlag } from "./args.ts";

const seeds = numberFlag("seeds", 200);
const loss = numberFlag("loss", 0.2);
const rttMs = numberFlag("rtt", 50);
const CONTROL_MESSAGES = 100;

const link: LinkConfig = {
  delayMs: rttMs / 2,
  jitterMs: 0,
  reorder: false,
  duplicateProbability: 0,
  loss: { kind: "bernoulli", p: loss },
};

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

const handshakeMs: number[] = [];
let failures = 0;
let sent = 0;
let delivered = 0;
const wallStart = performance.now();
for (let seed = 1; seed <= seeds; seed++) {
  const pair = sessionPair({ seed, link });
  const ok = pair.net.runUntilCondition(
    () =>
      pair.initiator.session.state === "established" &&
      pair.responder.session.state === "established",
    30_000,
  );
  if (!ok) {
    failures++;
    continue;
  }
  handshakeMs.push(pair.net.now);
  for (let i = 0; i < CONTROL_MESSAGES; i++) {
    pair.initiator.session.sendControl(new TextEncoder().encode(`control ${i}`));
  }
  sent += CONTROL_MESSAGES;
  pair.net.runUntilCondition(
    () => pair.responder.eventsOf("control").length >= CONTROL_MESSAGES,
    pair.net.now + 30_000,
  );
  delivered += pair.responder.eventsOf("control").length;
}
const wallMs = performance.now() - wallStart;

handshakeMs.sort((a, b) => a - b);
const p50 = percentile(handshakeMs, 0.5);
const ideal = 1.5 * rttMs;
console.log(
  `# ${seeds} seeds, RTT ${rttMs} ms, loss ${loss} each way, ${CONTROL_MESSAGES} control messages each; ` +
    `simulated in ${wallMs.toFixed(0)} ms of wall time`,
);
console.log(
  `# handshake virtual ms: p50 ${p50.toFixed(1)}, p90 ${
    percentile(handshakeMs, 0.9).toFixed(1)
  }, ` +
    `p99 ${percentile(handshakeMs, 0.99).toFixed(1)}, max ${
      handshakeMs[handshakeMs.length - 1].toFixed(1)
    }; ideal (1.5 RTT) ${ideal} ms; failures ${failures}`,
);
console.log(
  `handshake_ok=${failures === 0 ? 1 : 0} handshake_ms=${p50.toFixed(1)} control_delivered=${
    (sent === 0 ? 0 : delivered / sent).toFixed(4)
  } handshake_vs_ideal=${(p50 / ideal).toFixed(2)} seeds=${seeds}`,
);
