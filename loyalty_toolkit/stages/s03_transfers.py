"""Stage 03, transfers: the points owed at the cutover become the target's unit transfers.

The rules live in the pure modules (``sources/ledger.py``, ``stages/lots.py``,
``sources/opening_balances.py``, ``stages/transfers.py``, ``stages/reconcile.py``; every rule is in
``docs/transfers.md``). This step reads the **frozen** ledger (and opening balances, when
configured), builds the lots as of the cutover, turns the open and pending lots of mapped members
into unit transfers and writes, pending the gate:

- ``output/openloyalty/unit_transfers.json`` and/or ``.xml`` (``transfers.formats``);
- ``output/haravan/opening_balances.csv``: Haravan's template holding every accepted opening row.

The gate proves the points owed before = after, tolerance zero, computed independently: the ledger
summed straight from its entries, the lots left by the lot engine, and the transfer side summed
here from the transfer rows themselves (never from ``TransferResult.per_member``, the engine's
own bookkeeping), per member, per accrual center, per program and in total.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from loyalty_toolkit.errors import ConfigError
from loyalty_toolkit.model import REJECT_COLUMNS
from loyalty_toolkit.sources import ledger as ledger_source
from loyalty_toolkit.sources.csvfile import read_table, to_frame
from loyalty_toolkit.sources.ledger import UNITS_PER_POINT, parse_ledger, units_to_decimal
from loyalty_toolkit.sources.opening_balances import OpeningParse, parse_opening
from loyalty_toolkit.stages import transfers_view as view
from loyalty_toolkit.stages.context import StageContext, StageFigures
from loyalty_toolkit.stages.lots import FALLBACK_METHODS, LotResult, build_lots, text_column
from loyalty_toolkit.stages.mapping import _phone_email
from loyalty_toolkit.stages.reconcile import reconcile, reconcile_by, roll_forward
from loyalty_toolkit.stages.transfers import (
    ADDING,
    NEGATIVE_BALANCE,
    OPENING_CENTER,
    OPENING_LOT_COLUMNS,
    OPENING_SOURCE,
    SPENDING,
    UNMATCHED_COLUMNS,
    TransferResult,
    build_transfers,
    opening_lots,
)
from loyalty_toolkit.targets.haravan import HEADER as HARAVAN_HEADER
from loyalty_toolkit.targets.haravan import write_opening_balances
from loyalty_toolkit.targets.ol_transfers import write_transfers_json, write_transfers_xml

JSON_NAME, XML_NAME, HARAVAN_NAME = "unit_transfers.json", "unit_transfers.xml", "opening_balances.csv"
_STALE = re.compile(r"unit_transfers(_[0-9]{4})?\.(json|xml)")
_TRANSFER_ID = re.compile(r"^transfer ([^;]+);")
_WHOLE = re.compile(r"[1-9][0-9]*")
CONSERVATION_COLUMNS = ("input", "file", "rows_read", "rows_parsed", "rows_accepted", "rows_rejected",
                        "rows_accounted")
OUTPUT_COLUMNS = ("output", "unit", "files", "rows_expected", "rows_written", "total_expected", "total_written",
                  "bad_values", "duplicate_ids", "problem")
RECONCILE_UNITS = ("owed_ledger", "owed_lots", "transfers", "unallocated", "deficit")


@dataclass
class TransfersOutcome:
    lots: LotResult
    all_lots: pd.DataFrame  # ledger lots + opening lots (OPENING_LOT_COLUMNS)
    result: TransferResult
    opening: OpeningParse | None
    unmatched: pd.DataFrame  # opening rows matched to no mapped member (UNMATCHED_COLUMNS)
    rejects: pd.DataFrame  # every reject of the stage (REJECT_COLUMNS)
    conservation: pd.DataFrame
    outputs: pd.DataFrame
    by_member: pd.DataFrame  # reconcile(): ledger vs lots vs the transfer rows
    by_center: pd.DataFrame
    by_program: pd.DataFrame
    total: pd.DataFrame
    roll_forward: pd.DataFrame
    files: list[Path]
    ledger_rows: int
    ledger_entries: int
    ledger_rejects: dict[str, int]
    cutover: datetime
    timezone: str
    settings: dict = field(default_factory=dict)  # granularity, rounding, negative_balance, point_value...
    phones_reread: int = 0
    show_pii: bool = False

    # -- figures -------------------------------------------------------------------------------

    def points(self) -> dict[str, Decimal]:
        """The headline amounts, signed Decimals: before = after is the stage's promise."""
        t = self.total.iloc[0]
        tr = self.result
        rows = pd.concat([tr.transfers, tr.zero], ignore_index=True)
        adding = tr.transfers["type"] == ADDING
        opening = Decimal(self.opening.points_total) if self.opening is not None else Decimal(0)
        unmatched = Decimal(int(self.unmatched["points"].sum())) if len(self.unmatched) else Decimal(0)
        transferred = Decimal(int(tr.transfers.loc[adding, "points"].sum())
                              - int(tr.transfers.loc[~adding, "points"].sum()))
        residue = _dec(int(np.where(rows["type"] == SPENDING, -1, 1) @ rows["residue_units"].to_numpy(np.int64))
                       if len(rows) else 0)
        rejected = _dec(int(tr.rejects["points_units"].sum()))
        review = -_dec(int(tr.review["deficit_units"].sum()))
        before = t["owed_ledger"] + opening
        after = transferred + residue + rejected + review + unmatched
        lots = self.lots.balances
        out = {"before": before, "after": after, "difference": before - after, "ledger_owed": t["owed_ledger"],
               "opening": opening, "transferred": transferred, "residue": residue, "rejected": rejected,
               "review": review, "opening_unmatched": unmatched,
               "open": _dec(int(lots["open_units"].sum())), "pending": _dec(int(lots["pending_units"].sum())),
               "expired": _dec(int(lots["expired_units"].sum())), "deficit": _dec(int(lots["deficit_units"].sum()))}
        return {k: _plain(v) for k, v in out.items()}

    def figures(self) -> StageFigures:
        c = self.conservation.set_index("input")
        p = self.points()
        tr = self.result
        fb = self.lots.fallbacks.set_index("method")
        neg = self.lots.balances[self.lots.balances["deficit_units"] > 0]
        opening = None
        if self.opening is not None:
            o = self.opening
            opening = {"rows": int(c.loc["opening_balances", "rows_read"]), "accepted": len(o.balances),
                       "rejected": len(o.rejects), "rejects_by_reason": o.reject_counts(),
                       "matched": len(self.all_lots) - len(self.lots.lots), "unmatched": len(self.unmatched),
                       "unmatched_by_reason": _counts(self.unmatched["reason_code"]),
                       "points": str(o.points_total), "points_exact": str(o.points_exact_total),
                       "conversion_residue": str(o.residue_total), "phones_reread": self.phones_reread}
        rf = self.roll_forward
        liability = {}
        for center, part in rf.groupby("center", sort=True):
            entry = {"closing": str(sum(part["closing"], Decimal(0)))}
            if "closing_value" in part.columns:
                entry["value"] = str(sum(part["closing_value"], Decimal(0)))
            liability[str(center)] = entry
        s = self.settings
        return StageFigures(
            rows_in=int(c["rows_read"].sum()), rows_out=int(c["rows_accepted"].sum()),
            rows_rejected=int(c["rows_rejected"].sum()),
            totals={
                "ledger": {"rows": self.ledger_rows, "entries": self.ledger_entries,
                           "rejected": sum(self.ledger_rejects.values()), "rejects_by_reason": self.ledger_rejects},
                "opening": opening,
                "points_owed_before": str(p["before"]), "points_owed_after": str(p["after"]),
                "points_difference": str(p["difference"]),
                "points": {k: str(v) for k, v in p.items() if k not in ("before", "after", "difference")},
                "residue_total": str(p["residue"]),
                "transfers": {"count": len(tr.transfers), "adding": int((tr.transfers["type"] == ADDING).sum()),
                              "spending": int((tr.transfers["type"] == SPENDING).sum()), "zero_point": len(tr.zero),
                              "files": [f.name for f in self.files]},
                "lots": {s_: int(n) for s_, n in self.lots.lots["status"].value_counts().sort_index().items()},
                "fallbacks": {m: int(fb.at[m, "redemptions"]) for m in FALLBACK_METHODS},
                "fallback_points": {m: str(fb.at[m, "points"]) for m in FALLBACK_METHODS},
                "negative_balances": {"members": len(neg), "points": str(_dec(int(neg["deficit_units"].sum()))),
                                      "mode": s.get("negative_balance")},
                "rejected_lots": len(tr.rejects), "held_for_review": len(tr.review),
                "rejects_by_reason": _counts(self.rejects["reason_code"]),
                "liability_per_center": liability,
                "cross_center": {"allocations": int(self.lots.allocations["cross_center"].sum()),
                                 "points": str(_dec(int(self.lots.allocations.loc[
                                     self.lots.allocations["cross_center"].astype(bool), "points_units"].sum())))},
                **{k: (str(v) if isinstance(v, Decimal) else v) for k, v in s.items()},
            })

    # -- notebook tables -----------------------------------------------------------------------

    def counts(self) -> pd.DataFrame:
        return view.counts(self.figures(), self.points())

    def balance_distribution(self) -> pd.DataFrame:
        return view.balance_bands(self.lots.balances, self.all_lots)

    def expiry_calendar(self) -> pd.DataFrame:
        return view.expiry_calendar(self.all_lots, self.timezone)

    def pending_points(self) -> pd.DataFrame:
        return view.pending(self.all_lots, self.timezone)

    def fallback_matches(self) -> pd.DataFrame:
        return self.lots.fallbacks.drop(columns=["points_units"])

    def fallback_examples(self, n: int = 10) -> pd.DataFrame:
        return view.fallback_examples(self.lots.allocations, n)

    def negative_balances(self) -> pd.DataFrame:
        return view.negative_balances(self.lots.balances, self.result, self.settings.get("negative_balance"))

    def reconciliation(self) -> pd.DataFrame:
        return view.mismatches(self.by_member, self.total, "user_id")

    def reconciliation_by_center(self) -> pd.DataFrame:
        return view.reconciliation(self.by_center, self.total, "center")

    def reconciliation_by_program(self) -> pd.DataFrame:
        return view.reconciliation(self.by_program, self.total, "program")

    def liability_roll_forward(self) -> pd.DataFrame:
        return view.roll_forward(self.roll_forward)

    def cross_center(self) -> pd.DataFrame:
        return view.cross_center(self.lots)

    def rounding_residue(self) -> pd.DataFrame:
        return view.residue(self.result, self.opening)

    def transfers_sample(self, n: int = 10) -> pd.DataFrame:
        return view.transfers_sample(self.result.transfers, n)

    def member_lots(self, legacy_id: str) -> pd.DataFrame:
        """Every lot of one member (ledger and opening) and what became of it: support's first look."""
        return view.member_lots(self.all_lots, self.result, legacy_id)

    def conservation_table(self) -> pd.DataFrame:
        return self.conservation

    def output_table(self) -> pd.DataFrame:
        return self.outputs

    def rejects_by_reason(self) -> pd.DataFrame:
        return view.rejects_by_reason(self.rejects)

    def reject_examples(self, n: int = 3) -> pd.DataFrame:
        return view.reject_examples(self.rejects, n, show_pii=self.show_pii)


