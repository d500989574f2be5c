"""End to end: two runs of one config over the same inputs are byte-identical, and ``repro``
replays a stage of a run to identical outputs, or refuses when a frozen input changed.

The second run gets another hash seed and another timezone, so set ordering or the machine's
local time leaking into an output would show here. Real kernels, real SQLite.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "loyalty-migrate")

# What legitimately differs between two runs, and why. Everything else in the run dir must be
# byte-identical.
EXCLUDED_FILES = {
    "manifest.json": "start and end times, the command line",
    "summary.json": "seconds per stage",
    "index.html": "seconds per stage",
    "staging.db": "compared table by table below",
    "inputs/inputs.json": "absolute paths of the rehearsal's files inside the run dir",
}
EXCLUDED_FOLDERS = {
    "notebooks": "executed notebooks and HTML carry papermill's execution times; kernel logs",
    "stages": "compared without times, memory and the run dir's path (below)",
}
EXCLUDED_STAGE_KEYS = ("compute_seconds", "peak_rss_mb", "writer_peak_rss_mb")
EXCLUDED_COLUMNS = {"_stages": ("completed_at",)}


def _cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def two_runs(small_program):
    work = small_program.parent
    first = _cli("run", str(small_program), "--run-id", "det-a", cwd=work)
    assert first.returncode == 0, first.stdout + first.stderr
    env = {**os.environ, "PYTHONHASHSEED": "4242", "TZ": "Pacific/Auckland"}
    second = _cli("run", str(small_program), "--run-id", "det-b", cwd=work, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    return work, work / "runs" / "det-a", work / "runs" / "det-b"


def _files(run_dir: Path) -> dict[str, Path]:
    out = {}
    for p in sorted(run_dir.rglob("*")):
        rel = p.relative_to(run_dir).as_posix()
        if p.is_file() and rel not in EXCLUDED_FILES and rel.split("/")[0] not in EXCLUDED_FOLDERS:
            out[rel] = p
    return out


def _tables(db: Path) -> dict[str, tuple[list, list]]:
    """Every table: its columns with declared types, and its rows in rowid order (typed values)."""
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out = {}
        for name in names:
            cols = [(r[1], r[2]) for r in conn.execute(f"PRAGMA table_info([{name}])")
                    if r[1] not in EXCLUDED_COLUMNS.get(name, ())]
            select = ", ".join(f"[{c}]" for c, _ in cols)
            rows = [json.dumps(r) for r in conn.execute(f"SELECT {select} FROM [{name}] ORDER BY rowid")]
            out[name] = (cols, rows)
    return out


def test_two_runs_write_byte_identical_files(two_runs):
    _, a, b = two_runs
    files_a, files_b = _files(a), _files(b)
    assert set(files_a) == set(files_b)
    assert any(rel.startswith("output/openloyalty/") for rel in files_a) and "rejects/transfers.csv" in files_a
    different = [rel for rel in files_a if files_a[rel].read_bytes() != files_b[rel].read_bytes()]
    assert not different


def test_two_runs_write_identical_staging_tables(two_runs):
    _, a, b = two_runs
    tables_a, tables_b = _tables(a / "staging.db"), _tables(b / "staging.db")
    assert set(tables_a) == set(tables_b) and {"members", "unit_transfers", "lots", "_stages"} <= set(tables_a)
    assert [t for t in tables_a if tables_a[t] != tables_b[t]] == []
    assert len(tables_a["unit_transfers"][1]) > 0


def test_two_runs_record_the_same_figures(two_runs):
    _, a, b = two_runs
    for path in sorted((a / "stages").glob("*.json")):
        rec_a = json.loads(path.read_text().replace(str(a), "<RUN_DIR>"))
        rec_b = json.loads((b / "stages" / path.name).read_text().replace(str(b), "<RUN_DIR>"))
        # the writer's peak is there where a stage writes pending tables in the background (03)
        assert ("writer_peak_rss_mb" in rec_a) == (path.name == "03_transfers.json") == ("writer_peak_rss_mb" in rec_b)
        for key in EXCLUDED_STAGE_KEYS:
            assert key in rec_a or key == "writer_peak_rss_mb"
            rec_a.pop(key, None), rec_b.pop(key, None)
        assert rec_a == rec_b, path.name


def test_repro_replays_a_stage_identically_then_refuses_a_changed_input(two_runs):
    work, a, _ = two_runs
    res = _cli("repro", str(a), "--stage", "transfers", cwd=work)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    for expected in ("identical  file     output/openloyalty/unit_transfers.json",
                     "identical  file     rejects/transfers.csv",
                     "identical  table    unit_transfers: ", "identical  table    lots: ",
                     "identical  ledger   _stages[transfers]", "identical  figures  stages/03_transfers.json"):
        assert any(line.startswith(expected) for line in lines), (expected, res.stdout)
    assert not [line for line in lines if line.startswith(("DIFFERENT", "missing"))]
    assert lines[-1].startswith("result: identical")
    assert not (a / "repro").exists(), "the replay is written beside the run, never inside it"
    replays = list((a.parent / "repro" / a.name).glob("transfers-*"))
    assert len(replays) == 1 and (replays[0] / "repro.json").is_file()

    frozen = a / json.loads((a / "manifest.json").read_text())["inputs"]["ledger"]["frozen_path"]
    with open(frozen, "a", encoding="utf-8") as fh:
        fh.write("\n")
    refused = _cli("repro", str(a), "--stage", "transfers", cwd=work)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert frozen.name in refused.stderr and "frozen copy of input ledger changed since the run" in refused.stderr
    assert len(list((a.parent / "repro" / a.name).glob("transfers-*"))) == 1, "a refused replay runs nothing"
