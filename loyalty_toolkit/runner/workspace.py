"""Workspaces: ``init`` scaffolds a commented migration folder; ``demo`` runs the sample program."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from string import Template

from loyalty_toolkit.errors import UsageError
from loyalty_toolkit.sample import generate_sample

DEMO_CUTOVER = datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC)
SPLIO_OFFSET = timedelta(hours=1)  # Splio's GMT+1


def import_day(cutover: datetime) -> date:
    """The demo's Splio import day: the cutover's day in Splio's GMT+1 (the earliest it may be)."""
    return (cutover.astimezone(UTC) + SPLIO_OFFSET).date()


SAMPLE_COVERAGE_NOTE = ("    # The sample program plants members who share an email, phone or card: the target refuses\n"
                        "    # the second of each pair, so they cannot all be mapped (a rehearsal subset brings in a\n"
                        "    # pair of each kind, which weighs more in a small subset). A real migration keeps 1.0.")


def write_config(root: Path, *, name: str, reward_files: list[Path], fraction: float = 1.0,
                 cutover: datetime = DEMO_CUTOVER, min_coverage: float = 0.9,
                 coverage_comment: str = SAMPLE_COVERAGE_NOTE) -> Path:
    """Write ``root/migration.yml`` from the commented template."""
    text = resources.files("loyalty_toolkit").joinpath("templates/migration.yml").read_text(encoding="utf-8")
    files = "\n".join(f"      - {p.relative_to(root).as_posix()}" for p in reward_files) or "      []"
    out = Template(text).substitute(name=name, cutover=cutover.isoformat(), fraction=fraction, reward_files=files,
                                    import_date=import_day(cutover).isoformat(), min_coverage=min_coverage,
                                    coverage_comment=coverage_comment)
    path = root / "migration.yml"
    path.write_text(out, encoding="utf-8")
    return path


def init_workspace(directory: str | Path, *, members: int = 200, seed: int = 7) -> Path:
    """Scaffold ``directory`` with a commented config and a small sample program to edit or replace."""
    root = Path(directory)
    if (root / "migration.yml").exists():
        raise UsageError("a migration.yml is already there; not overwriting it", file=str(root / "migration.yml"))
    root.mkdir(parents=True, exist_ok=True)
    sample = generate_sample(root, members=members, seed=seed, cutover=DEMO_CUTOVER)
    return write_config(root, name=root.resolve().name, reward_files=sample.rewards)


def prepare_demo(directory: str | Path, *, members: int = 2000, seed: int = 7, fraction: float = 1.0) -> Path:
    """Generate the bundled sample program afresh in ``directory`` and return its config path."""
    root = Path(directory)
    for sub in ("legacy",):
        if (root / sub).exists():
            shutil.rmtree(root / sub)
    root.mkdir(parents=True, exist_ok=True)
    sample = generate_sample(root, members=members, seed=seed, cutover=DEMO_CUTOVER)
    return write_config(root, name="demo", reward_files=sample.rewards, fraction=fraction)


def run_demo(directory: str | Path, *, members: int = 2000, seed: int = 7, fraction: float = 1.0,
             show_pii: bool = False, progress=None):
    """Generate the sample program in ``directory`` and run every stage on it."""
    from loyalty_toolkit.runner import run

    config = prepare_demo(directory, members=members, seed=seed, fraction=fraction)
    return run(config, show_pii=show_pii, progress=progress)