# -- run ---------------------------------------------------------------------------------------

def run(ctx: StageContext) -> TransfersOutcome:
    """Read the frozen ledger (and opening balances), build lots and transfers, write the files
    (pending the gate) and the rejects, and reconcile everything."""
    cfg = ctx.config
    if cfg.sources.ledger is None:
        raise ConfigError("stage 03 needs sources.ledger (the points-liability export)", stage=ctx.stage,
                          file=cfg.path.name, field="sources.ledger")
    tcfg, cutover = cfg.transfers, cfg.migration.cutover
    frozen = ctx.frozen_inputs()
    src = ctx.source("ledger")
    frame = _read_ledger(src, ctx.stage)
    ledger_parsed_rows = len(frame)
    parsed = parse_ledger(frame, source_file=src.path.name, timezone=src.timezone,
                          date_format=getattr(src, "date_format", None), columns=src.column_map())
    del frame
    entries = parsed.entries
    lots = build_lots(entries, cutover=cutover)
    members = ctx.store.read_table("members", columns=["legacy_id", "email_key", "phone"])
    id_map = ctx.store.read_table("member_map", columns=["legacy_id", "target_id"])

    opening, reread, opening_parsed_rows = None, 0, 0
    o_lots = pd.DataFrame(columns=list(OPENING_LOT_COLUMNS))
    unmatched = pd.DataFrame(columns=list(UNMATCHED_COLUMNS))
    if cfg.sources.opening_balances is not None and "opening_balances" in frozen:
        osrc = ctx.source("opening_balances")
        oframe = _read_opening(osrc, ctx.stage)
        opening_parsed_rows = len(oframe)
        opening = parse_opening(oframe, source_file=osrc.path.name, default_region=cfg.sources.members.default_region,
                                rule=tcfg.opening, cutover=cutover, columns=osrc.column_map())
        balances, reread = member_phones(opening.balances, members)
        o_lots, unmatched = opening_lots(balances, members, id_map)
    all_lots = pd.concat([lots.lots, o_lots], ignore_index=True) if len(o_lots) else lots.lots

    result = build_transfers(all_lots, id_map, granularity=tcfg.granularity, rounding=tcfg.rounding,
                             wallet_type_code=tcfg.wallet_type_code, negative_balances=lots.balances,
                             negative_mode=tcfg.negative_balance, cutover=cutover, source_file=src.path.name)
    rejects = _all_rejects(parsed.rejects, opening, unmatched, result, lots, src.path.name,
                           src.column_map()["points"])
    ctx.write_rejects(rejects)

    ol_dir = ctx.output_dir("openloyalty")
    files: list[Path] = []
    outputs = []
    if "json" in tcfg.formats:
        written = write_transfers_json(result.transfers, ol_dir / JSON_NAME)
        files += written
        outputs.append(_output_row(f"openloyalty/{JSON_NAME}", "points", written, _expected(result.transfers),
                                   _json_items(written)))
    if "xml" in tcfg.formats:
        written = write_transfers_xml(result.transfers, ol_dir / XML_NAME)
        files += written
        outputs.append(_output_row(f"openloyalty/{XML_NAME}", "points", written, _expected(result.transfers),
                                   _xml_items(written)))
    if opening is not None:
        path = write_opening_balances(opening.balances, ctx.output_dir("haravan") / HARAVAN_NAME,
                                      phone_column="phone_raw", email_column="email")
        files.append(path)
        revenue = int(sum(opening.balances["opening_revenue"].tolist(), Decimal(0)))
        outputs.append(_output_row(f"haravan/{HARAVAN_NAME}", "VND", [path], (len(opening.balances), revenue),
                                   _haravan_items(path)))

    produced = produced_per_member(result, o_lots)
    by_member = reconcile(entries, lots, transfers=produced)
    total = reconcile_by(entries, lots, by="total", transfers=produced)
    side = transfer_side(all_lots, result, lots.allocations)
    by_center = reconcile_by(entries, lots, by="center", transfers=side)
    by_program = reconcile_by(entries, lots, by="program", transfers=side)
    opening_rf = None
    if opening is not None and opening.points_total:
        opening_rf = pd.DataFrame({"center": [OPENING_CENTER], "program": [tcfg.opening.action_name],
                                   "opening": [Decimal(opening.points_total)]})
    rf = roll_forward(entries, lots, opening=opening_rf, point_value=tcfg.point_value)

    conservation = [_conservation_row("ledger", src.path.name, frozen["ledger"]["rows_kept"], ledger_parsed_rows,
                                      len(entries), len(parsed.rejects))]
    if opening is not None:
        conservation.append(_conservation_row("opening_balances", opening.source_file,
                                              frozen["opening_balances"]["rows_kept"], opening_parsed_rows,
                                              len(opening.balances), len(opening.rejects)))
    settings = {"granularity": tcfg.granularity, "rounding": tcfg.rounding, "negative_balance": tcfg.negative_balance,
                "wallet_type_code": tcfg.wallet_type_code, "formats": list(tcfg.formats),
                "point_value": tcfg.point_value, "currency": tcfg.currency, "cutover": cutover.isoformat()}
    return TransfersOutcome(
        lots=lots, all_lots=all_lots, result=result, opening=opening, unmatched=unmatched, rejects=rejects,
        conservation=pd.DataFrame(conservation, columns=list(CONSERVATION_COLUMNS)),
        outputs=pd.DataFrame(outputs, columns=list(OUTPUT_COLUMNS)), by_member=by_member, by_center=by_center,
        by_program=by_program, total=total, roll_forward=rf, files=files, ledger_rows=parsed.rows_read,
        ledger_entries=len(entries), ledger_rejects=parsed.reject_counts(), cutover=cutover, timezone=src.timezone,
        settings=settings, phones_reread=reread, show_pii=ctx.show_pii)


