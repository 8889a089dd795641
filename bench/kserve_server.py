"""KServe ModelServer serving a joblib'd scikit-learn model, for the benchmark.

KServe's own sklearn server (``sklearnserver``) is not published on PyPI, so
this is a minimal stand-in that does what it does: load the model with joblib
in ``load()`` and predict through ``get_predict_input``/``get_predict_response``
(which handle both V1 dicts and V2 ``InferRequest`` objects). It must run in
the KServe venv (``bench/.work/venvs/kserve``), not the project venv.

Per-request logging (uvicorn access log, ``kserve.trace`` timings, latency
logging) is switched off so that, like the other servers in the benchmark, no
log line is written per request. For the same reason FastAPI's
``FastAPIDeprecationWarning`` is ignored: KServe 0.21.0 still returns
``ORJSONResponse``, which recent FastAPI (0.165 here, within its pins)
deprecates, and the warning is printed on every request. gRPC is off unless
``--bench_grpc`` is given (bench/grpc_bench.py).

Usage::

    python kserve_server.py --model_name iris --model_dir DIR --http_port 8080
"""

import argparse
import logging
import os
import warnings

import joblib
import kserve
from kserve import model_server
from kserve.errors import InferenceError
from kserve.utils.utils import get_predict_input, get_predict_response

try:
    from fastapi.exceptions import FastAPIDeprecationWarning
except ImportError:  # older FastAPI: nothing to silence
    FastAPIDeprecationWarning = None

MODEL_FILE = "model.joblib"
QUIET_LOGGERS = ("uvicorn.access", "kserve.trace")


class SKLearnModel(kserve.Model):
    def __init__(self, name: str, model_dir: str):
        super().__init__(name)
        self.model_dir = model_dir
        self._model = None

    def load(self) -> bool:
        self._model = joblib.load(os.path.join(self.model_dir, MODEL_FILE))
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        try:
            result = self._model.predict(get_predict_input(payload))
            return get_predict_response(payload, result, self.name)
        except Exception as e:
            raise InferenceError(str(e)) from e


def parse_args() -> argparse.Namespace:
    # KServe's own parser supplies --http_port, --workers, --model_name, ...
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_dir", required=True, help="directory holding model.joblib")
    parser.add_argument("--bench_grpc", action="store_true", help="also serve gRPC (grpc_bench.py)")
    parser.add_argument(
        "--stock", action="store_true", help="keep KServe's default per-request logging"
    )
    args, _ = parser.parse_known_args()
    return args


def main() -> None:
    if FastAPIDeprecationWarning is not None:
        warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)
    args = parse_args()
    model = SKLearnModel(args.model_name, args.model_dir)
    model.load()
    server = kserve.ModelServer(
        http_port=args.http_port,
        workers=args.workers,
        enable_grpc=args.bench_grpc,
        grpc_port=args.grpc_port,
        enable_latency_logging=args.stock,
    )
    if not args.stock:
        for name in QUIET_LOGGERS:  # after ModelServer() configured logging
            logging.getLogger(name).setLevel(logging.WARNING)
    server.start([model])


if __name__ == "__main__":
    main()
