// A tiny element builder: text always goes in as text, never as HTML.
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key === "style") Object.assign(element.style, value); // CSSOM: allowed by the CSP
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  element.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

const SVG = "http://www.w3.org/2000/svg";

export function s(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) element.setAttribute(key, String(value));
  }
  element.append(...children.filter((c) => c !== null && c !== undefined));
  return element;
}

export function conditionOf(resource, type) {
  const conditions = (resource.status && resource.status.conditions) || [];
  return conditions.find((c) => c.type === type);
}

// "Ready", "Not ready" or "Unknown", from the Ready condition.
export function readiness(resource) {
  const ready = conditionOf(resource, "Ready");
  if (!ready) return "Unknown";
  if (ready.status === "True") return "Ready";
  return ready.status === "False" ? "Not ready" : "Unknown";
}

export function fmt(value, digits = 2) {
  if (value === null || value === undefined) return "–";
  return Number(value).toFixed(digits).replace(/\.?0+$/, "") || "0";
}
