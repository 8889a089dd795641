// The YAML editor: the text goes to the control plane's apply endpoint, which applies each
// document through the management API (dry run first, if asked), so the field errors shown
// are the API's, as `ksrv apply --dry-run` prints them.
import { call, failure } from "./api.js";
import { h } from "./dom.js";

const $ = (id) => document.getElementById(id);

export const SAMPLE = `apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: sklearn-iris
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      storageUri: gs://kfserving-examples/models/sklearn/1.0/model
`;

function item(result, isDryRun) {
  const where = result.namespace ? `${result.namespace}/${result.name}` : result.name;
  if (result.code < 400) {
    const suffix = isDryRun ? " (dry run)" : "";
    return h("li", { class: "ok" }, `${result.kind} ${where} ${result.outcome || "applied"}${suffix}`);
  }
  const status = result.status || {};
  const causes = (status.details && status.details.causes) || [];
  if (!causes.length) return h("li", { class: "error" }, `error: ${where}: ${status.message}`);
  return h("li", { class: "error" }, `error: ${result.kind} "${result.name}" is invalid:`,
    h("ul", { class: "causes" }, causes.map((c) => h("li", {}, `* ${c.field}: ${c.message}`))));
}

export function setupEditor(namespace, onApplied) {
  const area = $("yaml");
  if (!area.value) area.value = SAMPLE;
  async function run(isDryRun) {
    const out = $("editor-result");
    out.replaceChildren(h("p", {}, isDryRun ? "Validating…" : "Applying…"));
    const query = `namespace=${encodeURIComponent(namespace() || "default")}` +
      (isDryRun ? "&dryRun=All" : "");
    const answer = await call("POST", `/ksrv/v1/apply?${query}`, {
      body: area.value, contentType: "application/yaml",
    });
    const items = answer.data && answer.data.items;
    if (!Array.isArray(items)) {
      out.replaceChildren(h("p", { class: "error" }, failure(answer)));
      return;
    }
    out.replaceChildren(h("ul", { class: "results" }, items.map((r) => item(r, isDryRun))));
    out.dataset.outcome = answer.ok ? "ok" : "invalid";
    if (!isDryRun && answer.ok) onApplied(items);
  }
  $("validate").addEventListener("click", () => run(true));
  $("editor-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run(false);
  });
}
