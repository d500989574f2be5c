"""Render executed notebooks to standalone HTML, inputs hidden, readable without Jupyter.

The page must open offline and make no outbound request: it uses the package's ``offline``
nbconvert template (``templates/nbconvert/offline``), the lab template minus the require.js,
MathJax and mermaid scripts it would load from cdnjs. Styles are inline and charts are embedded
PNGs, so the one file is the whole report.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from typing import TYPE_CHECKING

from traitlets.config import Config

if TYPE_CHECKING:
    from nbconvert import HTMLExporter

TEMPLATE = "offline"
PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"
_exporter: HTMLExporter | None = None


def template_dir() -> Path:
    """The folder holding the package's nbconvert templates."""
    return Path(str(resources.files("loyalty_toolkit").joinpath("templates", "nbconvert")))


def _html_exporter() -> HTMLExporter:
    global _exporter
    if _exporter is None:
        # imported on first use: every CLI command imports the runner, few render a notebook
        from nbconvert import HTMLExporter
        from nbconvert.preprocessors import TagRemovePreprocessor

        c = Config()
        c.TagRemovePreprocessor.enabled = True
        # papermill's red "An Exception was encountered" cells: the page shows a plain failure box instead
        c.TagRemovePreprocessor.remove_cell_tags = ("injected-parameters", "parameters", PAPERMILL_ERROR_TAG)
        exporter = HTMLExporter(config=c, template_name=TEMPLATE, extra_template_basedirs=[str(template_dir())],
                                exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
        exporter.register_preprocessor(TagRemovePreprocessor(config=c), enabled=True)
        _exporter = exporter
    return _exporter


def notebook_to_html(notebook: Path, html: Path, failure: str | None = None) -> Path:
    """Write ``html`` next to the executed ``notebook``: one self-contained file, nothing remote.

    A reviewer never reads a Python traceback: an error output becomes ``failure`` (a plain box,
    HTML) where the notebook stopped, or disappears; the traceback stays in the ``.ipynb`` and the
    stage log for engineers.
    """
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    without_tracebacks(nb, failure)
    body, _ = _html_exporter().from_notebook_node(nb)
    html.write_text(body, encoding="utf-8")
    return html


def without_tracebacks(nb, failure: str | None) -> None:
    """Replace every error output of ``nb`` (in place) by the ``failure`` box, or drop it; the box
    also opens the page, under its title, so a reader sees it before scrolling."""
    from nbformat.v4 import new_code_cell, new_output

    stopped = False
    for cell in nb.cells:
        outputs = cell.get("outputs") or []
        if not any(o.get("output_type") == "error" for o in outputs):
            continue
        stopped = True
        cell["outputs"] = [o if o.get("output_type") != "error" else
                           new_output("display_data", data={"text/html": failure, "text/plain": "stage failed"})
                           for o in outputs if o.get("output_type") != "error" or failure]
    if stopped and failure:
        first = next((i + 1 for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                      and PAPERMILL_ERROR_TAG not in c.get("metadata", {}).get("tags", [])), 0)
        nb.cells.insert(first, new_code_cell("", outputs=[
            new_output("display_data", data={"text/html": failure, "text/plain": "stage failed"})]))
