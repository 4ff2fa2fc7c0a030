"""``convolve filter`` and ``convolve featuremaps`` end to end, into a temporary folder."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convolve import filters, io
from convolve.cli import main
from tests.test_viz import grid_size

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fails(capsys, *argv):
    """Run a command that must fail: exit code 2, one line on stderr; returns the line."""
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


def pixels(path):
    with Image.open(path) as image:
        return np.asarray(image)


@pytest.fixture(scope="module")
def camera():
    return io.sample_image("camera")


@pytest.fixture
def colour_file(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = tmp_path / "colour.png"
    Image.fromarray(rgb).save(path)
    return path


def expected_pixels(result, normalize=False):
    unit = io.scale_to_unit(result, normalize) if normalize else result.astype(np.float64)
    return np.rint(np.clip(unit, 0, 1) * 255).astype(np.uint8)


def test_filter_edge_map_of_the_shipped_photograph(tmp_path, capsys, camera):
    out = tmp_path / "edges.png"
    code, stdout, err = run(capsys, "filter", "sample:camera", "-k", "sobel", "-o", out)
    assert (code, err) == (0, "")
    assert stdout == f"wrote {out} (256x256)\n"
    np.testing.assert_array_equal(pixels(out), expected_pixels(filters.apply(camera, "sobel")))


def test_filter_blur_with_parameters_and_mode(tmp_path, capsys, camera):
    out = tmp_path / "blur.png"
    assert run(capsys, "filter", "sample:camera", "-k", "gaussian_blur", "--sigma", "2",
               "--mode", "symmetric", "-o", out)[0] == 0
    k = filters.kernel("gaussian_blur", sigma=2)
    np.testing.assert_array_equal(
        pixels(out), expected_pixels(filters.apply(camera, k, mode="symmetric")))
    out = tmp_path / "unsharp.png"
    assert run(capsys, "filter", "sample:camera", "-k", "unsharp_mask", "--amount", "2",
               "--sigma", "1.5", "-o", out)[0] == 0
    k = filters.kernel("unsharp_mask", amount=2, sigma=1.5)
    np.testing.assert_array_equal(pixels(out), expected_pixels(filters.apply(camera, k)))
    assert run(capsys, "filter", "sample:camera", "-k", "box_blur", "--size", "5", "-o",
               tmp_path / "box.png")[0] == 0


def test_filter_colour_file_keeps_size_and_colour(tmp_path, capsys, colour_file):
    for name in ("out.png", "out.jpg"):
        out = tmp_path / name
        assert run(capsys, "filter", colour_file, "-k", "sharpen", "-o", out)[0] == 0
        with Image.open(out) as image:
            assert image.size == (40, 30) and image.mode == "RGB"


def test_filter_kernel_text_and_file(tmp_path, capsys, camera):
    out = tmp_path / "text.png"
    assert run(capsys, "filter", "sample:camera", "--kernel", " 1, 0,-1; 2,0,-2;1,0,-1 ",
               "--normalize", "-o", out)[0] == 0
    mirrored = -filters.kernel("sobel_x")
    np.testing.assert_array_equal(
        pixels(out), expected_pixels(filters.apply(camera, mirrored), "minmax"))
    kernel_file = tmp_path / "k.npy"
    np.save(kernel_file, np.array([[0, 1], [1, 0]]))  # integers are fine for a kernel
    out = tmp_path / "file.png"
    assert run(capsys, "filter", "sample:camera", "--kernel-file", kernel_file,
               "--normalize-symmetric", "--mode", "zeros", "-o", out)[0] == 0
    result = filters.apply(camera, np.array([[0.0, 1], [1, 0]]), mode="zeros")
    np.testing.assert_array_equal(pixels(out), expected_pixels(result, "symmetric"))


def test_signed_edges_are_mid_grey_on_flat_ground(tmp_path, capsys):
    out = tmp_path / "sx.png"
    assert run(capsys, "filter", "sample:camera", "-k", "sobel_x", "--normalize-symmetric",
               "-o", out)[0] == 0
    assert abs(np.median(pixels(out)) - 128) <= 3


def test_featuremaps_kernel_bank(tmp_path, capsys):
    out = tmp_path / "grid.png"
    code, stdout, err = run(capsys, "featuremaps", "sample:camera", "--kernels",
                            "sobel_x,sobel_y,laplacian", "-o", out)
    assert (code, err) == (0, "")
    assert stdout == f"wrote {out}: 3 feature maps of 256x256\n"
    with Image.open(out) as image:
        assert image.size == grid_size(3, 256, title=True)
    assert run(capsys, "featuremaps", "sample:camera", "--kernels",
               "sobel, gaussian_blur,emboss,outline,identity", "--tile", "100", "--columns",
               "5", "--scale", "shared", "--mode", "zeros", "-o", out)[0] == 0
    with Image.open(out) as image:
        assert image.size == grid_size(5, 100, columns=5, title=True, bar=True)


def test_featuremaps_colour_image_goes_grey(tmp_path, capsys, colour_file):
    out = tmp_path / "grid.png"
    assert run(capsys, "featuremaps", colour_file, "--kernels", "sobel_x,sobel_y", "--tile",
               "64", "-o", out)[0] == 0
    with Image.open(out) as image:
        assert image.size == grid_size(2, 64, aspect=30 / 40, title=True)


def test_featuremaps_from_checkpoints(tmp_path, capsys, colour_file):
    rng = np.random.default_rng(1)
    ckpt = tmp_path / "w.npz"
    np.savez(ckpt, conv10=rng.standard_normal((3, 3, 6, 8)).astype(np.float32),
             conv2=rng.standard_normal((5, 5, 3, 6)).astype(np.float32),
             bias=np.zeros(6, np.float32), conv1=rng.standard_normal((3, 3, 1, 4)))
    out = tmp_path / "g.png"
    code, stdout, _ = run(capsys, "featuremaps", "sample:camera", "--checkpoint", ckpt,
                          "--tile", "64", "-o", out)
    assert code == 0 and "4 feature maps of 256x256" in stdout  # conv1, the first 4-D
    with Image.open(out) as image:
        assert image.size == grid_size(4, 64, title=True)
    code, stdout, _ = run(capsys, "featuremaps", colour_file, "--checkpoint", ckpt,
                          "--layer", "1", "--tile", "64", "-o", out)
    assert code == 0 and "6 feature maps of 40x30" in stdout  # conv2 before conv10
    with Image.open(out) as image:
        assert image.size == grid_size(6, 64, aspect=30 / 40, title=True)
    code, stdout, _ = run(capsys, "featuremaps", "sample:camera", "--checkpoint", ckpt,
                          "--key", "conv2", "--tile", "64", "-o", out)
    assert code == 0 and "6 feature maps of 256x256" in stdout  # grey repeated as RGB


def test_featuremaps_from_safetensors_and_convolve_checkpoints(tmp_path, capsys):
    pytest.importorskip("safetensors")
    from safetensors.numpy import save_file

    from convolve import checkpoint

    weight = np.random.default_rng(2).standard_normal((3, 3, 1, 2)).astype(np.float32)
    path = tmp_path / "w.safetensors"
    save_file({"layers.0.weight": weight}, str(path))
    out = tmp_path / "g.png"
    code, stdout, _ = run(capsys, "featuremaps", "sample:camera", "--checkpoint", path,
                          "--tile", "64", "-o", out)
    assert code == 0 and "2 feature maps" in stdout
    for suffix in (".npz", ".safetensors"):
        saved = checkpoint.save(tmp_path / f"model{suffix}", {"conv.weight": weight},
                                {"epoch": 3})
        code, stdout, _ = run(capsys, "featuremaps", "sample:camera", "--checkpoint", saved,
                              "--tile", "64", "-o", out)
        assert code == 0 and "2 feature maps" in stdout


@pytest.mark.parametrize("command", ["filter", "featuremaps"])
def test_help(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: convolve {command}") and "sample:camera" in out


def test_filter_errors(tmp_path, capsys):
    out = tmp_path / "o.png"
    line = fails(capsys, "filter", tmp_path / "none.png", "-k", "sobel", "-o", out)
    assert line == f"convolve filter: error: image file not found: {tmp_path / 'none.png'}"
    text = tmp_path / "text.png"
    text.write_text("hello")
    line = fails(capsys, "filter", text, "-k", "sobel", "-o", out)
    assert line == (f"convolve filter: error: cannot read {text}: not an image file that "
                    "Pillow can decode")
    assert fails(capsys, "filter", "sample:camera", "-k", "blurry", "-o", out).startswith(
        "convolve filter: error: unknown kernel 'blurry'; known kernels: identity, box_blur")
    assert fails(capsys, "filter", "sample:moon", "-k", "sobel", "-o", out) == (
        "convolve filter: error: unknown sample image 'moon'; available: camera")
    for text_kernel in ("1,2;3", "a,b", "", "1,,2", "1;nan"):
        assert fails(capsys, "filter", "sample:camera", "--kernel", text_kernel, "-o",
                     out) == (
            "convolve filter: error: --kernel must be rows separated by ';', numbers by ',', "
            "e.g. '1,0,-1;2,0,-2;1,0,-1', all rows the same length; received "
            f"{text_kernel!r}")
    cube = tmp_path / "cube.npy"
    np.save(cube, np.ones((3, 3, 3)))
    assert fails(capsys, "filter", "sample:camera", "--kernel-file", cube, "-o", out) == (
        "convolve filter: error: --kernel-file must hold a 2-D array (KH, KW); received an "
        f"array of shape (3, 3, 3) in {cube}")
    assert fails(capsys, "filter", "sample:camera", "--kernel-file", tmp_path / "no.npy",
                 "-o", out) == (
        f"convolve filter: error: kernel file not found: {tmp_path / 'no.npy'}")
    archive = tmp_path / "k.npz"
    np.savez(archive, k=np.ones((3, 3)))
    assert fails(capsys, "filter", "sample:camera", "--kernel-file", archive, "-o", out) == (
        "convolve filter: error: --kernel-file must be a .npy file holding one 2-D array; "
        f"received an .npz archive: {archive}")
    assert fails(capsys, "filter", "sample:camera", "--kernel-file", text, "-o", out) == (
        f"convolve filter: error: kernel file {text} is neither a .npy array nor a .npz "
        "archive of arrays (a pickle is refused)")
    assert fails(capsys, "filter", "sample:camera", "--kernel", "1", "--sigma", "2", "-o",
                 out) == ("convolve filter: error: --sigma, --size and --amount apply only "
                          "to a named kernel (-k NAME)")
    assert fails(capsys, "filter", "sample:camera", "-k", "sobel", "--sigma", "2", "-o",
                 out) == ("convolve filter: error: kernel 'sobel' takes no parameters; "
                          "received sigma")
    assert fails(capsys, "filter", "sample:camera", "-k", "box_blur", "--sigma", "2", "-o",
                 out) == ("convolve filter: error: kernel 'box_blur' takes parameters size; "
                          "received sigma")
    assert fails(capsys, "filter", "sample:camera", "-k", "gaussian_blur", "--sigma", "-1",
                 "-o", out) == (
        "convolve filter: error: sigma must be a finite number > 0; received -1.0")
    assert fails(capsys, "filter", "sample:camera", "-k", "sobel", "--mode", "wrap", "-o",
                 out) == ("convolve filter: error: mode must be one of 'zeros', 'reflect', "
                          "'replicate', 'circular', 'symmetric'; received 'wrap'")
    assert fails(capsys, "filter", "sample:camera", "-k", "sobel", "-o",
                 tmp_path / "o.xyz") == (
        f"convolve filter: error: cannot write {tmp_path / 'o.xyz'}: unknown file extension: "
        ".xyz (use a suffix such as .png or .jpg)")
    assert not out.exists()


def test_featuremaps_errors(tmp_path, capsys):
    out = tmp_path / "g.png"
    assert fails(capsys, "featuremaps", tmp_path / "none.png", "--kernels", "sobel", "-o",
                 out) == f"convolve featuremaps: error: image file not found: " \
                         f"{tmp_path / 'none.png'}"
    assert fails(capsys, "featuremaps", "sample:camera", "--kernels", "sobel_x,nope", "-o",
                 out).startswith("convolve featuremaps: error: unknown kernel 'nope'")
    assert fails(capsys, "featuremaps", "sample:camera", "--kernels", "sobel_x,,laplacian",
                 "-o", out) == ("convolve featuremaps: error: --kernels must be "
                                "comma-separated kernel names; received 'sobel_x,,laplacian'")
    assert fails(capsys, "featuremaps", "sample:camera", "--kernels", "sobel", "--scale",
                 "global", "-o", out) == (
        "convolve featuremaps: error: --scale must be one of 'per-tile', 'shared'; received "
        "'global'")
    assert fails(capsys, "featuremaps", "sample:camera", "--kernels", "sobel", "--layer", "1",
                 "-o", out) == ("convolve featuremaps: error: --key, --layer and --weights "
                                "apply only with --checkpoint (--layer also with --model)")
    missing = tmp_path / "none.npz"
    assert fails(capsys, "featuremaps", "sample:camera", "--checkpoint", missing, "-o",
                 out) == f"convolve featuremaps: error: checkpoint file not found: {missing}"
    assert fails(capsys, "featuremaps", "sample:camera", "--checkpoint", tmp_path / "w.pt",
                 "-o", out) == ("convolve featuremaps: error: --checkpoint must be a .npz or "
                                f".safetensors file; received {tmp_path / 'w.pt'}")
    for damaged in (tmp_path / "bad.npz", tmp_path / "bad.safetensors"):
        damaged.write_bytes(b"\x00garbage" * 10)
        assert fails(capsys, "featuremaps", "sample:camera", "--checkpoint", damaged, "-o",
                     out).startswith(f"convolve featuremaps: error: checkpoint "
                                     f"{str(damaged)!r} is damaged or not a "
                                     f"{damaged.suffix[1:]} file (")
    ckpt = tmp_path / "w.npz"
    np.savez(ckpt, deep=np.ones((3, 3, 6, 2)), bias=np.zeros(2), count=np.ones((3, 3, 1, 2),
                                                                                  int))
    assert fails(capsys, "featuremaps", "sample:camera", "--checkpoint", ckpt, "--key",
                 "conv", "-o", out) == (
        f"convolve featuremaps: error: --key 'conv' is not in {ckpt}; it holds bias, count, "
        "deep")
    assert fails(capsys, "featuremaps", "sample:camera", "--checkpoint", ckpt, "--key",
                 "bias", "-o", out) == (
        "convolve featuremaps: error: --key 'bias' must name a conv weight (KH, KW, C_in, "
        "C_out); received an array of shape (2,)")
    assert fails(capsys, "featuremaps", "sample:camera", "--checkpoint", ckpt, "--layer", "2",
                 "-o", out) == (
        f"convolve featuremaps: error: --layer 2 is out of range: {ckpt} holds 2 4-D arrays "
        "(count, deep)")
    assert fails(capsys, "featuremaps", "sample:camera", "--checkpoint", ckpt, "--key",
                 "deep", "-o", out) == (
        "convolve featuremaps: error: deep of shape (3, 3, 6, 2) takes 6 input channels, but "
        "an image has 1 or 3; choose a first-layer weight with --key or --layer")
    assert fails(capsys, "featuremaps", "sample:camera", "--checkpoint", ckpt, "-o",
                 out) == ("convolve featuremaps: error: count must be a floating-point conv "
                          "weight; received dtype int64")
    empty = tmp_path / "empty.npz"
    np.savez(empty, w=np.ones((3, 3, 1, 0), np.float32))
    assert fails(capsys, "featuremaps", "sample:camera", "--checkpoint", empty, "-o",
                 out) == "convolve featuremaps: error: w of shape (3, 3, 1, 0) holds no filters"
    assert not out.exists()


def test_a_real_process_prints_one_line_and_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "convolve", "filter", str(tmp_path / "none.png"), "-k",
         "sobel", "-o", str(tmp_path / "o.png")],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr == (f"convolve filter: error: image file not found: "
                             f"{tmp_path / 'none.png'}\n")
