"""Stage 06 logic: prove, per member and in total, that the target holds what this run transferred.

Pure: frames in, frames out. For every target member this run mapped: expected = the points its
unit transfers add up to (adding minus spending) + its balance in the export taken before the
import (when given); at the target = its balance in the export taken after. A member whose two
figures differ, or who is missing from the export while owed points, is a mismatch, listed with
both figures. An export row naming a member neither mapped by this run nor in the before export is
unknown: the export is not this target's, and the check stops with the file, line and column.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pandas as pd

from loyalty_toolkit.errors import InputError

MEMBER_COLUMNS = ("target_id", "legacy_id", "transferred", "before", "expected", "at_target", "difference",
                  "status", "line")
STATUSES = ("ok", "mismatch", "missing_from_export")


@dataclass
class Verification:
    members: pd.DataFrame  # one row per member (MEMBER_COLUMNS)
    totals: pd.DataFrame  # one row: expected, at_target, difference, members, mismatches

    def mismatches(self) -> pd.DataFrame:
        return self.members[self.members["status"] != "ok"].reset_index(drop=True)


def verify_balances(transferred: pd.DataFrame, id_map: pd.DataFrame, after: pd.DataFrame,
                    before: pd.DataFrame | None = None, *, after_file: str = "", id_column: str = "target_id",
                    before_file: str = "") -> Verification:
    """``transferred``: target_id and signed whole ``points`` per transfer (stage 03's unit_transfers);
    ``id_map``: legacy_id and target_id (stage 02); ``after`` / ``before``: the exports as
    ``sources.target_balances.read_target_balances`` gives them. Raises InputError on an unknown member."""
    legacy_of = dict(zip(id_map["target_id"].astype(str), id_map["legacy_id"].astype(str)))
    sums: dict[str, int] = {}
    for member, points in zip(transferred["target_id"].astype(str), transferred["points"].tolist()):
        sums[member] = sums.get(member, 0) + int(points)
    before_of: dict[str, Decimal] = {}
    if before is not None:
        for member, balance, line in zip(before["target_id"], before["balance"], before["line"]):
            if member not in legacy_of:
                raise InputError(f"member {member} of the before export was not mapped by this run", file=before_file,
                                 line=int(line), column=id_column)
            before_of[member] = balance
    at_target: dict[str, tuple[Decimal, int]] = {}
    for member, balance, line in zip(after["target_id"], after["balance"], after["line"]):
        if member not in legacy_of:
            raise InputError(f"unknown member {member}: not mapped by this run (stage 02)", file=after_file,
                             line=int(line), column=id_column)
        at_target[member] = (balance, int(line))
    rows = []
    for member, legacy in legacy_of.items():
        sent = sums.get(member, 0)
        had = before_of.get(member, Decimal(0))
        expected = Decimal(sent) + had
        if member in at_target:
            held, line = at_target[member]
            status = "ok" if held == expected else "mismatch"
        else:
            held, line = Decimal(0), 0
            status = "ok" if expected == 0 else "missing_from_export"
        rows.append((member, legacy, sent, str(had), str(expected), str(held), str(held - expected), status, line))
    members = pd.DataFrame.from_records(rows, columns=list(MEMBER_COLUMNS))
    members = members.sort_values("legacy_id", kind="stable").reset_index(drop=True)
    expected_total = sum((Decimal(v) for v in members["expected"]), Decimal(0))
    at_total = sum((Decimal(v) for v in members["at_target"]), Decimal(0))
    totals = pd.DataFrame([{"members": len(members), "transferred": int(sum(sums.get(m, 0) for m in legacy_of)),
                            "expected": str(expected_total), "at_target": str(at_total),
                            "difference": str(at_total - expected_total),
                            "mismatches": int((members["status"] != "ok").sum())}])
    return Verification(members=members, totals=totals)
