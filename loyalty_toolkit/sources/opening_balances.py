"""Parse the Haravan-style opening-balance file (seed 003) into checked balances with points.

The file has one row per customer: ``phone``, ``email``, ``DTDauKy`` (opening revenue: what the
customer has spent so far, which the platform turns into points with the shop's earning rule) and
``DTTichLuy`` (accumulated revenue, kept as purchase history). Seed 003: the phone AND the email
must both be right or the row does not import, so a row needs both. Matching a row to a migrated
member (phone and email together) is stage logic (``stages.transfers.opening.opening_lots``), not here.

Amounts (:func:`parse_vnd`). VND has no minor unit, so in these two columns a ``,`` or ``.``
followed by groups of exactly 3 digits is a thousands separator: ``1.500.000``, ``1,500,000``
and also ``1.500`` / ``1,500`` (= 1500; ``normalize.parse_decimal`` alone refuses ``1,500`` as
ambiguous and reads ``1.500`` as 1.5, which is right for points but not for dong). Everything
else goes through ``parse_decimal`` (``1 500 000``, ``1.500.000,00``, ``1500000.00``) and must
come out whole: ``12,5`` or ``1500.5`` is ``OPENING_AMOUNT_INVALID``. Never through float.

Points = DTDauKy x ``rule.points`` / ``rule.amount`` (``points_exact``), rounded ONCE to whole
points with ``rule.rounding`` (``points``); ``residue`` = points_exact - points is kept per row and
``OpeningParse.residue_total`` sums it, so ``sum(points) + residue_total == sum(points_exact)``
exactly. The division runs at 60 significant digits: exact for any rule whose ratio terminates
(1 point per 10,000 VND); for a ratio such as 1/3 the exact value carries 60 digits, and the
identity still holds because residues are computed from that same value and sums run exactly.

Reason codes, checked in this order (a row gets the first that applies):
``OPENING_IDENTIFIER_MISSING`` (phone or email empty), ``OPENING_IDENTIFIER_INVALID`` (a phone
that is not a possible number in ``default_region``, or an email that is not an address: it could
never match a member, who passed the same checks in stage 01), ``FORMULA_CELL`` (an email that a
spreadsheet would run as a formula, ``=x@y.fr``: Haravan takes the email as written, so it cannot
carry the leading ``'`` of ``csv_cells``), ``OPENING_AMOUNT_INVALID`` (either
amount empty, unreadable or fractional), ``OPENING_NEGATIVE`` (either amount below zero),
``OPENING_DUPLICATE`` (the same E.164 phone + email key on several otherwise valid rows: EVERY
such row is rejected, since which one holds the balance is for a person to decide, invariant 6).
``rows_read == len(balances) + len(rejects)``.

Each accepted row becomes a future lot: ``lot_id`` = ``opening:`` + 16 hex digits of a UUIDv5 of
phone and email key (stable when the file is re-sorted, and no personal data in the id), valid
from the cutover (``effective_start``) to cutover + ``rule.validity_days`` (``effective_end``,
``""`` = never), both as ISO UTC strings like the lot engine's.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, localcontext

import numpy as np
import pandas as pd

from loyalty_toolkit.config import OPENING_COLUMNS, OpeningRule
from loyalty_toolkit.csv_cells import FORMULA_CELL, FORMULA_TRIGGERS
from loyalty_toolkit.model import REJECT_COLUMNS
from loyalty_toolkit.normalize import email_problem, normalize_emails, normalize_phones, parse_decimal, phone_problem

STAGE = "transfers"

IDENTIFIER_MISSING = "OPENING_IDENTIFIER_MISSING"
IDENTIFIER_INVALID = "OPENING_IDENTIFIER_INVALID"
AMOUNT_INVALID = "OPENING_AMOUNT_INVALID"
NEGATIVE = "OPENING_NEGATIVE"
DUPLICATE = "OPENING_DUPLICATE"
FORMULA = FORMULA_CELL
REASON_CODES: tuple[str, ...] = (IDENTIFIER_MISSING, IDENTIFIER_INVALID, FORMULA, AMOUNT_INVALID, NEGATIVE, DUPLICATE)

BALANCE_COLUMNS: tuple[str, ...] = (
    "line", "phone", "phone_raw", "email_key", "email", "email_raw", "opening_revenue", "accumulated_revenue",
    "points_exact", "points", "residue", "lot_id", "action_name", "effective_start", "effective_end",
    "source_file",
)
# Fixed namespace of opening lot ids: uuid5(NAMESPACE_URL, "loyalty-migrate:opening-balance").
LOT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "loyalty-migrate:opening-balance")
PRECISION = 60  # significant digits of points_exact (see the module docstring)

_GROUPED_VND = re.compile(r"[0-9]{1,3}(?:([.,])[0-9]{3})(?:\1[0-9]{3})*")


@dataclass
class OpeningParse:
    """Accepted ``balances`` (BALANCE_COLUMNS) and ``rejects`` (REJECT_COLUMNS) of one opening file."""

    balances: pd.DataFrame
    rejects: pd.DataFrame
    rows_read: int
    source_file: str
    rule: OpeningRule

    @property
    def points_total(self) -> int:
        return int(sum(self.balances["points"].tolist(), 0))

    @property
    def points_exact_total(self) -> Decimal:
        return _exact_sum(self.balances["points_exact"])

    @property
    def residue_total(self) -> Decimal:
        """Sum of (exact - rounded) over accepted rows: points_total + residue_total == points_exact_total."""
        return _exact_sum(self.balances["residue"])

    def reject_counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.rejects["reason_code"].value_counts().sort_index().items()}


def parse_vnd(text: object) -> Decimal:
    """A whole VND amount from text (see the module docstring); ValueError when not one."""
    raw = "" if text is None else str(text)
    s = raw.strip().replace("\u00a0", "").replace("\u202f", "")
    sign = ""
    if s[:1] in ("+", "-"):
        sign, body = ("-" if s[0] == "-" else ""), s[1:].strip()
    else:
        body = s
    if _GROUPED_VND.fullmatch(body):
        value = Decimal(sign + re.sub(r"[.,]", "", body))
    else:
        value = parse_decimal(raw)  # raises ValueError for anything that is not a plain number
    if value != value.to_integral_value():
        raise ValueError(f"VND amounts have no decimals: {raw!r}")
    return value.quantize(Decimal(1)) + 0  # + 0 turns -0 into 0


def points_for(amount: Decimal, rule: OpeningRule) -> tuple[Decimal, int, Decimal]:
    """(points_exact, points rounded once with ``rule.rounding``, residue = exact - points)."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        exact = amount * rule.points / rule.amount
        ctx.prec = 2 * PRECISION + 20  # exact - rounded needs the integer digits on top: never round it
        rounded = exact.quantize(Decimal(1), rounding=rule.rounding)
        residue = exact - rounded
    return exact, int(rounded), residue


