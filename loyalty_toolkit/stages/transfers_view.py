"""The tables stage 03's notebook shows (``transfers_outcome.TransfersOutcome`` methods call these).

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
from loyalty_toolkit.sources.ledger import UNITS_PER_POINT, units_to_decimal
from loyalty_toolkit.stages.lots import FALLBACK_METHODS, OPEN, PENDING, text_column
from loyalty_toolkit.store import stored_decimal

# (label, lowest whole balance in the band); a balance below zero is "negative".
BANDS: tuple[tuple[str, int], ...] = (("0", 0), ("1-99", 1), ("100-499", 100), ("500-999", 500),
                                      ("1,000-4,999", 1000), ("5,000+", 5000))
NEVER = "never"
_NAT = np.iinfo(np.int64).min  # the engine's "no time"
_CENT = Decimal("0.01")
_AMOUNT_REASONS = ("OPENING_AMOUNT_INVALID", "OPENING_NEGATIVE")


def _dec(units) -> np.ndarray:
    return units_to_decimal(np.asarray(units, dtype=np.int64))


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


def _member_totals(balances: pd.DataFrame, all_lots: pd.DataFrame) -> pd.Series:
    """Units owed per member: the ledger balance plus the member's opening lots."""
    ledger = pd.Series(balances["balance_units"].to_numpy(np.int64), index=text_column(balances, "user_id"))
    opening = all_lots[text_column(all_lots, "source") == "opening"]
    extra = pd.Series(opening["remaining_units"].to_numpy(np.int64),
                      index=text_column(opening, "user_id")).groupby(level=0).sum()
    return ledger.add(extra, fill_value=0).astype(np.int64)


def balance_bands(balances: pd.DataFrame, all_lots: pd.DataFrame) -> pd.DataFrame:
    """Members per band of the balance they are owed at the cutover (for ``charts.bar``)."""
    owed = _member_totals(balances, all_lots).to_numpy(np.int64)
    whole = owed // UNITS_PER_POINT
    rows = [("negative", int((owed < 0).sum()), _dec([owed[owed < 0].sum()])[0])]
    for i, (label, low) in enumerate(BANDS):
        high = BANDS[i + 1][1] if i + 1 < len(BANDS) else None
        sel = (owed >= 0) & (whole >= low) & ((whole < high) if high is not None else True)
        rows.append((label, int(sel.sum()), _dec([owed[sel].sum()])[0]))
    return pd.DataFrame(rows, columns=["balance", "members", "points"]).astype({"points": object})


def _month(lots: pd.DataFrame, column: str, tz: str) -> np.ndarray:
    """The month ("YYYY-MM" in ``tz``, or "never") of each lot's ``column``: from its int64
    microsecond twin when the frame has one (the engine's), else from the ISO text (the stored
    table). Each distinct instant is converted once: lots share a few thousand expiry dates."""
    twin = column.replace("_utc", "_us")
    if twin in lots.columns:
        values = lots[twin].to_numpy(np.int64)
        uniq, codes = np.unique(values, return_inverse=True)
        real = uniq != _NAT
        stamps = pd.to_datetime(uniq[real], unit="us", utc=True)
    else:
        values = text_column(lots, column)
        codes, uniq = pd.factorize(values)
        uniq = np.asarray(uniq, dtype=object)
        real = uniq != ""
        stamps = pd.to_datetime(pd.Series(uniq[real], dtype=object), format="ISO8601", utc=True)
    names = np.full(len(uniq), NEVER, dtype=object)
    if real.any():
        local = pd.Series(stamps).dt.tz_convert(tz)
        names[real] = local.dt.strftime("%Y-%m").to_numpy(dtype=object)
    return names[codes] if len(codes) else np.zeros(0, dtype=object)


def month_totals(lots: pd.DataFrame, column: str, tz: str) -> pd.DataFrame:
    """Lots, members and units (int64 micro-points) per month of ``column`` (ISO UTC text, "" =
    never) in ``tz``: one member slice's part of a calendar; :func:`months` adds the parts up
    (members add up too, a member being in one slice only)."""
    f = pd.DataFrame({"month": _month(lots, column, tz), "user_id": text_column(lots, "user_id"),
                      "units": lots["remaining_units"].to_numpy(np.int64)})
    return f.groupby("month", sort=True).agg(lots=("units", "size"), members=("user_id", "nunique"),
                                             units=("units", "sum")).reset_index()


def months(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Month totals added up: months in order, "never" last, points as Decimal."""
    frames = [p for p in parts if len(p)]
    if not frames:
        return pd.DataFrame({"month": [], "lots": [], "members": [], "points": []})
    g = pd.concat(frames, ignore_index=True).groupby("month", sort=True)[["lots", "members", "units"]].sum()
    g = g.reset_index()
    g["points"] = pd.Series(_dec(g["units"]), dtype=object)
    g = g.drop(columns=["units"])
    g["_never"] = g["month"] == NEVER
    return g.sort_values(["_never", "month"], kind="stable").drop(columns=["_never"]).reset_index(drop=True)


def live(all_lots: pd.DataFrame) -> pd.DataFrame:
    """Open and pending lots with points left: what the members are owed."""
    status = text_column(all_lots, "status")
    return all_lots[np.isin(status, (OPEN, PENDING)) & (all_lots["remaining_units"].to_numpy(np.int64) > 0)]


def expiry_calendar(all_lots: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Open and pending points by the month they expire (in the ledger's timezone); "never" last."""
    return months([month_totals(live(all_lots), "expires_at_utc", tz)])


def pending(all_lots: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Pending points (effective start after the cutover) by the month they unlock."""
    lots = live(all_lots)
    return months([month_totals(lots[text_column(lots, "status") == PENDING], "unlock_at_utc", tz)])


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
