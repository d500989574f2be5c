"""offline_problems: remote resources and broken relative links in a run folder's pages."""

from __future__ import annotations

from pathlib import Path

from loyalty_toolkit.runner.offline import offline_problems, page_problems

CLEAN = """<!DOCTYPE html><html><head><style>
/* see https://example.org/why for the palette */
body { background: url("data:image/png;base64,AAAA"); }
</style></head><body>
<a href="#top">top</a> <a href="https://example.org/docs">docs</a> <a href="mailto:x@example.org">mail</a>
<a href="notebooks/01_members.html">report</a> <a href="data_docs/01_members/index.html#members-2">gate</a>
<img src="data:image/png;base64,AAAA"> <a href="rejects/members%20all.csv?x=1">rejects</a>
</body></html>"""


def _run_dir(tmp_path: Path, index: str) -> Path:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_members.html").write_text("<html><body><a href='../index.html'>up</a></body></html>")
    (tmp_path / "data_docs" / "01_members").mkdir(parents=True)
    (tmp_path / "data_docs" / "01_members" / "index.html").write_text("<html></html>")
    (tmp_path / "rejects").mkdir()
    (tmp_path / "rejects" / "members all.csv").write_text("file,line\n")
    (tmp_path / "index.html").write_text(index)
    return tmp_path


def test_a_clean_run_dir_has_no_problem(tmp_path):
    assert offline_problems(_run_dir(tmp_path, CLEAN)) == []


def test_remote_scripts_stylesheets_images_and_css_are_found(tmp_path):
    page = tmp_path / "p.html"
    page.write_text("""<html><head>
<script src="https://cdn.example.net/jquery.js"></script>
<link rel="stylesheet" href="//cdn.example.net/bootstrap.css">
<style>@import url("https://fonts.example.net/f.css"); h1 { background: url(http://img.example.net/a.png) }</style>
<script type="module">const m = await import("https://cdn.example.net/mermaid.mjs");</script>
</head><body><img src="http://img.example.net/logo.png"><div style="background:url('https://x.example.net/b.png')">
</div></body></html>""")
    problems = page_problems(page, tmp_path)
    assert all(p.startswith("p.html: loads a remote resource: ") for p in problems)
    found = " ".join(problems)
    for url in ("https://cdn.example.net/jquery.js", "//cdn.example.net/bootstrap.css", "https://fonts.example.net/f.css",
                "http://img.example.net/a.png", "https://cdn.example.net/mermaid.mjs", "http://img.example.net/logo.png",
                "https://x.example.net/b.png"):
        assert url in found, url
    assert len(problems) == 7


def test_broken_relative_links_are_found_with_the_page_that_has_them(tmp_path):
    run_dir = _run_dir(tmp_path, CLEAN.replace("notebooks/01_members.html", "notebooks/02_mapping.html"))
    (run_dir / "notebooks" / "01_members.html").write_text("<img src='chart.png'><a href='../summary.json'>s</a>")
    assert offline_problems(run_dir) == [
        "index.html: broken link: notebooks/02_mapping.html",
        "notebooks/01_members.html: broken link: chart.png",
        "notebooks/01_members.html: broken link: ../summary.json",
    ]
