"""Finding members by their identifiers: the lookups that stage 02 maps references with and that
stage 03 matches opening balances with, so the two stages agree on who a row names.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import phonenumbers

from loyalty_toolkit.normalize import normalize_phone

_SEP = "\x1f"


def lookup(keys: pd.Series, values: np.ndarray) -> np.ndarray:
    """Position of each value among ``keys``: -1 absent or empty, -2 held by several rows."""
    keys = pd.Series(keys.to_numpy(dtype=object), dtype=object)
    keys = keys[keys != ""]
    shared = keys.duplicated(keep=False).to_numpy()
    table = pd.Series(np.where(shared, -2, keys.index.to_numpy()), index=keys.to_numpy())
    table = table[~table.index.duplicated(keep="first")]
    out = np.array(table.reindex(pd.Index(values, dtype=object)).fillna(-1).astype("int64"), dtype=np.int64)
    out[pd.isna(values) | (values == "")] = -1
    return out


def match_phone_email(table: pd.DataFrame, phone: np.ndarray, email: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Rows of ``table`` named by phone AND email together (seed 003: both must be right).

    ``table`` holds the members' ``phone`` (E.164) and ``email_key`` columns; ``phone``, ``email``
    and ``raw`` are aligned arrays of references: the phone as read in the migration's default
    region, the email key and the phone as written. Returns, per reference, the position of the one
    member whose pair it is, -1 none (or an empty phone or email), -2 several.

    A phone written in national format was read in the migration's default region; when that
    finds nobody, it is read again in the region of the members the email names (a Vietnamese
    0912... in a French-default migration), and still must equal the member's phone. Stage 02
    resolves opening-balance references with it; stage 03 (``stages/transfers/opening.py``, ``member_phones``) reads
    the opening rows' phones the same way, so the two stages agree.
    """
    t_phone, t_email = table["phone"].to_numpy(dtype=object), table["email_key"].to_numpy(dtype=object)
    # Only members holding a wanted phone can hold a wanted pair (and every holder of such a pair
    # does, so "several" still counts them all): the pairs are built for those members alone.
    wanted_phones = pd.unique(phone[phone != ""]) if len(phone) else phone
    near = np.flatnonzero(isin(t_phone, wanted_phones) & (t_email != ""))
    pair = pd.Series(t_phone[near] + _SEP + t_email[near], dtype=object)
    wanted = np.where((phone == "") | (email == ""), "", phone.astype(object) + _SEP + email.astype(object))
    codes, uniques = pd.factorize(pd.Series(wanted, dtype=object))
    at = lookup(pair, np.asarray(uniques, dtype=object))[codes]
    pos = np.where(at >= 0, near[np.maximum(at, 0)] if len(near) else -1, at)
    again = np.flatnonzero((pos == -1) & (email != "") & (raw != ""))
    if len(again):
        national = np.asarray([not str(raw[i]).lstrip().startswith(("+", "00")) for i in again.tolist()], dtype=bool)
        again = again[national]
    if not len(again):
        return pos
    # A plain dict over the members the re-read rows' emails name: membership and lookup on a
    # non-unique pandas index cost milliseconds each.
    named = np.flatnonzero(isin(t_email, pd.unique(email[again])))
    by_email: dict[str, list[int]] = {}
    for p, key in zip(named.tolist(), t_email[named].tolist()):
        by_email.setdefault(key, []).append(p)
    region_of: dict[str, str] = {}
    for i in again.tolist():
        if email[i] not in by_email:
            continue
        hits = set()
        for p in by_email[email[i]]:
            member_phone = t_phone[p]
            if not member_phone:
                continue
            region = region_of.get(member_phone)
            if region is None:
                region = region_of[member_phone] = phone_region(member_phone)
            if normalize_phone(raw[i], region).e164 == member_phone:
                hits.add(p)
        pos[i] = hits.pop() if len(hits) == 1 else (-2 if hits else -1)
    return pos


def isin(values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    return pd.Series(values, dtype=object).isin(pd.Series(wanted, dtype=object)).to_numpy(dtype=bool)


_E164 = re.compile(r"\+[1-9][0-9]{7,14}")


def phone_region(e164: str) -> str:
    """The region of an E.164 number, as ``region_code_for_number(parse(e164))`` gives it: a calling
    code shared by one region only needs no parse."""
    if _E164.fullmatch(e164):
        for size in (1, 2, 3):
            regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(e164[1:1 + size]))
            if regions:
                if len(regions) == 1:
                    return regions[0]
                break
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None)) or "ZZ"
    except phonenumbers.NumberParseException:
        return "ZZ"
