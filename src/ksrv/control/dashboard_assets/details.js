// One resource's details: what it is, its traffic split and revisions, its conditions (and
// what the local platform does not honour), and the last log lines of each replica.
import { call, enc } from "./api.js";
import { h, readiness } from "./dom.js";
import { runtimeOf } from "./tables.js";

const LOG_LINES = 15;

function facts(resource) {
  const { spec = {}, status = {} } = resource;
  const rows = [["Ready", readiness(resource)], ["URL", status.url || "–"]];
  if (status.address && status.address.url) rows.push(["Address", status.address.url]);
  if (resource.kind === "InferenceService") {
    rows.push(["Runtime", runtimeOf(resource)]);
    rows.push(["Components", Object.keys(spec).filter((k) => spec[k]).join(", ")]);
  }
  if (resource.kind === "TrainedModel") {
    rows.push(["InferenceService", spec.inferenceService || "–"]);
    rows.push(["Storage URI", (spec.model && spec.model.storageUri) || "–"]);
  }
  return h("dl", { class: "facts" }, rows.map(([k, v]) => [h("dt", {}, k),
    h("dd", { id: k === "Ready" ? "ready-state" : undefined }, v)]));
}

function split(resource) {
  const components = (resource.status && resource.status.components) || {};
  const bars = Object.entries(components).filter(([, s]) => (s.traffic || []).length)
    .map(([component, s]) => h("div", { class: "split" }, h("span", { class: "split-name" }, component),
      h("div", { class: "bar", role: "img", "aria-label": `${component} traffic: ${
        s.traffic.map((t) => `${t.revisionName} ${t.percent}%`).join(", ")}` },
      s.traffic.map((t, i) => h("span", { class: `share share-${i % 3}`,
        style: { flexGrow: String(Math.max(t.percent, 0.5)) } },
      `${t.revisionName} ${t.percent}%${t.tag ? ` (${t.tag})` : ""}`)))));
  return bars.length ? h("div", {}, h("h3", {}, "Traffic split"), bars) : null;
}

function ownedBy(revision, resource) {
  const labels = revision.metadata.labels || {};
  const name = resource.metadata.name;
  return labels["serving.kserve.io/inferenceservice"] === name ||
    labels["serving.kserve.io/inferencegraph"] === name;
}

function revisionTable(resource, revisions) {
  const mine = revisions.filter((r) => ownedBy(r, resource));
  if (!mine.length) return null;
  return h("table", { class: "revisions" }, h("caption", {}, "Revisions"),
    h("thead", {}, h("tr", {}, ["Revision", "Component", "Traffic", "Replicas (actual/desired)",
      "Replica phases", "Autoscaler"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, mine.map((r) => {
      const st = r.status || {};
      const phases = (st.replicas || []).map((p) => `#${p.index} ${p.phase}` +
        (p.restarts ? ` (${p.restarts} restarts)` : "")).join(", ") || "none";
      return h("tr", {}, h("th", { scope: "row" }, r.metadata.name),
        h("td", {}, (r.metadata.labels || {}).component || "–"),
        h("td", {}, st.traffic ? `${st.traffic.percent}%` : "0%"),
        h("td", {}, `${st.actualReplicas ?? "–"}/${st.desiredReplicas ?? "–"}`),
        h("td", {}, phases), h("td", {}, (st.autoscaler && st.autoscaler.reason) || "–"));
    })));
}

function conditionTable(resource) {
  const conditions = (resource.status && resource.status.conditions) || [];
  const limits = conditions.find((c) => c.type === "LocalLimitations");
  return [
    limits ? h("div", { class: "limits", role: "note" }, h("strong", {}, "Local limitations: "),
      limits.message || "") : null,
    h("table", { class: "conditions" }, h("caption", {}, "Conditions"),
      h("thead", {}, h("tr", {}, ["Type", "Status", "Reason", "Message", "Since"].map((c) =>
        h("th", { scope: "col" }, c)))),
      h("tbody", {}, conditions.map((c) => h("tr", { class: c.type === "Stopped" ? "" : `status-${c.status}` },
        h("th", { scope: "row" }, c.type), h("td", {}, c.status), h("td", {}, c.reason || ""),
        h("td", {}, c.message || ""), h("td", {}, c.lastTransitionTime || ""))))),
  ];
}

export function detailSummary(resource, revisions) {
  return h("div", {}, facts(resource), split(resource), revisionTable(resource, revisions),
    conditionTable(resource));
}

function componentsOf(resource) {
  if (resource.kind === "InferenceGraph") return ["router"];
  if (resource.kind !== "InferenceService") return [];
  const components = Object.keys((resource.status && resource.status.components) || {});
  return components.length ? components : ["predictor"];
}

// `ksrv logs` for each component: one block per replica log file.
export async function logSections(resource) {
  const { namespace, name } = resource.metadata;
  const blocks = [];
  for (const component of componentsOf(resource)) {
    const answer = await call("GET", `/ksrv/v1/namespaces/${enc(namespace)}/logs/${enc(name)}` +
      `?component=${component}&tail=${LOG_LINES}`, { accept: "text/plain" });
    if (!answer.ok) {
      blocks.push(h("p", {}, `${component}: no logs yet`));
      continue;
    }
    const parts = answer.text.split(/^==> (.+) <==$/m);
    const files = parts.length > 1 ? [] : [[`${component} replica`, answer.text]];
    for (let i = 1; i < parts.length; i += 2) files.push([parts[i], parts[i + 1]]);
    for (const [file, text] of files) {
      blocks.push(h("div", { class: "log" }, h("h4", {}, file.replace(/\.log$/, "")),
        h("pre", { tabindex: "0" }, text.trim() || "(empty)")));
    }
  }
  if (blocks.length) return h("div", {}, blocks);
  const host = resource.spec && resource.spec.inferenceService;
  return h("p", {}, host ? `Served by the replicas of ${host}: see its logs.` : "No replicas of its own.");
}
