import assert from "node:assert/strict";
import fc from "fast-check";
import { cliLinkToConfig, parseArgs, parseHostPort, parseQueue, parseRate } from "./cli.ts";
import { Link } from "../../core/sim/link.ts";
import { Rng } from "../../core/sim/rng.ts";
import { completeLinkConfig } from "./types.ts";

Deno.test("parseRate: tc units (bit vs bytes per second)", () => {
  assert.equal(parseRate("10mbit"), 10e6);
  assert.equal(parseRate("500kbit"), 500e3);
  assert.equal(parseRate("1gbit"), 1e9);
  assert.equal(parseRate("2mbps"), 16e6);
  assert.equal(parseRate("1e6"), 1e6);
  assert.equal(parseRate("12345"), 12345);
  for (const bad of ["", "0", "-1mbit", "10 furlongs", "mbit", "1.2.3mbit"]) {
    assert.equal(parseRate(bad), undefined, bad);
  }
});

Deno.test("parseQueue: a time or a size", () => {
  assert.deepEqual(parseQueue("50ms"), { ms: 50 });
  assert.deepEqual(parseQueue("0.2s"), { ms: 200 });
  assert.deepEqual(parseQueue("64kb"), { bytes: 65536 });
  assert.deepEqual(parseQueue("1500b"), { bytes: 1500 });
  assert.deepEqual(parseQueue("1500"), { bytes: 1500 });
  assert.deepEqual(parseQueue("1m"), { bytes: 1048576 });
  for (const bad of ["", "0ms", "1.5b", "10parsecs", "-5ms"]) {
    assert.equal(parseQueue(bad), undefined);
  }
});

Deno.test("parseHostPort: IPv4, names and bracketed IPv6", () => {
  assert.deepEqual(parseHostPort("127.0.0.1:9000"), { hostname: "127.0.0.1", port: 9000 });
  assert.deepEqual(parseHostPort("[::1]:53"), { hostname: "::1", port: 53 });
  assert.deepEqual(parseHostPort("localhost:0", true), { hostname: "localhost", port: 0 });
  for (const bad of ["127.0.0.1", ":9000", "a:70000", "a:0", "::1:5"]) {
    assert.equal(parseHostPort(bad), undefined, bad);
  }
});

Deno.test("parseArgs: the documented example", () => {
  const r = parseArgs(
    "--listen 127.0.0.1:9000 --target 127.0.0.1:9001 --delay 20 --jitter 2 --loss 0.01 --ge 0.01,0.3,0,1 --rate 10mbit --queue 50ms"
      .split(" "),
  );
  assert.ok(r.ok);
  const o = r.options;
  assert.deepEqual(o.listen, { hostname: "127.0.0.1", port: 9000 });
  assert.deepEqual(o.target, { hostname: "127.0.0.1", port: 9001 });
  for (const l of [o.up, o.down]) {
    assert.equal(l.delayMs, 20);
    assert.equal(l.jitterMs, 2);
    assert.equal(l.rateBps, 10e6);
    assert.equal(l.queueMs, 50);
    // --ge came after --loss: the later one wins
    assert.deepEqual(l.loss, {
      kind: "gilbert-elliott",
      pGoodToBad: 0.01,
      pBadToGood: 0.3,
      lossInBad: 1,
      lossInGood: 0,
    });
  }
});

Deno.test("parseArgs: per-direction prefixes, flows, schedules, inline values", () => {
  const r = parseArgs([
    "--target=10.0.0.1:5000",
    "--up-delay",
    "5",
    "--down-trace",
    "x.down",
    "--up-schedule",
    "0:10mbit,5000:5mbit",
    "--flow",
    "127.0.0.1:9002=127.0.0.1:9003",
    "--reorder",
    "--ge-mean",
    "0.05,3",
  ]);
  assert.ok(r.ok);
  assert.equal(r.options.up.delayMs, 5);
  assert.equal(r.options.down.delayMs, undefined);
  assert.equal(r.options.down.tracePath, "x.down");
  assert.deepEqual(r.options.up.rateSchedule, [{ atMs: 0, bps: 10e6 }, { atMs: 5000, bps: 5e6 }]);
  assert.equal(r.options.extraFlows.length, 1);
  assert.equal(r.options.up.reorder, true);
  assert.equal(r.options.down.loss?.kind, "gilbert-elliott");
});

Deno.test("parseArgs: bad input is a typed error naming the argument", () => {
  const cases: [string[], string][] = [
    [[], "--target"],
    [["--target", "x"], "--target"],
    [["--target", "a:1", "--loss", "1.5"], "--loss"],
    [["--target", "a:1", "--rate"], "--rate"],
    [["--target", "a:1", "--bogus", "1"], "--bogus"],
    [["--target", "a:1", "--schedule", "5:1mbit,5:2mbit"], "--schedule"],
    [["--target", "a:1", "--trace", "t", "--rate", "1mbit"], "--up-trace"],
    [["--target", "a:1", "--reorder=yes"], "--reorder=yes"],
    [["stray"], "stray"],
  ];
  for (const [argv, arg] of cases) {
    const r = parseArgs(argv);
    assert.ok(!r.ok, argv.join(" "));
    assert.equal(r.error.kind, "BadArgument");
    assert.equal(r.error.arg, arg, argv.join(" "));
  }
});

Deno.test("parseArgs: never throws, and whatever it accepts makes a valid Link (property)", () => {
  const token = fc.oneof(
    fc.constantFrom(
      "--target",
      "--listen",
      "--delay",
      "--up-jitter",
      "--down-loss",
      "--ge",
      "--ge-mean",
      "--rate",
      "--schedule",
      "--queue",
      "--mtu",
      "--reorder",
      "--dup",
      "--seed",
      "--flow",
      "--rt",
      "--spin",
      "127.0.0.1:9",
      "0.5",
      "10mbit",
      "50ms",
      "0:1mbit,10:2mbit",
      "0.01,0.3",
      "0.05,3",
      "1500",
      "-1",
    ),
    fc.string({ maxLength: 12 }),
  );
  fc.assert(
    fc.property(fc.array(token, { maxLength: 12 }), (argv) => {
      const r = parseArgs(["--target", "127.0.0.1:1", ...argv]);
      if (!r.ok) return;
      for (const l of [r.options.up, r.options.down]) {
        new Link(completeLinkConfig(cliLinkToConfig(l)), new Rng(1));
      }
    }),
    { numRuns: 2000 },
  );
});
