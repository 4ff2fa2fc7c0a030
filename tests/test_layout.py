"""The code's layout: every file under convolve/ops names its one job in its first
docstring line and stays within 350 lines; nn/module.py and nn/summary.py do not import
each other in a circle."""

import ast
import pathlib

import pytest

import convolve

ROOT = pathlib.Path(convolve.__file__).parent
OPS = sorted((ROOT / "ops").rglob("*.py"))


@pytest.mark.parametrize("path", OPS, ids=lambda p: str(p.relative_to(ROOT)))
def test_ops_files_do_one_named_job_within_350_lines(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 350
    docstring = ast.get_docstring(ast.parse(text))
    assert docstring and docstring.splitlines()[0].strip()


def _runtime_imports(path):
    """Modules imported when the file runs (not those under ``if TYPE_CHECKING``)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.ImportFrom) and sub.module:
                names.add(sub.module)
            elif isinstance(sub, ast.Import):
                names.update(alias.name for alias in sub.names)
    return names


def test_module_and_summary_do_not_import_each_other():
    module = _runtime_imports(ROOT / "nn" / "module.py")
    summary = _runtime_imports(ROOT / "nn" / "summary.py")
    assert not ("convolve.nn.summary" in module and "convolve.nn.module" in summary)
