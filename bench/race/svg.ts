/**
 * A small dependency-free SVG line-plot writer: one or more panels stacked
 * vertically (e.g. rate over time, then delay over time), each with its own
 * y axis and any number of series, sharing the x axis.
 *
 * Pure: returns the SVG text.
 *
 * @module
 */

/** One line: points in data units; NaN/undefined y breaks the line. */
export interface Series {
  readonly label: string;
  readonly color: string;
  readonly points: readonly { x: number; y: number | undefined }[];
  /** Dashed stroke (e.g. for the capacity). */
  readonly dashed?: boolean;
}

/** One panel of the plot. */
export interface Panel {
  readonly yLabel: string;
  readonly series: readonly Series[];
  /** Fixed y range; default 0..max of the data (plus 5%). */
  readonly yMin?: number;
  readonly yMax?: number;
}

/** The whole figure. */
export interface Plot {
  readonly title: string;
  readonly xLabel: string;
  readonly panels: readonly Panel[];
  /** Pixel size; default 900 wide, 260 per panel. */
  readonly width?: number;
  readonly panelHeight?: number;
}

/** Escapes text for SVG content and attributes. */
export function escapeXml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

/** Round tick values: about `n` ticks spanning [lo, hi] at 1/2/5 x 10^k steps. */
export function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

function fmt(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  return `${+v.toPrecision(3)}`;
}

/** Renders the plot as an SVG document. */
export function renderPlot(plot: Plot): string {
  const W = plot.width ?? 900;
  const PH = plot.panelHeight ?? 260;
  const left = 70, right = 20, top = 40, gap = 30, bottom = 45;
  const H = top + plot.panels.length * (PH + gap) - gap + bottom;
  const all = plot.panels.flatMap((p) => p.series.flatMap((s) => s.points.map((q) => q.x)));
  const xMin = all.length ? Math.min(...all) : 0;
  const xMax = all.length ? Math.max(...all) : 1;
  const xSpan = xMax > xMin ? xMax - xMin : 1;
  const px = (x: number) => left + ((x - xMin) / xSpan) * (W - left - right);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(plot.title)}</text>`,
  );
  plot.panels.forEach((panel, pi) => {
    const y0 = top + pi * (PH + gap);
    const ys = panel.series.flatMap((s) =>
      s.points.map((q) => q.y).filter((y): y is number => y !== undefined && Number.isFinite(y))
    );
    const yMin = panel.yMin ?? 0;
    let yMax = panel.yMax ?? (ys.length ? Math.max(...ys) * 1.05 : 1);
    if (!(yMax > yMin)) yMax = yMin + 1;
    const py = (y: number) => y0 + PH - ((y - yMin) / (yMax - yMin)) * PH;
    out.push(
      `<rect x="${left}" y="${y0}" width="${
        W - left - right
      }" height="${PH}" fill="none" stroke="#888"/>`,
    );
    for (const t of niceTicks(yMin, yMax)) {
      const y = py(t).toFixed(1);
      out.push(
        `<line x1="${left}" x2="${W - right}" y1="${y}" y2="${y}" stroke="#eee"/>`,
        `<text x="${left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${
          fmt(t)
        }</text>`,
      );
    }
    out.push(
      `<text transform="translate(16 ${y0 + PH / 2}) rotate(-90)" text-anchor="middle">${
        escapeXml(panel.yLabel)
      }</text>`,
    );
    panel.series.forEach((s, si) => {
      let d = "";
      let pen = false;
      for (const q of s.points) {
        if (q.y === undefined || !Number.isFinite(q.y)) {
          pen = false;
          continue;
        }
        const y = Math.min(Math.max(q.y, yMin), yMax);
        d += `${pen ? "L" : "M"}${px(q.x).toFixed(1)} ${py(y).toFixed(1)}`;
        pen = true;
      }
      if (d) {
        out.push(
          `<path d="${d}" fill="none" stroke="${escapeXml(s.color)}" stroke-width="1.5"${
            s.dashed ? ' stroke-dasharray="6 4"' : ""
          }/>`,
        );
      }
      // Legend entries 170 px apart, wrapping onto further rows inside the panel.
      const perRow = Math.max(1, Math.floor((W - left - right - 10) / 170));
      const lx = left + 10 + (si % perRow) * 170;
      const ly = y0 + 12 + Math.floor(si / perRow) * 16;
      out.push(
        `<line x1="${lx}" x2="${lx + 20}" y1="${ly}" y2="${ly}" stroke="${
          escapeXml(s.color)
        }" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
        `<text x="${lx + 25}" y="${ly}" dominant-baseline="middle">${escapeXml(s.label)}</text>`,
      );
    });
  });
  const yAxis = top + plot.panels.length * (PH + gap) - gap;
  for (const t of niceTicks(xMin, xMax, 10)) {
    out.push(
      `<text x="${px(t).toFixed(1)}" y="${yAxis + 16}" text-anchor="middle">${fmt(t)}</text>`,
    );
  }
  out.push(
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle">${escapeXml(plot.xLabel)}</text>`,
    `</svg>`,
  );
  return out.join("\n") + "\n";
}
