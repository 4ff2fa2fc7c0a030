"""conv2d_output_shape and explain(): sizes answered without running the op."""

import pytest
from hypothesis import given, settings

import convolve
from convolve.cli import main
from tests.strategies import conv_cases


def test_seed_example_shape():
    assert convolve.conv2d_output_shape((32, 32, 3), (5, 5, 3, 6), padding="same") == (32, 32, 6)
    assert convolve.conv2d_output_shape((4, 32, 32, 3), (5, 5, 3, 6)) == (4, 28, 28, 6)


@settings(max_examples=50, deadline=None)
@given(case=conv_cases())
def test_output_shape_matches_the_op(case):
    kwargs = {k: v for k, v in case.kwargs.items() if k != "padding_mode"}
    y = convolve.conv2d(case.x, case.w, **kwargs)
    assert convolve.conv2d_output_shape(case.x.shape, case.w.shape, **kwargs) == y.shape


@pytest.mark.parametrize(
    "n, k, s, d, expected_pads, expected_out",
    [
        (32, 5, 1, 1, (2, 2), 32),
        (32, 5, 2, 1, (1, 2), 16),   # odd pixel bottom/right
        (7, 3, 2, 1, (1, 1), 4),
        (8, 3, 3, 1, (0, 1), 3),
        (10, 3, 1, 2, (2, 2), 10),
        (5, 1, 2, 1, (0, 0), 3),
    ],
)
def test_same_padding_follows_the_tensorflow_rule(n, k, s, d, expected_pads, expected_out):
    e = convolve.explain((n, n, 1), (k, k, 1, 1), stride=s, dilation=d, padding="same")
    assert (e.height.pad_before, e.height.pad_after) == expected_pads
    assert e.height.output == expected_out


def test_full_padding():
    e = convolve.explain((6, 6, 1), (3, 3, 1, 1), dilation=2, padding="full")
    assert (e.width.pad_before, e.width.pad_after, e.width.output) == (4, 4, 10)


def test_explain_reports_dropped_pixels_and_receptive_field():
    e = convolve.explain((1, 10, 11, 3), (3, 3, 3, 8), stride=(4, 4), dilation=(1, 2))
    assert e.output_shape == (1, 2, 2, 8)
    assert e.height.dropped == 3  # windows cover rows 0..6 of 10
    assert e.width.receptive_field == 5
    assert e.width.dropped == 2  # windows cover cols 0..8 of 11
    text = str(e)
    assert "3 input pixel(s) at the end never reached (floor)" in text
    assert "conv2d (1, 10, 11, 3) -> (1, 2, 2, 8)" in text


def test_explain_reports_windows_entirely_in_padding():
    e = convolve.explain((2, 2, 1), (1, 1, 1, 1), padding=2)
    assert e.height.output == 6
    assert e.height.windows_in_padding == 4
    assert "4 window(s) lie entirely in padding" in str(e)
    assert convolve.explain((8, 8, 1), (3, 3, 1, 1), padding="same").height.windows_in_padding == 0


def test_explain_validates_like_the_op():
    with pytest.raises(ValueError, match="the kernel is larger than the padded input"):
        convolve.explain((2, 2, 1), (3, 3, 1, 1))


@pytest.mark.parametrize("fn", [convolve.explain, convolve.conv2d_output_shape])
def test_shapes_must_be_tuples_of_sizes(fn):
    with pytest.raises(ValueError, match=r"^input_shape must hold sizes >= 0; received "
                                         r"\(32, -32, 3\)$"):
        fn((32, -32, 3), (5, 5, 3, 6))
    with pytest.raises(TypeError, match=r"^weight_shape must be a tuple of ints; received "
                                        r"\(5, 5.0, 3, 6\)$"):
        fn((32, 32, 3), (5, 5.0, 3, 6))
    with pytest.raises(TypeError, match=r"^input_shape must be a tuple of ints; received 32$"):
        fn(32, (5, 5, 3, 6))


def test_cli_explain(capsys):
    assert main(["explain", "--input-shape", "32,32,3", "--weight-shape", "5,5,3,6",
                 "--padding", "same"]) == 0
    assert "-> (32, 32, 6)" in capsys.readouterr().out
    assert main(["explain", "--input-shape", "32,32,3", "--weight-shape", "5,5,3,6",
                 "--padding", "SAME"]) == 0
    assert "-> (32, 32, 6)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--input-shape", "32,x"], "--input-shape must be comma-separated integers; received '32,x'"),
    (["--input-shape", "3,3,3", "--padding", "1,2,3"],
     "--padding must be one integer or two; received '1,2,3'"),
    (["--input-shape", "2,2,3"], "the kernel is larger than the padded input"),
    (["--input-shape", "32,-32,3"], "input_shape must hold sizes >= 0; received (32, -32, 3)"),
])
def test_cli_explain_errors_are_one_line(capsys, argv, message):
    base = ["explain", "--input-shape", "32,32,3", "--weight-shape", "5,5,3,6"]
    assert main(base + argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_python_dash_m_runs():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "convolve", "--help"], capture_output=True,
                         text=True, check=True)
    assert "usage: convolve" in out.stdout
