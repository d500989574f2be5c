"""A local rehearsal of Open Loyalty's member import: the target profile's rules, applied in memory.

Before the real upload, the members XML of stage 01 is "imported" here so that every member the
target would refuse shows up with the target's own message, and so that a rehearsal run has member
IDs to map. The rules are the profile's member rules (``targets/ol_profiles.py``, applied by
``targets/ol_member_checks.py``), in the table's order, which is the importer's:

* each ``<customer>`` is handled on its own; one bad item never stops the file;
* the conversion rules first (``Convert exception: ...``), then uniqueness (``Process exception:
  ...``): an email (lower-cased), loyalty card number or phone already held by a member of the
  target, or by an earlier member of the same import, is refused, in that order;
* the result is ``{items: [{status, identifier, message, processImportResult: {object}}],
  totalProcessed, totalSuccess, totalFailed}``; ``ImportOutcome.refusals`` names each refusal's rule.

The ``hosted`` profile (default) differs from ``oss-3`` where the hosted help pages do: any one
identifier will do, a blank element counts as missing, birthDate is checked only when present and
must be a real day. The **identifier** is the email, else the card number, else the phone (the OSS
uses the email, and on a process exception puts the message in the identifier by mistake).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from loyalty_toolkit.errors import InputError
from loyalty_toolkit.targets import ol_profiles
from loyalty_toolkit.targets.ol_member_checks import first_refusal, remember
from loyalty_toolkit.targets.ol_profiles import Profile, Rule

CONVERT = "Convert exception: "
PROCESS = "Process exception: "
INVALID_STRUCTURE = "XML has invalid structure"
NEW_MEMBER_COLUMNS: tuple[str, ...] = ("target_id", "email", "phone", "card_number", "first_name", "last_name",
                                       "gender", "birth_date", "active", "created_at", "legacy_id")
RECONCILE_COLUMNS: tuple[str, ...] = ("legacy_id", "identifier", "status", "target_id", "message", "item_index")


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


def identifier(customer: Mapping[str, Any]) -> str:
    """What the result names the item by: the email, else the card number, else the phone."""
    for node in ("email", "loyaltyCardNumber", "phone"):
        text = _text(customer, node)
        if text:
            return text
    return ""


def member_rules(*, profile: Profile | None = None, email_optional: bool = True,
                 birth_date_required: bool = False) -> tuple[Rule, ...]:
    """The member rules the rehearsal applies: the profile's table (default ``hosted``). The two
    options adjust the hosted table as before profiles existed: ``email_optional=False`` requires an
    email, ``birth_date_required=True`` checks birthDate even when absent."""
    rules = (profile or ol_profiles.profile(ol_profiles.DEFAULT_PROFILE)).member_rules()
    if not email_optional:
        rules = tuple(replace(r, kind="required_value", element="email") if r.kind == "any_of" else r
                      for r in rules)
    if birth_date_required:
        rules = tuple(replace(r, when="always") if r.kind == "format" and r.element == "birthDate" else r
                      for r in rules)
    return rules


def _reader(customer: Mapping[str, Any]) -> Callable[[str], str | None]:
    return lambda node: _text(customer, node)


def validate_customer(customer: Mapping[str, Any], *, profile: Profile | None = None, email_optional: bool = True,
                      birth_date_required: bool = False) -> str | None:
    """The target's message for the first conversion rule ``customer`` breaks, or None when it converts.

    Messages are the importer's, prefixed ``Convert exception: `` as in the import result; the
    rules are the profile's member rules (:func:`member_rules`) before the uniqueness ones.
    """
    rules = member_rules(profile=profile, email_optional=email_optional, birth_date_required=birth_date_required)
    rule = first_refusal(_reader(customer), [r for r in rules if r.kind != "unique"], {})
    return None if rule is None else CONVERT + rule.message


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
    refusals: dict[int, str] = field(default_factory=dict)  # item index -> the profile rule that refused it


@dataclass(frozen=True)
class RehearsalImport:
    """The target's member import: the profile's member rules (default ``hosted``), in its order."""

    email_optional: bool = True
    birth_date_required: bool = False
    profile: Profile | None = None

    def import_customers(self, customers: Iterable[Mapping[str, Any]], existing: ExistingIdentifiers, *,
                         id_factory: Callable[[], Any], created_at: str = "") -> ImportOutcome:
        """Import ``customers`` (from :func:`parse_members_xml`) into a target holding ``existing``.

        Each success takes the next ``id_factory()`` (uuid4 for realism, a seeded generator for
        reproducible rehearsals); ``created_at`` is recorded on the new members as given (the
        rehearsal reads no clock). ``existing`` is not modified.
        """
        seen = {"email": set(existing.emails), "loyaltyCardNumber": set(existing.cards),
                "phone": set(existing.phones)}
        rules = member_rules(profile=self.profile, email_optional=self.email_optional,
                             birth_date_required=self.birth_date_required)
        items: list[dict[str, Any]] = []
        refusals: dict[int, str] = {}
        rows: list[dict[str, str]] = []
        for customer in customers:
            ident = identifier(customer)
            text = _reader(customer)
            rule = first_refusal(text, rules, seen)
            if rule is not None:
                prefix = PROCESS if rule.kind == "unique" else CONVERT
                refusals[len(items)] = rule.rule_id
                items.append({"status": "error", "identifier": ident, "message": prefix + rule.message,
                              "processImportResult": None})
                continue
            member_id = str(id_factory())
            remember(text, rules, seen)
            items.append({"status": "success", "identifier": ident, "message": None,
                          "processImportResult": {"object": member_id}})
            rows.append(_new_member(customer, member_id, created_at))
        new_members = pd.DataFrame(rows, columns=list(NEW_MEMBER_COLUMNS)).astype("str")
        return ImportOutcome(items=items, new_members=new_members, refusals=refusals)


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
