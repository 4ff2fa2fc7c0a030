"""Checkpoint files: named arrays plus JSON metadata, written atomically, never pickled.

Two formats, chosen by the file name: ``.safetensors`` (needs the ``safetensors`` package,
the ``io`` extra) and ``.npz`` (NumPy only; metadata stored as a 0-d string array, loaded
with ``allow_pickle=False``). A write goes to a temporary file in the same folder that is
renamed over the target only when complete, so a crash never leaves half a checkpoint; a
temporary file left by a killed writer is removed by the next save of the same target.

Every file ``save`` writes carries a SHA-256 digest of its metadata and of every array (name,
dtype, shape and bytes), checked on every read: a flipped bit anywhere in the payload is a
``CheckpointError``, not different weights.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

_META_KEY = "__convolve_meta__"
_DIGEST_KEY = "__convolve_sha256__"


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


def _digest(arrays: Mapping[str, np.ndarray], meta_text: str) -> str:
    """SHA-256 of the metadata text and of every array's name, dtype, shape and bytes (in
    name order, little-endian), as hex."""
    digest = hashlib.sha256()
    digest.update(meta_text.encode())
    for name in sorted(arrays):
        array = arrays[name]
        little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        digest.update(f"\0{name}\0{little.dtype.str}\0{little.shape}\0".encode())
        digest.update(little.reshape(-1).view(np.uint8))
    return digest.hexdigest()


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def _running(pid: int) -> bool:
    """Whether process ``pid`` is alive (POSIX; elsewhere every writer counts as gone)."""
    if os.name != "posix":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files of ``path`` whose writer process no longer runs (killed
    mid-write): their names hold the writer's pid."""
    prefix = _temporary_prefix(path)
    for entry in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = entry.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and (int(pid) == os.getpid() or not _running(int(pid))):
            entry.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    """fsync ``folder`` so that a rename in it survives a power cut (POSIX only; file
    systems that cannot sync a folder are let be)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def check_writable(path: str | os.PathLike) -> Path:
    """``path`` as a Path after making sure a checkpoint can be written there: the suffix is
    known, the folder exists (created if needed) and accepts a new file, and ``path`` is
    not a folder. Raises ValueError for the suffix, OSError (naming the path) otherwise."""
    path = check_path(path)
    try:
        blocker = next((p for p in path.parents if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{str(blocker)!r} is not a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "it is a folder")
        fd, probe = tempfile.mkstemp(prefix=f"{_temporary_prefix(path)}{os.getpid()}.",
                                     suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        refused = type(error)(f"cannot write checkpoint {str(path)!r}: "
                              f"{error.strerror or error}")
        refused.errno = error.errno
        raise refused from None
    return path


def save(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write ``arrays`` and JSON-serialisable ``meta`` to ``path`` atomically, with a digest
    that ``load`` and ``read_arrays`` verify."""
    path = Path(path)
    kind = _format(path)
    for reserved in (_META_KEY, _DIGEST_KEY):
        if reserved in arrays:
            raise ValueError(f"array name {reserved!r} is reserved")
    path.parent.mkdir(parents=True, exist_ok=True)
    contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    for name, array in contiguous.items():
        if array.dtype.kind not in "biufc":
            raise TypeError(f"checkpoint array {name!r} must hold numbers or bools; received "
                            f"dtype {array.dtype}")
    text = json.dumps(meta)
    digest = _digest(contiguous, text)

    def write(f: BinaryIO) -> None:
        if kind == "npz":
            np.savez(f, **contiguous, **{_META_KEY: np.array(text),
                                         _DIGEST_KEY: np.array(digest)})
        else:
            f.write(_safetensors().numpy.save(
                contiguous, metadata={_META_KEY: text, _DIGEST_KEY: digest}))

    write_atomically(path, write)
    return path


