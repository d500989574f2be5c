"""Pure normalisation of legacy values: emails, phones, dates, decimals, names and gender.

Each scalar function has a vectorised sibling for a pandas Series. The vectorised versions compute
every distinct value once (legacy columns repeat a lot), so a million rows cost one pass of Python
over the distinct values plus pandas' hashing; phones and emails in their common shapes skip even
that (``normalize_bulk``: whole arrays at once, the same answers).

Rules follow docs/ledger_domain.md sections 4-5: keep the original, match on a normalised key,
store phones as E.164 without storing their validity, parse numbers from text straight to Decimal.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import PhoneMetadata

from loyalty_toolkit.normalize_bulk import _POSSIBLE, _SHORT, _length_result, _meta, _regex, fast_emails, fast_phones

# ---------------------------------------------------------------- helpers


def _text(value: Any) -> str:
    """Any cell as text: None and NaN become ''."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return value if isinstance(value, str) else str(value)


def _per_distinct(series: pd.Series, func: Callable[[str], tuple], kinds: tuple[type, ...]) -> list[np.ndarray]:
    """Apply ``func`` (text -> tuple) once per distinct value; one array per output, typed by ``kinds``."""
    values = pd.Series(series, copy=False).to_numpy(dtype=object, na_value="")
    codes, uniques = pd.factorize(values)
    results = [func(u if type(u) is str else _text(u)) for u in uniques]
    return [np.array([r[k] for r in results], dtype=kind)[codes] for k, kind in enumerate(kinds)]


