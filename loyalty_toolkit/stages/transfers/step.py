"""Stage 03, transfers: the points owed at the cutover become the target's unit transfers.

The rules live in the pure modules (``sources/ledger/parse.py``, ``stages/transfers/lots.py``,
``sources/opening_balances.py``, ``stages/transfers/engine.py``, ``stages/transfers/reconcile.py``; every rule is in
``docs/transfers.md``). This step reads the **frozen** ledger (and opening balances, when
configured), builds the lots as of the cutover and turns the open and pending lots of mapped
members into unit transfers, member slice by member slice (``stages/transfers/slices.py``), and
writes, pending the gate:

- ``output/openloyalty/unit_transfers.json`` and/or ``.xml`` (``transfers.formats``);
- ``output/haravan/opening_balances.csv``: Haravan's template holding every accepted opening row.

The gate proves the points owed before = after, tolerance zero, computed independently: the ledger
summed straight from its entries, the lots left by the lot engine, and the transfer side summed
from the transfer rows themselves (never from ``TransferResult.per_member``, the engine's own
bookkeeping), per member, per accrual center, per program and in total. The gate's tables are
built in ``stages/transfers/checks.py``; the files are written and read back from disk for
recounting in ``stages/transfers/outputs.py``; the outcome and its figures are
``stages/transfers/outcome.py`` and the notebook's tables ``stages/transfers/view.py``. The big
staging tables are pending tables a second process fills as the slices go (``store/spool.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from loyalty_toolkit.config import LedgerSource, yaml_position
from loyalty_toolkit.errors import ConfigError
from loyalty_toolkit.model import REJECT_COLUMNS
from loyalty_toolkit.shared.frames import text_column
from loyalty_toolkit.sources.csvfile import read_table, to_frame
from loyalty_toolkit.sources.ledger.parse import ENGINE_COLUMNS, ENGINE_FIELDS, parse_ledger
from loyalty_toolkit.sources.ledger.stream import read_and_parse_ledger
from loyalty_toolkit.sources.opening_balances import OpeningParse, parse_opening
from loyalty_toolkit.stages.context import StageContext, release_free_memory
from loyalty_toolkit.stages.transfers.checks import (
    combine_checks,
    fallbacks_check,
    lots_check,
    opening_check,
    produced_per_member,
    reconciliation_check,
    roll_forward_check,
    totals_check,
    transfer_side,
    transfers_check,
)
from loyalty_toolkit.stages.transfers.engine import (
    MEMBER_UNMAPPED,
    NEGATIVE_BALANCE,
    OPENING_CENTER,
    OPENING_LOT_COLUMNS,
    TransferResult,
    build_transfers,
)
from loyalty_toolkit.stages.transfers.lots import LotResult, build_lots
from loyalty_toolkit.stages.transfers.opening import UNMATCHED_COLUMNS, member_phones, opening_lots
from loyalty_toolkit.stages.transfers.outcome import TransfersOutcome
from loyalty_toolkit.stages.transfers.outputs import (
    OUTPUT_COLUMNS,
    TransferFiles,
    stale_files,
    write_haravan_file,
)
from loyalty_toolkit.stages.transfers.reconcile import RECONCILE_COLUMNS, Reconciliation
from loyalty_toolkit.stages.transfers.slices import SLICE_ENTRIES, SliceTotals, plan_slices
from loyalty_toolkit.store import PendingTables
from loyalty_toolkit.targets.ol_profiles import profile_of
from loyalty_toolkit.store.spool import background_pending

# The lots' int64 time twins: what the engine reads, not what the staging table keeps.
LOT_TIME_TWINS = ("expires_at_us", "unlock_at_us", "action_at_us")
STORED_LOT_COLUMNS = [c for c in OPENING_LOT_COLUMNS if c not in LOT_TIME_TWINS]
# A program with opening balances and no points ledger reads this empty one (no file, no row).
NO_LEDGER = LedgerSource.model_construct(path=Path("(no ledger)"), encoding="auto", delimiter="auto", timezone="UTC",
                                         columns={})
CONSERVATION_COLUMNS = ("input", "file", "rows_read", "rows_parsed", "rows_accepted", "rows_rejected",
                        "rows_accounted")


# -- run ---------------------------------------------------------------------------------------

def run(ctx: StageContext, *, slice_entries: int = SLICE_ENTRIES) -> TransfersOutcome:
    """Read the frozen ledger (and opening balances), build lots and transfers member slice by
    member slice (about ``slice_entries`` ledger rows each), write the files (pending the gate) and
    the rejects, and reconcile everything."""
    cfg = ctx.config
    tcfg, cutover = cfg.transfers, cfg.migration.cutover
    frozen = ctx.frozen_inputs()
    if cfg.sources.ledger is None and cfg.sources.opening_balances is None:
        raise ConfigError("stage 03 needs sources.ledger or sources.opening_balances (a program with points)",
                          stage=ctx.stage, file=cfg.path.name, field="sources.ledger")
    if cfg.sources.ledger is not None:
        src = ctx.source("ledger")
        # block by block: the source text of a 10M-row ledger (~4 GB) is never held whole
        parsed = read_and_parse_ledger(src, stage=ctx.stage, fields=ENGINE_FIELDS, timezone=src.timezone,
                                       date_format=getattr(src, "date_format", None), columns=src.column_map(),
                                       entry_columns=ENGINE_COLUMNS)
    else:  # opening balances only: an empty ledger, so every figure below stays the same sum
        src = NO_LEDGER
        parsed = parse_ledger(pd.DataFrame({"_line": pd.Series([], dtype="int64")}), source_file=src.path.name,
                              timezone=src.timezone, entry_columns=ENGINE_COLUMNS)
    ledger_parsed_rows = parsed.rows_read
    entries, ledger_rejects, ledger_reject_counts = parsed.entries, parsed.rejects, parsed.reject_counts()
    del parsed
    release_free_memory()
    members = ctx.store.read_table("members", columns=["legacy_id", "email_key", "phone"])
    id_map = ctx.store.read_table("member_map", columns=["legacy_id", "target_id"])

    opening, reread, opening_parsed_rows = None, 0, 0
    o_lots = pd.DataFrame(columns=list(OPENING_LOT_COLUMNS))
    unmatched = pd.DataFrame(columns=list(UNMATCHED_COLUMNS))
    if cfg.sources.opening_balances is not None and "opening_balances" in frozen:
        osrc = ctx.source("opening_balances")
        oframe = _read_opening(osrc, ctx.stage)
        opening_parsed_rows = len(oframe)
        opening = parse_opening(oframe, source_file=osrc.path.name,
                                default_region=cfg.phone_region("opening_balances"), rule=tcfg.opening,
                                cutover=cutover, columns=osrc.column_map())
        balances, reread = member_phones(opening.balances, members)
        o_lots, unmatched = opening_lots(balances, members, id_map)
    del members
    release_free_memory()

    # member slice by member slice (stages/transfers/slices.py): the lots, allocations and transfers
    # of a slice are written and dropped before the next; what stays is per member or summed
    target = profile_of(cfg)
    formats = _formats(cfg, target)
    hold = _target_settings(cfg, target)
    settings = {"granularity": tcfg.granularity, "rounding": tcfg.rounding, "negative_balance": tcfg.negative_balance,
                "wallet_type_code": tcfg.wallet_type_code, "formats": formats, "target_ignores": hold,
                "point_value": tcfg.point_value, "currency": tcfg.currency, "cutover": cutover.isoformat()}
    plan = plan_slices(entries, slice_entries)
    pending = background_pending(ctx.store, ctx.stage)  # the big tables, inserted by a 2nd process
    # every file below the target profile's upload limit (oss-3: 16 MB), split between transfers
    transfer_files = TransferFiles(ctx.output_dir("openloyalty"), formats,
                                   max_file_bytes=target.upload_limit_bytes())
    try:  # no half-written file or table is left pending
        totals, checks = _run_slices(entries, o_lots, id_map, plan, settings, cutover, src,
                                                    transfer_files, pending)
        # the reconciliation reads a few of the entries' columns: let the rest (lot ids, effective
        # times: hundreds of megabytes at ten million rows) go before it builds its own arrays
        entries = entries[[c for c in RECONCILE_COLUMNS if c in entries.columns]]
        del id_map, plan
        release_free_memory()
        read = _Read(entries, ledger_rejects, ledger_reject_counts, ledger_parsed_rows, opening, o_lots, unmatched,
                     opening_parsed_rows, reread)
        del entries
        return _finish_run(ctx, src, read, totals, checks, transfer_files, pending, settings)
    except BaseException:
        transfer_files.abort()
        pending.discard()
        raise


def _run_slices(entries, o_lots, id_map, plan, settings, cutover, src, transfer_files,
                pending) -> tuple[SliceTotals, dict[str, list[pd.DataFrame]]]:
    """Every member slice through the engines: its transfers appended to the files, its lots,
    allocations and transfers to the pending tables, its figures to the totals; then dropped."""
    o_slice, id_slice = plan.of(text_column(o_lots, "user_id")), plan.of(text_column(id_map, "legacy_id"))
    totals = SliceTotals(cutover=cutover, timezone=src.timezone, target_hold=_hold_args(settings, cutover, src.timezone))
    checks: dict[str, list[pd.DataFrame]] = {"lots": [], "transfers": []}
    for k, rows in enumerate(plan.rows()):
        o_part = o_lots if rows is None else o_lots[o_slice == k]
        lots, all_lots, result = build_slice(entries if rows is None else entries.take(rows), o_part,
                                             id_map if rows is None else id_map[id_slice == k], settings, cutover,
                                             src.path.name)
        totals.add_lots(lots, all_lots, len(o_part))
        totals.add_transfers(result, produced_per_member(result, o_part),
                             transfer_side(all_lots, result, lots.allocations))
        transfer_files.write(result.transfers)
        checks["lots"].append(lots_check(all_lots))
        checks["transfers"].append(transfers_check(result.transfers))
        # the lots' *_us time twins are the engine's; the table keeps the ISO text (millions of
        # rows: three more columns cost the commit time for nothing a reader needs)
        pending.append("lots", all_lots.reindex(columns=STORED_LOT_COLUMNS).astype(
            {"source": object, "source_file": object}))  # a slice without opening lots: NULL, as in one table
        pending.append("lot_allocations", lots.allocations)
        pending.append("unit_transfers", result.transfers)
        del lots, all_lots, result, o_part
        release_free_memory()
    return totals, checks


@dataclass
class _Read:
    """What ``run`` read before the slices: the ledger's entries and rejects, the opening balances."""

    entries: pd.DataFrame
    ledger_rejects: pd.DataFrame
    ledger_reject_counts: dict[str, int]
    ledger_rows: int
    opening: OpeningParse | None
    o_lots: pd.DataFrame
    unmatched: pd.DataFrame
    opening_rows: int
    reread: int


