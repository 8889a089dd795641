// The "try it" panel: a V1, V2 or OpenAI request to one service through the control plane's
// proxy (same origin, so it works behind the API's token), with a sample body built from the
// model's V2 metadata, and the answer with its latency.
import { call, enc, failure } from "./api.js";

const $ = (id) => document.getElementById(id);
let target = null; // {namespace, name, isGraph}
let samples = 0; // sample() calls so far: only the latest one writes the body

function base() {
  return `/ksrv/v1/namespaces/${enc(target.namespace)}/proxy/${enc(target.name)}/`;
}

function pathFor(protocol, model) {
  if (target.isGraph) return ""; // a graph's router takes the request at its root
  if (protocol === "v1") return `v1/models/${model}:predict`;
  if (protocol === "v2") return `v2/models/${model}/infer`;
  return "openai/v1/chat/completions";
}

function value(datatype, index) {
  if (datatype === "BOOL") return index % 2 === 0;
  if (datatype === "BYTES") return "hello";
  if (datatype.startsWith("FP")) return 1 + (index % 4) * 0.5;
  return index % 4;
}

// Nested rows of `shape` (its -1s as 1) for V1 `instances`.
function nested(shape, datatype, offset = 0) {
  if (shape.length === 0) return value(datatype, offset);
  const size = shape[0] < 0 ? 1 : shape[0];
  return Array.from({ length: size }, (_, i) => nested(shape.slice(1), datatype, offset + i));
}

function sampleBody(protocol, model, inputs) {
  if (protocol === "openai") {
    return { model, messages: [{ role: "user", content: "Say hello." }], max_tokens: 16 };
  }
  const known = inputs.length ? inputs : [{ name: "input-0", datatype: "FP64", shape: [-1, 4] }];
  if (protocol === "v1") {
    const first = known[0];
    return { instances: nested([1, ...first.shape.slice(1)], first.datatype) };
  }
  return {
    inputs: known.map((input) => {
      const shape = input.shape.map((d) => (d < 0 ? 1 : d));
      const count = shape.reduce((a, b) => a * b, 1);
      const data = Array.from({ length: count }, (_, i) => value(input.datatype, i));
      return { name: input.name, shape, datatype: input.datatype, data };
    }),
  };
}

async function sample() {
  const turn = ++samples;
  const protocol = $("try-protocol").value;
  const model = $("try-model").value.trim();
  $("try-path").value = pathFor(protocol, model);
  let inputs = [];
  if (protocol !== "openai" && !target.isGraph) {
    const meta = await call("GET", `${base()}v2/models/${enc(model)}`);
    // The protocol, model or service changed while the metadata came: that body is stale.
    if (turn !== samples) return;
    if (meta.ok && meta.data && Array.isArray(meta.data.inputs)) inputs = meta.data.inputs;
  }
  $("try-body").value = JSON.stringify(sampleBody(protocol, model, inputs), null, 2);
}

async function send(event) {
  event.preventDefault();
  const status = $("try-status");
  const answer = $("try-answer");
  let body;
  try {
    body = JSON.stringify(JSON.parse($("try-body").value));
  } catch (error) {
    status.textContent = `The body is not JSON: ${error.message}`;
    return;
  }
  status.textContent = "Sending…";
  delete status.dataset.code;
  answer.textContent = "";
  const path = $("try-path").value.replace(/^\/+/, "");
  const result = await call("POST", base() + path, { body });
  const gateway = result.headers.get("x-ksrv-latency-ms");
  const latency = gateway ? `${Number(gateway).toFixed(1)} ms at the gateway, ` : "";
  status.textContent = `${result.ok ? "OK" : "Failed"} (HTTP ${result.status}): ${latency}` +
    `${result.ms.toFixed(1)} ms round trip`;
  status.dataset.code = String(result.status);
  answer.textContent = result.data ? JSON.stringify(result.data, null, 2)
    : result.ok ? result.text : failure(result);
}

export function setupTry() {
  $("try-form").addEventListener("submit", send);
  $("try-sample").addEventListener("click", sample);
  $("try-protocol").addEventListener("change", sample);
}

// Point the panel at a service or graph (null hides it); `model` is the model to call.
export function showTry(namespace, name, model, { isGraph = false, protocol = "v1" } = {}) {
  const panel = $("try");
  if (!name) {
    panel.hidden = true;
    target = null;
    return;
  }
  const same = target && target.namespace === namespace && target.name === name;
  panel.hidden = false;
  if (same) return;
  target = { namespace, name, isGraph };
  $("try-protocol").value = isGraph ? "v1" : protocol;
  $("try-model").value = model;
  $("try-status").textContent = "";
  delete $("try-status").dataset.code;
  $("try-answer").textContent = "";
  sample();
}
