"""Pictures of filters, feature maps and training curves, saved as PNG (or the image
format the suffix names, by the rule of ``convolve.io.image_format``).

matplotlib is imported only when a picture is drawn, and only its Agg canvas is used: no
pyplot, no global backend switch, so drawing here does not disturb a notebook's plots.

Tile grids: each tile is ``tile`` pixels wide; its image is ``tile - 6`` pixels wide and as
high as the images' aspect ratio says (no white bands around wide photographs), under a
label band of ``max(14, tile // 10)`` pixels. ``columns = ceil(sqrt(n * H / W))`` for ``n``
tiles of ``H x W`` images (unless given), ``rows = ceil(n / columns)``; a title adds a band
of ``max(16, tile // 8)`` pixels on top, a colour bar ``max(48, tile // 4)`` on the right.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convolve import _args

# A power of two, so that pixels / _DPI inches is exact and the picture has exactly the
# pixels asked for (Agg truncates the figure's size in pixels to an int).
_DPI = 128
SCALES = ("per-tile", "shared")
_MARGIN = 3  # pixels around each tile's image
_AGG_MAX = 1 << 16  # Agg's largest picture side, in pixels


def _figure(width: int, height: int) -> Any:
    if max(width, height) >= _AGG_MAX:
        raise ValueError(f"the picture would be {width}x{height} pixels; matplotlib draws at "
                         f"most {_AGG_MAX - 1} a side: use smaller tiles or fewer columns")
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


def grid_columns(n: int, aspect: float) -> int:
    """Default columns for ``n`` tiles of images ``aspect = H / W``: a roughly square grid."""
    return max(1, min(n, math.ceil(math.sqrt(n * aspect) - 1e-9)))


Limits = tuple[float, float] | None  # a grey tile's black..white values; None: RGB in [0, 1]


def _pixels(image: np.ndarray, limits: Limits, height: int, width: int) -> np.ndarray:
    """``image`` as ``(height, width, 3)`` RGB in [0, 1]: grey values stretched from
    ``limits`` (a constant image is black), nearest-neighbour resampled."""
    if limits is not None:
        low, high = limits
        span = high - low
        grey = np.clip((image - low) / span, 0, 1) if span > 0 else np.zeros(image.shape)
        image = np.repeat(grey[..., None], 3, axis=-1)
    rows = np.arange(height) * image.shape[0] // height
    cols = np.arange(width) * image.shape[1] // width
    return image[rows[:, None], cols[None, :]]


def _grid(tiles: list[tuple[np.ndarray, str, Limits]], path: str | os.PathLike, *,
          tile: int, columns: int | None, title: str | None = None,
          colorbar: bool = False) -> Path:
    """Draw ``(image, label, limits)`` tiles row by row, ``tile`` pixels wide each, as high
    as the first image's aspect ratio, as one pixel-exact picture; ``colorbar``: one bar
    for the last tile's limits (the shared ones)."""
    tile = _args.integer(tile, "tile", minimum=32)
    band = max(14, tile // 10)  # pixels above each image for its label
    inner_w = tile - 2 * _MARGIN
    h, w = tiles[0][0].shape[:2]
    inner_h = max(1, round(inner_w * h / w))
    tile_h = inner_h + band + 2 * _MARGIN
    n = len(tiles)
    cols = min(n, _args.integer(columns, "columns")) if columns is not None \
        else grid_columns(n, h / w)
    rows = math.ceil(n / cols)
    top = max(16, tile // 8) if title else 0
    bar = max(48, tile // 4) if colorbar else 0
    width, height = cols * tile + bar, rows * tile_h + top
    _args.check_fits((height, width, 4), np.uint8, "the picture")
    figure = _figure(width, height)
    canvas = np.ones((height, cols * tile, 3))  # the colour bar is drawn beside it
    label_size = 0.6 * band * 72 / _DPI
    for index, (image, label, limits) in enumerate(tiles):
        row, col = divmod(index, cols)
        y, x = top + row * tile_h + band + _MARGIN, col * tile + _MARGIN
        canvas[y:y + inner_h, x:x + inner_w] = _pixels(image, limits, inner_h, inner_w)
        figure.text((x + inner_w / 2) / width, 1 - (y - 2) / height, label, ha="center",
                    va="bottom", fontsize=label_size)
    figure.figimage(canvas, xo=0, yo=0, origin="upper")
    if title:
        figure.text(0.5, 1 - 0.5 * top / height, title, ha="center", va="center",
                    fontsize=0.55 * top * 72 / _DPI)
    if colorbar:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        cax = figure.add_axes(((cols * tile + bar * 0.15) / width, _MARGIN / height,
                               bar * 0.2 / width, (rows * tile_h - 2 * _MARGIN) / height))
        low, high = tiles[-1][2]
        figure.colorbar(ScalarMappable(Normalize(low, high), "gray"), cax=cax)
        cax.tick_params(labelsize=max(5.0, 0.12 * bar * 72 / _DPI))
    return _save(figure, path)


def _signed_limits(array: np.ndarray) -> Limits:
    m = float(np.abs(array).max()) or 1.0
    return (-m, m)


def plot_filters(weight: Any, path: str | os.PathLike, *, tile: int = 96,
                 columns: int | None = None, per_channel: bool = False,
                 title: str | None = None) -> Path:
    """One tile per filter of a conv weight; writes the picture
    (PNG, or the format the suffix names) and returns its path.

    Arguments:
        weight: ``(KH, KW, C_in, C_out)`` (or one kernel ``(KH, KW)``).
        tile: pixels per tile (wide).
        per_channel: one grey tile per (input channel, filter) pair instead, a row per
            input channel and a column per filter.
        title: a line above the grid.

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
        return _grid(tiles, path, tile=tile, columns=c_out, title=title)
    tiles = []
    for o in range(c_out):
        f = w[:, :, :, o].astype(np.float64)
        if c_in == 3:
            m = float(np.abs(f).max()) or 1.0
            tiles.append((np.clip(0.5 + f / (2 * m), 0, 1), str(o), None))
        else:
            mean = f.mean(axis=2)
            tiles.append((mean, str(o), _signed_limits(mean)))
    return _grid(tiles, path, tile=tile, columns=columns, title=title)


def plot_feature_maps(maps: Any, path: str | os.PathLike, *, scale: str = "per-tile",
                      tile: int = 128, columns: int | None = None,
                      titles: Sequence[str] | None = None, title: str | None = None) -> Path:
    """One grey tile per channel of ``maps``; writes the picture
    (PNG, or the format the suffix names) and returns its path.

    Arguments:
        maps: ``(H, W, C)`` (or one map ``(H, W)``), e.g. a conv layer's output.
        scale: ``"per-tile"`` stretches each map's own min..max to black..white (every map
            shows its structure); ``"shared"`` uses one min..max for all maps (brightness
            compares across maps) and draws that scale as a colour bar.
        titles: one label per channel; default the channel index.
        title: a line above the grid.
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
        tiles.append((array[..., i], str(titles[i]), (float(source.min()),
                                                       float(source.max()))))
    return _grid(tiles, path, tile=tile, columns=columns, title=title,
                 colorbar=scale == "shared")


def _panels(history: Mapping[str, Sequence[float]],
            metrics: Sequence[str] | None) -> dict[str, list[str]]:
    """Group keys by metric, training and validation together: loss, accuracy, the rest;
    only ``metrics`` (all when None)."""
    groups: dict[str, list[str]] = {}
    for key in history:
        groups.setdefault(key.removeprefix("val_"), []).append(key)
    first = [name for name in ("loss", "accuracy", "acc") if name in groups]
    ordered = {name: groups[name] for name in (*first, *groups) if name in groups}
    if metrics is None:
        return ordered
    return {name: keys for name, keys in ordered.items() if name in metrics}


def plot_history(history: Mapping[str, Sequence[float]], path: str | os.PathLike, *,
                 metrics: Sequence[str] | None = ("loss", "accuracy"),
                 size: tuple[int, int] | None = None) -> Path:
    """Training curves, one panel per metric; writes the picture
    (PNG, or the format the suffix names) and returns its path.

    Arguments:
        history: metric name -> one value per epoch, e.g. ``fit``'s ``History``:
            ``{"loss": [...], "val_loss": [...], "accuracy": [...], ...}``. ``val_X`` is
            drawn in the panel of ``X``.
        metrics: the panels, training and validation curves together: by default loss and
            accuracy (not ``fit``'s ``seconds``, ``images_per_second`` and ``lr``); None
            draws every key of ``history``.
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
    panels = _panels(history, metrics)
    if not panels:
        raise ValueError(f"history holds none of the metrics {list(metrics)}; it holds "
                         f"{', '.join(history)} (metrics=None draws them all)")
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
