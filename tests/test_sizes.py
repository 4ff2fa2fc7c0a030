"""Sizes that cannot fit are refused before anything is allocated, saying how many bytes
they would need (``_args.check_fits``), outside the ops: kernels, padded images, pictures,
augmentation, summaries and the command line."""

import numpy as np
import pytest

from convolve import _args, data, filters, nn
from convolve.cli import main

HUGE = 10**7  # any square of this many pixels needs hundreds of TiB


def test_check_fits_counts_bytes():
    assert _args.check_fits((3, 4, 5), np.float32, "x") == 240
    assert _args.check_fits((0, 10**30), np.float64, "x") == 0


def test_check_fits_refuses_more_than_the_memory(monkeypatch):
    monkeypatch.setattr(_args, "memory_budget", lambda: 2048)
    assert _args.check_fits((16, 16), np.float64, "the kernel") == 2048
    with pytest.raises(ValueError, match=r"^the kernel of shape \(16, 17\) \(float64\) would "
                                         r"need 2,176 bytes \(2\.1 KiB\), more than this "
                                         r"machine's memory of 2,048 bytes \(2\.0 KiB\)$"):
        _args.check_fits((16, 17), np.float64, "the kernel")
    monkeypatch.setattr(_args, "memory_budget", lambda: None)  # unknown: nothing refused
    assert _args.check_fits((HUGE, HUGE), np.float64, "x") == 8 * HUGE**2


def test_memory_budget_is_the_physical_memory():
    budget = _args.memory_budget()
    assert budget is None or budget > 2**26


@pytest.mark.parametrize("name, settings, what", [
    ("box_blur", {"size": HUGE}, "the box_blur kernel"),
    ("gaussian_blur", {"size": HUGE + 1}, "the gaussian_blur kernel"),
    ("gaussian_blur", {"sigma": 1e7}, "the gaussian_blur kernel"),
    ("unsharp_mask", {"sigma": 1e7}, "the gaussian_blur kernel"),
])
def test_huge_named_kernels(name, settings, what):
    with pytest.raises(ValueError, match=rf"^{what} of shape \(\d+, \d+\) \(float64\) would "
                                         r"need [\d,]+ bytes \(\d+\.\d [TP]iB\), more than"):
        filters.kernel(name, **settings)


def test_the_padded_image_of_a_huge_kernel(monkeypatch):
    monkeypatch.setattr(_args, "memory_budget", lambda: 10**6)
    image = np.zeros((16, 16), np.float32)
    filters.apply(image, np.ones((301, 301)), mode="zeros")
    with pytest.raises(ValueError, match=r"^the image padded for a kernel of shape \(601, 601\) "
                                         r"of shape \(616, 616, 1\) \(float32\) would need "
                                         r"1,517,824 bytes"):
        filters.apply(image, np.ones((601, 601)), mode="zeros")


def test_huge_pictures(tmp_path):
    pytest.importorskip("matplotlib")
    from convolve import viz

    # a tile is 10**7 wide and 10**7 - 6 + 10**6 (label band) + 6 high
    with pytest.raises(ValueError, match=r"^the picture of shape \(11000000, 10000000, 4\) "
                                         r"\(uint8\) would need 440,000,000,000,000 bytes"):
        viz.plot_feature_maps(np.ones((4, 4, 1)), tmp_path / "m.png", tile=HUGE)
    with pytest.raises(ValueError, match=r"^the picture of shape \(10000000, 10000000, 4\)"):
        viz.plot_history({"loss": [1.0]}, tmp_path / "h.png", size=(HUGE, HUGE))
    assert not list(tmp_path.iterdir())


def test_huge_crop_padding():
    with pytest.raises(ValueError, match=r"^the padded batch of shape \(2, 20000004, 20000004, "
                                         r"1\) \(float32\) would need"):
        data.random_crop(np.zeros((2, 4, 4, 1), np.float32), HUGE, rng=0)


def test_huge_layer_weights():
    layer = nn.Dense(10**12, seed=0)
    with pytest.raises(ValueError, match=r"^the weight of Dense of shape \(4, 1000000000000\) "
                                         r"\(float64\) would need 32,000,000,000,000 bytes"):
        layer.build((4,))
    conv = nn.Conv2D(HUGE, HUGE, seed=0)
    with pytest.raises(ValueError, match=r"^the weight of Conv2D of shape \(10000000, 10000000, "
                                         r"3, 10000000\)"):
        conv.build((4, 4, 3))


def test_huge_summary_input():
    model = nn.Sequential([nn.Conv2D(2, 3, seed=0)])
    with pytest.raises(ValueError, match=r"^the input of shape \(1, 10000000, 10000000, 3\) "
                                         r"\(float32\) would need"):
        model.summary((HUGE, HUGE, 3))


@pytest.mark.parametrize("argv, what", [
    (["filter", "sample:camera", "-k", "box_blur", "--size", str(HUGE)], "the box_blur kernel"),
    (["featuremaps", "sample:camera", "--kernels", "sobel", "--tile", str(HUGE)],
     "the picture"),
    (["summary", "--input-shape", f"{HUGE},{HUGE},3"], "the input"),
    (["summary", "--model", "lenet5", "--num-classes", str(10**12)], "the weight of Dense"),
])
def test_the_command_line_says_what_cannot_fit(tmp_path, capsys, argv, what):
    pytest.importorskip("PIL")
    pytest.importorskip("matplotlib")
    output = ["-o", str(tmp_path / "o.png")] if argv[0] != "summary" else []
    assert main([*argv, *output]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"convolve {argv[0]}: error: {what} of shape (") and \
        "bytes" in err and "more than this machine's memory" in err and err.count("\n") == 1
    assert not (tmp_path / "o.png").exists()
