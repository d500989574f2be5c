"""Stage 04's rehearsal of step one: import the masterreward files into a local stand-in for Splio.

This is a rehearsal, not Splio. It reads the masterreward files stage 04 wrote, gives every master
reward an internal id (:mod:`loyalty_toolkit.targets.splio_rehearsal`: seeded, so a rehearsal
replays byte for byte) and writes the master reward export Splio would offer, under
``RUN_DIR/rehearsal/splio/``. Stage 04 then reads it exactly as it reads a real export, like
stage 02 reads the rehearsal target's member export.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from loyalty_toolkit.errors import UsageError
from loyalty_toolkit.sources.splio import read_scope_files
from loyalty_toolkit.targets.splio_rehearsal import assign_internal_ids, write_master_export

EXPORT_NAME = "master_rewards_export.csv"


def rehearse_master_import(run_dir: str | Path, master_files: Sequence[Path], *, seed: int = 0) -> Path:
    """Import ``master_files`` (any order: read in Splio's) into the rehearsal; return the export's path.

    A later line for an external_id updates the reward (its name), as Splio does; the export lists
    each master reward once, in the order it was created.
    """
    files = read_scope_files(master_files)
    if any(f.scope != "masterreward" for f in files):
        raise UsageError("the rehearsal imports masterreward files only", file=str(Path(run_dir) / "output" / "splio"))
    # no file (an empty catalog): Splio's export would list no reward, and so does the rehearsal's
    names: dict[str, str] = {}
    for f in files:
        for ext, name in zip(f.rows["external_id"], f.rows["name"]):
            names[ext] = name
    ids = assign_internal_ids(list(names), seed=seed, content=(Path(p).read_bytes() for p in master_files))
    rows = [(ids[ext], ext, name) for ext, name in names.items()]
    return write_master_export(rows, Path(run_dir) / "rehearsal" / "splio" / EXPORT_NAME)
