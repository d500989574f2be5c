"""Shared fixtures: a small sample program and config writers."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_program(tmp_path_factory) -> Path:
    """A 300-member sample program with its migration.yml (generated once per session)."""
    from loyalty_toolkit.runner.workspace import prepare_demo

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
