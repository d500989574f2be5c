"""A local rehearsal of Open Loyalty's member import: its documented rules, applied in memory.

Before the real upload, the members XML of stage 01 is "imported" here so that every member the
target would refuse shows up with the target's own message, and so that a rehearsal run has member
IDs to map. The rules are those of the open-source 3.x importer (openloyalty_imports.md section 2):

* each ``<customer>`` is handled on its own; one bad item never stops the file;
* validation first (``Convert exception: ...``), nodes in the OSS converter's order: ``email``,
  ``firstName``, ``lastName``, ``active``, ``sendActivationMail``, ``birthDate``, ``agreement1..3``,
  ``gender``, ``levelId``, ``posId``, ``sellerId``;
* then uniqueness (``Process exception: ...``): an email (lower-cased), loyalty card number or
  phone already held by a member of the target, or by an earlier member of the same import, is
  refused, in that order;
* the result is ``{items: [{status, identifier, message, processImportResult: {object}}],
  totalProcessed, totalSuccess, totalFailed}``.

Deliberate differences, each documented where it applies:

* **email is optional when a phone or loyalty card number is present**: the SaaS needs one
  identifier, not specifically an email (docs/decisions.md, stage 01). ``email_optional=False``
  gives the OSS 3.x behaviour;
* a **blank** required element counts as missing (the OSS only checks that the node exists; the
  SaaS docs ask to omit empty elements, which is what stage 01 writes);
* **birthDate** is checked only when the element is present (the OSS checks it even when absent,
  so every member without a birth date fails there: ``birth_date_required=True`` emulates that);
  the date must be a real ``YYYY-MM-DD`` date, where PHP would roll 2001-02-30 over to March;
* the **identifier** is the email, else the card number, else the phone (the OSS uses the email,
  and on a process exception puts the message in the identifier by mistake).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from loyalty_toolkit.errors import InputError

GENDERS: tuple[str, ...] = ("male", "female", "not_disclosed")
BOOLEANS: tuple[str, ...] = ("true", "false")
REQUIRED_NODES: tuple[str, ...] = ("email", "firstName", "lastName", "active", "agreement1", "gender")
CONVERT = "Convert exception: "
PROCESS = "Process exception: "
INVALID_STRUCTURE = "XML has invalid structure"
# (node, message) in the order the target checks uniqueness.
UNIQUE_MESSAGES: tuple[tuple[str, str], ...] = (
    ("email", "Customer with such email already exists."),
    ("loyaltyCardNumber", "Customer with such loyalty card number already exists."),
    ("phone", "Customer with such phone already exists."),
)
NEW_MEMBER_COLUMNS: tuple[str, ...] = ("target_id", "email", "phone", "card_number", "first_name", "last_name",
                                       "gender", "birth_date", "active", "created_at", "legacy_id")
RECONCILE_COLUMNS: tuple[str, ...] = ("legacy_id", "identifier", "status", "target_id", "message", "item_index")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_YMD = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


# ---------------------------------------------------------------- parsing


def parse_members_xml(path: str | Path) -> list[dict[str, Any]]:
    """One dict per ``<customer>`` of a members file, in document order.

    A leaf element gives its text (``''`` when empty; the first one wins when a tag repeats),
    ``labels`` gives a list of ``{key, value}``, any other element with children (``address``,
    ``company``) a dict of its children's text. A document that is not well-formed XML, or whose
    root is not ``<customers>``, raises InputError "XML has invalid structure" with the line.
    """
    return list(iter_members_xml(path))


def iter_members_xml(path: str | Path) -> Iterator[dict[str, Any]]:
    """:func:`parse_members_xml` one customer at a time: each ``<customer>`` is dropped from the
    tree once read, so a file of any size holds one customer in memory, not the whole document
    (a million members took gigabytes, and the garbage collector rescanned them again and again).
    The errors are the same; one late in the file is raised after the customers before it."""
    path = Path(path)
    try:
        events = ET.iterparse(path, events=("start", "end"))
        depth, root = 0, None
        for event, node in events:
            if event == "start":
                depth += 1
                if root is None:
                    root = node
                continue
            depth -= 1
            if depth == 1 and root.tag == "customers":
                if node.tag == "customer":
                    yield _customer(node)
                root.clear()  # the children read so far; the root keeps its tag
    except ET.ParseError as exc:
        raise InputError(f"{INVALID_STRUCTURE} ({exc})", file=path.name, line=exc.position[0]) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", file=path.name) from None
    if root is not None and root.tag != "customers":  # raised once the whole document parsed, as before
        raise InputError(f"{INVALID_STRUCTURE} (root element is <{root.tag}>, expected <customers>)",
                         file=path.name, line=1)


def _customer(node: ET.Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in node:
        if child.tag in out:
            continue  # SimpleXML's $element->{'tag'} reads the first one
        if child.tag == "labels":
            out["labels"] = [{"key": _leaf(lab, "key"), "value": _leaf(lab, "value")} for lab in child]
        elif len(child):
            out[child.tag] = {grand.tag: grand.text or "" for grand in child}
        else:
            out[child.tag] = child.text or ""
    return out


def _leaf(node: ET.Element, tag: str) -> str:
    found = node.find(tag)
    return "" if found is None or found.text is None else found.text


# ---------------------------------------------------------------- validation


def _text(customer: Mapping[str, Any], node: str) -> str | None:
    """The node's text, None when the node is absent (a nested node counts as present, not text)."""
    if node not in customer:
        return None
    value = customer[node]
    return value.strip() if isinstance(value, str) else ""


