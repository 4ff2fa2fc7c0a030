"""Image files to floats and back: every Pillow mode we promise, clipping, normalisation,
the shipped photograph, and pinned errors."""

import importlib.resources
import os
import warnings

import numpy as np
import pytest

from convolve import io

Image = pytest.importorskip("PIL.Image")

RNG = np.random.default_rng(0)
GREY8 = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
RGB8 = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def saved(tmp_path, image, name="x.png", **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_sample_image_is_the_shipped_photograph():
    image = io.sample_image("camera")
    assert image.shape == (256, 256) and image.dtype == np.float32
    assert image.min() >= 0 and image.max() <= 1 and image.std() > 0.1
    asset = importlib.resources.files("convolve") / "assets" / "camera.png"
    with importlib.resources.as_file(asset) as path:
        np.testing.assert_array_equal(image, np.asarray(Image.open(path)) / np.float32(255))
    assert io.sample_image(dtype=np.float64).dtype == np.float64
    note = (importlib.resources.files("convolve") / "assets" / "CREDITS.md").read_text()
    assert "CC0" in note and "Lav Varshney" in note


def test_grey_and_rgb(tmp_path):
    grey = io.read_image(saved(tmp_path, Image.fromarray(GREY8)))
    assert grey.shape == (5, 7) and grey.dtype == np.float32
    np.testing.assert_array_equal(grey, GREY8 / np.float32(255))
    rgb = io.read_image(saved(tmp_path, Image.fromarray(RGB8)), dtype=np.float64)
    assert rgb.shape == (5, 7, 3) and rgb.dtype == np.float64
    np.testing.assert_array_equal(rgb, RGB8 / 255.0)


def test_alpha_is_dropped(tmp_path):
    rgba = np.concatenate([RGB8, np.full((5, 7, 1), 100, np.uint8)], axis=-1)
    np.testing.assert_array_equal(io.read_image(saved(tmp_path, Image.fromarray(rgba))),
                                  RGB8 / np.float32(255))
    la = Image.fromarray(GREY8).convert("LA")
    np.testing.assert_array_equal(io.read_image(saved(tmp_path, la)), GREY8 / np.float32(255))


def test_bilevel_palette_and_16_bit(tmp_path):
    bits = Image.fromarray(GREY8 > 127).convert("1")
    np.testing.assert_array_equal(io.read_image(saved(tmp_path, bits)), GREY8 > 127)
    palette = Image.fromarray(RGB8).quantize(colors=8)
    expected = np.asarray(palette.convert("RGB")) / np.float32(255)
    np.testing.assert_array_equal(io.read_image(saved(tmp_path, palette)), expected)
    palette.info["transparency"] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(
            io.read_image(saved(tmp_path, palette, "t.png", transparency=0)), expected)
    deep = RNG.integers(0, 65536, (5, 7), dtype=np.uint16)
    image = io.read_image(saved(tmp_path, Image.fromarray(deep)), dtype=np.float64)
    assert image.shape == (5, 7)
    np.testing.assert_allclose(image, deep / 65535.0, rtol=0, atol=1e-15)


def test_jpeg_and_its_exif_orientation(tmp_path):
    smooth = np.linspace(0, 255, 8 * 12 * 3).reshape(8, 12, 3).astype(np.uint8)
    path = saved(tmp_path, Image.fromarray(smooth), "x.jpg", quality=95)
    image = io.read_image(path)
    assert image.shape == (8, 12, 3)
    np.testing.assert_allclose(image, smooth / 255, atol=0.08)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    turned = io.read_image(saved(tmp_path, Image.fromarray(smooth), "t.jpg", exif=exif))
    assert turned.shape == (12, 8, 3)


def test_write_clips_and_rounds(tmp_path):
    path = io.write_image(tmp_path / "c.png", np.array([[-0.5, 0, 0.5, 1, 1.5]]))
    assert path == tmp_path / "c.png"
    with Image.open(path) as written:
        assert written.mode == "L"
        np.testing.assert_array_equal(np.asarray(written), [[0, 0, 128, 255, 255]])


@pytest.mark.parametrize(("normalize", "values", "expected"), [
    (True, [-2, 0, 2], [0, 128, 255]),
    ("minmax", [1, 2, 5], [0, 64, 255]),
    ("symmetric", [-1, 0, 0.5], [0, 128, 191]),
    ("symmetric", [0.5, 1, 2], [159, 191, 255]),
    ("minmax", [3, 3, 3], [0, 0, 0]),
    ("symmetric", [0, 0, 0], [128, 128, 128]),
])
def test_write_normalized(tmp_path, normalize, values, expected):
    path = io.write_image(tmp_path / "n.png", np.array([values], np.float32),
                          normalize=normalize)
    with Image.open(path) as written:
        np.testing.assert_array_equal(np.asarray(written), [expected])


def test_write_round_trips_colour_and_single_channel(tmp_path):
    rgb = RGB8 / np.float32(255)
    np.testing.assert_array_equal(io.read_image(io.write_image(tmp_path / "r.png", rgb)), rgb)
    grey = GREY8[..., None] / 255.0
    back = io.read_image(io.write_image(tmp_path / "g.png", grey))
    assert back.shape == (5, 7)
    np.testing.assert_allclose(back, grey[..., 0], atol=1e-7)


def test_to_channels():
    grey = GREY8 / 255.0
    np.testing.assert_array_equal(io.to_channels(grey, 3), np.repeat(grey[..., None], 3, -1))
    np.testing.assert_array_equal(io.to_channels(grey, 1), grey[..., None])
    rgb = RGB8 / 255.0
    pillow_grey = np.asarray(Image.fromarray(RGB8).convert("L")) / 255.0
    np.testing.assert_allclose(io.to_channels(rgb, 1)[..., 0], pillow_grey, atol=1.01 / 255)
    assert io.to_channels(rgb.astype(np.float32), 1).dtype == np.float32


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^image file not found: .*nope\.png$"):
        io.read_image(tmp_path / "nope.png")
    with pytest.raises(IsADirectoryError, match=r"^expected an image file, got a folder: "):
        io.read_image(tmp_path)
    text = tmp_path / "text.png"
    text.write_text("not a picture")
    with pytest.raises(ValueError, match=r"^cannot read .*text\.png: not an image file that "
                                         r"Pillow can decode$"):
        io.read_image(text)
    whole = saved(tmp_path, Image.fromarray(RGB8.repeat(20, 0).repeat(20, 1)), "w.png")
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"^cannot read .*cut\.png: "):
        io.read_image(cut)
    with pytest.raises(TypeError, match=r"^dtype must be float32 or float64; received "
                                        r"<class 'numpy.uint8'>$"):
        io.read_image(whole, dtype=np.uint8)
    with pytest.raises(TypeError, match=r"^dtype must be float32 or float64; received "
                                        r"'float16'$"):
        io.read_image(whole, dtype="float16")
    assert io.read_image(whole, dtype="float64").dtype == np.float64
    with pytest.raises(ValueError, match=r"^unknown sample image 'moon'; available: camera$"):
        io.sample_image("moon")


