"""The member rules of a target profile (``targets/ol_profiles.py``), applied: one customer at a time
(the rehearsal target) or over stage 01's member frame (the hold-back list). Both read the same rules
through :func:`breaks`, so what stage 01 holds back is what the rehearsal refuses, member by member.

A customer is read through ``text(node)``: None when the element is absent, else its text trimmed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date

import numpy as np
import pandas as pd

from loyalty_toolkit.targets.ol_profiles import Rule

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_YMD = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
# PHP's createFromFormat('Y-m-d') reads the shape only: up to 4 year digits, 1-2 month and day digits,
# out-of-range parts roll over (1990-02-30 passes) and trailing text fails.
_PHP_YMD = re.compile(r"\d{1,4}-\d{1,2}-\d{1,2}")
UNIQUE_NODES = ("email", "loyaltyCardNumber", "phone")
HOLDBACK_COLUMNS = ("legacy_id", "rule_id", "element", "message", "source")

Text = Callable[[str], "str | None"]


def _format_ok(fmt: str, value: str) -> bool:
    if fmt == "bool":
        return value in ("true", "false")
    if fmt == "date":
        m = _YMD.fullmatch(value)
        if not m:
            return False
        try:
            date(int(m[1]), int(m[2]), int(m[3]))
            return True
        except ValueError:
            return False
    if fmt == "date_php":
        return bool(_PHP_YMD.fullmatch(value))
    if fmt == "uuid":
        return bool(_UUID.fullmatch(value))
    if fmt.startswith("enum:"):
        return value in fmt[5:].split("|")
    raise ValueError(f"unknown format {fmt!r}")


def _checked(when: str, value: str | None) -> bool:
    """Whether a format rule looks at this value at all (``Rule.when``)."""
    if when == "always":
        return True
    if when == "node":
        return value is not None
    if when == "php_nonempty":  # PHP's empty(): '' and '0' are empty (XmlNodeValidator.php:82, 91)
        return value not in (None, "", "0")
    return bool(value)  # "present": text that is not blank


def breaks(rule: Rule, text: Text) -> bool:
    """Whether a customer read through ``text`` breaks a (non-unique) member rule."""
    if rule.kind == "required":
        return text(rule.element) is None
    if rule.kind == "required_value":
        return not text(rule.element)
    if rule.kind == "any_of":
        return not any(text(node) for node in rule.element.split("|"))
    if rule.kind == "format":
        value = text(rule.element)
        return _checked(rule.when, value) and not _format_ok(rule.value, value or "")
    if rule.kind == "unique":
        return False  # needs the members before: see unique_key
    raise ValueError(f"unknown member rule kind {rule.kind!r} ({rule.rule_id})")


def unique_key(rule: Rule, text: Text) -> str:
    """The value a unique rule compares ('' = not checked: the element is absent or blank)."""
    value = text(rule.element) or ""
    return value.lower() if rule.value == "lower" else value


def first_refusal(text: Text, rules: Sequence[Rule], seen: Mapping[str, set]) -> Rule | None:
    """The first rule a customer breaks, in the table's (the importer's) order; ``seen`` holds per
    unique element the keys of members already in the target or accepted earlier in the file."""
    for rule in rules:
        if rule.kind == "unique":
            key = unique_key(rule, text)
            if key and key in seen.get(rule.element, ()):
                return rule
        elif breaks(rule, text):
            return rule
    return None


def remember(text: Text, rules: Iterable[Rule], seen: dict[str, set]) -> None:
    """Record an accepted customer's unique keys."""
    for rule in rules:
        if rule.kind == "unique":
            key = unique_key(rule, text)
            if key:
                seen.setdefault(rule.element, set()).add(key)


def holdback(members: pd.DataFrame, rules: Sequence[Rule], elements: Mapping[str, str],
             constants: Mapping[str, str]) -> pd.DataFrame:
    """The members of a frame the rules refuse, in file (legacy_id) order: :data:`HOLDBACK_COLUMNS`.

    ``elements`` maps an XML element to the member column it is written from (an empty value is left
    out of the file, so reads as absent); ``constants`` are the elements every customer carries with
    the same text. Rules on one element are evaluated once per distinct value; uniqueness runs in
    file order over the members that passed, as the importer registers them one after the other.
    """
    if not members["legacy_id"].is_monotonic_increasing:
        members = members.sort_values("legacy_id", kind="stable")
    n = len(members)
    columns: dict[str, np.ndarray] = {}
    for element, column in elements.items():
        values = members[column].to_numpy(dtype=object, na_value="") if column in members.columns \
            else np.full(n, "", dtype=object)
        columns[element] = np.array([str(v).strip() for v in values], dtype=object)

    def value_of(element: str, i: int) -> str | None:
        if element in columns:
            v = columns[element][i]
            return v if v else None
        return constants.get(element)

    refused = np.full(n, -1, dtype=np.int64)  # index of the refusing rule
    for k, rule in enumerate(rules):
        if rule.kind == "unique":
            continue
        open_rows = refused < 0
        nodes = rule.element.split("|") if rule.kind == "any_of" else [rule.element]
        if not any(node in columns for node in nodes):  # constant for every member: decide once
            hit = breaks(rule, lambda node: constants.get(node))
            refused[open_rows & hit] = k
            continue
        if rule.kind == "any_of":
            present = np.zeros(n, dtype=bool)
            for node in nodes:
                present |= (columns[node] != "") if node in columns else bool(constants.get(node))
            refused[open_rows & ~present] = k
            continue
        values = columns[rule.element]
        distinct = pd.unique(values)
        bad = {v for v in distinct if breaks(rule, lambda node, v=v: v if v else None)}
        if bad:
            hit = np.fromiter((v in bad for v in values), dtype=bool, count=n)
            refused[open_rows & hit] = k
    unique = [(k, r) for k, r in enumerate(rules) if r.kind == "unique"]
    if unique:
        seen: dict[str, set] = {}
        for i in np.flatnonzero(refused < 0).tolist():
            text = lambda node, i=i: value_of(node, i)  # noqa: E731
            for k, rule in unique:
                key = unique_key(rule, text)
                if key and key in seen.get(rule.element, ()):
                    refused[i] = k
                    break
            else:
                remember(text, (r for _, r in unique), seen)
    rows = np.flatnonzero(refused >= 0)
    ids = members["legacy_id"].to_numpy(dtype=object)
    picked = [rules[k] for k in refused[rows].tolist()]
    return pd.DataFrame({"legacy_id": [str(ids[i]) for i in rows.tolist()],
                         "rule_id": [r.rule_id for r in picked], "element": [r.element for r in picked],
                         "message": [r.message for r in picked], "source": [r.source for r in picked]},
                        columns=list(HOLDBACK_COLUMNS)).astype(str)