def _present(customer: Mapping[str, Any], node: str) -> bool:
    text = _text(customer, node)
    return bool(text)


def identifier(customer: Mapping[str, Any]) -> str:
    """What the result names the item by: the email, else the card number, else the phone."""
    for node in ("email", "loyaltyCardNumber", "phone"):
        text = _text(customer, node)
        if text:
            return text
    return ""


def validate_customer(customer: Mapping[str, Any], *, email_optional: bool = True,
                      birth_date_required: bool = False) -> str | None:
    """The target's message for the first rule ``customer`` breaks, or None when it converts.

    Messages are the OSS validator's, prefixed ``Convert exception: `` as in the import result.
    """
    def fail(text: str) -> str:
        return CONVERT + text

    def required(node: str) -> str | None:
        return None if _present(customer, node) else fail(f"{node} is required node")

    def one_of(node: str, values: Sequence[str]) -> str | None:
        text = _text(customer, node)
        if text and text not in values:
            return fail(f"{node} should one of ({', '.join(values)})")
        return None

    def uuid(node: str) -> str | None:
        text = _text(customer, node)
        return fail(f"{node} should be UUID") if text and not _UUID.fullmatch(text) else None

    other_identifier = _present(customer, "phone") or _present(customer, "loyaltyCardNumber")
    checks: list[Callable[[], str | None]] = [
        lambda: None if email_optional and other_identifier else required("email"),
        lambda: required("firstName"),
        lambda: required("lastName"),
        lambda: required("active") or one_of("active", BOOLEANS),
        lambda: one_of("sendActivationMail", BOOLEANS),
        lambda: _birth_date(customer, birth_date_required),
        lambda: required("agreement1") or one_of("agreement1", BOOLEANS),
        lambda: one_of("agreement2", BOOLEANS),
        lambda: one_of("agreement3", BOOLEANS),
        lambda: required("gender") or one_of("gender", GENDERS),
        lambda: uuid("levelId"),
        lambda: uuid("posId"),
        lambda: uuid("sellerId"),
    ]
    for check in checks:
        message = check()
        if message:
            return message
    return None


def _birth_date(customer: Mapping[str, Any], required: bool) -> str | None:
    text = _text(customer, "birthDate")
    if text is None and not required:
        return None
    if text and (m := _YMD.fullmatch(text)):
        try:
            date(int(m[1]), int(m[2]), int(m[3]))
            return None
        except ValueError:
            pass
    return CONVERT + "birthDate has invalid date format (Y-m-d required)"


# ---------------------------------------------------------------- import