def _read_ledger(src, stage: str) -> pd.DataFrame:
    reader = getattr(ledger_source, "read_ledger", None)
    if reader is not None:
        return reader(src, stage=stage)
    return to_frame(read_table(src.path, encoding=src.encoding, delimiter=src.delimiter, stage=stage),
                    src.column_map())


def _read_opening(src, stage: str) -> pd.DataFrame:
    mapping = src.column_map()
    required = [mapping[f] for f in ("phone", "email", "opening_revenue", "accumulated_revenue")]
    table = read_table(src.path, encoding=src.encoding, delimiter=src.delimiter, required=required,
                       allow_empty=True, stage=stage)
    return to_frame(table, mapping)


def member_phones(balances: pd.DataFrame, members: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Opening balances with each national-format phone read as stage 02 reads it.

    ``parse_opening`` reads a national phone in the migration's default region. Stage 02 resolves
    a row whose pair then matches nobody by reading the phone again in the region of the member its
    email names (``stages.mapping``); the same rule here keeps the two stages in agreement. Returns
    the balances (``phone`` replaced where the second reading found exactly one member) and how
    many rows were re-read.
    """
    if balances.empty:
        return balances, 0
    table = pd.DataFrame({"phone": text_column(members, "phone"), "email_key": text_column(members, "email_key")})
    pos = _phone_email(table, text_column(balances, "phone"), text_column(balances, "email_key"),
                       text_column(balances, "phone_raw"))
    phones = table["phone"].to_numpy(dtype=object)
    current = text_column(balances, "phone")
    hit = (pos >= 0)
    hit[hit] = phones[pos[hit]] != current[hit]
    if not hit.any():
        return balances, 0
    out = balances.copy()
    new = current.copy()
    new[hit] = phones[pos[hit]]
    out["phone"] = new
    return out, int(hit.sum())


def produced_per_member(result: TransferResult, o_lots: pd.DataFrame) -> pd.DataFrame:
    """Per member, the ledger points the transfer side accounts for, summed from the rows themselves.

    Emitted and zero-point transfers (points + residue, spending negative), rejected lots and
    deficits (MEMBER_UNMAPPED) and deficits held for review, minus the member's opening lots (the
    ledger does not know them). ``TransferResult.per_member`` is not read: a transfer missing from
    ``transfers`` must show here.
    """
    rows = pd.concat([result.transfers, result.zero], ignore_index=True)
    sign = np.where(rows["type"].to_numpy(dtype=object) == SPENDING, -1, 1)
    parts = [
        (text_column(rows, "legacy_id"),
         sign * (rows["points"].to_numpy(np.int64) * UNITS_PER_POINT + rows["residue_units"].to_numpy(np.int64))),
        (text_column(result.rejects, "legacy_id"), result.rejects["points_units"].to_numpy(np.int64)),
        (text_column(result.review, "legacy_id"), -result.review["deficit_units"].to_numpy(np.int64)),
        (text_column(o_lots, "user_id"), -o_lots["remaining_units"].to_numpy(np.int64)),
    ]
    users = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=object)
    units = np.concatenate([p[1] for p in parts]).astype(np.int64)
    g = pd.Series(units).groupby(pd.Series(users, dtype=object), sort=True).sum()
    return pd.DataFrame({"user_id": pd.Series(g.index.to_numpy(dtype=object), dtype=object),
                         "points_units": g.to_numpy(np.int64)})


def transfer_side(all_lots: pd.DataFrame, result: TransferResult, allocations: pd.DataFrame) -> pd.DataFrame:
    """The transfer side per accrual center and program (columns center, program, points_units).

    Each adding transfer's exact amount is spread over its lots (each lot's remaining, the last
    ledger lot of the transfer taking whatever the transfer holds beyond them, so a transfer that
    is off shows at its center); rejected lots count at their own center. A member's deficit as
    the transfer side carries it (spending transfer, review or MEMBER_UNMAPPED) is spread over the
    deficit pieces of the member's redemptions, at the redemption's center and program, the last
    piece taking the rest. Opening lots are left out: they have no ledger center.
    """
    lot_ids = pd.Index(text_column(all_lots, "lot_id"), dtype=object)
    rem = all_lots["remaining_units"].to_numpy(np.int64)
    center, program = text_column(all_lots, "center"), text_column(all_lots, "program")
    is_open_lot = text_column(all_lots, "source") == OPENING_SOURCE
    rows = pd.concat([result.transfers, result.zero], ignore_index=True)
    spending = rows["type"].to_numpy(dtype=object) == SPENDING
    exact = rows["points"].to_numpy(np.int64) * UNITS_PER_POINT + rows["residue_units"].to_numpy(np.int64)
    add = np.flatnonzero(~spending)
    lists = [s.split(",") if s else [] for s in text_column(rows, "lot_ids")[add].tolist()]
    t = np.repeat(np.arange(len(add)), [len(x) for x in lists])
    flat = np.asarray([x for xs in lists for x in xs], dtype=object)
    pos = lot_ids.get_indexer(flat) if len(flat) else np.zeros(0, dtype=np.int64)
    opening = np.where(pos >= 0, is_open_lot[np.maximum(pos, 0)], False) if len(pos) else np.zeros(0, bool)
    order = np.lexsort((~opening, t))  # per transfer, opening lots first: the remainder lands on a ledger lot
    t, pos, opening = t[order], pos[order], opening[order]
    amount = np.where(pos >= 0, rem[np.maximum(pos, 0)], 0) if len(pos) else np.zeros(0, np.int64)
    if len(t):
        last = np.r_[t[1:] != t[:-1], True]
        sums = np.zeros(len(add), np.int64)
        np.add.at(sums, t, amount)
        amount[last] += exact[add][t[last]] - sums[t[last]]
    keep = ~opening
    c = np.where(pos >= 0, center[np.maximum(pos, 0)], "")[keep] if len(pos) else np.zeros(0, dtype=object)
    p = np.where(pos >= 0, program[np.maximum(pos, 0)], "")[keep] if len(pos) else np.zeros(0, dtype=object)
    parts = [(c, p, amount[keep])]

    rj = result.rejects
    rj_lot = text_column(rj, "lot_id")
    has_lot = rj_lot != ""
    rpos = lot_ids.get_indexer(rj_lot[has_lot]) if has_lot.any() else np.zeros(0, dtype=np.int64)
    rkeep = ~np.where(rpos >= 0, is_open_lot[np.maximum(rpos, 0)], False) if len(rpos) else np.zeros(0, bool)
    parts.append((np.where(rpos >= 0, center[np.maximum(rpos, 0)], "")[rkeep],
                  np.where(rpos >= 0, program[np.maximum(rpos, 0)], "")[rkeep],
                  rj["points_units"].to_numpy(np.int64)[has_lot][rkeep]))

    # deficits: the transfer side's amount per member, spread over the lot side's deficit pieces
    d_user = np.concatenate([text_column(rows, "legacy_id")[spending], text_column(rj, "legacy_id")[~has_lot],
                             text_column(result.review, "legacy_id")])
    d_units = np.concatenate([-exact[spending], rj["points_units"].to_numpy(np.int64)[~has_lot],
                              -result.review["deficit_units"].to_numpy(np.int64)])
    owed = pd.Series(d_units).groupby(pd.Series(d_user, dtype=object)).sum().to_dict()
    pieces = allocations[text_column(allocations, "lot_id") == ""]
    pu, pc, pp = (text_column(pieces, k) for k in ("user_id", "redemption_center", "redemption_program"))
    pa = -pieces["points_units"].to_numpy(np.int64)
    if len(pu):
        order = np.argsort(pu, kind="stable")
        pu, pc, pp, pa = pu[order], pc[order], pp[order], pa[order].copy()
        last = np.r_[pu[1:] != pu[:-1], True]
        sums = pd.Series(pa).groupby(pd.Series(pu, dtype=object)).sum().to_dict()
        for i in np.flatnonzero(last).tolist():
            pa[i] += owed.get(pu[i], 0) - sums[pu[i]]
    parts.append((pc, pp, pa))
    missing = sorted(set(owed) - set(pu.tolist()))
    parts.append((np.full(len(missing), "", dtype=object), np.full(len(missing), "", dtype=object),
                  np.asarray([owed[u] for u in missing], dtype=np.int64)))
    return pd.DataFrame({"center": pd.Series(np.concatenate([x[0] for x in parts]), dtype=object),
                         "program": pd.Series(np.concatenate([x[1] for x in parts]), dtype=object),
                         "points_units": np.concatenate([x[2] for x in parts]).astype(np.int64)})


def _all_rejects(ledger_rejects: pd.DataFrame, opening: OpeningParse | None, unmatched: pd.DataFrame,
                 result: TransferResult, lots: LotResult, ledger_file: str, points_header: str) -> pd.DataFrame:
    """Every row a person must look at: ledger and opening rows refused, opening rows matched to no
    mapped member, lots and deficits of unmapped members, and deficits held for review. A deficit
    names the ledger line of the member's first redemption that no lot could pay."""
    alloc = lots.allocations
    deficit_piece = alloc[text_column(alloc, "lot_id") == ""]
    first_line = deficit_piece.groupby("user_id", sort=False)["line"].min().to_dict()
    rj = result.rejects.copy()
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