def _finish_run(ctx: StageContext, src, read: _Read, totals: SliceTotals, checks: dict[str, list[pd.DataFrame]],
                transfer_files: TransferFiles, pending: PendingTables, settings: dict) -> TransfersOutcome:
    """After the slices: the rejects, the files read back, the reconciliation over the whole ledger."""
    tcfg, cutover, frozen = ctx.config.transfers, ctx.config.migration.cutover, ctx.frozen_inputs()
    entries, opening, o_lots, unmatched = read.entries, read.opening, read.o_lots, read.unmatched
    ledger_rejects, ledger_parsed_rows = read.ledger_rejects, read.ledger_rows
    lots = totals.lot_result()
    result = totals.transfer_result()
    held_rules = _held_rules(ctx)
    rejects = _all_rejects(ledger_rejects, opening, unmatched, result, totals.first_deficit_line(), src.path.name,
                           src.column_map()["points"], held_rules)
    ctx.write_rejects(rejects)

    files, outputs = transfer_files.close()
    if opening is not None:
        path, row = write_haravan_file(opening.balances, ctx.output_dir("haravan"))
        files.append(path)
        outputs.append(row)

    produced = totals.produced_per_member()
    rec = Reconciliation(entries, lots)
    by_member = rec.by("member", transfers=produced)
    total = rec.by("total", transfers=produced)
    side = totals.transfer_side()
    by_center = rec.by("center", transfers=side)
    by_program = rec.by("program", transfers=side)
    opening_rf = None
    if opening is not None and opening.points_total:
        opening_rf = pd.DataFrame({"center": [OPENING_CENTER], "program": [tcfg.opening.action_name],
                                   "opening": [Decimal(opening.points_total)]})
    rf = rec.roll_forward(opening=opening_rf, point_value=tcfg.point_value)
    del rec
    # the per-member tables (a million rows each) go to the writer now: it inserts them while the
    # notebook draws its tables and the gate runs, and the commit only publishes them
    for name, frame in (("lot_balances", lots.balances), ("transfer_per_member", result.per_member),
                        ("reconciliation_member", by_member)):
        pending.append(name, frame)

    conservation = []
    if "ledger" in frozen:
        conservation.append(_conservation_row("ledger", src.path.name, frozen["ledger"]["rows_kept"],
                                              ledger_parsed_rows, len(entries), len(ledger_rejects)))
    if opening is not None:
        conservation.append(_conservation_row("opening_balances", opening.source_file,
                                              frozen["opening_balances"]["rows_kept"], read.opening_rows,
                                              len(opening.balances), len(opening.rejects)))
    return TransfersOutcome(
        lots=lots, slices=totals, o_lots=o_lots, result=result, pending=pending, checks=checks,
        opening=opening, unmatched=unmatched, rejects=rejects,
        conservation=pd.DataFrame(conservation, columns=list(CONSERVATION_COLUMNS)),
        outputs=pd.DataFrame(outputs, columns=list(OUTPUT_COLUMNS)), by_member=by_member, by_center=by_center,
        by_program=by_program, total=total, roll_forward=rf, files=files, ledger_rows=ledger_parsed_rows,
        ledger_entries=len(entries), ledger_rejects=read.ledger_reject_counts, cutover=cutover, timezone=src.timezone,
        settings=settings, phones_reread=read.reread, show_pii=ctx.show_pii,
        held=_held_points(result.rejects, held_rules))