def _points_many(amounts: list[Decimal], rule: OpeningRule) -> list[tuple[Decimal, int, Decimal]]:
    """:func:`points_for` of each amount, the same arithmetic in one decimal context."""
    out = []
    with localcontext() as ctx:
        for amount in amounts:
            ctx.prec = PRECISION
            exact = amount * rule.points / rule.amount
            ctx.prec = 2 * PRECISION + 20
            rounded = exact.quantize(Decimal(1), rounding=rule.rounding)
            out.append((exact, int(rounded), exact - rounded))
    return out


def opening_lot_id(phone_e164: str, email_key: str) -> str:
    """``opening:<16 hex>``: deterministic from the row's identifiers, without personal data."""
    return "opening:" + uuid.uuid5(LOT_NAMESPACE, f"{phone_e164}|{email_key}").hex[:16]


def opening_lot_ids(phone_e164: list[str], email_key: list[str]) -> np.ndarray:
    """:func:`opening_lot_id` of each pair: one SHA-1 per row, the UUID bits and hex in bulk."""
    n = len(phone_e164)
    if not n:
        return np.zeros(0, dtype=object)
    ns, sha1 = LOT_NAMESPACE.bytes, hashlib.sha1
    names = (np.asarray(phone_e164, dtype=object) + "|" + np.asarray(email_key, dtype=object)).tolist()
    # the first 8 bytes of the UUID are the digest's, with the version in the high nibble of byte 6
    head = np.frombuffer(b"".join([sha1(ns + name.encode("utf-8")).digest()[:8] for name in names]),
                         dtype=np.uint8).reshape(n, 8).copy()
    head[:, 6] = (head[:, 6] & 0x0F) | 0x50
    text = head.tobytes().hex()
    return np.asarray(["opening:" + text[i:i + 16] for i in range(0, 16 * n, 16)], dtype=object)