def _frame(series: pd.Series, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    data = {name: pd.Series(arr, index=series.index, dtype=bool if arr.dtype == bool else "str")
            for name, arr in columns.items()}
    return pd.DataFrame(data, index=series.index, copy=False)


# ---------------------------------------------------------------- email

_LOCAL_CHAR = r'[^\s@"(),:;<>\[\]\\.\x00-\x1f\x7f]'
# Labels may hold '_' here (a cheap class); the caller rejects '_' in the domain separately.
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_EMAIL = re.compile(rf"{_LOCAL_CHAR}+(?:\.{_LOCAL_CHAR}+)*@(?:{_LABEL}\.)+(?:[^\W\d_]{{2,63}}|xn--[a-z0-9-]{{1,59}})")


@dataclass(frozen=True)
class EmailNorm:
    """An email as found, as stored (trimmed, domain lower-cased), its matching key, and validity."""

    original: str
    normalized: str
    key: str
    valid: bool


def _email_parts(text: str) -> tuple[str, str, bool]:
    text = text.strip()
    if text.count("@") != 1:
        return text, text.casefold(), False
    local, domain = text.split("@")
    lower, folded = domain.lower(), local.casefold()
    # Reuse the input string when nothing changes: a million emails then cost no new strings.
    normalized = text if lower == domain else f"{local}@{lower}"
    key = normalized if folded == local else f"{folded}@{lower}"
    valid = (len(local) <= 64 and len(normalized) <= 254 and "_" not in lower
             and _EMAIL.fullmatch(normalized) is not None)
    return normalized, key, valid


def normalize_email(value: Any) -> EmailNorm:
    """Trim and lower-case the domain; the key also case-folds the local part (for matching only).

    No dot or +tag stripping: what a local part means is up to its mail host. Valid means one @, a
    local part without spaces or forbidden characters, and a domain of valid labels with a dot.
    """
    original = _text(value)
    return EmailNorm(original, *_email_parts(original))


def email_problem(value: Any) -> str | None:
    """Why an email is not valid, in a few words; None when it is valid or empty."""
    norm = normalize_email(value)
    text = norm.normalized
    if not text or norm.valid:
        return None
    if "@" not in text:
        return "no @"
    if text.count("@") > 1:
        return "more than one @"
    local, domain = text.split("@")
    if not local:
        return "empty local part"
    if not domain:
        return "empty domain"
    if any(ch.isspace() for ch in text):
        return "contains spaces"
    if "." not in domain:
        return "domain has no dot"
    if not re.fullmatch(rf"{_LOCAL_CHAR}+(?:\.{_LOCAL_CHAR}+)*", local) or len(local) > 64:
        return "invalid local part"
    return "invalid domain"


def normalize_emails(series: pd.Series) -> pd.DataFrame:
    """Vectorised :func:`normalize_email`: columns ``email``, ``email_key``, ``email_valid``.

    Each distinct value once; printable ASCII values in bulk (``normalize_bulk.fast_emails``), the rest one
    by one through :func:`_email_parts`.
    """
    values = pd.Series(series, copy=False).to_numpy(dtype=object, na_value="")
    codes, uniques = pd.factorize(values)
    texts = [u if type(u) is str else _text(u) for u in uniques]
    email, key, valid, known = fast_emails(texts)
    for i in np.flatnonzero(~known).tolist():
        email[i], key[i], valid[i] = _email_parts(texts[i])
    return _frame(series, {"email": email[codes], "email_key": key[codes], "email_valid": valid[codes]})


# ---------------------------------------------------------------- phone

_PHONE_SEPARATORS = re.compile(r"[\s.\-()\u00a0\u202f]")
_E164_SHAPE = re.compile(r"\+[1-9][0-9]{7,14}")  # ASCII digits only: parse folds other digits itself
_NATIONAL_SHAPE = re.compile(r"[0-9]{2,17}")
_LETTERS = re.compile(r"[A-Za-z]")



@dataclass(frozen=True)
class PhoneNorm:
    """A phone as found, its E.164 form ('' unless possible), and whether it is a possible number."""

    original: str
    e164: str
    valid: bool


def _fast_phone(cleaned: str, region: str) -> tuple[int, str] | None:
    """(calling code, national significant number) exactly as ``phonenumbers.parse`` would give them.

    Only for the shapes where parse provably does no more than split digits (no national prefix,
    IDD or calling-code heuristics apply); None means "ask phonenumbers.parse". The equivalence is
    checked against parse on random numbers in tests/test_normalize.py.
    """
    if cleaned[0] == "+":
        digits = cleaned[1:]
        for size in (1, 2, 3):
            cc = int(digits[:size])
            if cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                break
        else:
            return None
        meta, nsn = _meta(cc), digits[size:]
        if meta is None or (meta.national_prefix_for_parsing and _regex(meta.national_prefix_for_parsing).match(nsn)):
            return None
        return cc, nsn
    meta = PhoneMetadata.metadata_for_region(region)
    if meta is None or meta is not _meta(meta.country_code):
        return None
    cc = meta.country_code
    if cleaned.startswith(str(cc)) or (meta.international_prefix and _regex(meta.international_prefix).match(cleaned)):
        return None
    nsn = cleaned
    if meta.national_prefix_for_parsing:
        match = _regex(meta.national_prefix_for_parsing).match(cleaned)
        if match:
            if match.re.groups:
                return None
            general = meta.general_desc.national_number_pattern if meta.general_desc else None
            stripped = cleaned[match.end():]
            # parse keeps the prefix when only the unstripped number fits the national pattern
            keep = bool(general) and bool(_regex(general).fullmatch(cleaned)) \
                and not _regex(general).fullmatch(stripped)
            if not keep and stripped and _length_result(cc, len(stripped)) not in _SHORT:
                nsn = stripped
    return cc, nsn


def normalize_phone(value: Any, region: str) -> PhoneNorm:
    """E.164 via libphonenumber with ``region`` for national formats; valid = a possible number.

    Possible, not "valid": numbers get recycled and reassigned, so validity is not ours to judge.
    Values with letters or an extension are not accepted (they would lose information).
    """
    original = _text(value)
    text = original.strip()
    if not text or _LETTERS.search(text):
        return PhoneNorm(original, "", False)
    cleaned = _PHONE_SEPARATORS.sub("", text)
    shaped = _E164_SHAPE.fullmatch(cleaned) or _NATIONAL_SHAPE.fullmatch(cleaned)
    fast = _fast_phone(cleaned, region) if shaped else None
    if fast is not None:
        cc, nsn = fast
        if _length_result(cc, len(nsn)) in _POSSIBLE:
            return PhoneNorm(original, cleaned if cleaned[0] == "+" else f"+{cc}{nsn}", True)
        return PhoneNorm(original, "", False)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return PhoneNorm(original, "", False)
    if number.extension or not phonenumbers.is_possible_number(number):
        return PhoneNorm(original, "", False)
    return PhoneNorm(original, phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), True)


