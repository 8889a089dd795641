// Line charts drawn as SVG: one <figure> per quantity, with its latest values in the caption
// (what a screen reader and a test read) and the points on the figure's data attributes.
import { h, s, fmt } from "./dom.js";

const W = 320;
const H = 120;
const PAD = { left: 40, right: 8, top: 8, bottom: 18 };

// Each chart: which point fields it draws, with a label and a line style.
export const CHARTS = [
  { id: "replicas", title: "Replicas", unit: "",
    lines: [["replicas", "desired"], ["ready", "ready"]] },
  { id: "rps", title: "Request rate", unit: "req/s", lines: [["rps", "requests/s"]] },
  { id: "latency", title: "Latency", unit: "ms",
    lines: [["p50", "p50"], ["p90", "p90"], ["p99", "p99"]] },
  { id: "errors", title: "Error rate", unit: "5xx/s", lines: [["errors", "5xx/s"]] },
];

function path(points, field, x, y) {
  let d = "";
  let pen = "M";
  for (const p of points) {
    const v = p[field];
    if (v === null || v === undefined) { pen = "M"; continue; }
    d += `${pen}${x(p.t).toFixed(1)},${y(v).toFixed(1)} `;
    pen = "L";
  }
  return d.trim();
}

function drawing(chart, points) {
  const values = points.flatMap((p) => chart.lines.map(([f]) => p[f])).filter((v) => v != null);
  const top = Math.max(1, ...values) * 1.1;
  const first = points.length ? points[0].t : 0;
  const last = points.length ? points[points.length - 1].t : 1;
  const span = Math.max(last - first, 1);
  const x = (t) => PAD.left + ((t - first) / span) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", focusable: "false" },
    s("line", { x1: PAD.left, y1: y(0), x2: W - PAD.right, y2: y(0), class: "axis" }),
    s("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: y(0), class: "axis" }),
    s("text", { x: PAD.left - 4, y: PAD.top + 8, class: "tick", "text-anchor": "end" }, fmt(top, 1)),
    s("text", { x: PAD.left - 4, y: y(0), class: "tick", "text-anchor": "end" }, "0"),
    s("text", { x: W - PAD.right, y: H - 4, class: "tick", "text-anchor": "end" }, "now"),
    s("text", { x: PAD.left, y: H - 4, class: "tick" }, points.length ? `-${Math.round(span)} s` : ""));
  chart.lines.forEach(([field], index) => {
    const d = path(points, field, x, y);
    if (d) svg.append(s("path", { d, class: `line line-${index}` }));
    const last = points[points.length - 1];
    if (last && last[field] != null) { // a dot: a lone point draws no line
      svg.append(s("circle", { cx: x(last.t), cy: y(last[field]), r: 2.5, class: `dot-${index}` }));
    }
  });
  return svg;
}

function latest(chart, points) {
  const last = points[points.length - 1];
  if (!last) return "no data yet";
  return chart.lines.map(([field, label]) => `${label} ${fmt(last[field])}`).join(", ");
}

// The figures for one service's points (an empty list draws empty charts).
export function charts(points) {
  return h("div", { class: "charts" }, CHARTS.map((chart) => {
    const summary = latest(chart, points);
    const last = points[points.length - 1];
    const lastValue = last ? last[chart.lines[0][0]] : null;
    const svg = drawing(chart, points);
    svg.setAttribute("aria-label", `${chart.title}: ${summary}`);
    const legend = h("ul", { class: "legend" }, chart.lines.map(([, label], i) =>
      h("li", { class: `key key-${i}` }, label)));
    return h("figure", {
      class: "chart", id: `chart-${chart.id}`,
      dataset: { points: String(points.length), last: lastValue === null ? "" : String(lastValue),
                 max: String(Math.max(0, ...points.map((p) => p[chart.lines[0][0]] || 0))) },
    }, h("figcaption", {}, h("strong", {}, chart.title), chart.unit ? ` (${chart.unit})` : "",
      h("span", { class: "latest" }, `: ${summary}`)), svg, legend);
  }));
}
