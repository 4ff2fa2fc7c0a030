"""Checkpoint files: named arrays plus JSON metadata, written atomically, never pickled.

Two formats, chosen by the file name: ``.safetensors`` (needs the ``safetensors`` package,
the ``io`` extra) and ``.npz`` (NumPy only; metadata stored as a 0-d string array, loaded
with ``allow_pickle=False``). A write goes to a temporary file in the same folder that is
renamed over the target only when complete, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

_META_KEY = "__convolve_meta__"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: missing, damaged, or of the wrong kind."""


def _format(path: Path) -> str:
    if path.suffix == ".safetensors":
        return "safetensors"
    if path.suffix == ".npz":
        return "npz"
    raise ValueError(
        f"checkpoint path must end in .safetensors or .npz; received {str(path)!r}"
    )


def check_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path; a ValueError unless it ends in .safetensors or .npz."""
    path = Path(path)
    _format(path)
    return path


def _safetensors() -> Any:
    try:
        import safetensors.numpy
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "writing .safetensors checkpoints needs the safetensors package: "
            "pip install 'convolve[io]', or use a .npz path"
        ) from None
    return safetensors.numpy


def save(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write ``arrays`` and JSON-serialisable ``meta`` to ``path`` atomically."""
    path = Path(path)
    kind = _format(path)
    if _META_KEY in arrays:
        raise ValueError(f"array name {_META_KEY!r} is reserved")
    path.parent.mkdir(parents=True, exist_ok=True)
    contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    text = json.dumps(meta)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if kind == "npz":
                np.savez(f, **contiguous, **{_META_KEY: np.array(text)})
            else:
                f.write(_safetensors().save(contiguous, metadata={_META_KEY: text}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint written by ``save``: ``(arrays, meta)``.

    Raises CheckpointError (a ValueError) for a missing, truncated or damaged file.
    """
    path = Path(path)
    kind = _format(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        if kind == "npz":
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
            text = str(arrays.pop(_META_KEY))
        else:
            from safetensors import safe_open

            with safe_open(str(path), framework="numpy") as f:
                text = (f.metadata() or {})[_META_KEY]
                arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        meta = json.loads(text)
    except Exception as error:  # every reader failure (zip, JSON, safetensors) means damage
        raise CheckpointError(
            f"checkpoint {str(path)!r} is damaged or not a convolve checkpoint "
            f"({type(error).__name__}: {error})"
        ) from None
    return arrays, meta
