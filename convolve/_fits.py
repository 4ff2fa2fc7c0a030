"""Refusing work whose arrays cannot fit in memory, before allocating them."""

from __future__ import annotations

import os


def available_bytes() -> int | None:
    """Memory the system can still give (Linux: MemAvailable); None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def human(nbytes: float) -> str:
    """``nbytes`` as ``"74.5 GiB"``."""
    if nbytes < 1024:
        return f"{nbytes:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        nbytes /= 1024
        if nbytes < 1024:
            return f"{nbytes:.1f} {unit}"
    return f"{nbytes / 1024:.1f} TiB"


def check(nbytes: int, what: str) -> None:
    """A ValueError when ``what`` needs more than the memory available now."""
    available = available_bytes()
    if available is not None and nbytes > available:
        raise ValueError(f"{what} would need {human(nbytes)} of memory; "
                         f"{human(available)} is available")
