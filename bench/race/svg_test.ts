import assert from "node:assert/strict";
import { escapeXml, niceTicks, renderPlot } from "./svg.ts";

Deno.test("svg: ticks are round and cover the range", () => {
  assert.deepEqual(niceTicks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(0, 2.5e6, 5), [0, 500000, 1000000, 1500000, 2000000, 2500000]);
  assert.deepEqual(niceTicks(3, 3), [3]);
});

Deno.test("svg: a two-panel plot has one path per series, gaps break lines, text is escaped", () => {
  const svg = renderPlot({
    title: "5.1 <x1> & co",
    xLabel: "time (s)",
    panels: [
      {
        yLabel: "rate (bit/s)",
        series: [
          {
            label: "capacity",
            color: "#000",
            dashed: true,
            points: [{ x: 0, y: 1e6 }, { x: 10, y: 1e6 }],
          },
          {
            label: "GCC",
            color: "#c00",
            points: [{ x: 0, y: 3e5 }, { x: 5, y: undefined }, { x: 10, y: 9e5 }],
          },
        ],
      },
      {
        yLabel: "queuing delay (ms)",
        series: [{ label: "DELTA", color: "#06c", points: [{ x: 0, y: 5 }, { x: 10, y: 7 }] }],
      },
    ],
  });
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  assert.ok(svg.trimEnd().endsWith("</svg>"));
  assert.equal((svg.match(/<path /g) ?? []).length, 3);
  // The GCC line restarts after the gap: two move commands in its path.
  const gcc = svg.split("\n").find((l) => l.includes('stroke="#c00"') && l.startsWith("<path"))!;
  assert.equal((gcc.match(/M/g) ?? []).length, 2);
  assert.ok(svg.includes("5.1 &lt;x1&gt; &amp; co"));
  assert.ok(svg.includes('stroke-dasharray="6 4"'));
  assert.equal(escapeXml(`a"b'c`), "a&quot;b&#39;c");
});

Deno.test("svg: y values outside a fixed range are clamped into the panel", () => {
  const svg = renderPlot({
    title: "t",
    xLabel: "x",
    width: 200,
    panelHeight: 100,
    panels: [{
      yLabel: "y",
      yMin: 0,
      yMax: 10,
      series: [{ label: "s", color: "red", points: [{ x: 0, y: -5 }, { x: 1, y: 50 }] }],
    }],
  });
  const d = /<path d="([^"]+)"/.exec(svg)![1];
  const ys = [...d.matchAll(/[ML][\d.]+ ([\d.]+)/g)].map((m) => Number(m[1]));
  // Panel spans y 40..140.
  assert.deepEqual(ys, [140, 40]);
});
