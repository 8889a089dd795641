"""Bare ASGI "floor" server for the REST benchmark.

The least work any Python server must do per request: read the body,
orjson-parse it, build a numpy array, call ``model.predict`` and write orjson
JSON back. No framework, no validation beyond what the happy path needs, no
logging. Run under uvicorn with httptools + uvloop, it marks how fast the
Python layer can possibly go on this machine, so the other servers can be read
as a ratio of it.

Handles both KServe protocols for a single model:

* V1 ``POST /v1/models/<name>:predict`` with ``{"instances": [[...], ...]}``
* V2 ``POST /v2/models/<name>/infer`` with ``{"inputs": [{"shape", "data"}]}``
* ``GET /v2/health/ready`` for the benchmark's readiness poll.

The model file comes from the ``FLOOR_MODEL_PATH`` environment variable, e.g.::

    FLOOR_MODEL_PATH=model.joblib uvicorn floor_app:app --app-dir bench \\
        --http httptools --loop uvloop --no-access-log --lifespan off
"""

import os

import joblib
import numpy as np
import orjson

MODEL = joblib.load(os.environ["FLOOR_MODEL_PATH"])
JSON_HEADERS = [(b"content-type", b"application/json")]


async def read_body(receive) -> bytes:
    """Collect the whole request body, however many chunks it came in."""
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def respond(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


def predict_v1(request: dict) -> dict:
    predictions = MODEL.predict(np.asarray(request["instances"], dtype=np.float64))
    return {"predictions": predictions.tolist()}


def predict_v2(request: dict, model_name: str) -> dict:
    tensor = request["inputs"][0]
    features = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
    predictions = MODEL.predict(features)
    output = {
        "name": "predict",
        "shape": list(predictions.shape),
        "datatype": "INT64",
        "data": predictions.tolist(),
    }
    return {"model_name": model_name, "outputs": [output]}


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    if method == "GET" and path == "/v2/health/ready":
        await respond(send, 200, b'{"ready":true}')
    elif method == "POST" and path.startswith("/v1/models/") and path.endswith(":predict"):
        request = orjson.loads(await read_body(receive))
        await respond(send, 200, orjson.dumps(predict_v1(request)))
    elif method == "POST" and path.startswith("/v2/models/") and path.endswith("/infer"):
        model_name = path[len("/v2/models/") : -len("/infer")]
        request = orjson.loads(await read_body(receive))
        await respond(send, 200, orjson.dumps(predict_v2(request, model_name)))
    else:
        await respond(send, 404, b'{"error":"not found"}')
