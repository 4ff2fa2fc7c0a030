"""explain() answers in closed form: the same numbers as counting window by window, and at
once for sizes no loop over output pixels could count."""

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import convolve
from convolve.cli import main
from convolve.shapes import _floor_sum


def windows_in_padding_by_counting(n, k, s, d, p0, p1):
    """The definition: output positions none of whose taps falls on the input."""
    e = d * (k - 1) + 1
    out = (n + p0 + p1 - e) // s + 1
    return sum(not any(p0 <= t < p0 + n for t in range(i * s, i * s + e, d))
               for i in range(out))


@settings(max_examples=300, deadline=None)
@given(count=st.integers(0, 40), m=st.integers(1, 30), a=st.integers(-100, 100),
       b=st.integers(-200, 200))
def test_floor_sum(count, m, a, b):
    assert _floor_sum(count, m, a, b) == sum((a * i + b) // m for i in range(count))


@settings(max_examples=300, deadline=None)
@given(h=st.integers(1, 14), w=st.integers(0, 14), kh=st.integers(1, 5), kw=st.integers(1, 5),
       s=st.tuples(st.integers(1, 5), st.integers(1, 5)),
       d=st.tuples(st.integers(1, 7), st.integers(1, 7)),
       pads=st.tuples(*[st.integers(0, 16)] * 4))
def test_windows_in_padding_match_the_definition(h, w, kh, kw, s, d, pads):
    top, bottom, left, right = pads
    assume(h + top + bottom >= d[0] * (kh - 1) + 1)
    assume(w + left + right >= d[1] * (kw - 1) + 1)
    result = convolve.explain((h, w, 2), (kh, kw, 2, 3), stride=s, dilation=d,
                              padding=((top, bottom), (left, right)))
    assert result.height.windows_in_padding == windows_in_padding_by_counting(
        h, kh, s[0], d[0], top, bottom)
    assert result.width.windows_in_padding == windows_in_padding_by_counting(
        w, kw, s[1], d[1], left, right)


@pytest.mark.parametrize("argv, expected", [
    (["--input-shape", "10,1000000000,3", "--weight-shape", "3,3,3,8"],
     "conv2d (10, 1000000000, 3) -> (8, 999999998, 8)\n"
     "  height: input 10, kernel 3 (dilation 1, spans 3), stride 1, pad 0+0 -> output 8\n"
     "  width: input 1000000000, kernel 3 (dilation 1, spans 3), stride 1, pad 0+0 -> "
     "output 999999998\n"),
    (["--input-shape", "3,5,1", "--weight-shape", "2,2,1,1", "--padding", "1000000000",
      "--dilation", "7"],
     "conv2d (3, 5, 1) -> (1999999996, 1999999998, 1)\n"
     "  height: input 3, kernel 2 (dilation 7, spans 8), stride 1, pad 1000000000+1000000000"
     " -> output 1999999996; 1999999990 window(s) lie entirely in padding\n"
     "  width: input 5, kernel 2 (dilation 7, spans 8), stride 1, pad 1000000000+1000000000"
     " -> output 1999999998; 1999999988 window(s) lie entirely in padding\n"),
])
def test_huge_sizes_are_explained_at_once(argv, expected, capsys):
    assert main(["explain", *argv]) == 0
    assert capsys.readouterr().out == expected