def _formats(cfg, target) -> list[str]:
    """The configured transfer formats the target profile takes (oss-3: XML only); none is a config error."""
    formats = [f for f in cfg.transfers.formats if f in target.transfer_formats()]
    if not formats:
        line, column = yaml_position(cfg.path.read_text(encoding="utf-8"), ("transfers", "formats"))
        raise ConfigError(f"target profile {target.name!r} takes transfers as {', '.join(target.transfer_formats())}"
                          f", not {', '.join(cfg.transfers.formats)}", file=cfg.path.name, line=line, column=column,
                          field="transfers.formats")
    return formats


def _target_settings(cfg, target) -> dict | None:
    """What the profile ignores of each transfer (expiry, lock) and the global settings it applies
    instead; a config error when the profile ignores them and the config does not state the settings."""
    ignored = sorted({r.element for r in target.ignored()} & {"expiry", "lock"})
    if not ignored:
        return None
    settings = cfg.targets.openloyalty.settings
    if settings is None:
        line, column = yaml_position(cfg.path.read_text(encoding="utf-8"), ("targets", "openloyalty", "profile"))
        raise ConfigError(f"target profile {target.name!r} ignores each transfer's {' and '.join(ignored)}: state "
                          "its global settings (targets.openloyalty.settings: points_days_active, points_days_locked)",
                          file=cfg.path.name, line=line, column=column, field="targets.openloyalty.settings")
    return {"ignored": ignored, "days_active": settings.points_days_active, "days_locked": settings.points_days_locked}