@dataclass(frozen=True)
class ExistingIdentifiers:
    """Identifiers the target already holds: emails lower-cased, card numbers and phones as stored."""

    emails: frozenset[str] = frozenset()
    cards: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()

    @classmethod
    def from_members(cls, members: pd.DataFrame) -> ExistingIdentifiers:
        """From a target member frame (columns email, card_number, phone; missing ones are empty)."""
        def values(col: str, lower: bool = False) -> frozenset[str]:
            if col not in members.columns:
                return frozenset()
            texts = (str(v).strip() for v in members[col].tolist() if v is not None and v == v)
            return frozenset((t.lower() if lower else t) for t in texts if t)
        return cls(values("email", lower=True), values("card_number"), values("phone"))

    def with_members(self, members: pd.DataFrame) -> ExistingIdentifiers:
        """These identifiers plus those of ``members`` (e.g. after an import, for the next file)."""
        more = ExistingIdentifiers.from_members(members)
        return ExistingIdentifiers(self.emails | more.emails, self.cards | more.cards, self.phones | more.phones)


@dataclass
class ImportOutcome:
    """The per-item results (the target's JSON items) and the members the import created."""

    items: list[dict[str, Any]]
    new_members: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(NEW_MEMBER_COLUMNS)))


@dataclass(frozen=True)
class RehearsalImport:
    """The target's member import rules; see the module docstring for the options."""

    email_optional: bool = True
    birth_date_required: bool = False

    def import_customers(self, customers: Iterable[Mapping[str, Any]], existing: ExistingIdentifiers, *,
                         id_factory: Callable[[], Any], created_at: str = "") -> ImportOutcome:
        """Import ``customers`` (from :func:`parse_members_xml`) into a target holding ``existing``.

        Each success takes the next ``id_factory()`` (uuid4 for realism, a seeded generator for
        reproducible rehearsals); ``created_at`` is recorded on the new members as given (the
        rehearsal reads no clock). ``existing`` is not modified.
        """
        seen = {"email": set(existing.emails), "loyaltyCardNumber": set(existing.cards),
                "phone": set(existing.phones)}
        items: list[dict[str, Any]] = []
        rows: list[dict[str, str]] = []
        for customer in customers:
            ident = identifier(customer)
            message = validate_customer(customer, email_optional=self.email_optional,
                                        birth_date_required=self.birth_date_required)
            keys = {node: _unique_key(customer, node) for node, _ in UNIQUE_MESSAGES}
            if message is None:
                message = next((PROCESS + text for node, text in UNIQUE_MESSAGES
                                if keys[node] and keys[node] in seen[node]), None)
            if message is not None:
                items.append({"status": "error", "identifier": ident, "message": message,
                              "processImportResult": None})
                continue
            member_id = str(id_factory())
            for node, key in keys.items():
                if key:
                    seen[node].add(key)
            items.append({"status": "success", "identifier": ident, "message": None,
                          "processImportResult": {"object": member_id}})
            rows.append(_new_member(customer, member_id, created_at))
        new_members = pd.DataFrame(rows, columns=list(NEW_MEMBER_COLUMNS)).astype("str")
        return ImportOutcome(items=items, new_members=new_members)


def _unique_key(customer: Mapping[str, Any], node: str) -> str:
    text = _text(customer, node) or ""
    return text.lower() if node == "email" else text


def _new_member(customer: Mapping[str, Any], member_id: str, created_at: str) -> dict[str, str]:
    labels = customer.get("labels") or []
    legacy = next((lab["value"] for lab in labels if isinstance(lab, Mapping) and lab.get("key") == "legacy_id"), "")
    return {
        "target_id": member_id,
        "email": (_text(customer, "email") or "").lower(),  # the target stores emails lower-cased
        "phone": _text(customer, "phone") or "",
        "card_number": _text(customer, "loyaltyCardNumber") or "",
        "first_name": _text(customer, "firstName") or "",
        "last_name": _text(customer, "lastName") or "",
        "gender": _text(customer, "gender") or "",
        "birth_date": _text(customer, "birthDate") or "",
        "active": _text(customer, "active") or "",
        "created_at": created_at,
        "legacy_id": legacy,
    }


