"""Padding row block by row block (``pad_rows``, ``pad_columns``), as the filters do, against
padding the whole image, in every mode, for any run of padded rows."""

import numpy as np
import pytest

from convolve.ops.pad import border_columns, pad, pad_columns, pad_rows
from tests.strategies import MODES


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("h, w", [(5, 4), (1, 3), (7, 1), (9, 9)])
def test_blocks_of_padded_rows_equal_the_padded_image(mode, h, w):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((h, w, 2))
    limit = {"reflect": 1, "circular": 0, "symmetric": 0}.get(mode)
    widest = (h - limit, w - limit) if limit is not None else (h + 2, w + 2)
    for pads in (((0, 0), (0, 0)), ((1, 2), (2, 1)), ((widest[0], 0), (0, widest[1])),
                 ((widest[0],) * 2, (widest[1],) * 2)):
        if min(np.ravel(pads)) < 0:
            continue
        expected = pad(x[None], pads, mode)[0]
        (top, bottom), (left, right) = pads
        columns = border_columns(w, (left, right), mode)
        for step in (1, 2, 3):
            for start in range(expected.shape[0]):
                rows = range(start, expected.shape[0], step)
                out = np.full((len(rows), *expected.shape[1:]), np.nan)
                pad_rows(x, rows, (top, bottom), mode, out[:, left:left + w])
                pad_columns(out, columns)
                np.testing.assert_array_equal(out, expected[start::step])
