"""Stage 03 logic: opening-balance rows (Haravan, seed 003) become lots of mapped members.

:func:`opening_lots` matches each opening-balance row to ONE accepted member by phone AND email
together (seed 003): the pair must be held by exactly one member (invariant 6), and that member
must be mapped to a target ID. Matched rows become open lots shaped like ``LotResult.lots``
(program = the rule's action name, center ``opening``, ``source`` ``opening``) holding the WHOLE
points ``parse_opening`` already rounded once; their residue is reported there, never rounded
again here (rounding a whole number is a no-op, so build_transfers adds no residue for them).
Rows no mapped member holds are listed, with their points, in ``unmatched``.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

from loyalty_toolkit.mask import mask_email, mask_phone
from loyalty_toolkit.model import OPEN, REJECT_COLUMNS
from loyalty_toolkit.shared.frames import text_column
from loyalty_toolkit.shared.identifiers import match_phone_email
from loyalty_toolkit.sources.ledger.parse import UNITS_PER_POINT, units_to_decimal
from loyalty_toolkit.stages.transfers.engine import (
    OPENING_CENTER,
    OPENING_LOT_COLUMNS,
    OPENING_SOURCE,
    STAGE,
    US_OF,
    iso_us,
)
from loyalty_toolkit.stages.transfers.keys import holders, isin

OPENING_NO_MEMBER = "OPENING_NO_MEMBER"
OPENING_MEMBER_AMBIGUOUS = "OPENING_MEMBER_AMBIGUOUS"
OPENING_MEMBER_UNMAPPED = "OPENING_MEMBER_UNMAPPED"
UNMATCHED_COLUMNS = (*REJECT_COLUMNS, "legacy_id", "lot_id", "points", "points_exact", "residue")
_SEP = "\x1f"  # between the phone and the email of one pair


def opening_lots(balances: pd.DataFrame, members: pd.DataFrame, id_map: pd.DataFrame
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(lots, unmatched): each ``parse_opening`` balance matched to one member by phone AND email key.

    ``members``: accepted members with legacy_id, email_key, phone (E.164). ``unmatched``
    (UNMATCHED_COLUMNS, reasons OPENING_NO_MEMBER, OPENING_MEMBER_AMBIGUOUS,
    OPENING_MEMBER_UNMAPPED) carries each row's points so opening points are conserved:
    sum(balances.points) == sum(lots.remaining) + sum(unmatched.points). Rows are matched with
    joins; only the unmatched rows are visited one by one, for their messages.
    """
    legacy = text_column(id_map, "legacy_id")
    m_id, m_phone, m_email = (text_column(members, c) for c in ("legacy_id", "phone", "email_key"))
    b_phone, b_email = text_column(balances, "phone"), text_column(balances, "email_key")
    n = len(balances)
    # per row, the distinct members holding both its phone and its email key (invariant 6: exactly
    # one). A pair is one text, phone + _SEP + email: an E.164 phone never holds _SEP, so two pairs
    # share a text only if they are the same pair.
    both = np.flatnonzero((m_phone != "") & (m_email != "") & isin(m_phone, b_phone))
    pair_code, pairs = pd.factorize(m_phone[both] + _SEP + m_email[both])
    owner_code, _ = pd.factorize(m_id[both])
    distinct = ~pd.Series(pair_code.astype(np.int64) * (len(both) + 1) + owner_code).duplicated().to_numpy()
    pair_code, held_owner = pair_code[distinct], m_id[both][distinct]
    size = np.bincount(pair_code, minlength=len(pairs)).astype(np.int64)
    first = np.zeros(len(pairs), dtype=np.int64)
    first[pair_code[::-1]] = np.arange(len(pair_code))[::-1]  # the first holder of each pair
    at = pd.Index(pairs, dtype=object).get_indexer(b_phone + _SEP + b_email) if n else np.zeros(0, dtype=np.int64)
    n_owners = np.where(at >= 0, size[np.maximum(at, 0)] if len(pairs) else 0, 0).astype(np.int64)
    owner = np.where(at >= 0, held_owner[first[np.maximum(at, 0)]] if len(pairs) else None, np.nan).astype(object)
    mapped_owner = np.zeros(n, dtype=bool)
    single = np.flatnonzero(n_owners == 1)
    # one hash pass over the id map and the owners: factorize numbers values by first appearance,
    # so the ids are unique iff they come out 0, 1, 2 ... and an owner is mapped iff its code is
    # one of theirs (what _id_map checks and an isin would answer, without its dict)
    codes, _ = pd.factorize(np.concatenate([legacy, owner[single].astype(object)]))
    if not np.array_equal(codes[:len(legacy)], np.arange(len(legacy))):
        raise ValueError("id_map must hold each legacy_id once")
    mapped_owner[single] = codes[len(legacy):] < len(legacy)
    ok = np.flatnonzero(mapped_owner)

    def raw(column: str, rows: np.ndarray) -> list:
        """The balances' own values (as itertuples gives them), "" where the column is absent."""
        if column not in balances.columns:
            return [""] * len(rows)
        return balances[column].to_numpy(dtype=object)[rows].tolist()

    def values(column: str) -> np.ndarray:
        """The balances' own values at the ``ok`` rows, as an object array."""
        if column not in balances.columns:
            return np.full(len(ok), "", dtype=object)
        return balances[column].to_numpy(dtype=object)[ok]

    points = values("points").astype(np.int64) if len(ok) else np.zeros(0, np.int64)
    units = points * UNITS_PER_POINT
    pts = units_to_decimal(units)
    k, start = len(ok), values("effective_start")
    data = {"lot_id": values("lot_id"), "user_id": owner[ok], "accrued": pts,
            "consumed": np.full(k, Decimal(0), dtype=object), "remaining": pts,
            "status": np.full(k, OPEN, dtype=object),
            "expires_at_utc": values("effective_end"), "unlock_at_utc": start, "program": values("action_name"),
            "center": np.full(k, OPENING_CENTER, dtype=object), "line": values("line").astype(np.int64),
            "action_at_utc": start, "accrued_units": units, "consumed_units": np.zeros(k, dtype=np.int64),
            "remaining_units": units, "source": np.full(k, OPENING_SOURCE, dtype=object),
            "source_file": values("source_file")}
    # column by column, with the dtypes from_records would infer for these rows (text as str)
    lot_frame = (pd.DataFrame({c: list(v) if v.dtype == object else v for c, v in data.items()}) if k
                 else pd.DataFrame.from_records([], columns=list(data)))
    lot_frame = lot_frame.astype({"line": "int64", "accrued_units": "int64", "consumed_units": "int64",
                                  "remaining_units": "int64"})
    for us_column, iso_column in US_OF.items():  # the int64 twins build_lots gives its lots too
        lot_frame[us_column] = iso_us(lot_frame, iso_column)
    lot_frame = lot_frame[list(OPENING_LOT_COLUMNS)]

    bad = np.flatnonzero(~mapped_owner)
    unmatched = _unmatched_rows(bad, n_owners[bad], owner[bad], b_phone, b_email, m_id, m_phone, m_email, raw)
    um = pd.DataFrame.from_records(unmatched, columns=list(UNMATCHED_COLUMNS)).astype({"line": "int64",
                                                                                        "points": "int64"})
    return lot_frame, um


