"""Stage notebooks render to one offline HTML file: no CDN script, charts and tables kept."""

from __future__ import annotations

import base64

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from loyalty_toolkit.runner.offline import page_problems
from loyalty_toolkit.runner.render import notebook_to_html

# A 1x1 PNG: what charts.bar leaves in a cell, in miniature.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")).decode()


def test_rendered_notebook_loads_nothing_remote_and_keeps_charts_and_tables(tmp_path):
    nb = new_notebook(cells=[
        new_markdown_cell("# Stage 01 — Members\n\nSee [the docs](https://example.org/guide)."),
        new_code_cell("show_pii = False", metadata={"tags": ["parameters"]}),
        new_code_cell("charts.bar(by_reason)", outputs=[new_output("display_data", data={"image/png": PNG,
                                                                                          "text/plain": "<Figure>"})]),
        new_code_cell("outcome.counts()", execution_count=3, outputs=[new_output(
            "execute_result", execution_count=3,
            data={"text/html": "<table class='dataframe'><tr><th>rows</th></tr><tr><td>42</td></tr></table>",
                  "text/plain": "rows 42"})]),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    src = tmp_path / "01_members.ipynb"
    nbformat.write(nb, str(src))
    out = notebook_to_html(src, tmp_path / "01_members.html")
    text = out.read_text(encoding="utf-8")
    assert page_problems(out) == []
    assert "<script" not in text and "cdnjs" not in text and "mathjax" not in text.lower()
    assert f"data:image/png;base64,{PNG}" in text
    assert "<td>42</td>" in text and "Stage 01" in text and 'href="https://example.org/guide"' in text
    assert "charts.bar" not in text and "show_pii" not in text, "inputs and parameters are hidden"


def test_an_error_cell_shows_the_plain_failure_box_and_no_traceback(tmp_path):
    box = "<div class='lm-failure'>Gate failed: stage 01_members stopped</div>"
    nb = new_notebook(cells=[
        new_markdown_cell("<span style='color:red'>An Exception was encountered at In [4].</span>",
                          metadata={"tags": ["papermill-error-cell-tag"]}),
        new_markdown_cell("# Stage 01 — Members"),
        new_code_cell("outcome.counts()", outputs=[new_output("stream", name="stdout", text="42 rows\n")]),
        new_code_cell("stage.commit(ctx, outcome, gate)", outputs=[new_output(
            "error", ename="GateFailed", evalue="[members] gate failed",
            traceback=["\x1b[0;31m---------------------------------------------------------------------------",
                       "Traceback (most recent call last)", "Cell In[4], line 1", "GateFailed: boom"])]),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    src = tmp_path / "01_members.ipynb"
    nbformat.write(nb, str(src))
    text = notebook_to_html(src, tmp_path / "01_members.html", failure=box).read_text(encoding="utf-8")
    assert "Traceback" not in text and "Cell In[4]" not in text and "An Exception was encountered" not in text
    assert text.count("lm-failure") == 2, "under the title and where the notebook stopped"
    assert text.index("Stage 01") < text.index("lm-failure") < text.index("42 rows")
    without = notebook_to_html(src, tmp_path / "plain.html").read_text(encoding="utf-8")
    assert "Traceback" not in without and "lm-failure" not in without
