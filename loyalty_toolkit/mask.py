"""Masking of personal data for notebook outputs and HTML reports.

Reports are read by people who need counts, not identities: emails, phones and names are masked
by default (``j***@example.com``, ``*******5678``, ``H. N.``); the staging database and the import
files keep the real values. Engineers opt out with ``show_pii``.
"""

from __future__ import annotations

import pandas as pd

# Column names (canonical or source) whose values are personal data.
PII_KINDS: dict[str, str] = {
    "email": "email", "email_raw": "email", "email_key": "email", "customerEmail": "email",
    "phone": "phone", "phone_raw": "phone", "mobile_phone": "phone", "customerPhoneNumber": "phone",
    "first_name": "name", "last_name": "name", "firstName": "name", "lastName": "name",
    "name": "name", "identifier_key": "identifier", "group_id": "group",
}


def mask_email(value: str) -> str:
    """``jean.dupont@example.com`` -> ``j***@example.com``; the domain stays for triage."""
    v = str(value or "")
    if not v:
        return ""
    local, at, domain = v.partition("@")
    if not at:
        return v[:1] + "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(value: str) -> str:
    """Keep the last four digits: ``+33612345678`` -> ``********5678``."""
    v = str(value or "")
    if not v:
        return ""
    keep = 4 if len(v) > 4 else 1
    return "*" * (len(v) - keep) + v[-keep:]


def mask_name(value: str) -> str:
    """Initials only: ``Nguyễn Thị Thu`` -> ``N. T. T.``."""
    parts = str(value or "").split()
    return " ".join(p[0] + "." for p in parts if p)


def mask_identifier(value: str) -> str:
    """An identifier of unknown kind (email, phone or card): mask by its shape."""
    v = str(value or "")
    if "@" in v:
        return mask_email(v)
    return mask_phone(v)


def mask_group(value: str) -> str:
    """A duplicate group id ``email:<key>`` keeps its kind and masks its key."""
    kind, sep, key = str(value or "").partition(":")
    return f"{kind}:{mask_identifier(key)}" if sep else mask_identifier(kind)


_MASKERS = {"email": mask_email, "phone": mask_phone, "name": mask_name, "identifier": mask_identifier,
            "group": mask_group}


def mask_value(kind: str, value: object) -> str:
    return _MASKERS[kind](value)  # type: ignore[arg-type]


def mask_frame(frame: pd.DataFrame, *, show_pii: bool = False) -> pd.DataFrame:
    """A copy of ``frame`` with every personal-data column masked (unless ``show_pii``)."""
    if show_pii or frame.empty:
        return frame
    out = frame.copy()
    for col in out.columns:
        kind = PII_KINDS.get(str(col))
        if kind:
            out[col] = out[col].map(lambda v, k=kind: mask_value(k, v))
    return out


def mask_examples(column: str | None, values: list, *, show_pii: bool = False) -> list:
    """Mask a list of example values taken from ``column`` (used for gate examples)."""
    kind = PII_KINDS.get(str(column)) if column else None
    if show_pii or not kind:
        return values
    return [mask_value(kind, v) if v is not None else v for v in values]
