// A small SVG line chart (training / validation loss): redrawn from scratch on each update.
const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function ticks(lo, hi, n = 5) {
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}

// series: [{name, color, points: [[x, y], ...], dashed}]
export function drawLineChart(svg, series, { xLabel = "", yLabel = "", empty = "" } = {}) {
  const W = 640, H = 260, L = 52, R = 14, T = 12, B = 34;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const pts = series.flatMap((x) => x.points).filter(([, y]) => Number.isFinite(y));
  svg.dataset.points = String(pts.length);
  if (!pts.length) {
    svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, empty));
    return;
  }
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x1 === x0) x1 = x0 + 1;
  const pad = (y1 - y0) * 0.08 || Math.abs(y0) * 0.1 || 1;
  y0 = Math.max(0, y0 - pad); y1 += pad;
  const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const Y = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  for (const v of ticks(y0, y1)) {
    svg.append(s("line", { x1: L, x2: W - R, y1: Y(v), y2: Y(v), stroke: "#e5e9ef" }));
    svg.append(s("text", { x: L - 6, y: Y(v) + 4, "text-anchor": "end" }, String(+v.toPrecision(3))));
  }
  for (const v of ticks(x0, x1, 8).filter((v) => Number.isInteger(v))) {
    svg.append(s("text", { x: X(v), y: H - B + 16, "text-anchor": "middle" }, String(v)));
  }
  svg.append(s("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#9aa5b4" }));
  svg.append(s("line", { x1: L, x2: L, y1: T, y2: H - B, stroke: "#9aa5b4" }));
  svg.append(s("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" }, xLabel));
  svg.append(s("text", { x: 12, y: (T + H - B) / 2, transform: `rotate(-90 12 ${(T + H - B) / 2})`,
    "text-anchor": "middle" }, yLabel));
  for (const line of series) {
    const p = line.points.filter(([, y]) => Number.isFinite(y));
    if (!p.length) continue;
    const d = p.map(([x, y], i) => `${i ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join("");
    svg.append(s("path", { d, fill: "none", stroke: line.color, "stroke-width": 2,
      "stroke-dasharray": line.dashed ? "5 4" : "none" }));
    if (p.length < 40 || line.dots) {
      for (const [x, y] of p) svg.append(s("circle", { cx: X(x), cy: Y(y), r: 2.5, fill: line.color }));
    }
  }
}
