"""Shared fixtures: small sample programs (one with stages 00-02 committed, as their notebooks would
call them, without papermill), config writers and a hand-built run for explain."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loyalty_toolkit.runner.workspace import prepare_demo
from loyalty_toolkit.stages.context import open_stage
from loyalty_toolkit.stages.mapping import step as s02_mapping
from loyalty_toolkit.stages.members import step as s01_members
from loyalty_toolkit.stages.subset import step as s00_subset


@pytest.fixture(scope="session")
def small_program(tmp_path_factory) -> Path:
    """A 300-member sample program with its migration.yml (generated once per session)."""
    root = tmp_path_factory.mktemp("program")
    return prepare_demo(root, members=300, seed=11)


@pytest.fixture
def write_config(tmp_path):
    """Write a migration.yml (text) next to a members file and return its path."""

    def _write(text: str, files: dict[str, str | bytes] | None = None) -> Path:
        for rel, content in (files or {}).items():
            p = tmp_path / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        cfg = tmp_path / "migration.yml"
        cfg.write_text(text, encoding="utf-8")
        return cfg

    return _write


@pytest.fixture
def explain_run(tmp_path):
    """A run dir holding the hand-built staging database of ``fixtures/explain/staging.json`` and a
    manifest (cutover, default region FR). ``explain_run(without=[...])`` leaves tables out, as if
    their stage had not committed; ``edit={table: fn}`` changes a table's rows (a list of dicts)."""
    import json

    import sqlite_utils

    spec = json.loads((Path(__file__).parent / "fixtures" / "explain" / "staging.json").read_text(encoding="utf-8"))

    def _make(without: tuple[str, ...] = (), edit: dict | None = None) -> Path:
        run_dir = tmp_path / "runs" / "r1"
        run_dir.mkdir(parents=True)
        (run_dir / "manifest.json").write_text(json.dumps({"run_id": "r1", "config": {
            "migration": {"cutover": "2026-06-30T23:59:59Z"}, "sources": {"members": {"default_region": "FR"}}}}))
        db = sqlite_utils.Database(run_dir / "staging.db")
        db.execute("PRAGMA synchronous = OFF")  # a throwaway test database: no fsync per table
        for name, table in spec["tables"].items():
            if name in without:
                continue
            rows = [dict(zip(table["columns"], values)) for values in table["rows"]]
            rows = (edit or {}).get(name, lambda r: r)(rows)
            kinds = {c: int if any(isinstance(r.get(c), int) for r in rows) else str for c in table["columns"]}
            db[name].create(kinds)
            db[name].insert_all(rows)
        db.close()
        return run_dir

    return _make


RUN = "runs/t"


@pytest.fixture(scope="session")
def mapped_program(tmp_path_factory) -> Path:
    """A sample program (200 members, seed 3) with stages 00, 01 and 02 committed in ``runs/t``."""
    root = tmp_path_factory.mktemp("mapped")
    config = prepare_demo(root, members=200, seed=3)
    _commit_stages(config, root / RUN, (("subset", s00_subset), ("members", s01_members), ("mapping", s02_mapping)))
    return root


def _commit_stages(config: Path, run_dir: Path, steps) -> None:
    """Run, gate and commit each (name, step module) in order, as the stage notebooks do."""
    for name, step in steps:
        ctx = open_stage(name, str(config), str(run_dir))
        outcome = step.run(ctx)
        step.commit(ctx, outcome, step.gate(ctx, outcome))


@pytest.fixture(scope="session")
def commit_stages():
    """:func:`_commit_stages`, for test modules that take the program further."""
    return _commit_stages


@pytest.fixture
def program(mapped_program, tmp_path) -> Path:
    """A private copy of the mapped program, so each test starts just after stage 02."""
    root = tmp_path / "program"
    shutil.copytree(mapped_program, root)
    return root
