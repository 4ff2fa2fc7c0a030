"""Pictures are written as PNG files of exactly the promised pixel size."""

import math

import numpy as np
import pytest

from convolve import viz

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

RNG = np.random.default_rng(0)


def pixel_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def grid_size(n, tile, *, aspect=1.0, columns=None, title=False, bar=False):
    """The documented layout: tiles ``tile`` wide, their images ``tile - 6`` wide and as
    high as ``aspect = H / W`` says, under a label band; a title band, a colour bar."""
    image_height = max(1, round((tile - 6) * aspect))
    tile_height = image_height + max(14, tile // 10) + 6
    columns = min(n, columns or math.ceil(math.sqrt(n * aspect)))
    rows = math.ceil(n / columns)
    return (columns * tile + (max(48, tile // 4) if bar else 0),
            rows * tile_height + (max(16, tile // 8) if title else 0))


@pytest.mark.parametrize(("shape", "kwargs", "size"), [
    ((5, 5, 3, 6), {}, grid_size(6, 96)),            # RGB tiles, 3 columns
    ((3, 3, 1, 16), {"tile": 64}, grid_size(16, 64)),  # grey
    ((5, 5, 6, 16), {"columns": 8}, grid_size(16, 96, columns=8)),  # mean over 6 inputs
    ((3, 3, 2, 5), {"per_channel": True}, grid_size(10, 96, columns=5)),  # a row per input
    ((7, 7), {"title": "one kernel"}, grid_size(1, 96, title=True)),
])
def test_plot_filters(tmp_path, shape, kwargs, size):
    path = viz.plot_filters(RNG.standard_normal(shape), tmp_path / "f.png", **kwargs)
    assert path == tmp_path / "f.png"
    assert pixel_size(path) == size


def test_plot_filters_shows_sign_around_mid_grey(tmp_path):
    weight = np.zeros((2, 1, 1, 1))
    weight[0, 0, 0, 0], weight[1, 0, 0, 0] = 1, -1
    path = viz.plot_filters(weight, tmp_path / "s.png", tile=64)
    pixels = np.asarray(Image.open(path).convert("L"), dtype=int)
    assert pixels.max() == 255 and pixels.min() == 0  # +1 white, -1 black


@pytest.mark.parametrize("scale", ["per-tile", "shared"])
def test_plot_feature_maps(tmp_path, scale):
    maps = RNG.random((20, 30, 5))
    path = viz.plot_feature_maps(maps, tmp_path / "m.png", scale=scale,
                                 titles=list("abcde"), title="five maps")
    assert pixel_size(path) == grid_size(5, 128, aspect=20 / 30, title=True,
                                         bar=scale == "shared")
    assert grid_size(5, 128, aspect=20 / 30) == (2 * 128, 3 * (81 + 14 + 6))
    assert pixel_size(viz.plot_feature_maps(maps[..., 0], tmp_path / "one.png", tile=50)) \
        == grid_size(1, 50, aspect=20 / 30)


def test_wide_maps_fill_their_tiles_without_white_bands(tmp_path):
    maps = np.zeros((100, 400, 4))  # a wide photograph's maps: black...
    maps[50, 200] = 1  # ... but for one white pixel each, in the middle
    path = viz.plot_feature_maps(maps, tmp_path / "wide.png", tile=128)
    assert pixel_size(path) == grid_size(4, 128, aspect=0.25) == (128, 4 * (30 + 14 + 6))
    pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
    image = pixels[50 - 3 - 30:50 - 3, 3:125]  # where the first tile's map is drawn
    assert image.mean() < 20  # black, no white band above or below the map


def test_pictures_take_the_format_of_their_suffix(tmp_path):
    maps = RNG.random((8, 8, 2))
    viz.plot_feature_maps(maps, tmp_path / "g.jpg", tile=64)
    with Image.open(tmp_path / "g.jpg") as image:
        assert image.format == "JPEG"
    with pytest.raises(ValueError, match=r"^cannot write .*g\.svg: unknown file extension: "
                                         r"\.svg \(use a suffix such as \.png or \.jpg\)$"):
        viz.plot_feature_maps(maps, tmp_path / "g.svg", tile=64)
    assert not (tmp_path / "g.svg").exists()


def test_shared_and_per_tile_scales(tmp_path):
    maps = np.zeros((8, 8, 2))
    maps[..., 1] = 0.5
    maps[0, 0] = [1.0, 0.0]  # map 0 spans 0..1, map 1 spans 0..0.5

    def tile_means(scale):
        path = viz.plot_feature_maps(maps, tmp_path / f"{scale}.png", scale=scale, tile=64,
                                     columns=2)
        pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
        return pixels[40:56, 16:48].mean(), pixels[40:56, 80:112].mean()

    first, second = tile_means("shared")
    assert first < 5 and 110 < second < 145  # 0.5 of the common 0..1 range: mid-grey
    first, second = tile_means("per-tile")
    assert first < 5 and second > 250  # 0.5 is the top of map 1's own range


def test_plot_history(tmp_path):
    history = {"loss": [2.0, 1.1, 0.7], "val_loss": [2.1, 1.3, 0.9],
               "accuracy": [0.5, 0.7, 0.8], "val_accuracy": [0.45, 0.6, 0.7]}
    assert pixel_size(viz.plot_history(history, tmp_path / "h.png")) == (960, 360)
    assert pixel_size(viz.plot_history({"loss": [1, 0.5]}, tmp_path / "l.png",
                                       size=(333, 217))) == (333, 217)
    three = {"accuracy": [0.1], "lr": [0.1], "loss": [3.0]}
    assert viz._panels(three, None) == {"loss": ["loss"], "accuracy": ["accuracy"],
                                        "lr": ["lr"]}
    assert pixel_size(viz.plot_history(three, tmp_path / "t.png", metrics=None)) == (1440, 360)


def test_plot_history_draws_loss_and_accuracy_by_default(tmp_path):
    from convolve import train

    images = RNG.random((16, 6, 6, 1), dtype=np.float32)
    labels = RNG.integers(0, 2, 16)
    from convolve import nn

    model = nn.Sequential([nn.Flatten(), nn.Dense(2, seed=0)], input_shape=(6, 6, 1))
    history = train.fit(model, (images, labels), epochs=2, batch_size=8, verbose=False,
                        validation_data=(images, labels))
    assert {"seconds", "images_per_second", "lr"} <= set(history)
    assert viz._panels(history, ("loss", "accuracy")) == {
        "loss": ["loss", "val_loss"], "accuracy": ["accuracy", "val_accuracy"]}
    assert pixel_size(viz.plot_history(history, tmp_path / "h.png")) == (960, 360)
    with pytest.raises(ValueError, match=r"^history holds none of the metrics \['accuracy'\]; "
                                         r"it holds loss \(metrics=None draws them all\)$"):
        viz.plot_history({"loss": [1.0]}, tmp_path / "x.png", metrics=["accuracy"])


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda p: viz.plot_filters(np.zeros((3, 3, 1)), p), ValueError,
     r"^weight must be 2-D \(KH, KW\) or 4-D \(KH, KW, C_in, C_out\); received an array "
     r"of shape \(3, 3, 1\)$"),
    (lambda p: viz.plot_filters(np.zeros((3, 3), int), p), TypeError,
     r"^weight must be a floating-point array"),
    (lambda p: viz.plot_filters(np.zeros((3, 3)), p, tile=8), ValueError,
     r"^tile must be >= 32; received 8$"),
    (lambda p: viz.plot_feature_maps(np.zeros((4, 4, 2)), p, scale="global"), ValueError,
     r"^scale must be one of 'per-tile', 'shared'; received 'global'$"),
    (lambda p: viz.plot_feature_maps(np.zeros((1, 4, 4, 2)), p), ValueError,
     r"^maps must be 2-D \(H, W\) or 3-D \(H, W, C\); received an array of shape "
     r"\(1, 4, 4, 2\)$"),
    (lambda p: viz.plot_feature_maps(np.zeros((4, 4, 2)), p, titles=["a"]), ValueError,
     r"^titles must have one label per channel \(2 for maps of shape \(4, 4, 2\)\); "
     r"received 1$"),
    (lambda p: viz.plot_feature_maps(np.zeros((4, 4, 0)), p), ValueError,
     r"^maps must hold at least one non-empty map; received an array of shape \(4, 4, 0\)$"),
    (lambda p: viz.plot_filters(np.zeros((3, 3, 1, 0)), p), ValueError,
     r"^weight must hold at least one filter; received an array of shape \(3, 3, 1, 0\)$"),
    (lambda p: viz.plot_history({}, p), ValueError,
     r"^history must be a non-empty dict of metric name -> list of values per epoch; "
     r"received \{\}$"),
    (lambda p: viz.plot_history({"loss": []}, p), ValueError,
     r"^history\['loss'\] must be a non-empty list of numbers; received \[\]$"),
    (lambda p: viz.plot_history({"loss": ["a"]}, p), ValueError,
     r"^history\['loss'\] must be a non-empty list of numbers; received \['a'\]$"),
])
def test_errors(tmp_path, call, error, message):
    with pytest.raises(error, match=message):
        call(tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
