// The overview: one table per kind, a row per resource, its name a link to its details.
import { enc } from "./api.js";
import { h, readiness, fmt } from "./dom.js";

export function runtimeOf(isvc) {
  const status = isvc.status || {};
  const predictor = (isvc.spec && isvc.spec.predictor) || {};
  const model = predictor.model || {};
  return status.clusterServingRuntimeName || status.servingRuntimeName || model.runtime ||
    (model.modelFormat && model.modelFormat.name) ||
    Object.keys(predictor).find((k) => predictor[k] && predictor[k].storageUri) || "custom";
}

export function trafficText(resource) {
  const components = (resource.status && resource.status.components) || {};
  const parts = [];
  for (const [component, status] of Object.entries(components)) {
    for (const t of status.traffic || []) {
      const revision = (t.revisionName || "").replace(`${resource.metadata.name}-`, "");
      parts.push(`${component === "predictor" ? "" : `${component}: `}${revision} ${t.percent}%`);
    }
  }
  return parts.join(", ") || "–";
}

function latestRevision(resource) {
  const components = (resource.status && resource.status.components) || {};
  const predictor = components.predictor || Object.values(components)[0] || {};
  return predictor.latestReadyRevision || predictor.latestCreatedRevision || "–";
}

function link(resource) {
  const { kind, metadata } = resource;
  return h("a", { href: `#/${kind}/${enc(metadata.namespace)}/${enc(metadata.name)}` },
    metadata.name);
}

function readyCell(resource) {
  const state = readiness(resource);
  const css = state === "Ready" ? "ok" : state === "Not ready" ? "bad" : "unknown";
  return h("td", { class: `ready ${css}` }, h("span", { class: "dot", "aria-hidden": "true" }), state);
}

function traffic(points) {
  const last = points[points.length - 1];
  if (!last) return ["–", "–"];
  return [`${last.ready}/${last.replicas}`, fmt(last.rps)];
}

const COLUMNS = {
  InferenceService: ["Name", "Namespace", "Ready", "URL", "Runtime", "Latest revision", "Traffic",
    "Replicas (ready/desired)", "Requests/s"],
  InferenceGraph: ["Name", "Namespace", "Ready", "URL", "Root router", "Replicas (ready/desired)",
    "Requests/s"],
  TrainedModel: ["Name", "Namespace", "Ready", "InferenceService", "Framework", "Storage URI"],
  LLMInferenceService: ["Name", "Namespace", "Ready", "URL", "Model"],
};

function cells(resource, seriesOf) {
  const { metadata, spec = {}, status = {} } = resource;
  const points = seriesOf(metadata.namespace, metadata.name);
  switch (resource.kind) {
    case "InferenceService":
      return [status.url || "–", runtimeOf(resource), latestRevision(resource),
        trafficText(resource), ...traffic(points)];
    case "InferenceGraph": {
      const root = (spec.nodes && spec.nodes.root) || {};
      return [status.url || "–", root.routerType || "–", ...traffic(points)];
    }
    case "TrainedModel": {
      const model = spec.model || {};
      return [spec.inferenceService || "–", model.framework || "–", model.storageUri || "–"];
    }
    default:
      return [status.url || "–", (spec.model && (spec.model.name || spec.model.uri)) || "–"];
  }
}

export function overviewTable(type, items, seriesOf) {
  const columns = COLUMNS[type.kind];
  const rows = items.map((resource) => h("tr", {
    dataset: { key: `${resource.kind}/${resource.metadata.namespace}/${resource.metadata.name}` },
  }, h("th", { scope: "row" }, link(resource)), h("td", {}, resource.metadata.namespace),
  readyCell(resource), cells(resource, seriesOf).map((text) => h("td", {}, text))));
  const body = rows.length ? rows
    : [h("tr", {}, h("td", { colspan: columns.length }, "None yet: apply one below."))];
  return h("table", { class: "resources", id: `table-${type.plural}` },
    h("caption", {}, `${type.title} (${items.length})`),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, body));
}