def phone_problem(value: Any, region: str) -> str | None:
    """Why a phone is not accepted, in a few words; None when it is possible or empty."""
    text = _text(value).strip()
    if not text or normalize_phone(text, region).valid:
        return None
    if _LETTERS.search(text):
        return "contains letters (extension or note?)"
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        return f"cannot be read as a phone number ({str(exc).split(') ', 1)[-1].rstrip('.')})"
    if number.extension:
        return "has an extension"
    return f"not a possible number (region {region} for national formats)"


def normalize_phones(series: pd.Series, region: str) -> pd.DataFrame:
    """Vectorised :func:`normalize_phone`: columns ``phone`` (E.164 or '') and ``phone_valid``.

    Each distinct value once; the well-formed ASCII shapes in bulk (``normalize_bulk.fast_phones``), the
    rest one by one through :func:`normalize_phone`.
    """
    values = pd.Series(series, copy=False).to_numpy(dtype=object, na_value="")
    codes, uniques = pd.factorize(values)
    texts = [u if type(u) is str else _text(u) for u in uniques]
    phone, valid, known = fast_phones(texts, region)
    for i in np.flatnonzero(~known).tolist():
        n = normalize_phone(texts[i], region)
        phone[i], valid[i] = n.e164, n.valid
    return _frame(series, {"phone": phone[codes], "phone_valid": valid[codes]})


# ---------------------------------------------------------------- dates and times

_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ]00:00(?::00(?:\.0+)?)?)?")
_DAY_FIRST_DATE = re.compile(r"(\d{1,2})([/.\-])(\d{1,2})\2(\d{4})")
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?"
)
_DAY_FIRST_DATETIME = re.compile(r"(\d{1,2})([/.\-])(\d{1,2})\2(\d{4})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2}))?)?")


def parse_date(value: Any, fmt: str | None = None) -> date | None:
    """A calendar date from ``YYYY-MM-DD`` (a midnight time part is tolerated), else ``fmt`` (strptime).

    Without ``fmt``, day-first ``DD/MM/YYYY`` (also with ``.`` or ``-``) is tried after ISO, but only
    when it cannot be month-first: ``25/04/1990`` reads as 25 April, ``03/04/1990`` (day and month
    both 12 or less, and different) raises ValueError, since guessing would move a birthday. Blank
    gives None; anything else that is not a real date raises ValueError.
    """
    text = _text(value).strip()
    if not text:
        return None
    try:
        if m := _ISO_DATE.fullmatch(text):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if not fmt and (m := _DAY_FIRST_DATE.fullmatch(text)):
            if int(m[1]) <= 12 and int(m[3]) <= 12 and m[1].lstrip("0") != m[3].lstrip("0"):
                raise ValueError(f"ambiguous day and month in {text!r}: set date_format (e.g. %d/%m/%Y) to "
                                 "say how to read them")
            return date(int(m[4]), int(m[3]), int(m[1]))
    except ValueError as exc:
        raise ValueError(f"not a real date ({exc})") from None
    if fmt:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            raise ValueError(f"not a date in YYYY-MM-DD or {fmt}") from None
    raise ValueError("not a date (YYYY-MM-DD or DD/MM/YYYY)")


def parse_dates(series: pd.Series, fmt: str | None = None) -> pd.DataFrame:
    """Vectorised :func:`parse_date`: ``date`` as ``YYYY-MM-DD`` ('' if blank or bad) and ``date_valid``
    (False only for a non-blank value that is not a date)."""
    def one(text: str) -> tuple[str, bool]:
        try:
            d = parse_date(text, fmt)
        except ValueError:
            return "", False
        return ("" if d is None else d.isoformat()), True
    iso, valid = _per_distinct(series, one, (object, bool))
    return _frame(series, {"date": iso, "date_valid": valid})


