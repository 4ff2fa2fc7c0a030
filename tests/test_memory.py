"""import convolve keeps freed memory for reuse (glibc), unless CONVOLVE_KEEP_MEMORY=0."""

import os
import subprocess
import sys

import pytest

CODE = """
import resource, numpy as np, convolve
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    np.ones(2 << 20, np.float32)
before = faults()
for _ in range(10):
    np.ones(2 << 20, np.float32)  # 8 MB: 2,048 pages
print(convolve._memory.keep_freed_memory(), (faults() - before) // 10)
"""


def _run(env_value):
    env = dict(os.environ)
    env.pop("CONVOLVE_KEEP_MEMORY", None)
    if env_value is not None:
        env["CONVOLVE_KEEP_MEMORY"] = env_value
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         check=True, env=env)
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_large_arrays_reuse_freed_memory():
    applied, faults = _run(None)
    if not applied:
        pytest.skip("the C library has no mallopt (not glibc)")
    assert faults < 100


@pytest.mark.parametrize("value", ["0", "false", "Off"])
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_the_settings_can_be_left_alone(value):
    applied, _ = _run(value)
    assert not applied