# -- outputs read back -------------------------------------------------------------------------

def _expected(transfers: pd.DataFrame) -> tuple[int, int]:
    """Transfers the files must hold and their signed points (spending negative)."""
    sign = np.where(transfers["type"].to_numpy(dtype=object) == SPENDING, -1, 1)
    return len(transfers), int(sign @ transfers["points"].to_numpy(np.int64)) if len(transfers) else 0


def _output_row(name: str, unit: str, files: list[Path], expected: tuple[int, int],
                items: Iterator[tuple[str, int | None]]) -> dict:
    """Recount a written file: ``items`` (a generator reading it back) yields (transfer id or key,
    signed amount, or None when the amount is not a whole number > 0). A file that cannot be read
    back counts as one bad value and names the cause in ``problem``: the gate fails, the stage does
    not crash."""
    ids, total, bad, problem = [], 0, 0, ""
    try:
        for key, value in items:
            ids.append(key)
            if value is None:
                bad += 1
            else:
                total += value
    except (ValueError, ET.ParseError, csv.Error, UnicodeDecodeError, OSError) as exc:
        bad, problem = bad + 1, f"{type(exc).__name__}: {exc}"[:300]
    return {"output": name, "unit": unit, "files": len(files), "rows_expected": expected[0],
            "rows_written": len(ids), "total_expected": expected[1], "total_written": total, "bad_values": bad,
            "duplicate_ids": len(ids) - len(set(ids)), "problem": problem}


