"""Open Loyalty members import files: ``<customers><customer>…`` XML, split below a size limit.

Open Loyalty takes members as XML only, at most 100 MB per file, so the members are written in
``legacy_id`` order into ``members_0001.xml``, ``members_0002.xml`` … each strictly smaller than
``max_file_bytes`` (split between customers by ``targets/parts.py``). Elements follow Open Loyalty's
own generator: firstName, lastName, email, phone (E.164), loyaltyCardNumber, birthDate (YYYY-MM-DD), gender,
active, sendActivationMail, agreement1 and a ``legacy_id`` label. Empty optional values are omitted
rather than written empty (the SaaS docs ask for that; the SaaS needs one identifier, not
specifically an email). Booleans are ``true``/``false``; text is escaped, diacritics stay UTF-8.
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.parsers import expat
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

from loyalty_toolkit.errors import InputError
from loyalty_toolkit.targets.ol_member_checks import holdback
from loyalty_toolkit.targets.ol_profiles import Rule
from loyalty_toolkit.targets.parts import Run, write_parts

HEADER = b'<?xml version="1.0" encoding="UTF-8"?>\n<customers>\n'
FOOTER = b"</customers>\n"
FILE_NAME = "members_{:04d}.xml"
STALE_FILES = "members_[0-9][0-9][0-9][0-9].xml"
# (element, member column) in document order; empty values are omitted.
ELEMENTS: tuple[tuple[str, str], ...] = (
    ("firstName", "first_name"),
    ("lastName", "last_name"),
    ("email", "email"),
    ("phone", "phone"),
    ("loyaltyCardNumber", "card_number"),
    ("birthDate", "birth_date"),
)
GENDERS = ("male", "female", "not_disclosed")
# Characters XML 1.0 cannot carry even escaped.
_CUSTOMER_TAG = re.compile(rb"<customer[\s/>]")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


_BATCH = 20_000  # members formatted per batch: column-wise speed without a copy of every string


def _bool(flag: bool) -> str:
    return "true" if flag else "false"


def _esc(value: str) -> str:
    return escape(value) if ("&" in value or "<" in value or ">" in value) else value


def _column(members: pd.DataFrame, name: str) -> np.ndarray:
    """A column as an object array of str ('' for absent columns and missing values)."""
    if name not in members.columns:
        return np.full(len(members), "", dtype=object)
    values = members[name].to_numpy(dtype=object, na_value="")
    return values if all(type(v) is str for v in values) else np.array([str(v) for v in values], dtype=object)


def _check_xml_chars(ids: np.ndarray, name: str, values: np.ndarray) -> None:
    """Refuse characters XML 1.0 cannot carry (one C-speed scan per column; the loop runs only on a hit)."""
    if _NOT_XML.search("".join(values)):
        for legacy_id, value in zip(ids, values):
            bad = _NOT_XML.search(value)
            if bad:
                raise ValueError(f"member {legacy_id!r}: {name} holds U+{ord(bad.group()):04X}, which XML cannot carry")


def _customers(members: pd.DataFrame, *, active: bool, agreement1: bool, send_activation_mail: bool):
    """Yield the members' ``<customer>`` elements as UTF-8 runs (``parts.Run``), in legacy_id order."""
    if not members["legacy_id"].is_monotonic_increasing:  # the stage hands them sorted: no copy then
        members = members.sort_values("legacy_id", kind="stable")
    ids = _column(members, "legacy_id")
    columns = [(tag, _column(members, col)) for tag, col in ELEMENTS]
    genders = _column(members, "gender")
    _check_xml_chars(ids, "legacy_id", ids)
    for tag, values in columns:
        _check_xml_chars(ids, tag, values)
    flags = (f"    <active>{_bool(active)}</active>\n"
             f"    <sendActivationMail>{_bool(send_activation_mail)}</sendActivationMail>\n"
             f"    <agreement1>{_bool(agreement1)}</agreement1>\n")
    for lo in range(0, len(ids), _BATCH):
        hi = lo + _BATCH
        parts = [[f"    <{tag}>{_esc(v)}</{tag}>\n" if v else "" for v in values[lo:hi]] for tag, values in columns]
        parts.append([f"    <gender>{g if g in GENDERS else 'not_disclosed'}</gender>\n{flags}"
                      for g in genders[lo:hi]])
        parts.append([f"    <labels>\n      <label>\n        <key>legacy_id</key>\n        <value>{_esc(i)}</value>\n"
                      f"      </label>\n    </labels>\n  </customer>\n" for i in ids[lo:hi]])
        items = [("  <customer>\n" + "".join(pieces)).encode("utf-8") for pieces in zip(*parts)]
        yield Run(b"".join(items), len(items), np.fromiter(map(len, items), dtype=np.int64, count=len(items)))


def write_members_xml(members: pd.DataFrame, out_dir: Path, *, active: bool, agreement1: bool,
                      send_activation_mail: bool, max_file_bytes: int) -> list[Path]:
    """Write the members import file(s) into ``out_dir`` and return their paths, in order.

    Earlier ``members_NNNN.xml`` files in ``out_dir`` are removed first, so a smaller rerun leaves no
    stale part behind. No members means no file. Raises ValueError if one member alone would not
    fit below ``max_file_bytes``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in sorted(out_dir.glob(STALE_FILES)):
        stale.unlink()
    return write_parts(_customers(members, active=active, agreement1=agreement1,
                                  send_activation_mail=send_activation_mail),
                       lambda k: out_dir / FILE_NAME.format(k), header=HEADER, footer=FOOTER,
                       max_file_bytes=max_file_bytes, noun="customer")


def member_holdback(members: pd.DataFrame, rules: tuple[Rule, ...], *, active: bool, agreement1: bool,
                    send_activation_mail: bool) -> pd.DataFrame:
    """The members the profile's ``rules`` refuse, judged on what this writer would write for them
    (elements left out when empty; the flags as configured; gender always one of the three):
    ``ol_member_checks.HOLDBACK_COLUMNS``, in file order. Stage 01 writes every other member."""
    constants = {"active": _bool(active), "agreement1": _bool(agreement1),
                 "sendActivationMail": _bool(send_activation_mail), "gender": "not_disclosed"}
    return holdback(members, rules, dict(ELEMENTS), constants)


def members_xml_count(path: Path) -> int:
    """How many ``<customer>`` elements a members file holds.

    The whole file is parsed first, so a file that is not well-formed raises InputError instead of
    being miscounted; the count itself is a byte scan, exact for well-formed files without comments
    or CDATA (which the writer never produces).
    """
    path = Path(path)
    data = path.read_bytes()
    parser = expat.ParserCreate()
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise InputError(f"not well-formed XML: {expat.ErrorString(exc.code)}", file=path.name,
                         line=exc.lineno, column=exc.offset + 1) from None
    return len(_CUSTOMER_TAG.findall(data))
