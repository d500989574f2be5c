"""Stage step modules on a real run dir: the sample program through stages 00-02, as their
notebooks would call them (no papermill)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loyalty_toolkit.runner.workspace import prepare_demo
from loyalty_toolkit.stages import s00_subset, s01_members, s02_mapping
from loyalty_toolkit.stages.context import open_stage

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
