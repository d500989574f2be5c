"""Notebooks narrate: committed without outputs, a parameters cell, calls into the package only."""

from __future__ import annotations

import ast

import nbformat
import pytest

from loyalty_toolkit.model import notebook_name, notebooks_dir
from loyalty_toolkit.runner import PIPELINE

NOTEBOOKS = sorted(notebooks_dir().glob("*.ipynb"))


def test_every_pipeline_stage_has_a_notebook():
    assert {p.stem for p in NOTEBOOKS} >= {notebook_name(s) for s in PIPELINE}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_clean_and_narrative(path):
    nb = nbformat.read(str(path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit without outputs"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    names = {t.id for node in ast.walk(ast.parse(params[0].source)) if isinstance(node, ast.Assign) for t in node.targets}
    assert names == {"config_path", "run_dir", "show_pii"}
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# Stage")
    for cell in code:
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)), \
                "no function definitions in a notebook"
            if isinstance(node, (ast.For, ast.While, ast.If)):
                pytest.fail("no logic in a notebook: loops and branches belong in the package")
            if isinstance(node, ast.ImportFrom):
                assert node.module.startswith("loyalty_toolkit"), node.module
    assert nb.metadata["kernelspec"]["name"] == "python3"
