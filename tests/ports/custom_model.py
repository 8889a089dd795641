"""Port of KServe's V2 custom-model sample (docs: "Deploy a custom Python model server").

Only the imports changed (`kserve` -> `ksrv`). The sample classifies an image with a torchvision
AlexNet downloaded from a hub, which this offline machine cannot fetch, so `load` builds a fixed
linear "network" with numpy instead; the request handling is the sample's.
"""

import argparse
import base64
from typing import Dict

import numpy as np

from ksrv import (
    InferOutput,
    InferRequest,
    InferResponse,
    Model,
    ModelServer,
    generate_uuid,
    model_server,
)


class AlexNetModel(Model):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name
        self.load()
        self.ready = False

    def load(self):
        rng = np.random.default_rng(0)
        self.model = rng.standard_normal((16, 10)).astype(np.float32)
        self.ready = True

    def predict(self, payload: InferRequest, headers: Dict[str, str] = None) -> InferResponse:
        img_data = payload.inputs[0].data[0]
        raw_img_data = base64.b64decode(img_data)
        pixels = np.frombuffer(raw_img_data, dtype=np.uint8)[:16].astype(np.float32) / 255.0
        output = pixels @ self.model
        values = np.exp(output) / np.sum(np.exp(output))
        values = values.reshape(1, -1).astype(np.float32)

        response_id = generate_uuid()
        infer_output = InferOutput(
            name="output-0", shape=list(values.shape), datatype="FP32", data=values
        )
        infer_response = InferResponse(
            model_name=self.name, infer_outputs=[infer_output], response_id=response_id
        )
        return infer_response


parser = argparse.ArgumentParser(parents=[model_server.parser])
args, _ = parser.parse_known_args()

if __name__ == "__main__":
    model = AlexNetModel(args.model_name)
    model.load()
    ModelServer().start([model])
