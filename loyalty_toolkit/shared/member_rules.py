"""Stage 01 logic: normalise legacy members, reject what the target cannot take, list duplicates.

Pure: a canonical member frame in (see :func:`loyalty_toolkit.sources.members.read_members`), frames
out; no I/O. Every input row is either accepted or rejected with exactly one reason code, so
``rows_read == accepted + rejected`` always holds (checked here and in the tests).

Rules are tried in this order; the first that fails gives the reason code:

=========================  =======================  ====================================================
reason_code                column                   rejected when
=========================  =======================  ====================================================
``CONTROL_CHARACTER``      the first such field     a field holds a character XML 1.0 cannot carry (a NUL
                                                    byte, another C0 control but tab, LF and CR): the
                                                    members XML could not be written
``LEGACY_ID_MISSING``      legacy_id                the legacy id is empty (after trimming)
``LEGACY_ID_DUPLICATE``    legacy_id                the id already appeared on an earlier line; the
                                                    first occurrence is the one kept, whatever its fate
``NO_IDENTIFIER``          email/phone/card_number  no email, phone or card number: the target needs one
``EMAIL_INVALID``          email                    an email is given but is not a plausible address,
                                                    and no valid phone or card is left to identify
                                                    the member
``PHONE_INVALID``          phone                    a phone is given but is not a possible number
                                                    (letters and extensions are refused too), and no
                                                    valid email or card is left
``NAME_MISSING``           first_name or last_name  empty (Open Loyalty's members XML requires
                                                    firstName and lastName)
``BIRTH_DATE_INVALID``     birth_date               given but not a real date (ISO, ``date_format`` or
                                                    DD/MM/YYYY), or before 1900-01-01
``CREATED_AT_INVALID``     created_at               given but not a readable date-time
=========================  =======================  ====================================================

A bad *optional* identifier does not reject a member who keeps a usable one: a malformed email
beside a valid phone or card (or a bad phone beside a valid email or card) is left out of the
member (empty ``email``/``phone``, so out of the import file and of duplicate and mapping keys),
kept as read in ``email_raw``/``phone_raw``, and listed in the **review list** (``review``, staging
table ``member_review``) with ``EMAIL_INVALID_DROPPED`` or ``PHONE_INVALID_DROPPED``.

Duplicates are never merged: accepted members sharing an email key (local part case-folded),
an E.164 phone or a trimmed card number are listed for review, one row per member per group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loyalty_toolkit.model import REJECT_COLUMNS
from loyalty_toolkit.normalize import (
    email_problem,
    normalize_emails,
    normalize_genders,
    normalize_names,
    normalize_phones,
    parse_date,
    parse_dates,
    parse_local_datetime,
    parse_local_datetimes,
    phone_problem,
)

STAGE = "members"
# What XML 1.0 cannot carry (targets/openloyalty.py refuses the same set when writing).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
FIELDS = ("legacy_id", "first_name", "last_name", "email", "phone", "card_number", "birth_date", "gender",
          "created_at", "base_center")
REASON_CODES = ("CONTROL_CHARACTER", "LEGACY_ID_MISSING", "LEGACY_ID_DUPLICATE", "NO_IDENTIFIER", "EMAIL_INVALID", "PHONE_INVALID",
                "NAME_MISSING", "BIRTH_DATE_INVALID", "CREATED_AT_INVALID")
MEMBER_COLUMNS_OUT = ("legacy_id", "first_name", "last_name", "email", "email_raw", "email_key", "phone",
                      "phone_raw", "card_number", "birth_date", "gender", "created_at_utc", "created_at_raw",
                      "base_center", "source_file", "source_line")
# Accepted members with an identifier left out (REJECT_COLUMNS: the same file, line, column, value).
REVIEW_CODES = ("EMAIL_INVALID_DROPPED", "PHONE_INVALID_DROPPED")
DUPLICATE_COLUMNS = ("group_id", "identifier", "identifier_key", "legacy_id", "source_line")
IDENTIFIERS = (("email", "email_key"), ("phone", "phone"), ("card_number", "card_number"))
MIN_BIRTH_DATE = "1900-01-01"  # ISO text compares like the dates it holds


@dataclass
class MembersResult:
    """What stage 01 produces: accepted members, rejects, the duplicate review list, rows read, and
    the review list of accepted members whose bad optional identifier was left out."""

    members: pd.DataFrame
    rejects: pd.DataFrame
    duplicates: pd.DataFrame
    rows_read: int
    review: pd.DataFrame = None  # REJECT_COLUMNS; reason_code in REVIEW_CODES

    def counts(self) -> dict[str, int]:
        return {
            "rows_read": self.rows_read,
            "accepted": len(self.members),
            "rejected": len(self.rejects),
            "duplicate_groups": int(self.duplicates["group_id"].nunique()),
            "duplicate_members": int(self.duplicates["legacy_id"].nunique()),
            "identifiers_dropped": 0 if self.review is None else len(self.review),
        }


def _text(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series([""] * len(frame), index=frame.index, dtype="str")
    series = frame[name].astype("str")
    return series.fillna("") if series.hasnans else series  # no copy of a clean column


def _strip(series: pd.Series) -> pd.Series:
    # A comprehension is several times faster than .str.strip() on python-backed strings.
    return pd.Series([v.strip() for v in series.to_numpy(dtype=object)], index=series.index, dtype="str")


def prepare_members(frame: pd.DataFrame, *, source_file: str, default_region: str, timezone: str,
                    date_format: str | None = None) -> MembersResult:
    """Normalise, validate and de-duplicate-check the legacy members in ``frame``.

    ``frame`` holds the canonical fields as text plus ``_line`` (physical source line; without it the
    row position + 2 is used, as if under a one-line header). Phones in national format are read
    in ``default_region``; created_at is local time in IANA zone ``timezone``; ``date_format`` is
    the strptime pattern of birth dates when they are not ISO.
    """
    frame = frame.reset_index(drop=True)
    n = len(frame)
    raw = {f: _text(frame, f) for f in FIELDS}
    lines = (frame["_line"].astype("int64") if "_line" in frame.columns
             else pd.Series(np.arange(2, n + 2), dtype="int64"))

    legacy_id = _strip(raw["legacy_id"])
    first, last = normalize_names(raw["first_name"]), normalize_names(raw["last_name"])
    emails = normalize_emails(raw["email"])
    phones = normalize_phones(raw["phone"], default_region)
    card = _strip(raw["card_number"])
    birth = parse_dates(raw["birth_date"], date_format)
    created = parse_local_datetimes(raw["created_at"], timezone)

    id_missing = (legacy_id == "").to_numpy()
    email_blank = (emails["email"] == "").to_numpy()
    phone_blank = (_strip(raw["phone"]) == "").to_numpy()
    card_given = (card != "").to_numpy()
    email_bad = ~email_blank & ~emails["email_valid"].to_numpy()
    phone_bad = ~phone_blank & ~phones["phone_valid"].to_numpy()
    email_ok, phone_ok = ~email_blank & ~email_bad, ~phone_blank & ~phone_bad
    birth_iso = birth["date"]
    control, control_field = _control_characters(raw)
    checks = [
        control,
        id_missing,
        legacy_id.duplicated(keep="first").to_numpy() & ~id_missing,
        email_blank & phone_blank & ~card_given,
        # a bad identifier rejects only a member it leaves without a usable one
        email_bad & ~phone_ok & ~card_given,
        phone_bad & ~email_ok & ~card_given,
        ((first == "") | (last == "")).to_numpy(),
        ~birth["date_valid"].to_numpy() | ((birth_iso != "") & (birth_iso < MIN_BIRTH_DATE)).to_numpy(),
        ~created["utc_valid"].to_numpy(),
    ]
    reason = np.select(checks, REASON_CODES, default="")
    rejected = reason != ""
    drop_email, drop_phone = email_bad & ~rejected, phone_bad & ~rejected
    if drop_email.any() or drop_phone.any():
        emails = emails.copy()
        phones = phones.copy()
        emails.loc[drop_email, ["email", "email_key"]] = ""
        phones.loc[drop_phone, "phone"] = ""

    # Accepted rows in legacy_id order, each column gathered once (no intermediate frame copies).
    kept = np.flatnonzero(~rejected)
    order = kept[np.argsort(legacy_id.to_numpy(dtype=object)[kept], kind="stable")]

    def gather(series: pd.Series) -> pd.Series:
        return pd.Series(series.to_numpy(dtype=object)[order], dtype="str")

    members = pd.DataFrame({
        "legacy_id": gather(legacy_id), "first_name": gather(first), "last_name": gather(last),
        "email": gather(emails["email"]), "email_raw": gather(raw["email"]),
        "email_key": gather(emails["email_key"]), "phone": gather(phones["phone"]),
        "phone_raw": gather(raw["phone"]), "card_number": gather(card), "birth_date": gather(birth_iso),
        "gender": normalize_genders(gather(raw["gender"])), "created_at_utc": gather(created["utc"]),
        "created_at_raw": gather(raw["created_at"]), "base_center": _strip(gather(raw["base_center"])),
        "source_file": pd.Series([source_file] * len(order), dtype="str"),
        "source_line": pd.Series(lines.to_numpy()[order], dtype="int64"),
    }, columns=list(MEMBER_COLUMNS_OUT), copy=False)

    rejects = _rejects(np.flatnonzero(rejected), reason, raw, legacy_id, first, lines, source_file,
                       default_region, date_format, control_field)
    review = _review(drop_email, drop_phone, raw, legacy_id, lines, source_file, default_region)
    result = MembersResult(members, rejects, _duplicates(members), n, review)
    if result.rows_read != len(result.members) + len(result.rejects):
        raise AssertionError(f"row conservation broken: {n} read != {len(members)} + {len(rejects)}")
    return result


def _control_characters(raw: dict[str, pd.Series]) -> tuple[np.ndarray, dict[int, str]]:
    """Rows with a character XML cannot carry, and the first field holding it per such row (one C-speed
    scan per field; the per-row loop runs only on a hit)."""
    hit = np.zeros(len(raw["legacy_id"]), dtype=bool)
    field_of: dict[int, str] = {}
    for name in FIELDS:
        values = raw[name].to_numpy(dtype=object)
        if not _NOT_XML.search("".join(values)):
            continue
        for pos in np.flatnonzero([bool(_NOT_XML.search(v)) for v in values]).tolist():
            field_of.setdefault(pos, name)
            hit[pos] = True
    return hit, field_of


def _rejects(positions: np.ndarray, reason: np.ndarray, raw: dict[str, pd.Series], legacy_id: pd.Series,
             first: pd.Series, lines: pd.Series, source_file: str, region: str,
             date_format: str | None, control_field: dict[int, str] | None = None) -> pd.DataFrame:
    """One reject row per rejected position, with the column, message and offending value."""
    first_line_of = {}
    if len(positions) and (reason[positions] == "LEGACY_ID_DUPLICATE").any():
        firsts = legacy_id[legacy_id != ""].drop_duplicates()
        first_line_of = dict(zip(firsts, lines[firsts.index]))
    records = []
    for pos in positions.tolist():
        code = str(reason[pos])
        key = legacy_id.iat[pos]
        if code == "CONTROL_CHARACTER":
            column = (control_field or {}).get(pos, "legacy_id")
            bad = _NOT_XML.search(raw[column].iat[pos])
            char = f"U+{ord(bad.group()):04X}" if bad else "a control character"
            # the value is shown with the character escaped: a reject file must stay readable text
            column, message, value = (column, f"{column}: holds {char}, which the members XML cannot carry",
                                      raw[column].iat[pos].encode("unicode_escape").decode("ascii"))
            key = key.encode("unicode_escape").decode("ascii")
        else:
            column, message, value = _explain(code, pos, raw, key, first.iat[pos] == "", first_line_of, region,
                                              date_format)
        records.append((STAGE, source_file, int(lines.iat[pos]), key, column, code, message, value))
    frame = pd.DataFrame.from_records(records, columns=list(REJECT_COLUMNS))
    return frame.astype({c: "str" for c in REJECT_COLUMNS if c != "line"}).astype({"line": "int64"})


def _review(drop_email: np.ndarray, drop_phone: np.ndarray, raw: dict[str, pd.Series], legacy_id: pd.Series,
            lines: pd.Series, source_file: str, region: str) -> pd.DataFrame:
    """One review row per identifier left out of an accepted member, in line order."""
    records = []
    for pos in np.flatnonzero(drop_email | drop_phone).tolist():
        if drop_email[pos]:
            value = raw["email"].iat[pos]
            records.append((STAGE, source_file, int(lines.iat[pos]), legacy_id.iat[pos], "email",
                            "EMAIL_INVALID_DROPPED", f"email: not a valid address ({email_problem(value)}); left out, "
                            "the member is migrated with its other identifier", value))
        if drop_phone[pos]:
            value = raw["phone"].iat[pos]
            records.append((STAGE, source_file, int(lines.iat[pos]), legacy_id.iat[pos], "phone",
                            "PHONE_INVALID_DROPPED", f"phone: {phone_problem(value, region)}; left out, the member "
                            "is migrated with its other identifier", value))
    frame = pd.DataFrame.from_records(records, columns=list(REJECT_COLUMNS))
    return frame.astype({c: "str" for c in REJECT_COLUMNS if c != "line"}).astype({"line": "int64"})


def _explain(code: str, pos: int, raw: dict[str, pd.Series], key: str, first_missing: bool,
             first_line_of: dict[str, int], region: str, date_format: str | None) -> tuple[str, str, str]:
    """(column, message, value) for one rejected row: the message names the column and the problem."""
    def value(name: str) -> str:
        return raw[name].iat[pos]

    if code == "LEGACY_ID_MISSING":
        return "legacy_id", "legacy_id: empty, so the member cannot be traced", value("legacy_id")
    if code == "LEGACY_ID_DUPLICATE":
        return ("legacy_id", f"legacy_id: already used on line {first_line_of.get(key, '?')}; the first "
                "occurrence is kept", value("legacy_id"))
    if code == "NO_IDENTIFIER":
        return "email/phone/card_number", "no email, phone or card number: the target needs one identifier", ""
    if code == "EMAIL_INVALID":
        return "email", f"email: not a valid address ({email_problem(value('email'))})", value("email")
    if code == "PHONE_INVALID":
        return "phone", f"phone: {phone_problem(value('phone'), region)}", value("phone")
    if code == "NAME_MISSING":
        name = "first_name" if first_missing else "last_name"
        return name, f"{name}: empty (Open Loyalty requires firstName and lastName)", value(name)
    if code == "BIRTH_DATE_INVALID":
        try:
            parse_date(value("birth_date"), date_format)
            why = f"before {MIN_BIRTH_DATE}"
        except ValueError as exc:
            why = str(exc)
        return "birth_date", f"birth_date: {why}", value("birth_date")
    try:
        parse_local_datetime(value("created_at"), "UTC")
        why = "out of range"
    except ValueError as exc:
        why = str(exc)
    return "created_at", f"created_at: {why}", value("created_at")


def _duplicates(members: pd.DataFrame) -> pd.DataFrame:
    """Accepted members sharing an identifier, grouped per identifier value (review only)."""
    parts = []
    for identifier, column in IDENTIFIERS:
        keys = members[column]
        shared = (keys != "") & keys.duplicated(keep=False)
        if not shared.any():
            continue
        part = pd.DataFrame({
            "group_id": identifier + ":" + keys[shared],
            "identifier": identifier,
            "identifier_key": keys[shared],
            "legacy_id": members["legacy_id"][shared],
            "source_line": members["source_line"][shared],
        })
        parts.append(part.sort_values(["identifier_key", "legacy_id"], kind="stable"))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "source_line" else "str")
                             for c in DUPLICATE_COLUMNS})
    out = pd.concat(parts, ignore_index=True)
    return out.astype({c: "str" for c in DUPLICATE_COLUMNS if c != "source_line"})
