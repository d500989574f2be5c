"""Bulk paths of :mod:`loyalty_toolkit.normalize`: phones and emails in their common shapes, decided
over whole arrays with pyarrow (RE2) instead of one Python call per value.

Each function answers only for the values where it provably gives what the scalar rule in
``normalize`` gives (``normalize_phone``, ``_email_parts``) and says which those are; the caller
sends the rest through the scalar rule. tests/test_normalize.py checks both paths agree on random
and generated values. Also the libphonenumber look-ups both paths share.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import PhoneMetadata, PhoneNumber, ValidationResult

_POSSIBLE = (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY)
_SHORT = (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY, ValidationResult.INVALID_LENGTH)


@lru_cache(maxsize=None)
def _meta(cc: int) -> PhoneMetadata | None:
    """Metadata of the main region of a calling code (what parse uses); None for non-geographic codes."""
    region = phonenumbers.region_code_for_country_code(cc)
    if region in ("ZZ", "001"):
        return None
    return PhoneMetadata.metadata_for_region_or_calling_code(cc, region)


@lru_cache(maxsize=None)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@lru_cache(maxsize=None)
def _length_result(cc: int, length: int) -> ValidationResult:
    """libphonenumber's possibility check depends only on the calling code and the NSN length."""
    return phonenumbers.is_possible_number_with_reason(PhoneNumber(country_code=cc, national_number=int("1" * length)))


# ---------------------------------------------------------------- email

# _EMAIL on printable ASCII without spaces, for RE2: there \w is [A-Za-z0-9_], [^\W_] is [A-Za-z0-9],
# and [^\W\d_] is [A-Za-z]; strip() and casefold() are identity and lower().
_ASCII_LOCAL = r'[^@"(),:;<>\[\]\\.\x00-\x20\x7f]'
_ASCII_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_ASCII_EMAIL = (rf"^{_ASCII_LOCAL}+(?:\.{_ASCII_LOCAL}+)*@(?:{_ASCII_LABEL}\.)+"
                r"(?:[A-Za-z]{2,63}|xn--[a-z0-9-]{1,59})$")