@pytest.mark.parametrize(("image", "kwargs", "error", "message"), [
    (GREY8, {}, TypeError, r"^image must be a floating-point array \(float32 or float64\); "
                           r"received ndarray of shape \(5, 7\) and dtype uint8"),
    (np.zeros((5, 7, 2)), {}, ValueError,
     r"^image must be \(H, W\), \(H, W, 1\) or \(H, W, 3\); received an array of shape "
     r"\(5, 7, 2\)$"),
    (np.array([[0.0, np.nan, np.inf]]), {}, ValueError,
     r"^image must be finite; received 2 NaN or infinite values$"),
    (np.zeros((5, 7)), {"normalize": "unit"}, ValueError,
     r"^normalize must be one of 'minmax', 'symmetric'; received 'unit'$"),
])
def test_write_errors(tmp_path, image, kwargs, error, message):
    with pytest.raises(error, match=message):
        io.write_image(tmp_path / "x.png", image, **kwargs)
    assert not (tmp_path / "x.png").exists()


def test_write_unknown_suffix_no_suffix_and_missing_folder(tmp_path):
    with pytest.raises(ValueError, match=r"^cannot write .*x\.xyz: unknown file extension: "
                                         r"\.xyz \(use a suffix such as \.png or \.jpg\)$"):
        io.write_image(tmp_path / "x.xyz", np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"^cannot write .*/o: unknown file extension: \(none\) "
                                         r"\(use a suffix such as \.png or \.jpg\)$"):
        io.write_image(tmp_path / "o", np.zeros((2, 2)))
    with pytest.raises(FileNotFoundError, match=r"^cannot write .*/none/o\.png: folder "
                                                r".*/none does not exist$"):
        io.write_image(tmp_path / "none" / "o.png", np.zeros((2, 2)))
    assert os.listdir(tmp_path) == []


def test_write_jpeg_writes_jpeg(tmp_path):
    from PIL import Image

    io.write_image(tmp_path / "x.jpg", np.zeros((4, 4)))
    with Image.open(tmp_path / "x.jpg") as image:
        assert image.format == "JPEG"


def test_resize_is_antialiased_bilinear_per_channel():
    image = np.zeros((40, 60, 3), np.float32)
    image[:, :30, 0] = 1  # left half red
    small = io.resize(image, (4, 6))
    assert small.shape == (4, 6, 3) and small.dtype == np.float32
    np.testing.assert_allclose(small[:, :2, 0], 1, atol=1e-6)
    np.testing.assert_allclose(small[:, 4:, 0], 0, atol=1e-6)
    assert (small[:, 2:4, 0] > 0).all() and (small[:, 2:4, 0] < 1).all()  # a triangle filter
    np.testing.assert_allclose(small[:, 2, 0] + small[:, 3, 0], 1, atol=1e-6)  # 10 px wide
    np.testing.assert_allclose(small[..., 1:], 0)
    grey = io.resize(np.full((7, 9), 0.25, np.float32), (28, 28))
    assert grey.shape == (28, 28)
    np.testing.assert_allclose(grey, 0.25, rtol=1e-6)


def test_to_channels_errors():
    with pytest.raises(ValueError, match=r"^channels must be 1 or 3; received 2$"):
        io.to_channels(np.zeros((2, 2)), 2)
