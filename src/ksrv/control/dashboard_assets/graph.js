// An InferenceGraph's nodes and steps as SVG: one box per node, columns by distance from
// `root`, a row per step; a step that calls another node draws an arrow to it.
import { s } from "./dom.js";

const BOX_W = 220;
const GAP_X = 70;
const HEAD = 26;
const ROW = 20;
const GAP_Y = 24;

function columns(nodes) {
  const depth = { root: 0 };
  const queue = ["root"];
  while (queue.length) {
    const name = queue.shift();
    for (const step of (nodes[name] && nodes[name].steps) || []) {
      if (step.nodeName && nodes[step.nodeName] && depth[step.nodeName] === undefined) {
        depth[step.nodeName] = depth[name] + 1;
        queue.push(step.nodeName);
      }
    }
  }
  let deepest = Math.max(0, ...Object.values(depth));
  for (const name of Object.keys(nodes)) {
    if (depth[name] === undefined) depth[name] = ++deepest; // unreachable: still drawn
  }
  const found = [];
  for (const [name, d] of Object.entries(depth)) (found[d] = found[d] || []).push(name);
  return found.filter(Boolean);
}

function stepLabel(step, index) {
  const target = step.nodeName ? `node ${step.nodeName}` : step.serviceName || step.serviceUrl || "?";
  const name = step.name || `step ${index}`;
  const extra = step.weight !== undefined ? ` (${step.weight}%)`
    : step.condition ? ` if ${step.condition}` : "";
  return `${name} → ${target}${extra}`;
}

export function graphDrawing(graph) {
  const nodes = (graph.spec && graph.spec.nodes) || {};
  const boxes = {};
  let width = 0;
  let height = 0;
  columns(nodes).forEach((names, col) => {
    let y = 8;
    for (const name of names) {
      const steps = nodes[name].steps || [];
      const box = { x: 8 + col * (BOX_W + GAP_X), y, h: HEAD + ROW * steps.length + 6 };
      boxes[name] = box;
      y += box.h + GAP_Y;
      width = Math.max(width, box.x + BOX_W + 8);
      height = Math.max(height, y);
    }
  });
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`, width, height, role: "img", class: "graph",
    "aria-label": `Graph with nodes ${Object.keys(nodes).join(", ")}`,
  }, s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
  s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))));
  for (const [name, box] of Object.entries(boxes)) {
    const node = nodes[name];
    const group = s("g", { class: "node", "data-node": name },
      s("rect", { x: box.x, y: box.y, width: BOX_W, height: box.h, rx: 6 }),
      s("text", { x: box.x + 8, y: box.y + 17, class: "node-title" },
        `${name} · ${node.routerType || "Sequence"}`));
    (node.steps || []).forEach((step, i) => {
      const rowY = box.y + HEAD + ROW * i + 14;
      group.append(s("text", { x: box.x + 12, y: rowY, class: "step" }, stepLabel(step, i)));
      const target = step.nodeName && boxes[step.nodeName];
      if (target) {
        const x1 = box.x + BOX_W;
        const x2 = target.x;
        const y2 = target.y + HEAD / 2;
        svg.append(s("path", {
          d: `M${x1},${rowY - 4} C${x1 + 30},${rowY - 4} ${x2 - 30},${y2} ${x2},${y2}`,
          class: "edge", "marker-end": "url(#arrow)",
        }));
      }
    });
    svg.append(group);
  }
  return svg;
}