def _hold_args(settings: dict, cutover: datetime, tz: str) -> dict | None:
    """``target_hold.month_parts``'s arguments: the transfers are dated at the import, taken as the cutover."""
    hold = settings.get("target_ignores")
    if not hold:
        return None
    return {"ignored": set(hold["ignored"]), "days_active": hold["days_active"], "days_locked": hold["days_locked"],
            "import_at": cutover, "tz": tz}


def _held_rules(ctx: StageContext) -> dict[str, str]:
    """legacy_id -> the profile rule that held the member back in stage 01 (none: nothing held)."""
    if not ctx.store.has_table("member_holdback"):
        return {}
    held = ctx.store.read_table("member_holdback", columns=["legacy_id", "rule_id"])
    return dict(zip(held["legacy_id"].astype(str), held["rule_id"].astype(str)))


def _held_points(rejects: pd.DataFrame, held_rules: dict[str, str]) -> pd.DataFrame:
    """Per held member, its points that were not transferred (lots minus deficits), with the rule."""
    cols = ["legacy_id", "rule_id", "points"]
    if not held_rules or rejects.empty:
        return pd.DataFrame(columns=cols)
    ids = text_column(rejects, "legacy_id")
    mine = (rejects["reason_code"].astype(str).to_numpy() == MEMBER_UNMAPPED) & np.isin(ids, list(held_rules))
    if not mine.any():
        return pd.DataFrame(columns=cols)
    part = pd.DataFrame({"legacy_id": ids[mine], "points": [Decimal(str(p)) for p in rejects["points"][mine]]})
    per = part.groupby("legacy_id", sort=True)["points"].sum().reset_index()
    per["rule_id"] = per["legacy_id"].map(held_rules)
    per["points"] = per["points"].map(str)
    return per[cols]


