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
        c.TagRemovePreprocessor.remove_cell_tags = ("injected-parameters", "parameters")
        exporter = HTMLExporter(config=c, template_name=TEMPLATE, extra_template_basedirs=[str(template_dir())],
                                exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
        exporter.register_preprocessor(TagRemovePreprocessor(config=c), enabled=True)
        _exporter = exporter
    return _exporter


def notebook_to_html(notebook: Path, html: Path) -> Path:
    """Write ``html`` next to the executed ``notebook``: one self-contained file, nothing remote."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    body, _ = _html_exporter().from_notebook_node(nb)
    html.write_text(body, encoding="utf-8")
    return html
