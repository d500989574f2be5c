"""Render executed notebooks to standalone HTML, inputs hidden, readable without Jupyter."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor
from traitlets.config import Config

_exporter: HTMLExporter | None = None


def _html_exporter() -> HTMLExporter:
    global _exporter
    if _exporter is None:
        c = Config()
        c.TagRemovePreprocessor.enabled = True
        c.TagRemovePreprocessor.remove_cell_tags = ("injected-parameters", "parameters")
        exporter = HTMLExporter(config=c, template_name="lab", exclude_input=True, exclude_input_prompt=True,
                                exclude_output_prompt=True)
        exporter.register_preprocessor(TagRemovePreprocessor(config=c), enabled=True)
        _exporter = exporter
    return _exporter


def notebook_to_html(notebook: Path, html: Path) -> Path:
    """Write ``html`` next to the executed ``notebook``; math and widgets are not used, so it is offline."""
    nb = nbformat.read(str(notebook), as_version=4)
    body, _ = _html_exporter().from_notebook_node(nb)
    html.write_text(body, encoding="utf-8")
    return html