def _unmatched_rows(rows, n_owners, owner, b_phone, b_email, m_id, m_phone, m_email, raw) -> list[tuple]:
    """UNMATCHED_COLUMNS records of the balance ``rows`` no mapped member holds (one loop over them)."""
    # who holds the phone, or the email, of a row nobody holds both of (for its message), and who
    # shares the pair of an ambiguous row: looked up for those rows only
    none, shared = rows[n_owners == 0], rows[n_owners > 1]
    nobody = np.zeros(len(m_phone), dtype=bool)  # no such row: no pass over a million members
    has_phone = (m_phone != "") & isin(m_phone, b_phone[none]) if len(none) else nobody
    has_email = (m_email != "") & isin(m_email, b_email[none]) if len(none) else nobody
    holds = ((m_phone != "") & (m_email != "") & isin(m_phone, b_phone[shared]) & isin(m_email, b_email[shared])
             if len(shared) else nobody)
    by_phone, by_email = holders(m_phone[has_phone], m_id[has_phone]), holders(m_email[has_email], m_id[has_email])
    pair_owners = holders(m_phone[holds], m_email[holds], m_id[holds])
    out = []
    for row, count, legacy, file, line, lot_id, phone, email, pts, exact, residue in zip(
            rows.tolist(), n_owners.tolist(), owner.tolist(), raw("source_file", rows),
            raw("line", rows), raw("lot_id", rows), raw("phone", rows), raw("email", rows), raw("points", rows),
            raw("points_exact", rows), raw("residue", rows)):
        if count == 0:
            legacy, code = "", OPENING_NO_MEMBER
            msg = no_member_message(b_phone[row], b_email[row], by_phone.get((b_phone[row],), []),
                                    by_email.get((b_email[row],), []))
        elif count > 1:
            legacy, code = "", OPENING_MEMBER_AMBIGUOUS
            owners = pair_owners[(b_phone[row], b_email[row])]
            msg = f"phone and email are shared by members {', '.join(owners)}: not picked (invariant 6)"
        else:
            code = OPENING_MEMBER_UNMAPPED
            msg = f"member {legacy} has no target ID (stage 02): the opening points cannot be transferred"
        out.append((STAGE, file, int(line), lot_id, "phone+email", code, f"opening balance of {pts} points: {msg}",
                    f"{phone}|{email}", legacy, lot_id, int(pts), exact, residue))
    return out


def no_member_message(phone: str, email_key: str, phone_owners, email_owners) -> str:
    """Why no member holds an opening row's pair: each identifier (masked) and whom it belongs to,
    e.g. ``no member holds both: the phone ********5017 is member G2's, the email j***@mail.vn is no
    accepted member's``. The phone is shown as read in the file's region, so a wrong region shows."""
    def whose(kind: str, shown: str, owners) -> str:
        who = f"member {', '.join(owners)}'s" if len(owners) else "no accepted member's"
        return f"the {kind} {shown or '(empty)'} is {who}"

    return (f"no member holds both: {whose('phone', mask_phone(phone), phone_owners)}, "
            f"{whose('email', mask_email(email_key), email_owners)}")


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
    phones = text_column(members, "phone")
    # object columns: match_phone_email reads them back as arrays, a text dtype would convert twice
    table = pd.DataFrame({"phone": phones, "email_key": text_column(members, "email_key")}, dtype=object)
    current = text_column(balances, "phone")
    pos = match_phone_email(table, current, text_column(balances, "email_key"), text_column(balances, "phone_raw"))
    hit = (pos >= 0)
    hit[hit] = phones[pos[hit]] != current[hit]
    if not hit.any():
        return balances, 0
    out = balances.copy()
    new = current.copy()
    new[hit] = phones[pos[hit]]
    out["phone"] = new
    return out, int(hit.sum())