def json_list(path: Path) -> Iterator[dict]:
    """The objects of a JSON array written one object a line, as ``ol_transfers`` writes it, streamed
    (a file of millions of transfers is never held as one Python list). Raises ValueError when the
    file is not such an array: each line must parse, commas must separate the items, ``]`` close it."""
    with open(path, encoding="utf-8") as fh:
        if fh.readline().strip() != "[":
            raise ValueError(f"{path.name} is not a JSON list")
        closed, comma, last = False, False, None
        for line in fh:
            text = line.strip()
            if text == "]":
                closed = True
                break
            if last is not None:
                raise ValueError(f"{path.name}: a comma is missing after {last[:60]!r}")
            comma = text.endswith(",")
            item = json.loads(text[:-1] if comma else text)
            if not isinstance(item, dict):
                raise ValueError(f"{path.name}: an item is not an object")
            if not comma:
                last = text
            yield item
        if comma:
            raise ValueError(f"{path.name}: a comma before the closing ]")
        if not closed or fh.read().strip():
            raise ValueError(f"{path.name} is not a closed JSON list")


def _json_items(paths: list[Path]) -> Iterator[tuple[str, int | None]]:
    for p in paths:
        for it in json_list(p):
            units = it.get("units")
            ok = isinstance(units, int) and not isinstance(units, bool) and units > 0
            m = _TRANSFER_ID.match(str(it.get("comment", "")))
            yield (m.group(1) if m else "", (-1 if it.get("type") == SPENDING else 1) * units if ok else None)