def _offset(text: str) -> timezone:
    if text == "Z":
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0)))


def parse_local_datetime(value: Any, tz: str, fmt: str | None = None) -> tuple[str, str]:
    """``(UTC ISO 'YYYY-MM-DDTHH:MM:SS+00:00', raw)`` for a local time in IANA zone ``tz``.

    Accepts ISO date-times (``T`` or space; seconds, fraction and an explicit offset optional; a bare
    date means local midnight), ``fmt`` when given, else day-first ``DD/MM/YYYY[ HH:MM[:SS]]``.
    An explicit offset wins over ``tz``. DST: an ambiguous time (autumn fold) is taken as its first
    occurrence and a nonexistent one (spring gap) with the offset before the gap, both Python's
    fold=0 (02:30 in Paris' spring gap gives 01:30 UTC). Fractions of a second are truncated.
    Blank gives ``('', raw)``; anything else unreadable raises ValueError.
    """
    raw = _text(value)
    text = raw.strip()
    if not text:
        return "", raw
    zone: Any = _zone(tz)
    if m := _DATETIME.fullmatch(text):
        frac = (m[7] or "0")[:6].ljust(6, "0")
        local = datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4] or 0), int(m[5] or 0), int(m[6] or 0), int(frac))
        if m[8]:
            zone = _offset(m[8])
    elif fmt:
        try:
            local = datetime.strptime(text, fmt)
        except ValueError:
            raise ValueError(f"not a date-time in ISO form or {fmt}") from None
        if local.tzinfo is not None:
            zone, local = local.tzinfo, local.replace(tzinfo=None)
    elif m := _DAY_FIRST_DATETIME.fullmatch(text):
        local = datetime(int(m[4]), int(m[3]), int(m[1]), int(m[5] or 0), int(m[6] or 0), int(m[7] or 0))
    else:
        raise ValueError("not a date-time (YYYY-MM-DD HH:MM:SS or DD/MM/YYYY HH:MM)")
    try:
        utc = local.replace(tzinfo=zone).astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("date-time out of range") from None
    return utc.isoformat(timespec="seconds"), raw


@lru_cache(maxsize=64)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


_PLAIN_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}")


def parse_local_datetimes(series: pd.Series, tz: str, fmt: str | None = None) -> pd.DataFrame:
    """Vectorised :func:`parse_local_datetime`: ``utc`` ('' if blank or bad) and ``utc_valid``.

    The common ``YYYY-MM-DD HH:MM:SS`` shape is converted by pandas in bulk; ambiguous or
    nonexistent local times, and every other shape, go through :func:`parse_local_datetime`
    so both paths give the same answer.
    """
    values = pd.Series(series, copy=False).to_numpy(dtype=object, na_value="")
    codes, uniques = pd.factorize(values)
    texts = [_text(u).strip() for u in uniques]
    utc = np.full(len(texts), "", dtype=object)
    valid = np.zeros(len(texts), dtype=bool)
    # Years 1000-9998 only: at the ends of datetime's range Python overflows where pandas would not.
    plain = np.flatnonzero(np.fromiter((_PLAIN_LOCAL.fullmatch(t) is not None and "1000" <= t[:4] <= "9998"
                                        for t in texts), bool, len(texts)))
    if len(plain):
        naive = pd.to_datetime(pd.Series([texts[i].replace("T", " ") for i in plain], dtype=object),
                               format="%Y-%m-%d %H:%M:%S", errors="coerce")
        instants = naive.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
        done = instants.notna().to_numpy()
        stamps = np.datetime_as_string(instants[done].dt.tz_localize(None).to_numpy(), unit="s")
        utc[plain[done]] = [f"{stamp}+00:00" for stamp in stamps]
        valid[plain[done]] = True
    for i in np.flatnonzero(~valid).tolist():
        try:
            utc[i], valid[i] = parse_local_datetime(texts[i], tz, fmt)[0], True
        except ValueError:
            pass
    return _frame(series, {"utc": utc[codes], "utc_valid": valid[codes]})