def build_slice(entries: pd.DataFrame, o_lots: pd.DataFrame, id_map: pd.DataFrame, settings: dict, cutover: datetime,
                source_file: str) -> tuple[LotResult, pd.DataFrame, TransferResult]:
    """One member slice through the engines: its lots as of the cutover, those plus its opening
    lots, and their unit transfers. ``entries``, ``o_lots`` and ``id_map`` hold the same members."""
    lots = build_lots(entries, cutover=cutover)
    all_lots = pd.concat([lots.lots, o_lots], ignore_index=True) if len(o_lots) else lots.lots
    s = settings
    result = build_transfers(all_lots, id_map, granularity=s["granularity"], rounding=s["rounding"],
                             wallet_type_code=s["wallet_type_code"], negative_balances=lots.balances,
                             negative_mode=s["negative_balance"], cutover=cutover, source_file=source_file)
    return lots, all_lots, result


def _read_opening(src, stage: str) -> pd.DataFrame:
    mapping = src.column_map()
    required = [mapping[f] for f in ("phone", "email", "opening_revenue", "accumulated_revenue")]
    table = read_table(src.path, encoding=src.encoding, delimiter=src.delimiter, required=required,
                       allow_empty=True, stage=stage)
    return to_frame(table, mapping)


def _all_rejects(ledger_rejects: pd.DataFrame, opening: OpeningParse | None, unmatched: pd.DataFrame,
                 result: TransferResult, first_line: dict[str, int], ledger_file: str,
                 points_header: str, held_rules: dict[str, str] | None = None) -> pd.DataFrame:
    """Every row a person must look at: ledger and opening rows refused, opening rows matched to no
    mapped member, lots and deficits of unmapped members, and deficits held for review. A deficit
    names the ledger line of the member's first redemption that no lot could pay (``first_line``)."""
    rj = result.rejects.copy()
    if held_rules and len(rj):  # a member held back in stage 01: its points are held, and say why
        ids = text_column(rj, "legacy_id")
        held = (rj["reason_code"].astype(str).to_numpy() == MEMBER_UNMAPPED) & np.isin(ids, list(held_rules))
        if held.any():
            rj["message"] = rj["message"].astype(object)
            rj.loc[held, "message"] = [f"HELD: member {u} held back in stage 01, the target refuses it "
                                       f"({held_rules[u]}); {m}" for u, m in zip(ids[held], rj["message"][held])]
    no_lot = text_column(rj, "lot_id") == ""
    if no_lot.any():
        rj.loc[no_lot, "line"] = [int(first_line.get(u, 0)) for u in text_column(rj, "legacy_id")[no_lot]]
    rv = result.review
    review = pd.DataFrame({
        "stage": "transfers", "file": pd.Series([ledger_file] * len(rv), dtype=object),
        "line": np.asarray([int(first_line.get(u, 0)) for u in text_column(rv, "legacy_id")], dtype=np.int64),
        "record_key": text_column(rv, "legacy_id"), "column": points_header, "reason_code": NEGATIVE_BALANCE,
        "message": text_column(rv, "message"), "value": [f"-{d}" for d in rv["deficit"].tolist()]},
        columns=list(REJECT_COLUMNS))
    parts = [ledger_rejects, opening.rejects if opening is not None else None, unmatched, rj, review]
    frames = [p.reindex(columns=list(REJECT_COLUMNS)) for p in parts if p is not None and len(p)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "line" else object) for c in REJECT_COLUMNS})
    out = pd.concat(frames, ignore_index=True)
    out["line"] = out["line"].astype(np.int64)
    for c in REJECT_COLUMNS:
        if c != "line":
            out[c] = out[c].fillna("").astype(str)
    return out.sort_values(["file", "line"], kind="stable").reset_index(drop=True)


