import assert from "node:assert/strict";
import fc from "fast-check";
import { MIN_REPLAY_WINDOW, type ReplayCheck, ReplayWindow } from "./replay.ts";

/** Obviously-correct model: a Set of everything committed. */
class NaiveWindow {
  readonly seen = new Set<number>();
  highest = -1;
  constructor(readonly size: number) {}
  check(c: number): ReplayCheck {
    if (c > this.highest) return "ok";
    if (c <= this.highest - this.size) return "too-old";
    return this.seen.has(c) ? "replayed" : "ok";
  }
  commit(c: number): void {
    if (this.check(c) !== "ok") return;
    this.seen.add(c);
    if (c > this.highest) this.highest = c;
  }
}

/** Compares every counter around the window edge, not just the ones probed. */
function assertSameState(real: ReplayWindow, model: NaiveWindow): void {
  const lo = Math.max(0, model.highest - model.size - 40);
  for (let c = lo; c <= model.highest + 40; c++) {
    if (real.check(c) !== model.check(c)) {
      assert.fail(`state differs at ${c}: ${real.check(c)} vs ${model.check(c)}`);
    }
  }
}

Deno.test("replay: size defaults to 2048, minimum 2048, multiple of 32", () => {
  assert.equal(new ReplayWindow().size, 2048);
  assert.equal(new ReplayWindow(100).size, 2048);
  assert.equal(new ReplayWindow(2049).size, 2080);
  assert.equal(new ReplayWindow(4096).size, 4096);
  assert.equal(MIN_REPLAY_WINDOW, 2048);
  assert.throws(() => new ReplayWindow(0), RangeError);
  assert.throws(() => new ReplayWindow(NaN), RangeError);
});

Deno.test("replay: basic accept, replay and too-old", () => {
  const w = new ReplayWindow();
  assert.equal(w.highest, -1);
  assert.equal(w.check(0), "ok");
  w.commit(0);
  assert.equal(w.highest, 0);
  assert.equal(w.check(0), "replayed");
  assert.equal(w.check(5), "ok");
  w.commit(5);
  assert.equal(w.check(3), "ok");
  w.commit(3);
  assert.equal(w.check(3), "replayed");
  assert.equal(w.check(4), "ok");
  w.commit(5000);
  // 5000 - 2048 = 2952 is the first too-old counter
  assert.equal(w.check(2952), "too-old");
  assert.equal(w.check(2953), "ok");
  assert.equal(w.check(4999), "ok");
  assert.equal(w.check(5000), "replayed");
  assert.equal(w.check(4), "too-old");
  assert.equal(w.check(-1), "too-old");
  assert.equal(w.check(1.5), "too-old");
  assert.equal(w.check(2 ** 53), "too-old");
});

Deno.test("replay: check does not change state", () => {
  const w = new ReplayWindow();
  w.commit(10);
  for (let i = 0; i < 3; i++) {
    assert.equal(w.check(7), "ok");
    assert.equal(w.check(11), "ok");
  }
  assert.equal(w.highest, 10);
  w.commit(7);
  assert.equal(w.check(7), "replayed");
});

Deno.test("replay: the full window of history survives word boundaries", () => {
  const w = new ReplayWindow();
  // Commit every even counter up to 10_000, odd ones stay unseen.
  for (let c = 0; c <= 10_000; c += 2) w.commit(c);
  for (let c = 10_000 - 2047; c <= 10_000; c++) {
    assert.equal(w.check(c), c % 2 === 0 ? "replayed" : "ok", `counter ${c}`);
  }
  assert.equal(w.check(10_000 - 2048), "too-old");
  // Highest just below a word boundary, then one past it.
  const v = new ReplayWindow();
  v.commit(31);
  v.commit(32);
  assert.equal(v.check(31), "replayed");
  assert.equal(v.check(0), "ok");
});

Deno.test("replay: huge jumps clear stale bits", () => {
  const w = new ReplayWindow();
  for (let c = 0; c < 3000; c++) w.commit(c);
  w.commit(1_000_000_000);
  for (let c = 1_000_000_000 - 2047; c < 1_000_000_000; c++) {
    if (w.check(c) !== "ok") assert.fail(`counter ${c} should be unseen`);
  }
  w.commit(Number.MAX_SAFE_INTEGER);
  assert.equal(w.check(Number.MAX_SAFE_INTEGER), "replayed");
  assert.equal(w.check(Number.MAX_SAFE_INTEGER - 1), "ok");
  assert.equal(w.check(1_000_000_000), "too-old");
});

Deno.test("replay: property: agrees with a Set-based model", () => {
  const op = fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: 12_000 }) },
    { weight: 2, arbitrary: fc.integer({ min: 0, max: 64 }).map((k) => k * 2080) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 ** 40 }) },
  );
  fc.assert(
    fc.property(
      fc.constantFrom(2048, 2080, 4096),
      fc.array(fc.tuple(op, fc.boolean()), { maxLength: 400, size: "max" }),
      (size, ops) => {
        const real = new ReplayWindow(size);
        const model = new NaiveWindow(real.size);
        ops.forEach(([counter, commit], i) => {
          const got = real.check(counter);
          assert.equal(got, model.check(counter), `check(${counter})`);
          if (commit) {
            real.commit(counter);
            model.commit(counter);
          }
          assert.equal(real.highest, model.highest);
          if (i % 50 === 49) assertSameState(real, model);
        });
        assertSameState(real, model);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("replay: property: sequential streams with local reordering", () => {
  // Realistic traffic: mostly increasing, with swaps and duplicates.
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: -40, max: 60 }), { minLength: 1, maxLength: 600, size: "max" }),
      (deltas) => {
        const real = new ReplayWindow();
        const model = new NaiveWindow(real.size);
        let base = 0;
        for (const d of deltas) {
          base += 8;
          const c = Math.max(0, base + d);
          assert.equal(real.check(c), model.check(c));
          real.commit(c);
          model.commit(c);
        }
        assertSameState(real, model);
      },
    ),
    { numRuns: 200 },
  );
});
