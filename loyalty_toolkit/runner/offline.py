"""Check that a run folder opens offline: no page loads anything remote, no relative link is broken.

Reviewers open run folders on machines without internet, and a page that fetches a stylesheet or a
script from a CDN both renders badly there and tells a third party that someone opened it.
``offline_problems`` scans every ``.html`` under a run dir for resources fetched over the network
(``<script src>``, ``<link href>``, ``<img>``/``<iframe>``/... ``src``, CSS ``@import`` and ``url()``,
inline or in ``style`` attributes, a URL inside an inline script) and for relative ``href``/``src`` links to files that do not
exist. Plain ``<a href="https://...">`` links are allowed: nothing is fetched until someone clicks.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Elements whose ``src`` the browser fetches when the page loads.
_LOADING_SRC = {"script", "img", "iframe", "embed", "source", "audio", "video", "track", "input", "frame"}
# CSS: @import "x" / @import url(x) / url(x), with optional quotes.
_CSS_IMPORT = re.compile(r"""@import\s+(?:url\(\s*)?["']?([^"')\s;]+)""", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+?)["']?\s*\)""", re.IGNORECASE)
_SCRIPT_URL = re.compile(r"""https?://[^\s"'`)<>]+""", re.IGNORECASE)


def is_remote(url: str) -> bool:
    """An absolute network URL: ``http(s)://...`` or scheme-relative ``//host/...``."""
    u = url.strip().lower()
    return u.startswith(("http://", "https://", "//"))


def _is_local_file_link(url: str) -> bool:
    """A relative (or root-less) path to a file, as opposed to an anchor, a data URI or a scheme."""
    u = url.strip()
    if not u or u.startswith("#") or is_remote(u):
        return False
    return not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", u)  # data:, mailto:, javascript:, file: ...


class _Scanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.remote: list[str] = []       # "what url" descriptions
        self.links: list[str] = []        # relative href/src values
        self._in: str | None = None  # inside <style> or <script>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        src, href = a.get("src", ""), a.get("href", "")
        if src and tag in _LOADING_SRC and is_remote(src):
            self.remote.append(f"<{tag} src> {src}")
        if href and tag == "link" and is_remote(href):
            self.remote.append(f"<link href> {href}")
        for value in (src, href):
            if value and _is_local_file_link(value):
                self.links.append(value)
        if a.get("style"):
            self._css(a["style"], "style attribute")
        self._in = tag if tag in ("style", "script") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self._css(data, "<style>")
        elif self._in == "script":
            # An inline script can fetch too (nbconvert's mermaid loader imports from cdnjs).
            for m in _SCRIPT_URL.finditer(data):
                self.remote.append(f"inline <script> {m.group(0)}")

    def _css(self, css: str, where: str) -> None:
        css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)  # URLs in CSS comments load nothing
        imports = [m.group(1) for m in _CSS_IMPORT.finditer(css)]
        self.remote += [f"@import in {where} {u}" for u in imports if is_remote(u)]
        self.remote += [f"url() in {where} {m.group(1)}" for m in _CSS_URL.finditer(css)
                        if is_remote(m.group(1)) and m.group(1) not in imports]  # @import url(x): once


def page_problems(page: Path, root: Path | None = None) -> list[str]:
    """Problems of one HTML file, each ``<path>: <what>``, the path relative to ``root``."""
    scanner = _Scanner()
    scanner.feed(page.read_text(encoding="utf-8", errors="replace"))
    scanner.close()
    name = page.relative_to(root).as_posix() if root else str(page)
    problems = [f"{name}: loads a remote resource: {r}" for r in dict.fromkeys(scanner.remote)]
    for link in dict.fromkeys(scanner.links):
        path = unquote(urlsplit(link).path)
        if not path:  # "?x" or similar: the page itself
            continue
        target = (page.parent / path) if not path.startswith("/") else Path(path)
        if not target.exists():
            problems.append(f"{name}: broken link: {link}")
    return problems


def offline_problems(run_dir: str | Path) -> list[str]:
    """Every reason some ``.html`` under ``run_dir`` would not open fully offline; empty when all do."""
    root = Path(run_dir)
    problems: list[str] = []
    for page in sorted(root.rglob("*.html")):
        problems.extend(page_problems(page, root))
    return problems
