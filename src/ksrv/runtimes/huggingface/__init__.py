"""The `huggingface` runtime: transformers models as KServe's huggingfaceserver serves them.

`HuggingFaceModel` (base.py) is the registry's entry; it becomes an encoder (encoder.py) or a
generator (generative.py, over engine.py's continuous batching) according to the task.
"""
