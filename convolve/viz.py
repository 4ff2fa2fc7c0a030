"""Pictures of filters, feature maps and training curves, saved as PNG (or the image
format the suffix names, by the rule of ``convolve.io.image_format``).

matplotlib is imported only when a picture is drawn, and only its Agg canvas is used: no
pyplot, no global backend switch, so drawing here does not disturb a notebook's plots.

Tile grids are exactly ``columns * tile`` by ``rows * tile`` pixels, where
``columns = ceil(sqrt(n))`` (unless given) and ``rows = ceil(n / columns)`` for ``n`` tiles.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convolve import _args

# A power of two, so that pixels / _DPI inches is exact and the PNG has exactly the pixels
# asked for (Agg truncates the figure's size in pixels to an int).
_DPI = 128
SCALES = ("per-tile", "shared")
_MARGIN = 3  # pixels around each tile's image


def _figure(width: int, height: int) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("pictures need matplotlib: pip install 'convolve[plot]'") from None
    figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: str | os.PathLike) -> Path:
    """Render ``figure`` and write its pixels where ``path``'s suffix says (``io``'s rule)."""
    from convolve import io

    io.image_format(path)  # refused before rendering
    figure.canvas.draw()
    return io.write_pixels(path, np.asarray(figure.canvas.buffer_rgba())[..., :3])


def _grid(tiles: list[tuple[np.ndarray, str, dict]], path: str | os.PathLike, *, tile: int,
          columns: int | None) -> Path:
    """Draw ``(image, label, imshow settings)`` tiles row by row, ``tile`` pixels each."""
    tile = _args.integer(tile, "tile", minimum=32)
    band = max(14, tile // 10)  # pixels above each image for its label
    n = len(tiles)
    cols = min(n, _args.integer(columns, "columns")) if columns is not None \
        else math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    width, height = cols * tile, rows * tile
    _args.check_fits((height, width, 4), np.uint8, "the picture")
    figure = _figure(width, height)
    for index, (image, label, settings) in enumerate(tiles):
        row, col = divmod(index, cols)
        ax = figure.add_axes((
            (col * tile + _MARGIN) / width,
            ((rows - 1 - row) * tile + _MARGIN) / height,
            (tile - 2 * _MARGIN) / width,
            (tile - 2 * _MARGIN - band) / height,
        ))
        ax.imshow(image, interpolation="nearest", **settings)
        ax.set_title(label, fontsize=0.6 * band * 72 / _DPI, pad=2)
        ax.set_axis_off()
    return _save(figure, path)


def _signed_limits(array: np.ndarray) -> dict:
    m = float(np.abs(array).max()) or 1.0
    return {"cmap": "gray", "vmin": -m, "vmax": m}


def plot_filters(weight: Any, path: str | os.PathLike, *, tile: int = 96,
                 columns: int | None = None, per_channel: bool = False) -> Path:
    """One tile per filter of a conv weight; writes the picture
    (PNG, or the format the suffix names) and returns its path.

    Arguments:
        weight: ``(KH, KW, C_in, C_out)`` (or one kernel ``(KH, KW)``).
        tile: pixels per tile (square).
        per_channel: one grey tile per (input channel, filter) pair instead, a row per
            input channel and a column per filter.

    Each filter is scaled on its own, symmetrically, so that 0 is mid-grey. With
    ``C_in == 3`` a tile is the filter in colour (channels read as RGB); otherwise it is the
    mean over the input channels, in grey.
    """
    w = _args.float_array(weight, "weight", any_width=True)
    _args.rank(w.shape, "weight", {2: "(KH, KW)", 4: "(KH, KW, C_in, C_out)"})
    if w.ndim == 2:
        w = w[:, :, None, None]
    c_in, c_out = w.shape[2:]
    if w.size == 0:
        raise ValueError(f"weight must hold at least one filter; received an array of shape "
                         f"{tuple(w.shape)}")
    if _args.flag(per_channel, "per_channel"):
        tiles = [(w[:, :, i, o], f"{o} (in {i})", _signed_limits(w[:, :, i, o]))
                 for i in range(c_in) for o in range(c_out)]
        return _grid(tiles, path, tile=tile, columns=c_out)
    tiles = []
    for o in range(c_out):
        f = w[:, :, :, o].astype(np.float64)
        if c_in == 3:
            m = float(np.abs(f).max()) or 1.0
            tiles.append((np.clip(0.5 + f / (2 * m), 0, 1), str(o), {}))
        else:
            mean = f.mean(axis=2)
            tiles.append((mean, str(o), _signed_limits(mean)))
    return _grid(tiles, path, tile=tile, columns=columns)


def plot_feature_maps(maps: Any, path: str | os.PathLike, *, scale: str = "per-tile",
                      tile: int = 128, columns: int | None = None,
                      titles: Sequence[str] | None = None) -> Path:
    """One grey tile per channel of ``maps``; writes the picture
    (PNG, or the format the suffix names) and returns its path.

    Arguments:
        maps: ``(H, W, C)`` (or one map ``(H, W)``), e.g. a conv layer's output.
        scale: ``"per-tile"`` stretches each map's own min..max to black..white (every map
            shows its structure); ``"shared"`` uses one min..max for all maps (brightness
            compares across maps).
        titles: one label per channel; default the channel index.
    """
    array = _args.float_array(maps, "maps", any_width=True)
    _args.rank(array.shape, "maps", {2: "(H, W)", 3: "(H, W, C)"})
    scale = _args.choice(scale, "scale", SCALES)
    if array.ndim == 2:
        array = array[..., None]
    c = array.shape[-1]
    if array.size == 0:
        raise ValueError(f"maps must hold at least one non-empty map; received an array of "
                         f"shape {tuple(array.shape)}")
    if titles is None:
        titles = [str(i) for i in range(c)]
    elif len(titles) != c:
        raise ValueError(
            f"titles must have one label per channel ({c} for maps of shape "
            f"{tuple(array.shape)}); received {len(titles)}"
        )
    tiles = []
    for i in range(c):
        source = array if scale == "shared" else array[..., i]
        limits = {"cmap": "gray", "vmin": float(source.min()), "vmax": float(source.max())}
        tiles.append((array[..., i], str(titles[i]), limits))
    return _grid(tiles, path, tile=tile, columns=columns)


def _panels(history: Mapping[str, Sequence[float]]) -> dict[str, list[str]]:
    """Group keys by metric, training and validation together: loss, accuracy, the rest."""
    groups: dict[str, list[str]] = {}
    for key in history:
        groups.setdefault(key.removeprefix("val_"), []).append(key)
    first = [name for name in ("loss", "accuracy", "acc") if name in groups]
    return {name: groups[name] for name in (*first, *groups) if name in groups}


def plot_history(history: Mapping[str, Sequence[float]], path: str | os.PathLike, *,
                 size: tuple[int, int] | None = None) -> Path:
    """Training curves, one panel per metric; writes the picture
    (PNG, or the format the suffix names) and returns its path.

    Arguments:
        history: metric name -> one value per epoch, e.g. ``{"loss": [...],
            "val_loss": [...], "accuracy": [...], "val_accuracy": [...]}``. ``val_X`` is
            drawn in the panel of ``X``; panels are loss, then accuracy, then the rest.
        size: ``(width, height)`` in pixels; default 480 wide per panel by 360.
    """
    if not isinstance(history, Mapping) or not history:
        raise ValueError(
            "history must be a non-empty dict of metric name -> list of values per epoch; "
            f"received {_args.describe(history)}"
        )
    curves = {}
    for key, values in history.items():
        array = np.asarray(values)
        if array.ndim != 1 or array.size == 0 or array.dtype.kind not in "iuf":
            raise ValueError(
                f"history[{key!r}] must be a non-empty list of numbers; received "
                f"{_args.describe(values)}"
            )
        curves[key] = array
    panels = _panels(history)
    if size is None:
        size = (480 * len(panels), 360)
    width, height = _args.pair(size, "size", minimum=64)
    _args.check_fits((height, width, 4), np.uint8, "the picture")
    figure = _figure(width, height)
    from matplotlib.ticker import MaxNLocator  # matplotlib is there: _figure imported it

    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, keys) in zip(axes, panels.items()):
        for key in keys:
            epochs = np.arange(1, curves[key].size + 1)
            ax.plot(epochs, curves[key], marker="o" if epochs.size <= 30 else None,
                    markersize=3, label=key)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.tight_layout()
    return _save(figure, path)
