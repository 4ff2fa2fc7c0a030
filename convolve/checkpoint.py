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


PICKLES_REFUSED = ("holds Python objects (pickled data), which convolve refuses to load: "
                   "unpickling can run any code")


def refused_pickle(error: Exception) -> str | None:
    """What NumPy's reader, told to load no pickles, met instead of arrays, in words that
    do not suggest loading them: None for other errors."""
    text = str(error)
    if not isinstance(error, ValueError) or "allow_pickle" not in text:
        return None
    if text.startswith("Object arrays"):
        return PICKLES_REFUSED
    return "is neither a .npy array nor a .npz archive of arrays (a pickle is refused)"


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".safetensors", ".npz"):
        return suffix[1:]
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
        import safetensors
        import safetensors.numpy
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            ".safetensors checkpoints need the safetensors package: "
            "pip install 'convolve[io]', or use a .npz path"
        ) from None
    return safetensors


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
                f.write(_safetensors().numpy.save(contiguous, metadata={_META_KEY: text}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read(path: Path) -> tuple[dict[str, np.ndarray], str | None]:
    """The arrays of a .npz or .safetensors file and convolve's metadata text (None when
    absent), never unpickling anything."""
    kind = _format(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    safetensors = _safetensors() if kind == "safetensors" else None
    try:
        if safetensors is None:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
            text = arrays.pop(_META_KEY, None)
            return arrays, None if text is None else str(text)
        with safetensors.safe_open(str(path), framework="numpy") as f:
            arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
            return arrays, (f.metadata() or {}).get(_META_KEY)
    except Exception as error:  # every reader failure (zip, pickle refused, safetensors)
        if refused_pickle(error) == PICKLES_REFUSED:
            raise CheckpointError(f"checkpoint {str(path)!r} {PICKLES_REFUSED}") from None
        if refused_pickle(error):
            error = ValueError(refused_pickle(error))
        raise CheckpointError(
            f"checkpoint {str(path)!r} is damaged or not a {kind} file "
            f"({type(error).__name__}: {error})"
        ) from None


def read_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of any ``.npz`` or ``.safetensors`` file by name (a convolve checkpoint's
    metadata left out), read without unpickling.

    Raises CheckpointError (a ValueError) for a missing, truncated or damaged file.
    """
    return _read(Path(path))[0]


def load(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint written by ``save``: ``(arrays, meta)``.

    Raises CheckpointError (a ValueError) for a missing, truncated or damaged file, or one
    that ``save`` did not write.
    """
    path = Path(path)
    arrays, text = _read(path)
    try:
        if text is None:
            raise KeyError(f"no {_META_KEY!r} metadata")
        meta = json.loads(text)
    except (KeyError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is damaged or not a convolve checkpoint "
            f"({type(error).__name__}: {error})"
        ) from None
    return arrays, meta