def result_json(outcome: ImportOutcome) -> dict[str, Any]:
    """The import result as the target returns it, with its totals."""
    success = sum(1 for item in outcome.items if item["status"] == "success")
    return {"items": outcome.items, "totalProcessed": len(outcome.items), "totalSuccess": success,
            "totalFailed": len(outcome.items) - success}


# ---------------------------------------------------------------- reading a result back


def read_import_result(path: str | Path) -> dict[str, Any]:
    """Read an import result JSON (ours or the target's); InputError when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", file=path.name) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8: an import result is UTF-8 JSON", file=path.name) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", file=path.name, line=exc.lineno, column=exc.colno) from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise InputError('not an import result: expected an object with an "items" list', file=path.name,
                         column="items")
    for number, item in enumerate(data["items"], start=1):
        if not isinstance(item, dict) or item.get("status") not in ("success", "error"):
            raise InputError(f'item {number}: expected an object with status "success" or "error"',
                             file=path.name, column="status")
    return data


def _key(text: Any) -> str:
    value = "" if text is None or text != text else str(text).strip()
    return value.lower() if "@" in value else value


def reconcile_import_result(sent: pd.DataFrame, result: Mapping[str, Any]) -> pd.DataFrame:
    """For every member sent (columns legacy_id, email, phone, card_number, in file order), what
    the target did: ``imported`` with its target ID, ``failed`` with its message, or
    ``missing_from_result``; result items that match no member sent follow as ``unexpected_item``.

    Items are matched by identifier (email lower-cased, else card, else phone), the k-th item with
    an identifier going to the k-th member with it. When the result has exactly one item per member
    (the target answers every node in order), items whose identifier matches nobody, such as the
    OSS's process exceptions that carry the message as identifier, fall back to their position.
    Columns: :data:`RECONCILE_COLUMNS`.
    """
    items = list(result.get("items") or [])
    n = len(sent)
    ids = [str(v) for v in sent["legacy_id"].tolist()] if n else []

    def col(name: str) -> list[Any]:
        return sent[name].tolist() if name in sent.columns else [""] * n

    member_keys = [_key(e) or _key(c) or _key(p) for e, c, p in zip(col("email"), col("card_number"), col("phone"))]
    waiting: dict[str, list[int]] = {}
    for pos, key in enumerate(member_keys):
        waiting.setdefault(key, []).append(pos)
    for queue in waiting.values():
        queue.reverse()  # pop() then yields the earliest member first
    assigned: list[int | None] = [None] * n
    leftover: list[int] = []
    for index, item in enumerate(items):
        queue = waiting.get(_key(item.get("identifier")))
        if queue:
            assigned[queue.pop()] = index
        else:
            leftover.append(index)
    if len(items) == n:  # one pass: removing each placed item from the list was quadratic
        unplaced = []
        for index in leftover:
            if assigned[index] is None:
                assigned[index] = index
            else:
                unplaced.append(index)
        leftover = unplaced

    rows = []
    for pos in range(n):
        index = assigned[pos]
        if index is None:
            rows.append((ids[pos], member_keys[pos], "missing_from_result", "",
                         "no item in the import result for this member", -1))
        else:
            rows.append((ids[pos], member_keys[pos], *_item_outcome(items[index]), index))
    for index in leftover:
        status, target_id, message = _item_outcome(items[index])
        rows.append(("", _key(items[index].get("identifier")), "unexpected_item", target_id,
                     f"{status}: {message}" if message else status, index))
    frame = pd.DataFrame.from_records(rows, columns=list(RECONCILE_COLUMNS))
    return frame.astype({c: "str" for c in RECONCILE_COLUMNS if c != "item_index"}).astype({"item_index": "int64"})


def _item_outcome(item: Mapping[str, Any]) -> tuple[str, str, str]:
    """(status, target_id, message) of one result item."""
    if item.get("status") == "success":
        result = item.get("processImportResult") or {}
        obj = result.get("object") if isinstance(result, Mapping) else None
        return "imported", "" if obj is None else str(obj), ""
    message = item.get("message")
    return "failed", "", "" if message is None else str(message)
