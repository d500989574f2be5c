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
