"""The warning a model server logs when it fetched a pickle-based model from remote storage.

Unpickling runs whatever code the file names, so a joblib/pickle model from a bucket or a
URL is as trusted as whoever can write there. KServe loads such files silently; ksrv loads
them too (they are what most sklearn models are) but says so once, naming the safe
alternative: scikit-learn models saved with skops (`model.skops`), which the sklearn runtime
loads with only trusted types. Local paths (file://, pvc://) are the operator's own: no warning.
"""

from __future__ import annotations

from pathlib import Path

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
LOCAL_SCHEMES = ("", "file", "pvc")


def remote_pickle_warning(storage_uri: str, model_dir: Path, scheme: str) -> str | None:
    """The warning for `model_dir` (fetched from `storage_uri`, whose storage scheme is
    `scheme`), or None when the URI is local or no pickle-based file is there."""
    if scheme in LOCAL_SCHEMES:
        return None
    root = Path(model_dir)
    candidates = [root] if root.is_file() else root.rglob("*") if root.is_dir() else []
    pickled = sorted(p.name for p in candidates if p.suffix in PICKLE_SUFFIXES and p.is_file())
    if not pickled:
        return None
    return (
        f"loading {', '.join(pickled)} from {storage_uri}: pickle-based files run code when "
        "they are loaded, so this model is as trusted as whoever can write to that storage. "
        "Prefer skops for scikit-learn models (model.skops; docs/security.md)."
    )
