"""Masking of personal data for notebook outputs and HTML reports.

Reports are read by people who need counts, not identities: emails, phones, names, card numbers,
birth dates, addresses and free-text notes are masked by default (``j***@example.com``,
``*******5678``, ``H. N.``, ``**/**/1990``); the staging database, the import files and the
restricted ``rejects/pii/`` copies keep the real values. Engineers opt out with ``show_pii``.
"""

from __future__ import annotations

import re

import pandas as pd

# Column names (canonical or source) whose values are personal data.
PII_KINDS: dict[str, str] = {
    "email": "email", "email_raw": "email", "email_key": "email", "customerEmail": "email",
    "phone": "phone", "phone_raw": "phone", "mobile_phone": "phone", "customerPhoneNumber": "phone",
    "first_name": "name", "last_name": "name", "firstName": "name", "lastName": "name",
    "name": "name", "identifier_key": "identifier", "group_id": "group",
    "card_number": "card", "card_code": "card", "customerLoyaltyCardNumber": "card",
    "birth_date": "date", "date_of_birth": "date", "birthDate": "date",
    "address": "text", "address1": "text", "address2": "text", "street": "text", "notes": "text",
    "note": "text", "comment": "text", "comments": "text",
}
# A record key part that is an email, or a phone or card number: digits (an optional +, separators)
# with no letter. Legacy ids (``G0000025``, ``gp-68``, ``at-000219``) carry letters and stay readable.
_NUMBER_SHAPED = re.compile(r"\+?[\d][\d .()/-]{4,}\d")


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


def mask_card(value: str) -> str:
    """A card number keeps its last four characters, like a phone."""
    return mask_phone(value)


def mask_date(value: str) -> str:
    """A birth date keeps its year only: ``1990-04-03`` -> ``1990-**-**``, ``03/04/1990`` -> ``**/**/1990``."""
    v = str(value or "")
    year = re.search(r"(?<!\d)(1[89]|20)\d\d(?!\d)", v)
    masked = re.sub(r"\d", "*", v)
    return masked[:year.start()] + year.group() + masked[year.end():] if year else masked


def mask_text(value: str) -> str:
    """Free text (an address, a note) says only how long it was."""
    v = str(value or "")
    return f"[{len(v)} characters]" if v else ""


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
            "group": mask_group, "card": mask_card, "date": mask_date, "text": mask_text}


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


def column_kind(column: object, kinds: dict[str, str] | None = None) -> str | None:
    """The personal-data kind of a reject's ``column`` (``email``, ``mobile_phone``, ``phone+email``,
    ``email/phone/card_number``): several personal columns named together count as an identifier."""
    known = {**PII_KINDS, **(kinds or {})}
    parts = [p for p in re.split(r"[+/]", str(column or "")) if p]
    found = [known[p] for p in parts if p in known]
    if not found:
        return None
    return found[0] if len(parts) == 1 else "identifier"


def mask_key(value: object) -> str:
    """A record key: each ``|``-separated part that is an email, phone or card number is masked."""
    parts = str(value or "").split("|")
    return "|".join(mask_identifier(p) if "@" in p or _NUMBER_SHAPED.fullmatch(p.strip()) else p for p in parts)


def mask_rejects(rejects: pd.DataFrame, *, kinds: dict[str, str] | None = None) -> pd.DataFrame:
    """Reject rows (``model.REJECT_COLUMNS``) as a reviewer may read them: the ``value`` of a personal
    column masked by its kind, personal parts of ``record_key`` masked, and every raw value masked
    wherever the ``message`` repeats it. ``kinds`` adds a source's own headers (``{"Courriel": "email"}``)."""
    if rejects.empty:
        return rejects
    out = rejects.copy()
    keys, messages, values = [], [], []
    for column, key, message, value in zip(out["column"], out["record_key"], out["message"], out["value"]):
        raw_key, raw_value, text = ("" if v is None or v != v else str(v) for v in (key, value, message))
        kind = column_kind(column, kinds)
        new_value = mask_value(kind, raw_value) if kind and raw_value else raw_value
        new_key = mask_key(raw_key)
        swaps = {raw_value: new_value, **dict(zip(raw_key.split("|"), new_key.split("|")))}
        for raw, masked in sorted(swaps.items(), key=lambda kv: -len(kv[0])):  # longest first
            if raw and raw != masked:
                text = text.replace(raw, masked)
        keys.append(new_key)
        messages.append(text)
        values.append(new_value)
    out["record_key"], out["message"], out["value"] = keys, messages, values
    return out
