"""Finding the one model file in a model directory, as every KServe Python runtime does.

`FileModel` is the base of runtimes whose model is such a file: they name their
`MODEL_EXTENSIONS` and call `self.model_file()` in `load`.

Zero matching files is `ModelNotFound` (the server may then treat the directory as a
repository of models); more than one is a `StorageError`, because guessing would serve the
wrong model.
"""

from __future__ import annotations

from pathlib import Path

from ksrv.errors import ModelNotFound, StorageError
from ksrv.model.base import Model


def find_model_file(model_dir: str | Path, extensions: tuple[str, ...]) -> Path:
    """The single file in `model_dir` ending in one of `extensions` (or `model_dir` itself)."""
    path = Path(model_dir)
    if path.is_file() and path.suffix in extensions:
        return path
    if not path.is_dir():
        raise ModelNotFound(message=f"Model directory {path} does not exist")
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in extensions)
    if not found:
        raise ModelNotFound(
            message=f"No model file with extension {', '.join(extensions)} found in {path}"
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise StorageError(
            f"More than one model file is detected in {path}: {names}; only one is allowed"
        )
    return found[0]


def load_failure(path: Path, what: str, reason: str) -> StorageError:
    """`model.onnx is not a valid ONNX model (in /dir): reason`, the path said once.

    Frameworks repeat the path in their own messages and spread them over lines: the reason's
    paths are made relative to the folder already named, and its lines joined.
    """
    folder = path if path.is_dir() else path.parent
    detail = " ".join(reason.replace(f"{folder}/", "").split())
    where = (
        f"{path} is not a valid {what}"
        if path.is_dir()
        else f"{path.name} is not a valid {what} (in {folder})"
    )
    return StorageError(f"{where}: {detail}" if detail else where)


def has_model_file(model_dir: str | Path, extensions: tuple[str, ...]) -> bool:
    """Whether `model_dir` holds a model file; several is still an error (`StorageError`)."""
    try:
        find_model_file(model_dir, extensions)
    except ModelNotFound:
        return False
    return True


class FileModel(Model):
    """A runtime serving the one file in `model_dir` that ends in `MODEL_EXTENSIONS`."""

    MODEL_EXTENSIONS: tuple[str, ...] = ()

    def __init__(self, name: str, model_dir: str | Path) -> None:
        super().__init__(name)
        self.model_dir = Path(model_dir)

    @classmethod
    def has_model_file(cls, model_dir: str | Path) -> bool:
        return has_model_file(model_dir, cls.MODEL_EXTENSIONS)

    def model_file(self) -> Path:
        return find_model_file(self.model_dir, self.MODEL_EXTENSIONS)