def parse_opening(frame: pd.DataFrame, *, source_file: str, default_region: str, rule: OpeningRule,
                  cutover: datetime, columns: Mapping[str, str] | None = None) -> OpeningParse:
    """Check every row of ``frame`` (``to_frame`` with ``OpeningBalancesSource.column_map()``:
    phone, email, opening_revenue, accumulated_revenue, ``_line``) and compute its points.

    National phones are read in ``default_region`` and stored as E.164. ``cutover`` (aware) is
    when the opening points start; ``columns`` (canonical -> header) names columns in rejects.
    Amounts and points are worked out once per distinct text; the checks run on whole columns,
    and only the rejected rows are visited one by one, for their messages.
    """
    if cutover.tzinfo is None:
        raise ValueError("cutover must be timezone-aware")
    headers = {**OPENING_COLUMNS, **(columns or {})}
    frame = frame.reset_index(drop=True)
    n = len(frame)
    lines = (frame["_line"].to_numpy(dtype=np.int64) if "_line" in frame.columns
             else np.arange(2, n + 2, dtype=np.int64))

    def text(name: str) -> pd.Series:
        if name not in frame.columns:
            return pd.Series([""] * n, dtype=object)
        values = pd.Series(frame[name].to_numpy(dtype=object, na_value=""), dtype=object)
        # str(v) is v for text: the pass of Python is only for columns holding something else
        return values if pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty") else values.map(str)

    phone_raw, email_raw = text("phone"), text("email")
    phone_stripped, email_stripped = phone_raw.str.strip(), email_raw.str.strip()
    phones = normalize_phones(phone_stripped, default_region)
    emails = normalize_emails(email_raw)
    amount_raw = {name: text(name) for name in ("opening_revenue", "accumulated_revenue")}
    amounts = {name: _amounts(raw) for name, raw in amount_raw.items()}

    p_set = (phone_stripped != "").to_numpy(dtype=bool)
    e_set = (email_stripped != "").to_numpy(dtype=bool)
    phone_ok, email_ok = phones["phone_valid"].to_numpy(dtype=bool), emails["email_valid"].to_numpy(dtype=bool)
    # the phone is E.164 (a plain number, safe in a spreadsheet); the email is written as it is
    formula = emails["email"].str.startswith(FORMULA_TRIGGERS).to_numpy(dtype=bool)
    clean = p_set & e_set & phone_ok & email_ok & ~formula
    for value, problem, negative in amounts.values():
        clean &= ~problem & ~negative

    # plain lists: indexing a pandas column per row costs microseconds, a list nanoseconds
    phone_e164, email_key = phones["phone"].tolist(), emails["email_key"].tolist()
    reason: dict[int, str] = {}
    detail: dict[int, tuple[str, str, str]] = {}
    for i in np.flatnonzero(~clean).tolist():  # the first check that fails, in the module's order
        p, e = phone_stripped.iat[i], email_stripped.iat[i]
        if not p or not e:
            missing = "phone" if not p else "email"
            reason[i] = IDENTIFIER_MISSING
            detail[i] = (headers[missing], f"{headers[missing]} is empty: Haravan needs both phone and email to "
                         "find the customer", "")
        elif not phone_ok[i]:
            reason[i] = IDENTIFIER_INVALID
            detail[i] = (headers["phone"], f"{headers['phone']}: {phone_problem(p, default_region)}", p)
        elif not email_ok[i]:
            reason[i] = IDENTIFIER_INVALID
            detail[i] = (headers["email"], f"{headers['email']}: not a valid address ({email_problem(e)})", e)
        elif formula[i]:
            reason[i] = FORMULA
            detail[i] = (headers["email"], f"{headers['email']}: starts like a spreadsheet formula and Haravan takes "
                         "it as written: refused rather than altered", e)
        else:
            for name in ("opening_revenue", "accumulated_revenue"):
                raw = amount_raw[name].iat[i]
                value, problem = _amount(raw)
                if problem is not None:
                    reason[i] = AMOUNT_INVALID
                    detail[i] = (headers[name], f"{headers[name]}: {problem}", raw)
                    break
                if value < 0:
                    reason[i] = NEGATIVE
                    detail[i] = (headers[name], f"{headers[name]}: negative amount {value}", raw)
                    break

    # duplicates among rows that passed every other check: all of them go
    kept = np.flatnonzero(clean)
    keys = pd.Series(np.asarray(phone_e164, dtype=object)[kept] + "|" + np.asarray(email_key, dtype=object)[kept],
                     dtype=object)
    dup = keys.duplicated(keep=False).to_numpy()
    if dup.any():
        lines_of: dict[str, list[int]] = {}
        for i, k in zip(kept[dup].tolist(), keys[dup].tolist()):
            lines_of.setdefault(k, []).append(int(lines[i]))
        for i, k in zip(kept[dup].tolist(), keys[dup].tolist()):
            others = ", ".join(str(x) for x in lines_of[k] if x != lines[i])
            reason[i] = DUPLICATE
            detail[i] = (f"{headers['phone']}+{headers['email']}",
                         f"the same phone and email are on line(s) {others}: every such row is held back, "
                         "which one holds the balance is for a person to decide", "")
        kept = kept[~dup]

    start = cutover.astimezone(timezone.utc)
    start_iso = start.isoformat(timespec="seconds")
    end_iso = ("" if rule.validity_days is None
               else (start + timedelta(days=rule.validity_days)).isoformat(timespec="seconds"))
    balances = _balances(kept, lines, phone_e164, phone_raw, email_key, emails["email"], email_raw, amounts,
                         amount_raw["opening_revenue"], rule, start_iso, end_iso, source_file)

    rej = []
    for i in sorted(reason):
        column, message, value = detail[i]
        record_key = f"{phone_stripped.iat[i]}|{email_stripped.iat[i]}"
        rej.append((STAGE, source_file, int(lines[i]), record_key, column, reason[i], message, value))
    rejects = pd.DataFrame.from_records(rej, columns=list(REJECT_COLUMNS))
    rejects = rejects.astype({c: "str" for c in REJECT_COLUMNS if c != "line"}).astype({"line": "int64"})
    result = OpeningParse(balances=balances, rejects=rejects, rows_read=n, source_file=source_file, rule=rule)
    if n != len(balances) + len(rejects):
        raise AssertionError(f"row conservation broken: {n} read != {len(balances)} + {len(rejects)}")
    return result


