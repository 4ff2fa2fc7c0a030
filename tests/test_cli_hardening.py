"""Command-line edges: a decompression bomb, one suffix rule for every image written, and
values that start with "-"."""

import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from convolve import io, viz
from convolve.cli import main

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("matplotlib")


def fails(capsys, *argv):
    """Run a command that must fail: exit code 2, one line on stderr; returns the line."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


def png_declaring(width, height):
    """A PNG whose header declares ``width x height`` pixels (its data is one empty
    chunk): tiny on disk, huge once decoded."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_one_line(tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(60000, 60000))
    with pytest.raises(ValueError, match=r"^cannot read .*bomb\.png: Image size \(3600000000 "
                                         r"pixels\) exceeds limit"):
        io.read_image(bomb)
    for command in (["filter", bomb, "-k", "sobel"], ["featuremaps", bomb, "--kernels",
                                                      "sobel"]):
        line = fails(capsys, *command, "-o", tmp_path / "out.png")
        assert line.startswith(f"convolve {command[0]}: error: cannot read {bomb}: Image size")
    assert not (tmp_path / "out.png").exists()


def test_the_bomb_from_a_shell():
    """The real command line: exit status 2, no traceback."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        bomb = Path(folder) / "bomb.png"
        bomb.write_bytes(png_declaring(60000, 60000))
        done = subprocess.run([sys.executable, "-m", "convolve", "filter", str(bomb), "-k",
                               "sobel", "-o", str(Path(folder) / "o.png")],
                              capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr and "DecompressionBomb" not in done.stderr


# ---- one suffix rule for every image written


@pytest.mark.parametrize("name", ["g.xyz", "g", "g.npz"])
@pytest.mark.parametrize("command", [["filter", "-k", "sobel"], ["featuremaps", "--kernels",
                                                                 "sobel"]])
def test_every_command_refuses_an_unknown_suffix_first(tmp_path, capsys, command, name):
    """Before reading the input (here a missing file), with the same words."""
    out = tmp_path / name
    suffix = out.suffix or "(none)"
    assert fails(capsys, command[0], tmp_path / "missing.png", *command[1:], "-o", out) == (
        f"convolve {command[0]}: error: cannot write {out}: unknown file extension: {suffix} "
        "(use a suffix such as .png or .jpg)")
    assert not out.exists()


@pytest.mark.parametrize("suffix, kind", [(".png", "PNG"), (".JPG", "JPEG"), (".bmp", "BMP"),
                                          (".tif", "TIFF"), (".webp", "WEBP")])
def test_both_commands_write_the_format_the_suffix_names(tmp_path, capsys, suffix, kind):
    assert io.image_format(f"x{suffix}") == kind
    for command in (["filter", "sample:camera", "-k", "sobel"],
                    ["featuremaps", "sample:camera", "--kernels", "sobel,laplacian",
                     "--tile", "64"]):
        out = tmp_path / f"{command[0]}{suffix}"
        assert main([*command, "-o", str(out)]) == 0
        with Image.open(out) as image:
            assert image.format == kind
    capsys.readouterr()


def test_pictures_follow_the_same_rule(tmp_path):
    with pytest.raises(ValueError, match=r"^cannot write .*h\.xyz: unknown file extension: "
                                         r"\.xyz \(use a suffix such as \.png or \.jpg\)$"):
        viz.plot_history({"loss": [1.0, 0.5]}, tmp_path / "h.xyz")
    path = viz.plot_history({"loss": [1.0, 0.5]}, tmp_path / "h.jpg", size=(320, 240))
    with Image.open(path) as image:
        assert image.format == "JPEG" and image.size == (320, 240)
    path = viz.plot_feature_maps(np.ones((8, 8, 2)), tmp_path / "m.png", tile=40)
    with Image.open(path) as image:
        # two 40-pixel tiles: 34-pixel maps under a 14-pixel label band (viz's layout)
        assert image.format == "PNG" and image.size == (80, 54) and image.mode == "RGB"


# ---- values that start with "-"


def test_a_negative_shape_reaches_the_command(capsys):
    for argv in (["--input-shape", "-1,5,5,3"], ["--input-shape=-1,5,5,3"]):
        assert fails(capsys, "explain", *argv, "--weight-shape", "3,3,3,8") == (
            "convolve explain: error: input_shape must hold sizes >= 0; received "
            "(-1, 5, 5, 3)")


def test_a_kernel_that_starts_with_a_minus(tmp_path, capsys):
    out = tmp_path / "k.png"
    assert main(["filter", "sample:camera", "--kernel", "-1,0,1;-2,0,2;-1,0,1", "-o",
                 str(out)]) == 0
    assert out.exists()
    capsys.readouterr()


def test_a_missing_value_says_how_to_pass_one_that_starts_with_a_minus(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", "--input-shape", "5,5,3", "--weight-shape", "3,3,3,8", "--padding",
              "-x"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "convolve explain: error: argument --padding: expected one argument (attach a value "
        "that starts with '-' with '=', e.g. --option=-VALUE) (see convolve explain --help)\n")