def _conservation_row(name, file, rows_read, rows_parsed, accepted, rejected) -> dict:
    return {"input": name, "file": file, "rows_read": int(rows_read) if rows_read is not None else -1,
            "rows_parsed": rows_parsed, "rows_accepted": accepted, "rows_rejected": rejected,
            "rows_accounted": accepted + rejected}


# -- gate and commit ---------------------------------------------------------------------------

def _gate_tables(outcome: TransfersOutcome) -> dict[str, pd.DataFrame]:
    """The tables the suites check (``expectations/transfers.*.json``), built by ``checks``."""
    return {
        "conservation": outcome.conservation,
        "members": reconciliation_check(outcome.by_member, "user_id"),
        "totals": totals_check(outcome.total, outcome.points()).assign(
            target_moved_points=outcome.target_moved_points()),
        "centers": reconciliation_check(outcome.by_center, "center"),
        "programs": reconciliation_check(outcome.by_program, "program"),
        "roll_forward": roll_forward_check(outcome.roll_forward),
        "lots": combine_checks(outcome.checks["lots"]),
        "transfers": combine_checks(outcome.checks["transfers"]),
        "outputs": outcome.outputs,
        "opening": opening_check(outcome.opening, outcome.o_lots, outcome.unmatched),
        "fallbacks": fallbacks_check(outcome.lots.fallbacks),
        "rejects": outcome.rejects[["file", "line", "column", "reason_code"]],
    }


def gate(ctx: StageContext, outcome: TransfersOutcome):
    """Critical, tolerance zero: ledger = lots = transfers (+ rejected, itemised) per member, per
    center, per program and in total; row conservation of each file; no lot below zero; unique
    transfer ids and whole points above zero in the files read back; the roll-forward ties.
    Warnings: fallback matches, negative balances, rounding residue, rejected rows and lots,
    opening rows matched to no member."""
    return ctx.gate(_gate_tables(outcome))


def _store_tables(outcome: TransfersOutcome) -> dict[str, pd.DataFrame]:
    r, lr = outcome.result, outcome.lots
    # lots, lot_allocations, unit_transfers and the per-member tables are pending (run())
    return {"lot_fallbacks": lr.fallbacks, "unit_transfers_zero": r.zero,
            "transfer_rejects": outcome.rejects, "transfer_review": r.review,
            "reconciliation_center": outcome.by_center,
            "reconciliation_program": outcome.by_program, "reconciliation_total": outcome.total,
            "liability_roll_forward": outcome.roll_forward, "transfer_conservation": outcome.conservation,
            "transfer_outputs": outcome.outputs,
            "opening_balances": outcome.opening.balances if outcome.opening is not None
            else pd.DataFrame(columns=["line"]),
            "opening_unmatched": outcome.unmatched}


def commit(ctx: StageContext, outcome: TransfersOutcome, gate_report) -> None:
    """Record the figures and commit the tables; raises GateFailed on a critical failure.

    Once published, transfer files an earlier run of this stage left in ``output/openloyalty``
    (another format, more parts) or ``output/haravan`` that this run did not write are removed."""
    params = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in outcome.settings.items()}
    ctx.finish(gate_report, outcome.figures(), _store_tables(outcome), parameters=params, pending=outcome.pending)
    for p in stale_files(ctx.run_dir / "output", keep={f.name for f in outcome.files}):
        p.unlink()