def write_atomically(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Replace ``path`` (in an existing folder) by what ``write(file)`` writes, atomically:
    into a temporary file beside it, synced, then renamed over it. A writer killed midway
    leaves only its temporary, which the next write to ``path`` removes."""
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{_temporary_prefix(path)}{os.getpid()}.",
                               suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _read(path: Path) -> tuple[dict[str, np.ndarray], str | None]:
    """The arrays of a .npz or .safetensors file and convolve's metadata text (None when
    absent), never unpickling anything; the digest is checked when the file has one."""
    kind = _format(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    safetensors = _safetensors() if kind == "safetensors" else None
    try:
        if safetensors is None:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
            text, digest = arrays.pop(_META_KEY, None), arrays.pop(_DIGEST_KEY, None)
            text = None if text is None else str(text)
            digest = None if digest is None else str(digest)
        else:
            with safetensors.safe_open(str(path), framework="numpy") as f:
                arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
                header = f.metadata() or {}
            text, digest = header.get(_META_KEY), header.get(_DIGEST_KEY)
    except Exception as error:  # every reader failure (zip, pickle refused, safetensors)
        if refused_pickle(error) == PICKLES_REFUSED:
            raise CheckpointError(f"checkpoint {str(path)!r} {PICKLES_REFUSED}") from None
        if refused_pickle(error):
            error = ValueError(refused_pickle(error))
        raise CheckpointError(
            f"checkpoint {str(path)!r} is damaged or not a {kind} file "
            f"({type(error).__name__}: {error})"
        ) from None
    if text is not None and digest is None:
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged: its SHA-256 digest is "
                              "missing")
    if digest is not None and digest != _digest(arrays, text or ""):
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged: its contents do not "
                              "match their SHA-256 digest")
    return arrays, text


def read_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of any ``.npz`` or ``.safetensors`` file by name (a convolve checkpoint's
    metadata left out), read without unpickling.

    Raises CheckpointError (a ValueError) for a missing, truncated or damaged file.
    """
    return _read(Path(path))[0]


def load(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint written by ``save``: ``(arrays, meta)``, ``meta`` a dict.

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
    validate(meta, {}, path)
    return arrays, meta


# Metadata schemas, checked by ``validate``: a kind below, a dict (a JSON object with at least
# those keys; others are allowed, so that a format can grow), or ``each`` / ``list_of`` /
# ``nullable`` around a schema.
_KINDS: dict[str, tuple[Any, str]] = {
    "int": (lambda v: type(v) is int, "an integer"),
    "count": (lambda v: type(v) is int and v >= 0, "an integer >= 0"),
    "number": (lambda v: type(v) in (int, float), "a number"),
    "scalar": (lambda v: type(v) in (int, float, bool), "a number or a bool"),
    "str": (lambda v: type(v) is str, "a string"),
    "object": (lambda v: type(v) is dict, "a JSON object"),
}


class _Each:
    """A JSON object whose every value matches ``schema``."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema


class _ListOf:
    """A JSON list whose every item matches ``schema``."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema


class _Nullable:
    """``null`` or a value matching ``schema``."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema


def each(schema: Any) -> _Each:
    return _Each(schema)


def list_of(schema: Any) -> _ListOf:
    return _ListOf(schema)


def nullable(schema: Any) -> _Nullable:
    return _Nullable(schema)


def _json_type(value: Any) -> str:
    """A received JSON value in words, e.g. ``a list [1, 2]`` or ``a string 'x'``."""
    kinds = {dict: "a JSON object", list: "a list", str: "a string", bool: "a bool",
             int: "an integer", float: "a number", type(None): "null"}
    text = json.dumps(value)
    return f"{kinds.get(type(value), type(value).__name__)} " + (
        text if len(text) <= 60 else text[:57] + "...")


def _mismatch(value: Any, schema: Any, where: str) -> tuple[str, str] | None:
    """``(field, what is wrong)`` for ``value`` at ``where`` under ``schema``, or None."""
    if isinstance(schema, _Nullable):
        return None if value is None else _mismatch(value, schema.schema, where)
    if isinstance(schema, str):
        test, expected = _KINDS[schema]
        return None if test(value) else (where, f"must be {expected}; received "
                                                f"{_json_type(value)}")
    if isinstance(schema, _ListOf):
        if type(value) is not list:
            return where, f"must be a list; received {_json_type(value)}"
        items = (_mismatch(v, schema.schema, f"{where}[{i}]") for i, v in enumerate(value))
        return next((problem for problem in items if problem), None)
    if type(value) is not dict:
        return where, f"must be a JSON object; received {_json_type(value)}"
    if isinstance(schema, _Each):
        items = (_mismatch(v, schema.schema, f"{where}.{k}") for k, v in value.items())
        return next((problem for problem in items if problem), None)
    for key, inner in schema.items():
        field = f"{where}.{key}" if where else key
        if key not in value:
            return field, "is missing"
        problem = _mismatch(value[key], inner, field)
        if problem:
            return problem
    return None


def validate(meta: Any, schema: dict[str, Any], path: str | os.PathLike) -> None:
    """Refuse ``meta`` (a checkpoint's metadata) unless it matches ``schema``: a
    CheckpointError naming the first field that is missing or of the wrong kind. Fields the
    schema does not name are allowed."""
    problem = _mismatch(meta, schema, "")
    if problem:
        field, what = problem
        subject = f"field {field!r}" if field else "the metadata"
        raise CheckpointError(
            f"checkpoint {str(path)!r} has malformed metadata: {subject} {what}")
