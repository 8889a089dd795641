"""The `detector` runtime: drift, outlier and adversarial-sample detection on live traffic.

An InferenceService with `modelFormat: detector` is a sink for the payload logger's
CloudEvents (KServe's pattern with alibi-detect's server); `model.py` holds the runtime,
the other modules one kind of detection each.
"""
