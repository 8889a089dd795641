// The dashboard page: lists the resources of a namespace, shows the one the URL's hash names
// (#/Kind/namespace/name), and polls the management API every POLL_MS without a reload.
// Polling rather than server-sent events: EventSource cannot send the bearer token.
import { KINDS, call, collectionPath, enc, failure, itemPath, kindOf, setToken, token } from "./api.js";
import { charts } from "./charts.js";
import { h } from "./dom.js";
import { setupEditor } from "./editor.js";
import { graphDrawing } from "./graph.js";
import { overviewTable, runtimeOf } from "./tables.js";
import { detailSummary, logSections } from "./details.js";
import { setupTry, showTry } from "./tryit.js";

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);
const state = { namespace: sessionStorage.getItem("ksrv.namespace") || "", lists: {},
  series: new Map(), revisions: [], selected: null, seen: new Set(["default"]) };
const drawn = {}; // part -> signature of what is on screen, so unchanged parts keep focus
let timer = null;
let rendered = false;

function selectedFromHash() {
  const [kind, namespace, name] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  return kindOf(kind) && name ? { kind, namespace, name } : null;
}

function seriesOf(namespace, name) {
  return state.series.get(`${namespace}/${name}`) || [];
}

function replace(part, element, signature) {
  if (drawn[part] === signature) return;
  drawn[part] = signature;
  $(part).replaceChildren(element);
}

async function loadLists() {
  const ns = state.namespace;
  const answers = await Promise.all(KINDS.map((type) => call("GET", collectionPath(type, ns))));
  const denied = answers.find((a) => a.status === 401 || a.status === 403);
  if (denied) throw new Error(`${failure(denied)}. Enter a token for the management API above.`);
  KINDS.forEach((type, i) => {
    state.lists[type.kind] = answers[i].ok ? answers[i].data.items : [];
    for (const item of state.lists[type.kind]) state.seen.add(item.metadata.namespace);
  });
  const where = ns ? `/namespaces/${enc(ns)}` : "";
  const series = await call("GET", `/ksrv/v1${where}/series`);
  if (series.ok) {
    state.series = new Map(series.data.items.map((s) => [`${s.namespace}/${s.name}`, s.points]));
  }
}

function renderNamespaces() {
  const names = [...state.seen].sort();
  const list = $("namespaces");
  if (list.dataset.names === names.join(",")) return;
  list.dataset.names = names.join(",");
  list.replaceChildren(...names.map((n) => h("option", { value: n })));
}

function renderOverview() {
  const tables = KINDS.filter((t) => t.kind === "InferenceService" || state.lists[t.kind].length)
    .map((type) => overviewTable(type, state.lists[type.kind], seriesOf));
  const signature = JSON.stringify(tables.map((t) => t.textContent));
  replace("resources", h("div", {}, tables), signature);
}

async function renderDetail() {
  const selected = state.selected;
  const section = $("detail");
  if (!selected) {
    section.hidden = true;
    showTry(null);
    return;
  }
  const type = kindOf(selected.kind);
  const resource = (state.lists[selected.kind] || []).find(
    (r) => r.metadata.name === selected.name && r.metadata.namespace === selected.namespace);
  section.hidden = false;
  $("detail-title").textContent = `${selected.kind} ${selected.namespace}/${selected.name}`;
  if (!resource) {
    replace("detail-body", h("p", {}, "Not found (deleted, or in another namespace)."), "gone");
    drawn.detailKey = null;
    showTry(null);
    return;
  }
  if (drawn.detailKey !== JSON.stringify(selected)) {
    drawn.detailKey = JSON.stringify(selected);
    for (const part of ["detail-body", "summary", "graph", "logs"]) drawn[part] = null;
    $("detail-body").replaceChildren(
      h("div", { id: "summary" }), h("div", { id: "graph" }),
      h("section", { "aria-labelledby": "charts-title" }, h("h3", { id: "charts-title" }, "Traffic"),
        h("div", { id: "charts" })),
      h("section", { "aria-labelledby": "logs-title" }, h("h3", { id: "logs-title" }, "Last log lines"),
        h("div", { id: "logs" })),
      deleteControls(type, selected));
  }
  const revs = await call("GET", `/apis/ksrv.dev/v1/namespaces/${enc(selected.namespace)}/revisions`);
  const revisions = revs.ok ? revs.data.items : [];
  const summary = detailSummary(resource, revisions);
  replace("summary", summary, summary.outerHTML);
  if (selected.kind === "InferenceGraph") {
    const drawing = h("section", { "aria-labelledby": "graph-title" },
      h("h3", { id: "graph-title" }, "Nodes and steps"), graphDrawing(resource));
    replace("graph", drawing, JSON.stringify(resource.spec));
  }
  const service = selected.kind === "TrainedModel"
    ? resource.spec.inferenceService : selected.name;
  const points = seriesOf(selected.namespace, service);
  $("charts").replaceChildren(charts(points));
  const logs = await logSections(resource);
  replace("logs", logs, logs.outerHTML);
  showTry(selected.namespace, service, tryModel(resource), {
    isGraph: selected.kind === "InferenceGraph", protocol: tryProtocol(resource) });
}