def _balances(kept: np.ndarray, lines: np.ndarray, phone_e164: list[str], phone_raw: pd.Series,
              email_key: list[str], email_norm: pd.Series, email_raw: pd.Series,
              amounts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], opening_raw: pd.Series,
              rule: OpeningRule, start_iso: str, end_iso: str, source_file: str) -> pd.DataFrame:
    """BALANCE_COLUMNS of the ``kept`` rows; points once per distinct opening amount text."""
    if not len(kept):  # the types an empty from_records gives, as before
        empty = pd.DataFrame.from_records([], columns=list(BALANCE_COLUMNS))
        return empty.astype({"line": "int64", "points": "int64"})
    codes, uniques = pd.factorize(opening_raw.to_numpy(dtype=object)[kept])
    opening = amounts["opening_revenue"][0][kept]
    first = np.zeros(len(uniques), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]  # a row of each distinct text
    parts = _points_many(opening[first].tolist(), rule)
    exact = np.asarray([p[0] for p in parts], dtype=object)[codes]
    points = np.asarray([p[1] for p in parts], dtype=object)[codes]
    residue = np.asarray([p[2] for p in parts], dtype=object)[codes]
    phone = np.asarray(phone_e164, dtype=object)[kept]
    key = np.asarray(email_key, dtype=object)[kept]
    k = len(kept)

    def strs(values) -> pd.Series:
        return pd.Series(np.asarray(values, dtype=object), dtype="str")

    def objs(values: np.ndarray) -> pd.Series:
        return pd.Series(values, dtype=object)

    balances = pd.DataFrame({
        "line": pd.Series(lines[kept], dtype="int64"), "phone": strs(phone),
        "phone_raw": strs(phone_raw.to_numpy(dtype=object)[kept]), "email_key": strs(key),
        "email": strs(email_norm.to_numpy(dtype=object)[kept]),
        "email_raw": strs(email_raw.to_numpy(dtype=object)[kept]),
        "opening_revenue": objs(opening), "accumulated_revenue": objs(amounts["accumulated_revenue"][0][kept]),
        "points_exact": objs(exact), "points": pd.Series(points.astype(np.int64), dtype="int64"),
        "residue": objs(residue), "lot_id": strs(opening_lot_ids(phone.tolist(), key.tolist())),
        "action_name": strs([rule.action_name] * k), "effective_start": strs([start_iso] * k),
        "effective_end": strs([end_iso] * k), "source_file": strs([source_file] * k),
    })
    return balances[list(BALANCE_COLUMNS)]


def _amounts(raw: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, problem, negative) per row: :func:`_amount` once per distinct text. The common
    shapes, ASCII digits with or without thousands groups (``1500000``, ``1.500.000``), go straight
    to Decimal, which is what parse_vnd gives them (up to 28 digits: beyond, parse_vnd's
    default-context arithmetic decides)."""
    codes, uniques = pd.factorize(raw.to_numpy(dtype=object))
    values, problems = [], []
    for u in uniques.tolist():
        digits = u if u.isdigit() else (u.replace(",", "").replace(".", "") if _GROUPED_VND.fullmatch(u) else "")
        if digits and len(digits) <= 28 and digits.isascii():
            values.append(Decimal(digits))
            problems.append(False)
        else:
            value, problem = _amount(u)
            values.append(value)
            problems.append(problem is not None)
    value = np.asarray(values, dtype=object)
    negative = np.asarray([v < 0 for v in values], dtype=bool)
    return value[codes], np.asarray(problems, dtype=bool)[codes], negative[codes]


def _amount(text: str) -> tuple[Decimal, str | None]:
    if not text.strip():
        return Decimal(0), "empty (write 0 for a customer with no revenue)"
    try:
        return parse_vnd(text), None
    except ValueError as exc:
        return Decimal(0), str(exc)


def _exact_sum(values: pd.Series) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 200  # far beyond any realistic sum of 60-digit values: additions stay exact
        return sum(values.tolist(), Decimal(0))
