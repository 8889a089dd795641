"""The InferenceGraph router: one process per graph, calling InferenceServices over the wire.

`spec.py` reads KServe's `--graph-json` into plain values, `executor.py` runs its nodes
(Sequence, Switch, Ensemble, Splitter), `client.py` calls the steps, `app.py` serves it.
"""
