"""Screenshot a run's reviewer pages in headless Chromium at 1,400 px (``make screenshots``).

For each page (the index, stages 03 and 05, and a gate page) it measures the page's full height
and width in the browser, then takes one full-height screenshot at 1,400 px. A page wider than
1,400 px (a table running off the right edge) is reported. Usage:
``python tests/e2e/screenshots.py RUN_DIR OUT_DIR``. Needs Debian's ``chromium``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTH = 1400
PAGES = {"index": "index.html", "03_transfers": "notebooks/03_transfers.html",
         "05_report": "notebooks/05_report.html", "gate_03_transfers": "data_docs/03_transfers/index.html"}
# What the browser reports after layout, written into the DOM that --dump-dom prints.
MEASURE = ("<script>window.addEventListener('load', () => {const d = document.documentElement;"
           "d.setAttribute('data-lm-size', d.scrollWidth + 'x' + d.scrollHeight);});</script>")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no headless Chromium: install Debian's chromium package (apt-get install chromium)")


def _browser(*args: str, height: int = 1000) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--no-first-run", "--disable-extensions", f"--window-size={WIDTH},{height}", *args],
                          capture_output=True, text=True, timeout=180)


def measure(page: Path) -> tuple[int, int]:
    """(width, height) of ``page`` laid out at 1,400 px, from a copy next to it with a measuring script."""
    text = page.read_text(encoding="utf-8")
    with tempfile.NamedTemporaryFile("w", suffix=".html", dir=page.parent, delete=False, encoding="utf-8") as fh:
        fh.write(text.replace("</body>", MEASURE + "</body>", 1) if "</body>" in text else text + MEASURE)
        probe = Path(fh.name)
    try:
        dom = _browser("--virtual-time-budget=5000", "--dump-dom", probe.as_uri()).stdout
    finally:
        probe.unlink()
    m = re.search(r'data-lm-size="(\d+)x(\d+)"', dom)
    if not m:
        raise RuntimeError(f"could not measure {page}")
    return int(m.group(1)), int(m.group(2))


def screenshot(page: Path, out: Path) -> tuple[int, int]:
    """A full-height PNG of ``page`` at 1,400 px into ``out``; returns the page's (width, height)."""
    width, height = measure(page)
    out.parent.mkdir(parents=True, exist_ok=True)
    _browser(f"--screenshot={out}", page.as_uri(), height=max(height, 200))
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot of {page}")
    return width, height


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    run_dir, out_dir = Path(argv[0]).resolve(), Path(argv[1]).resolve()
    wide = []
    pages = dict(PAGES)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    for stage in summary["stages"]:  # a failed stage: its page and its gate page
        if stage["status"] == "failed":
            stem = next(p.stem for p in (run_dir / "notebooks").glob("*.ipynb") if p.stem.endswith(stage["name"]))
            pages[stem] = f"notebooks/{stem}.html"
            pages[f"gate_{stem}"] = f"data_docs/{stem}/index.html"
    for name, rel in pages.items():
        page = run_dir / rel
        if not page.is_file():
            print(f"{name}: {rel} not in the run")
            continue
        width, height = screenshot(page, out_dir / f"{name}.png")
        fits = width <= WIDTH
        wide += [] if fits else [name]
        print(f"{name}: {width:,} x {height:,} px{'' if fits else f' (WIDER than {WIDTH:,} px)'} -> "
              f"{out_dir / (name + '.png')}")
    return 1 if wide else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