def _xml_items(paths: list[Path]) -> Iterator[tuple[str, int | None]]:
    for p in paths:
        # streamed, raising on a file that is not well-formed; read transfers are dropped from the root
        events = ET.iterparse(p, events=("start", "end"))
        _, root = next(events)
        for event, node in events:
            if event != "end" or node.tag != "pointsTransfer":
                continue
            fields = {child.tag: (child.text or "").strip() for child in node}
            root.clear()
            text = fields.get("points", "")
            m = _TRANSFER_ID.match(fields.get("comment", ""))
            sign = -1 if fields.get("type") == SPENDING else 1
            yield (m.group(1) if m else "", sign * int(text) if _WHOLE.fullmatch(text) else None)


def _haravan_items(path: Path) -> Iterator[tuple[str, int | None]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = tuple(next(reader, ()))
        for r in reader:
            rec = dict(zip(header, r))
            amounts = (rec.get("DTDauKy", ""), rec.get("DTTichLuy", ""))
            ok = (header == HARAVAN_HEADER and rec.get("phone") and rec.get("email")
                  and all(a.isascii() and a.isdigit() for a in amounts))
            yield (f"{rec.get('phone')}|{rec.get('email')}", int(amounts[0]) if ok else None)


# -- gate and commit ---------------------------------------------------------------------------

def _units(values: pd.Series) -> np.ndarray:
    """Exact int64 micro-points of a Decimal column (the reconciliation's figures)."""
    codes, uniques = pd.factorize(values.to_numpy(dtype=object))
    u = np.asarray([int(Decimal(v).scaleb(6)) for v in uniques], dtype=np.int64)
    return u[codes] if len(codes) else np.zeros(0, dtype=np.int64)


def _recon_table(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    out = pd.DataFrame({key: frame[key].astype(str)})
    for name in RECONCILE_UNITS:
        if name in frame.columns:
            out[f"{name}_units"] = _units(frame[name])
    if "transfers_units" not in out.columns:  # no transfer side: the ledger must still tie to the lots
        out["transfers_units"] = out["owed_ledger_units"]
    return out


def _gate_tables(outcome: TransfersOutcome) -> dict[str, pd.DataFrame]:
    p = outcome.points()
    totals = _recon_table(outcome.total, "scope")
    for k in ("before", "after", "residue", "rejected", "review"):
        totals[f"{k}_units"] = int(p[k].scaleb(6))
    rf = outcome.roll_forward
    roll = pd.DataFrame({"center": rf["center"].astype(str), "program": rf["program"].astype(str),
                         "closing_units": _units(rf["closing"]),
                         "movements_units": _units(rf["opening"]) + _units(rf["accrued"]) - _units(rf["redeemed"])
                         - _units(rf["expired"]),
                         "lots_units": _units(rf["opening"]) + _units(rf["open"]) + _units(rf["pending"])
                         - _units(rf["deficit"])})
    roll["value_difference"] = 0.0
    if "closing_value" in rf.columns:
        roll["value_difference"] = [float(c - (o + a - r - e)) for c, o, a, r, e in zip(
            rf["closing_value"], rf["opening_value"], rf["accrued_value"], rf["redeemed_value"], rf["expired_value"])]
    al = outcome.all_lots
    lots = pd.DataFrame({"lot_id": text_column(al, "lot_id"), "status": text_column(al, "status"),
                         "accrued_units": al["accrued_units"].to_numpy(np.int64),
                         "accounted_units": al["consumed_units"].to_numpy(np.int64)
                         + al["remaining_units"].to_numpy(np.int64),
                         "remaining_units": al["remaining_units"].to_numpy(np.int64)})
    tr = outcome.result.transfers
    transfers = tr[["transfer_id", "target_id", "wallet_type_code", "type", "points"]]
    opening = pd.DataFrame(columns=["rows_accepted", "rows_accounted", "rows_unmatched", "points_accepted",
                                    "points_accounted", "exact_difference"])
    if outcome.opening is not None:
        o = outcome.opening
        matched = outcome.all_lots[text_column(outcome.all_lots, "source") == OPENING_SOURCE]
        points_matched = int(matched["accrued_units"].sum()) // UNITS_PER_POINT
        um = outcome.unmatched
        opening = pd.DataFrame([{
            "rows_accepted": len(o.balances), "rows_accounted": len(matched) + len(um), "rows_unmatched": len(um),
            "points_accepted": o.points_total, "points_accounted": points_matched + int(um["points"].sum()),
            "exact_difference": float(o.points_exact_total - (o.points_total + o.residue_total))}])
    fb = outcome.lots.fallbacks
    return {
        "conservation": outcome.conservation,
        "members": _recon_table(outcome.by_member, "user_id"),
        "totals": totals,
        "centers": _recon_table(outcome.by_center, "center"),
        "programs": _recon_table(outcome.by_program, "program"),
        "roll_forward": roll,
        "lots": lots,
        "transfers": transfers,
        "outputs": outcome.outputs,
        "opening": opening,
        "fallbacks": fb.loc[fb["method"].isin(FALLBACK_METHODS), ["method", "redemptions"]].reset_index(drop=True),
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
    return {"lots": outcome.all_lots, "lot_allocations": lr.allocations, "lot_balances": lr.balances,
            "lot_fallbacks": lr.fallbacks, "unit_transfers": r.transfers, "unit_transfers_zero": r.zero,
            "transfer_rejects": outcome.rejects, "transfer_review": r.review, "transfer_per_member": r.per_member,
            "reconciliation_member": outcome.by_member, "reconciliation_center": outcome.by_center,
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
    ctx.finish(gate_report, outcome.figures(), _store_tables(outcome), parameters=params)
    keep = {p.name for p in outcome.files}
    out = ctx.run_dir / "output"
    stale = [p for p in (out / "openloyalty").glob("unit_transfers*") if _STALE.fullmatch(p.name)]
    stale += list((out / "haravan").glob(HARAVAN_NAME))
    for p in stale:
        if p.name not in keep:
            p.unlink()


def _plain(d: Decimal) -> Decimal:
    """The same value without trailing zeros or exponent: ``0.0`` -> ``0``, ``12.50`` -> ``12.5``."""
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()


def _dec(units: int) -> Decimal:
    return units_to_decimal(np.asarray([units], dtype=np.int64))[0]


def _counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts().sort_index().items()}
