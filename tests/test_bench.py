"""The benchmark report and the ``convolve bench`` command's arguments (no timings)."""

import pytest

from convolve.cli import main
from convolve.perf import report
from convolve.perf.timing import geomean, time_interleaved


def test_geomean_and_interleaved_timing():
    assert geomean([2.0, 8.0]) == pytest.approx(4.0)
    calls = []
    best = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                            rounds=2, calls=2, pause=0)
    assert set(best) == {"a", "b"} and all(v >= 0 for v in best.values())
    assert calls == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3


def test_conv_table_has_ratios_and_geometric_mean():
    rows = [{"shape": "s1", "convolve": 0.002, "torch": 0.001, "ratio": 0.5},
            {"shape": "s2", "convolve": 0.001, "torch": 0.002, "ratio": 2.0}]
    text = report.conv_table(rows, rows)
    assert "| s1 | 2 | 1 | 0.50x | 2 | 1 | 0.50x |" in text
    assert text.splitlines()[-1].startswith("| geometric mean |")
    assert "1.00x" in text.splitlines()[-1]


def test_filter_table_without_some_peers():
    rows = [{"kernel": "3x3 gaussian", "convolve": 0.01, "scipy": 0.03}]
    text = report.filter_table(rows)
    assert "scipy / convolve" in text and "opencv" not in text and "3.00x" in text


@pytest.mark.parametrize("argv, message", [
    (["bench", "--rounds", "0"], "--rounds must be >= 1; received 0"),
    (["bench", "convs"], "SUITE must be one of conv, filter, pool; received 'convs'"),
])
def test_bench_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