def fast_emails(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(email, key, valid, known): ``normalize._email_parts`` in bulk for texts of printable ASCII (no
    spaces) with one @; ``known`` False = left to the caller. Checked against _email_parts in
    tests/test_normalize.py.
    """
    n = len(texts)
    email, key = np.full(n, "", dtype=object), np.full(n, "", dtype=object)
    valid, known = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    try:
        arr = pa.array(texts, type=pa.string())
    except (pa.ArrowException, UnicodeError):
        return email, key, valid, known
    parts = pc.extract_regex(arr, r"^(?P<local>[!-?A-~]*)@(?P<domain>[!-?A-~]*)$")  # [!-~] but @
    rows = np.flatnonzero(np.asarray(parts.is_valid().to_numpy(zero_copy_only=False), dtype=bool))
    if not len(rows):
        return email, key, valid, known
    parts = parts.filter(parts.is_valid())
    local, domain = parts.field("local"), pc.ascii_lower(parts.field("domain"))
    normalized = pc.binary_join_element_wise(local, domain, "@")
    short_enough = pc.and_(pc.less_equal(pc.utf8_length(local), 64), pc.less_equal(pc.utf8_length(normalized), 254))
    ok = pc.and_(short_enough, pc.and_(pc.invert(pc.match_substring(domain, "_")),
                                       pc.match_substring_regex(normalized, _ASCII_EMAIL)))
    email[rows] = normalized.to_numpy(zero_copy_only=False)
    key[rows] = pc.binary_join_element_wise(pc.ascii_lower(local), domain, "@").to_numpy(zero_copy_only=False)
    valid[rows] = np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool)
    known[rows] = True
    return email, key, valid, known


# ---------------------------------------------------------------- phone

# Values made only of these ASCII characters are cleaned and shape-checked in bulk (pyarrow's RE2):
# on them RE2 and Python's re agree, and str.strip() removes nothing that the cleaning keeps.
_BULK_PHONE = r"^[0-9+ .()\-]*$"


def fast_phones(texts: list[str], region: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(e164, valid, known) of each text: ``normalize._fast_phone`` plus the possibility check over whole
    arrays. ``known`` False = not decided here (another shape, a calling code or prefix rule that
    needs ``phonenumbers.parse``); the caller asks ``normalize.normalize_phone``. Checked against
    it in tests/test_normalize.py.
    """
    n = len(texts)
    e164, valid, known = np.full(n, "", dtype=object), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    try:
        arr = pa.array(texts, type=pa.string())
    except (pa.ArrowException, UnicodeError):  # lone surrogates and the like: one by one
        return e164, valid, known
    plain = pc.match_substring_regex(arr, _BULK_PHONE).to_numpy(zero_copy_only=False)
    cleaned = pc.replace_substring_regex(arr, r"[ .()\-]", "")
    intl = plain & _bulk_match(cleaned, r"^\+[1-9][0-9]{7,14}$")
    national = plain & _bulk_match(cleaned, r"^[0-9]{2,17}$")
    text = np.asarray(cleaned.to_numpy(zero_copy_only=False), dtype=object)
    rows = np.flatnonzero(intl)
    if national.any():
        # a number dialled with the region's international prefix (0033...) reads as +33...
        idd_rows, idd_text = _fast_national(text, np.flatnonzero(national), region, e164, valid, known)
        rows, text = np.concatenate([rows, idd_rows]), text.copy()
        text[idd_rows] = idd_text
    if len(rows):
        _fast_international(text, rows, e164, valid, known)
    return e164, valid, known


def _bulk_match(values: pa.Array, pattern: str) -> np.ndarray:
    return np.asarray(pc.match_substring_regex(values, pattern).to_numpy(zero_copy_only=False), dtype=bool)


def _decide(rows: np.ndarray, cc: int, lengths: np.ndarray, e164_text: np.ndarray,
            e164: np.ndarray, valid: np.ndarray, known: np.ndarray) -> None:
    """Rows whose calling code and national significant number (of ``lengths``) are settled:
    possible or not by length alone, as ``normalize.normalize_phone`` decides."""
    ok = np.zeros(len(rows), dtype=bool)
    for length in np.unique(lengths).tolist():
        ok[lengths == length] = _length_result(cc, length) in _POSSIBLE
    e164[rows[ok]] = e164_text[ok]
    valid[rows] = ok
    known[rows] = True


def _fast_international(text: np.ndarray, rows: np.ndarray, e164: np.ndarray, valid: np.ndarray,
                        known: np.ndarray) -> None:
    """``+<digits>``: the first 1-3 digits that are a calling code, as parse reads them."""
    values = text[rows]
    heads = np.asarray([v[1:4] for v in values.tolist()], dtype=object)
    codes, uniques = pd.factorize(heads)
    cc_of = np.zeros(len(uniques), dtype=np.int64)  # 0: no calling code
    for k, head in enumerate(uniques.tolist()):
        for size in (1, 2, 3):
            if int(head[:size]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                cc_of[k] = int(head[:size])
                break
    ccs = cc_of[codes]
    lengths = np.fromiter((len(v) for v in values.tolist()), dtype=np.int64, count=len(values))
    for cc in np.unique(ccs[ccs > 0]).tolist():
        meta = _meta(cc)
        if meta is None:
            continue
        sel = np.flatnonzero(ccs == cc)
        start = 1 + len(str(cc))
        if meta.national_prefix_for_parsing:
            nsn = np.asarray([v[start:] for v in values[sel].tolist()], dtype=object)
            hit = _prefix_match(nsn, meta.national_prefix_for_parsing)
            if hit is None:
                continue
            sel = sel[~hit]
        _decide(rows[sel], cc, lengths[sel] - start, values[sel], e164, valid, known)


def _prefix_match(values: np.ndarray, pattern: str) -> np.ndarray | None:
    """re.match(pattern, v) is not None for each value (RE2 in bulk); None if RE2 cannot take it."""
    try:
        return _bulk_match(pa.array(values.tolist(), type=pa.string()), f"^(?:{pattern})")
    except pa.ArrowInvalid:
        return None


def _fast_national(text: np.ndarray, rows: np.ndarray, region: str, e164: np.ndarray, valid: np.ndarray,
                   known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """National digits read in ``region``: the national prefix stripped exactly as parse strips it.

    Returns the rows that start with the region's international prefix followed by a calling code
    (parse reads ``00 33 6...`` as ``+33 6...``) and their ``+<digits>`` text, for the caller.
    """
    none = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object))
    meta = PhoneMetadata.metadata_for_region(region)
    if meta is None or meta is not _meta(meta.country_code):
        return none
    cc = meta.country_code
    values = text[rows]
    arr = pa.array(values.tolist(), type=pa.string())
    idd = none
    try:
        slow = _bulk_match(arr, f"^{cc}")
        if meta.international_prefix:
            found = pc.extract_regex(arr, f"^(?P<idd>(?:{meta.international_prefix}))")
            dialled = np.asarray(found.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            at = np.flatnonzero(dialled & ~slow)
            if len(at) and not _regex(meta.international_prefix).groups:
                prefix = found.field("idd").to_numpy(zero_copy_only=False)
                plus = np.asarray(["+" + values[i][len(prefix[i]):] for i in at.tolist()], dtype=object)
                # parse takes it as a prefix only when a calling code (not 0) follows
                fits = _bulk_match(pa.array(plus.tolist(), type=pa.string()), r"^\+[1-9][0-9]{7,14}$")
                idd = (rows[at[fits]], plus[fits])
            slow |= dialled
        nsn = values.copy()
        npp = meta.national_prefix_for_parsing
        if npp:
            found = pc.extract_regex(arr, f"^(?P<prefix>(?:{npp}))")
            matched = np.asarray(found.is_valid().to_numpy(zero_copy_only=False), dtype=bool) & ~slow
            if _regex(npp).groups:
                slow |= matched
            elif matched.any():
                at = np.flatnonzero(matched)
                prefix = found.field("prefix").to_numpy(zero_copy_only=False)
                stripped = np.asarray([values[i][len(prefix[i]):] for i in at.tolist()], dtype=object)
                general = meta.general_desc.national_number_pattern if meta.general_desc else None
                keep = np.zeros(len(at), dtype=bool)
                if general:
                    keep = (_bulk_match(pa.array(values[at].tolist(), type=pa.string()), f"^(?:{general})$")
                            & ~_bulk_match(pa.array(stripped.tolist(), type=pa.string()), f"^(?:{general})$"))
                short = np.asarray([not s or _length_result(cc, len(s)) in _SHORT for s in stripped.tolist()],
                                   dtype=bool)
                take = ~keep & ~short
                nsn[at[take]] = stripped[take]
    except pa.ArrowInvalid:  # a metadata pattern RE2 cannot compile: one by one
        return none
    fast = np.flatnonzero(~slow)
    nsn = nsn[fast].tolist()
    full = np.asarray([f"+{cc}{s}" for s in nsn], dtype=object)
    _decide(rows[fast], cc, np.fromiter((len(s) for s in nsn), dtype=np.int64, count=len(nsn)), full,
            e164, valid, known)
    return idd
