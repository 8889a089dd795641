"""Port of KServe's custom transformer sample (python/custom_transformer/model.py).

Only the imports changed (`kserve` -> `ksrv`), plus `image_transform`: the sample decodes a
base64 PNG with PIL and torchvision; here the base64 payload carries four float32 iris
features, so the transform decodes them with numpy and the predictor is ksrv's sklearn iris.
"""

import argparse
import base64
from typing import Dict, Union

import numpy as np

from ksrv import (
    InferInput,
    InferRequest,
    InferResponse,
    Model,
    ModelServer,
    PredictorConfig,
    model_server,
)


def image_transform(byte_array):
    """Decodes the base64 input into a float32 feature vector."""
    return np.frombuffer(base64.b64decode(byte_array), dtype=np.float32)


class ImageTransformer(Model):
    def __init__(self, name: str, predictor_host: str, protocol: str, use_ssl: bool):
        super().__init__(name, PredictorConfig(predictor_host, protocol, use_ssl))
        self.ready = True

    def preprocess(
        self, payload: Union[Dict, InferRequest], headers: Dict[str, str] = None
    ) -> Union[Dict, InferRequest]:
        if isinstance(payload, InferRequest):
            input_tensors = [image_transform(instance) for instance in payload.inputs[0].data]
        else:
            headers["request-type"] = "v1"
            input_tensors = [
                image_transform(instance["image"]["b64"]) for instance in payload["instances"]
            ]
        input_tensors = np.asarray(input_tensors)
        infer_inputs = [
            InferInput(
                name="INPUT__0",
                datatype="FP32",
                shape=list(input_tensors.shape),
                data=input_tensors,
            )
        ]
        infer_request = InferRequest(model_name=self.name, infer_inputs=infer_inputs)
        if self.protocol == "v1":
            return {"instances": input_tensors.tolist()}
        return infer_request

    def postprocess(
        self, infer_response: Union[Dict, InferResponse], headers: Dict[str, str] = None
    ) -> Union[Dict, InferResponse]:
        if "request-type" in headers and headers["request-type"] == "v1":
            if self.protocol == "v1":
                return infer_response
            res = infer_response.outputs[0].as_numpy().tolist()
            return {"predictions": res}
        return infer_response


parser = argparse.ArgumentParser(parents=[model_server.parser])
args, _ = parser.parse_known_args()

if __name__ == "__main__":
    model = ImageTransformer(
        args.model_name,
        predictor_host=args.predictor_host,
        protocol=args.predictor_protocol,
        use_ssl=args.predictor_use_ssl,
    )
    ModelServer().start([model])
