// The management API as the page calls it: same origin, bearer token from sessionStorage.
const TOKEN_KEY = "ksrv.token";

export const KINDS = [
  { kind: "InferenceService", plural: "inferenceservices", version: "v1beta1", title: "InferenceServices" },
  { kind: "InferenceGraph", plural: "inferencegraphs", version: "v1alpha1", title: "InferenceGraphs" },
  { kind: "TrainedModel", plural: "trainedmodels", version: "v1alpha1", title: "TrainedModels" },
  { kind: "LLMInferenceService", plural: "llminferenceservices", version: "v1alpha2", title: "LLMInferenceServices" },
];

export function kindOf(kind) {
  return KINDS.find((k) => k.kind === kind);
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function enc(text) {
  return encodeURIComponent(text);
}

export function collectionPath(type, namespace) {
  const where = namespace ? `/namespaces/${enc(namespace)}` : "";
  return `/apis/serving.kserve.io/${type.version}${where}/${type.plural}`;
}

export function itemPath(type, namespace, name) {
  return `${collectionPath(type, namespace)}/${enc(name)}`;
}

// One call: {status, ok, data (parsed JSON or null), text, ms}.
export async function call(method, path, { body, contentType, accept } = {}) {
  const headers = { accept: accept || "application/json" };
  const secret = token();
  if (secret) headers.authorization = `Bearer ${secret}`;
  if (body !== undefined) headers["content-type"] = contentType || "application/json";
  const started = performance.now();
  const response = await fetch(path, { method, headers, body, cache: "no-store" });
  const text = await response.text();
  const ms = performance.now() - started;
  let data = null;
  if ((response.headers.get("content-type") || "").includes("json")) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  return { status: response.status, ok: response.ok, data, text, ms, headers: response.headers };
}

// A failed answer as one line (a Kubernetes Status' message when there is one).
export function failure(answer) {
  if (answer.data && answer.data.message) return `${answer.status}: ${answer.data.message}`;
  if (answer.data && answer.data.error) {
    const error = answer.data.error;
    return `${answer.status}: ${typeof error === "string" ? error : error.message}`;
  }
  return `${answer.status}: ${answer.text.slice(0, 300)}`;
}