function tryModel(resource) {
  if (resource.kind === "LLMInferenceService") {
    return (resource.spec.model && resource.spec.model.name) || resource.metadata.name;
  }
  return resource.metadata.name; // KServe: the model is named after its InferenceService
}

// Generative models answer the OpenAI API; the others V1 first.
function tryProtocol(resource) {
  if (resource.kind === "LLMInferenceService") return "openai";
  const runtime = resource.kind === "InferenceService" ? runtimeOf(resource) : "";
  return /huggingface|vllm/i.test(runtime) ? "openai" : "v1";
}

function deleteControls(type, selected) {
  const confirmBox = h("div", { class: "confirm", hidden: true, role: "group",
    "aria-label": "Confirm deletion" },
  h("span", {}, `Delete ${selected.kind} ${selected.namespace}/${selected.name}?`),
  h("button", { type: "button", id: "delete-yes", class: "danger", onclick: async () => {
    const answer = await call("DELETE", itemPath(type, selected.namespace, selected.name));
    notify(answer.ok ? `Deleted ${selected.name}` : failure(answer), !answer.ok);
    if (answer.ok) location.hash = "#/";
  } }, "Yes, delete"),
  h("button", { type: "button", onclick: () => { confirmBox.hidden = true; } }, "Cancel"));
  return h("div", { class: "actions" },
    h("button", { type: "button", id: "delete", class: "danger", onclick: () => {
      confirmBox.hidden = false;
      $("delete-yes").focus();
    } }, `Delete ${selected.name}`), confirmBox);
}

async function update() {
  try {
    await loadLists();
    renderNamespaces();
    renderOverview();
    if (!rendered) {
      rendered = true;
      performance.mark("ksrv-first-render");
      document.body.dataset.rendered = "true";
    }
    await renderDetail();
    // The time is not announced every poll; a failure is, once (the notice is a live region).
    $("live").textContent = `Updated ${new Date().toLocaleTimeString()} (every ${POLL_MS / 1000} s)`;
    if ($("notice").dataset.error) notify("", false);
  } catch (error) {
    notify(error.message, true);
  }
}

function notify(message, isError) {
  const notice = $("notice");
  if (notice.textContent !== message) notice.textContent = message;
  notice.dataset.error = isError ? "true" : "";
}

// One refresh at a time, and one timer: a refresh asked for meanwhile runs right after.
let running = null;
let again = false;

async function refresh() {
  if (running) {
    again = true;
    return running;
  }
  clearTimeout(timer);
  running = update();
  await running;
  running = null;
  if (again) {
    again = false;
    return refresh();
  }
  if (!document.hidden) timer = setTimeout(refresh, POLL_MS); // a hidden tab does not poll
}

function start() {
  $("namespace").value = state.namespace;
  $("namespace").addEventListener("change", (event) => {
    state.namespace = event.target.value.trim();
    sessionStorage.setItem("ksrv.namespace", state.namespace);
    refresh();
  });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setToken($("token").value.trim());
    $("token").value = "";
    $("token").placeholder = token() ? "token set for this tab" : "only with ksrv up --auth";
    refresh();
  });
  if (token()) $("token").placeholder = "token set for this tab";
  window.addEventListener("hashchange", async () => {
    state.selected = selectedFromHash();
    await refresh();
    if (state.selected) $("detail-title").focus(); // keyboard users land on what they opened
  });
  document.addEventListener("visibilitychange", () => document.hidden || refresh());
  setupTry();
  setupEditor(() => state.namespace, (items) => {
    const first = items.find((i) => kindOf(i.kind));
    if (first) location.hash = `#/${first.kind}/${enc(first.namespace)}/${enc(first.name)}`;
    refresh();
  });
  state.selected = selectedFromHash();
  refresh();
}

start();
