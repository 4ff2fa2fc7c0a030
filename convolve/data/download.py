"""Fetching dataset files once, over HTTP(S), with a SHA-256 check.

A file is first written under a temporary name in the target folder, hashed while it
streams, and renamed to its final name only when its length and SHA-256 are right; on any
failure the partial file is removed. So a file with the final name is either one we
verified or one the user put there, and it is never fetched again.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MIRROR_ENV = "CONVOLVE_DATA_MIRROR"
HOME_ENV = "CONVOLVE_DATA"
_TIMEOUT_S = 60
_CHUNK = 1 << 20


class DownloadError(OSError):
    """A file could not be fetched from any mirror, or what came back was wrong."""


@dataclass(frozen=True)
class RemoteFile:
    """A file published under the same name on each mirror, and its SHA-256 (hex)."""

    name: str
    sha256: str


def data_home() -> Path:
    """The cache folder for downloads: ``$CONVOLVE_DATA``, else ``~/.cache/convolve``."""
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "convolve"


def mirrors(defaults: Sequence[str], mirror: str | None = None) -> tuple[str, ...]:
    """Base URLs to try in order: ``mirror``, else ``$CONVOLVE_DATA_MIRROR``, else defaults."""
    override = mirror or os.environ.get(MIRROR_ENV)
    return (override,) if override else tuple(defaults)


def fetch(file: RemoteFile, folder: Path, bases: Sequence[str]) -> Path:
    """``folder / file.name``, downloaded from the first base URL that serves it intact.

    An existing file is returned as is, without a request. Raises DownloadError naming every
    URL tried and what went wrong with each.
    """
    target = folder / file.name
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    failures = []
    for base in bases:
        url = base.rstrip("/") + "/" + file.name
        print(f"convolve: downloading {url} to {target}", file=sys.stderr)
        try:
            _download(url, target, file.sha256)
            return target
        except (OSError, http.client.HTTPException) as error:
            failures.append(f"{url}: {error}")
    raise DownloadError(f"could not download {file.name} into {folder}: " + "; ".join(failures))


def _download(url: str, target: Path, sha256: str) -> None:
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        digest = hashlib.sha256()
        received = 0
        request = urllib.request.Request(url, headers={"User-Agent": "convolve (urllib)"})
        with os.fdopen(fd, "wb") as out, \
                urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            announced = response.headers.get("Content-Length")
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
        if announced is not None and received != int(announced):
            raise DownloadError(f"truncated: received {received} of {announced} bytes")
        if digest.hexdigest() != sha256:
            raise DownloadError(
                f"SHA-256 mismatch: expected {sha256}, received {digest.hexdigest()} "
                f"({received} bytes); the file was discarded"
            )
        os.chmod(partial, 0o644)  # mkstemp makes it private; a cache file is not secret
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
        raise
