"""The tables stage 03's notebook shows (``transfers.outcome.TransfersOutcome`` methods call these).

Display only: every figure here is derived from frames the step module already reconciled.
Points stay ``Decimal``; money is rounded to cents only for display (the roll-forward keeps the
exact products). Legacy member ids are not personal data and are shown; phones and emails of
opening-balance rows are masked unless ``show_pii``.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

from loyalty_toolkit.mask import mask_identifier
from loyalty_toolkit.shared.frames import text_column
from loyalty_toolkit.sources.ledger.parse import units_to_decimal
from loyalty_toolkit.stages.transfers.lots import FALLBACK_METHODS
from loyalty_toolkit.store import stored_decimal


def _dec(units) -> np.ndarray:
    return units_to_decimal(np.asarray(units, dtype=np.int64))


_CENT = Decimal("0.01")
_AMOUNT_REASONS = ("OPENING_AMOUNT_INVALID", "OPENING_NEGATIVE")


def counts(figures, points: dict[str, Decimal]) -> pd.DataFrame:
    """The headline figures as a two-column table."""
    t = figures.totals
    rows = [("rows read (ledger + opening balances)", figures.rows_in), ("rows accepted", figures.rows_out),
            ("rows rejected", figures.rows_rejected)]
    rows += [(f"lots {status} at the cutover", n) for status, n in t["lots"].items()]
    rows += [("points owed before (ledger + opening balances)", points["before"]),
             ("  of which the ledger", points["ledger_owed"]), ("  of which opening balances", points["opening"]),
             ("points owed after (transfers + residue + rejected + held)", points["after"]),
             ("difference (must be 0)", points["difference"]),
             ("  points in unit transfers (adding - spending)", points["transferred"]),
             ("  rounding residue (not transferred)", points["residue"]),
             ("  rejected: member not mapped", points["rejected"]),
             ("  held for review: negative balances", points["review"]),
             ("  opening rows matched to no member", points["opening_unmatched"]),
             ("open points", points["open"]), ("pending points", points["pending"]),
             ("expired points (lost at the cutover)", points["expired"]),
             ("unit transfers", t["transfers"]["count"]), ("zero-point transfers (residue only)",
                                                           t["transfers"]["zero_point"])]
    rows += [(f"redemptions by {m}", n) for m, n in t["fallbacks"].items()]
    rows += [("members with a negative balance", t["negative_balances"]["members"])]
    return pd.DataFrame(rows, columns=["figure", "value"]).astype({"value": object})


def fallback_examples(allocations: pd.DataFrame, n: int) -> pd.DataFrame:
    """A few allocation pieces per fallback method (redemptions that did not name a lot they could use)."""
    a = allocations[np.isin(text_column(allocations, "method"), FALLBACK_METHODS)]  # not the deficit pieces
    cols = ["line", "user_id", "method", "lot_id", "points", "lot_line", "redemption_center", "lot_center"]
    return a.groupby("method", sort=True).head(n)[cols].reset_index(drop=True)


def negative_balances(balances: pd.DataFrame, result, mode: str | None) -> pd.DataFrame:
    """Members whose redemptions exceed what their lots could pay, and what happens to the deficit."""
    neg = balances[balances["deficit_units"].to_numpy(np.int64) > 0]
    rejected = set(text_column(result.rejects, "legacy_id")[text_column(result.rejects, "lot_id") == ""].tolist())
    held = set(text_column(result.review, "legacy_id").tolist())
    users = text_column(neg, "user_id")
    treatment = ["rejected: member not mapped" if u in rejected else "held for review" if u in held
                 else "carried as a spending transfer" for u in users.tolist()]
    out = neg[["user_id", "accrued", "redeemed", "expired", "open", "pending", "deficit", "balance"]].copy()
    out["treatment"] = treatment
    return out.reset_index(drop=True)


def mismatches(by_member: pd.DataFrame, total: pd.DataFrame, key: str) -> pd.DataFrame:
    """Members whose ledger, lots and transfers disagree (none when the stage is right), then the total."""
    cols = [c for c in ("owed_ledger", "owed_lots", "transfers", "difference", "transfer_difference", "unallocated",
                        "ok") if c in by_member.columns]
    bad = by_member[~by_member["ok"].astype(bool)][[key, *cols]]
    tot = total[cols].assign(**{key: f"total ({len(by_member)} members)"})[[key, *cols]]
    return pd.concat([bad, tot], ignore_index=True)


def reconciliation(frame: pd.DataFrame, total: pd.DataFrame, key: str) -> pd.DataFrame:
    """Every row of a roll-up (center or program) with the total below."""
    cols = [c for c in ("accrued", "redeemed", "expired", "owed_ledger", "open", "pending", "deficit", "owed_lots",
                        "difference", "transfers", "transfer_difference", "ok") if c in frame.columns]
    tot = total[[c for c in cols if c in total.columns]].assign(**{key: "total"})
    return pd.concat([frame[[key, *cols]], tot], ignore_index=True)


def roll_forward(rf: pd.DataFrame) -> pd.DataFrame:
    """The liability roll-forward; money columns (``*_value``) rounded to cents for display only."""
    out = rf.copy()
    for c in out.columns:
        if c.endswith("_value"):
            out[c] = out[c].map(lambda v: v.quantize(_CENT))
    return out


def signed_residue(rows: pd.DataFrame) -> np.ndarray:
    """Each transfer row's rounding residue in int64 micro-points, a spending transfer's negative."""
    sign = np.where(rows["type"].to_numpy(dtype=object) == "spending", -1, 1)
    return rows["residue_units"].to_numpy(np.int64) * sign


def residue(transfer_rows: int, transfer_units: int, zero: pd.DataFrame, opening) -> pd.DataFrame:
    """Where rounding left a fraction: every transfer row's residue (the emitted transfers' rows with
    some and their signed micro-points, given; the zero-point transfers' from ``zero``), the
    zero-point transfers' alone (not emitted), and the opening conversion's."""
    z = signed_residue(zero)
    out = [("unit transfers (rounded once)", transfer_rows + int((z != 0).sum()), _dec([transfer_units + z.sum()])[0]),
           ("transfers rounded to 0 (not emitted)", len(zero), _dec([z.sum()])[0])]
    if opening is not None:
        out.append(("opening balances: revenue -> points", int((opening.balances["residue"] != 0).sum()),
                    opening.residue_total))
    return pd.DataFrame(out, columns=["where", "rows", "residue"]).astype({"residue": object})


def transfers_sample(transfers: pd.DataFrame, n: int) -> pd.DataFrame:
    cols = ["transfer_id", "legacy_id", "target_id", "type", "points", "points_exact", "registered_on", "expires_at",
            "unlock_at", "validity_days", "lot_ids"]
    return transfers[cols].head(n).reset_index(drop=True)


def member_lots(lots: pd.DataFrame, transfers: pd.DataFrame, rejects: pd.DataFrame) -> pd.DataFrame:
    """One member's lots (as stored), each with the transfer that carries it, or the reason code of
    the reject that stopped it; amounts as Decimal."""
    cols = ["lot_id", "accrued", "consumed", "remaining", "status", "action_at_utc", "unlock_at_utc",
            "expires_at_utc", "center", "program", "line"]
    out = lots.reindex(columns=cols).reset_index(drop=True)
    for c in ("accrued", "consumed", "remaining"):
        out[c] = pd.Series([stored_decimal(v) for v in out[c].tolist()], dtype=object)
    carried: dict[str, str] = {}
    for tid, ids in zip(text_column(transfers, "transfer_id").tolist(), text_column(transfers, "lot_ids").tolist()):
        for lot in ids.split(","):
            carried[lot] = tid
    rejected = dict(zip(text_column(rejects, "lot_id").tolist(), text_column(rejects, "reason_code")))
    out["transfer"] = [carried.get(lot) or rejected.get(lot, "") for lot in out["lot_id"].tolist()]
    return out


def rejects_by_reason(rejects: pd.DataFrame) -> pd.DataFrame:
    """Rows per file and reason code; ``reason`` (file: code) labels the chart."""
    if rejects.empty:
        return pd.DataFrame({"reason": [], "file": [], "reason_code": [], "rows": []})
    out = (rejects.groupby(["file", "reason_code"]).size().rename("rows").reset_index()
           .sort_values(["file", "rows"], ascending=[True, False], kind="stable").reset_index(drop=True))
    out.insert(0, "reason", out["file"] + ": " + out["reason_code"])
    return out


def reject_examples(rejects: pd.DataFrame, n: int, *, show_pii: bool) -> pd.DataFrame:
    """A few rejects per reason; phones and emails of opening rows masked unless ``show_pii``."""
    r = rejects.sort_values(["reason_code", "file", "line"], kind="stable").groupby("reason_code").head(n)
    r = r.reset_index(drop=True).copy()
    if show_pii or r.empty:
        return r
    opening = r["reason_code"].str.startswith("OPENING_").to_numpy()
    amounts = r["reason_code"].isin(_AMOUNT_REASONS).to_numpy()

    def masked(v: str) -> str:
        return "|".join(mask_identifier(part) for part in str(v).split("|"))

    for col, rows in (("record_key", opening & (r["record_key"].str.contains("[|@]", regex=True).to_numpy())),
                      ("value", opening & ~amounts)):
        r.loc[rows, col] = r.loc[rows, col].map(masked)
    return r
