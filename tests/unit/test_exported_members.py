"""`ksrv.__all__` is sorted, complete, and every name resolves (KServe ports import these)."""

import ksrv


def test_all_is_sorted_and_every_name_resolves():
    assert ksrv.__all__ == sorted(ksrv.__all__)
    for name in ksrv.__all__:
        assert getattr(ksrv, name) is not None


def test_kserve_custom_model_names_are_exported():
    needed = {"Model", "ModelServer", "model_server", "InferRequest", "InferResponse"}
    needed |= {"InferInput", "InferOutput", "PredictorConfig", "generate_uuid"}
    assert needed <= set(ksrv.__all__)
