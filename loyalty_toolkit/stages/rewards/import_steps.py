"""Stage 04's plumbing for the two steps (docs/rewards.md, "Two steps"): the import day it needs,
the master reward export it reads (Splio's, or the local rehearsal's), and the step-two rules
checked on the files as written. The rules themselves are in :mod:`.splio_import`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from loyalty_toolkit.config import Config, yaml_position
from loyalty_toolkit.errors import ConfigError
from loyalty_toolkit.sources.splio import read_scope_file
from loyalty_toolkit.sources.splio_export import read_master_export
from loyalty_toolkit.stages.context import StageContext
from loyalty_toolkit.stages.rewards.splio_import import RewardImport, import_checks
from loyalty_toolkit.stages.rewards.rehearsal import rehearse_master_import
from loyalty_toolkit.stages.rewards.validation import RewardsResult


def require_import_day(cfg: Config, result: RewardsResult, stage: str) -> None:
    """Rewards migrated as earned are earned on the import day: without one, nothing can be written."""
    active = int((result.attribution_state["state"] == "active").sum())
    if active and cfg.rewards.import_date is None:
        line, column = yaml_position(cfg.path.read_text(encoding="utf-8"), ("rewards",))
        raise ConfigError(f"rewards.import_date is required: {active} rewards are still usable at the cutover and "
                          "are earned in Splio on the import day (YYYY-MM-DD, on or after the cutover)", stage=stage,
                          file=cfg.path.name, line=line, column=column, field="rewards.import_date")


def master_ids(ctx: StageContext, master_files: list[Path], catalog: pd.DataFrame) -> dict[str, str] | None:
    """external_id -> Splio internal id, from the master reward export (the rehearsal's with
    ``rehearsal: true``); None when the config names no export (step one only)."""
    src = ctx.config.sources.reward_master_export
    if src is None:
        return None
    path = rehearse_master_import(ctx.run_dir, master_files, seed=src.rehearsal_seed) if src.rehearsal else src.path
    frozen = ctx.freeze_input("reward_master_export", path)
    export = read_master_export(frozen, columns=src.column_map(), catalog=catalog["external_id"],
                                encoding=src.encoding, delimiter=src.delimiter, stage=ctx.stage)
    return dict(zip(export["external_id"], export["internal_id"]))


def step_two_checks(imp: RewardImport, result: RewardsResult, splio_files: list[Path], history_files: list[Path]
            ) -> pd.DataFrame:
    """The step-two rules over the files as written (read back)."""
    earn_headers: dict[str, list[str]] = {}
    earn_rows, burn_rows = [], []
    for p in splio_files + history_files:
        f = read_scope_file(p)
        if f.scope == "earnreward":
            earn_headers[f"{p.parent.name}/{p.name}"] = list(f.header)
            if p in splio_files:
                earn_rows.append(f.rows)
        elif f.scope == "burnreward" and p in splio_files:
            burn_rows.append(f.rows)
    empty = pd.DataFrame({"reward_id": [], "attribution_id": [], "earn_date": []}, dtype=str)
    return import_checks(imp, result.attribution_state, earn_headers,
                         pd.concat(earn_rows, ignore_index=True) if earn_rows else empty,
                         pd.concat(burn_rows, ignore_index=True) if burn_rows else empty)