def to_utc(local_naive: datetime, minutes_to_add: int) -> datetime:
    """UTC for a center-local time whose center is ``minutes_to_add`` minutes ahead of UTC (Zenoti).

    A fixed offset carries no DST rule, so there is no fold or gap to resolve.
    """
    if local_naive.tzinfo is not None:
        raise ValueError("expected a naive local time")
    return (local_naive - timedelta(minutes=int(minutes_to_add))).replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------- decimals

_NUMBER_CHARS = re.compile(r"[+-]?[0-9., ]*[0-9][0-9., ]*")
_GROUPED = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+|[0-9]{1,3}(?:\.[0-9]{3})+|[0-9]{1,3}(?: [0-9]{3})+")


def parse_decimal(text: Any) -> Decimal:
    """Exact Decimal from text (never via float): ``12``, ``-75``, ``12.5``, ``12,5``, ``1,500,000``,
    ``1.500.000``, ``1 500 000``, ``1.500,25``.

    Thousands groups must be exactly 3 digits. A single comma followed by exactly 3 digits
    (``1,500``) is ambiguous and refused; a single dot is always a decimal point. Exponents, NaN and
    anything else raise ValueError.
    """
    raw = _text(text)
    s = raw.strip().replace("\u00a0", " ").replace("\u202f", " ")
    if not s or not _NUMBER_CHARS.fullmatch(s):
        raise ValueError(f"not a plain decimal number: {raw!r}")
    sign = ""
    if s[0] in "+-":
        sign, s = ("-" if s[0] == "-" else ""), s[1:]
    commas, dots = s.count(","), s.count(".")
    if commas and dots:
        point = "," if s.rfind(",") > s.rfind(".") else "."
    elif commas == 1:
        whole, _, frac = s.partition(",")
        if len(frac) == 3 and 1 <= len(whole) <= 3 and whole[0] != "0" and " " not in whole:
            raise ValueError(f"ambiguous number {raw!r}: 1,500 could be 1500 or 1.5")
        point = ","
    elif dots == 1:
        point = "."
    else:
        point = ""  # no separator, or only thousands separators
    whole, frac = (s.rsplit(point, 1) if point else (s, ""))
    if point and (not frac.isdigit() or s.count(point) != 1):
        raise ValueError(f"not a plain decimal number: {raw!r}")
    if not whole.isdigit():
        if whole and not _GROUPED.fullmatch(whole):
            raise ValueError(f"bad thousands grouping in {raw!r} (groups of 3 digits)")
        whole = re.sub(r"[ ,.]", "", whole)
    return Decimal(f"{sign}{whole or '0'}.{frac or '0'}") if point else Decimal(f"{sign}{whole}")


# ---------------------------------------------------------------- names and gender

_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")
_GENDERS = {"m": "male", "male": "male", "h": "male", "homme": "male", "nam": "male",
            "f": "female", "female": "female", "femme": "female", "nữ": "female"}


def normalize_name(value: Any) -> str:
    """Trim, collapse internal whitespace, drop control characters and NFC-normalise; case and
    diacritics are kept (they are the member's own spelling)."""
    text = _CONTROL.sub("", _text(value))
    return unicodedata.normalize("NFC", " ".join(text.split()))


def normalize_names(series: pd.Series) -> pd.Series:
    """Vectorised :func:`normalize_name`."""
    (out,) = _per_distinct(series, lambda t: (normalize_name(t),), (object,))
    return pd.Series(out, index=series.index, dtype="str")


def normalize_gender(value: Any) -> str:
    """``male``, ``female`` or ``not_disclosed`` (Open Loyalty's values) from M/F, male/female,
    homme/femme (H/F) or Vietnamese nam/nữ, any case; blank or unknown means not_disclosed."""
    key = unicodedata.normalize("NFC", _text(value).strip()).casefold()
    return _GENDERS.get(key, "not_disclosed")


def normalize_genders(series: pd.Series) -> pd.Series:
    """Vectorised :func:`normalize_gender`."""
    (out,) = _per_distinct(series, lambda t: (normalize_gender(t),), (object,))
    return pd.Series(out, index=series.index, dtype="str")

