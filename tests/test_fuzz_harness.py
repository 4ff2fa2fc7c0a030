"""The differential fuzz harness (tests/fuzz_torch.py) runs, finds nothing on valid finite
inputs, and does catch a wrong op. The bounded fuzz tests of every op, edge inputs
included, build on it."""

import numpy as np
import pytest

pytest.importorskip("torch", reason="torch is not installed: fuzzing against it skipped")

import convolve
from tests import fuzz_torch


@pytest.mark.parametrize("op", list(fuzz_torch.OPS))
def test_valid_cases_match(op):
    assert fuzz_torch.fuzz(op, examples=8, seed_value=14) == 8


def test_float32_and_an_algorithm():
    assert fuzz_torch.fuzz("conv2d", dtype=np.float32, algorithm="winograd", examples=5,
                           seed_value=1) == 5


def test_the_time_bound_stops_checking():
    assert fuzz_torch.fuzz("max_pool2d", examples=50, seconds=0.0) == 0


def test_a_wrong_op_is_caught(monkeypatch):
    real = convolve.avg_pool2d
    monkeypatch.setattr(convolve, "avg_pool2d", lambda x, **kw: real(x, **kw) * 1.001)
    with pytest.raises(AssertionError, match="output"):
        fuzz_torch.fuzz("avg_pool2d", examples=20, seed_value=0)


def test_edges_put_non_finite_values_in_the_input():
    cases = fuzz_torch.with_edges(fuzz_torch.OPS["max_pool2d"].cases(np.float64, "auto"))
    from hypothesis import given, settings

    seen = []

    @settings(max_examples=20, deadline=None, database=None)
    @given(case=cases)
    def look(case):
        seen.append(np.isin(case.x, fuzz_torch.EDGE_VALUES).any()
                    or np.isnan(case.x).any())

    look()
    assert all(seen)
