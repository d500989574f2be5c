"""End to end: a demo run's pages open offline and show no email or phone from the inputs.

One demo run (300 members) through the real CLI and papermill kernels; the run folder is then read
like a reviewer would, without network: every HTML page, and the outputs of every executed notebook.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from loyalty_toolkit.model import notebook_name
from loyalty_toolkit.normalize import normalize_phone
from loyalty_toolkit.runner import PIPELINE
from loyalty_toolkit.runner.offline import offline_problems

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "loyalty-migrate")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("offline")
    res = subprocess.run([CLI, "demo", "--dir", "ws", "--members", "300"], cwd=work, capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    index = Path(re.search(r"passed: (\S+index\.html)", res.stdout).group(1))
    return work / "ws", (index if index.is_absolute() else work / index).parent


def _personal_values(workspace: Path) -> set[str]:
    """Every email and phone of the legacy inputs, as written and as the stages normalise them."""
    values: set[str] = set()
    sources = {"members.csv": ("email", "mobile_phone"), "opening_balances.csv": ("email", "phone")}
    for name, (email_col, phone_col) in sources.items():
        with open(workspace / "legacy" / name, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                email = (row.get(email_col) or "").strip()
                if "@" in email and "." in email.split("@")[-1]:
                    values |= {email, email.lower()}
                phone = (row.get(phone_col) or "").strip()
                if len(re.sub(r"\D", "", phone)) >= 9:
                    values.add(phone)
                    values |= {normalize_phone(phone, region).e164 for region in ("FR", "VN")} - {""}
    return values


def test_every_page_opens_offline(run):
    _, run_dir = run
    assert offline_problems(run_dir) == []
    pages = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*.html"))
    stems = [notebook_name(s) for s in PIPELINE]
    assert pages == sorted(["index.html", *(f"notebooks/{s}.html" for s in stems),
                            *(f"data_docs/{s}/index.html" for s in stems)]), "one gate page per stage, nothing else"


def test_gate_pages_hold_every_expectation_of_their_stage(run):
    _, run_dir = run
    summary = json.loads((run_dir / "summary.json").read_text())
    for stage in summary["stages"]:
        page = (run_dir / "data_docs" / notebook_name(stage["name"]) / "index.html").read_text(encoding="utf-8")
        assert page.count("<tr id='") == len(stage["gates"]) > 0
        assert "Gate passed" in page and "is masked" in page


def test_no_email_or_phone_from_the_inputs_in_any_page_or_notebook_output(run):
    workspace, run_dir = run
    values = _personal_values(workspace)
    assert len(values) > 300
    texts = {p: p.read_text(encoding="utf-8", errors="replace") for p in run_dir.rglob("*.html")}
    for nb_path in (run_dir / "notebooks").glob("*.ipynb"):
        nb = nbformat.read(str(nb_path), as_version=4)
        texts[nb_path] = json.dumps([c.get("outputs", []) for c in nb.cells], ensure_ascii=False)
    assert len(texts) == 3 * len(PIPELINE) + 1
    for path, text in texts.items():
        leaked = sorted(v for v in values if v in text)
        assert not leaked, f"{path.relative_to(run_dir)} shows {leaked[:3]}"
    # The masks are there, so the scan above looked at pages that do show (masked) personal data.
    assert re.search(r"[a-z]\*\*\*@[a-z0-9.-]+\.[a-z]+", texts[run_dir / "notebooks" / "01_members.html"])
