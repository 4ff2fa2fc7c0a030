"""glibc's malloc settings: import convolve leaves them (and BLAS's threads) alone; fit and
runtime.keep_freed_memory keep freed memory for reuse, unless CONVOLVE_KEEP_MEMORY=0."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="glibc's malloc settings")

CODE = """
import ctypes, json, sys
import numpy as np
from threadpoolctl import threadpool_info

class Info(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

def mapped(nbytes):
    # whether malloc maps a block of nbytes from the system (glibc's default above a few
    # MB) rather than serving it from its heap (the settings: up to 32 MB)
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = Info
    before = mallinfo2().hblkhd
    block = np.empty(nbytes, np.uint8)
    return mallinfo2().hblkhd - before >= nbytes

blas = threadpool_info()
import convolve
applied = None
if sys.argv[1] == "runtime":
    applied = convolve.runtime.keep_freed_memory()
elif sys.argv[1] == "fit":
    model = convolve.nn.Sequential([convolve.nn.Flatten(), convolve.nn.Dense(3)])
    model.build((2, 2, 1))
    convolve.fit(model, (np.zeros((4, 2, 2, 1), np.float32), np.zeros(4, int)),
                 verbose=False)
print(json.dumps(dict(blas=threadpool_info() == blas, mapped=mapped(16 << 20),
                      applied=applied)))
"""


def _run(how, env_value=None):
    env = dict(os.environ)
    env.pop("CONVOLVE_KEEP_MEMORY", None)
    if env_value is not None:
        env["CONVOLVE_KEEP_MEMORY"] = env_value
    out = subprocess.run([sys.executable, "-c", CODE, how], capture_output=True, text=True,
                         env=env)
    if "mallinfo2" in out.stderr:
        pytest.skip("the C library has no mallinfo2 (not glibc 2.33+)")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_import_changes_nothing_in_the_process():
    result = _run("import")
    assert result["blas"]  # BLAS libraries and their thread counts as before
    assert result["mapped"]  # malloc's own default for a 16 MB block


@pytest.mark.parametrize("how", ["runtime", "fit"])
def test_training_keeps_freed_memory(how):
    result = _run(how)
    if result["applied"] is False:
        pytest.skip("the C library has no mallopt (not glibc)")
    assert not result["mapped"]


@pytest.mark.parametrize("value", ["0", "false", "Off"])
def test_the_settings_can_be_left_alone(value):
    result = _run("runtime", value)
    assert result["applied"] is False
    assert result["mapped"]
