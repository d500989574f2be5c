"""Stage 02 logic: map each migrated member to the target member ID, and prove every reference resolves.

Unit transfers need the ID the target assigned (seed 000, "Map Member IDs"), so each accepted
member of stage 01 is matched to one member of the target's export. Invariant 6 rules: only an
identifier that is unique on BOTH sides may pick a member, as Open Loyalty itself only matches on
unique identifiers (ledger_domain.md section 4). Pure functions over frames; no I/O.

Rules of :func:`match_members`:

1. Identifiers are compared on stage 01's keys: trimmed card number (leading zeros kept), email
   key (local part case-folded), E.164 phone. Empty values never match.
2. A value held by several migrated members, or by several target members, is *ambiguous* for
   that identifier and never used to pick.
3. The usable identifiers are tried in ``priority`` order; ``matched_by`` is the first that finds
   a target member. If two usable identifiers point to different target members the member is
   ``conflicting`` and not mapped.
4. A target member picked by two migrated members maps to neither (``ambiguous``).
5. Members left without a usable identifier are ``ambiguous`` when one of their identifiers is in
   the target but shared, else ``not_found``. Target members that no migrated member maps to are
   listed as ``target_unmatched``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from loyalty_toolkit.normalize import normalize_emails, normalize_phones
from loyalty_toolkit.shared.identifiers import lookup, match_phone_email

# Identifier -> key column, the same name in the migrated and the target frames.
IDENTIFIERS: dict[str, str] = {"card_number": "card_number", "email": "email_key", "phone": "phone"}
SHORT_NAMES: dict[str, str] = {"card_number": "card", "email": "email", "phone": "phone"}
DEFAULT_PRIORITY: tuple[str, ...] = ("card_number", "email", "phone")
ID_MAP_COLUMNS: tuple[str, ...] = ("legacy_id", "target_id", "matched_by")
REVIEW_REASONS: tuple[str, ...] = ("not_found", "ambiguous", "conflicting", "target_unmatched")
# ``line``: the member's line in the legacy export, or the target export's line for target_unmatched.
REVIEW_COLUMNS: tuple[str, ...] = ("reason", "legacy_id", "target_id", "identifier", "identifier_key", "detail", "line")
RESOLVED_COLUMNS: tuple[str, ...] = ("input", "file", "line", "ref_kind", "ref_value", "legacy_id", "target_id")
ORPHAN_COLUMNS: tuple[str, ...] = ("input", "file", "line", "ref_kind", "ref_value", "ref_value2", "reason",
                                   "legacy_id", "detail")
ORPHAN_REASONS: tuple[str, ...] = ("missing_reference", "unknown_member", "member_rejected_or_unmapped",
                                   "ambiguous_member")
PER_INPUT_COLUMNS: tuple[str, ...] = ("input", "references", "resolved", "orphans", "coverage")
# Reference kind -> member key column it is looked up in (phone_email uses both).
REF_KEYS: dict[str, str] = {"legacy_id": "legacy_id", "card": "card_number", "email": "email_key", "phone": "phone"}


@dataclass
class MappingResult:
    """The legacy -> target ID map, the review list (one row per member needing a look), counts."""

    id_map: pd.DataFrame
    review: pd.DataFrame
    accepted: int
    target_members: int
    priority: tuple[str, ...] = DEFAULT_PRIORITY

    def reviewed(self, reason: str) -> pd.DataFrame:
        return self.review[self.review["reason"] == reason].reset_index(drop=True)

    def funnel(self) -> dict[str, int]:
        """accepted = matched (by card, email, phone) + unmatched + ambiguous + conflicting."""
        by = self.id_map["matched_by"].value_counts()
        reasons = self.review["reason"].value_counts()
        out = {"accepted": self.accepted}
        for ident in DEFAULT_PRIORITY:
            out[f"matched_by_{SHORT_NAMES[ident]}"] = int(by.get(ident, 0))
        out["unmatched"] = int(reasons.get("not_found", 0))
        out["ambiguous"] = int(reasons.get("ambiguous", 0))
        out["conflicting"] = int(reasons.get("conflicting", 0))
        return out

    def counts(self) -> dict[str, int]:
        """The funnel plus the target side: members in the export and those left unmatched."""
        return {**self.funnel(), "matched": len(self.id_map), "target_members": self.target_members,
                "target_unmatched": int((self.review["reason"] == "target_unmatched").sum())}


def _text(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series([""] * len(frame), index=frame.index, dtype="str")
    return frame[name].astype("str").fillna("").str.strip()


def _keys(frame: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """The id and the three identifier keys, as trimmed text (email_key derived if absent)."""
    frame = frame.reset_index(drop=True)
    keys = pd.DataFrame({id_column: _text(frame, id_column), "card_number": _text(frame, "card_number"),
                         "phone": _text(frame, "phone")})
    keys["email_key"] = (_text(frame, "email_key") if "email_key" in frame.columns
                         else normalize_emails(_text(frame, "email"))["email_key"])
    keys["line"] = frame["source_line"].astype("int64") if "source_line" in frame.columns else 0
    ids = keys[id_column]
    if (ids == "").any() or ids.duplicated().any():
        raise ValueError(f"{id_column} must be present and unique on every row")
    return keys


def match_members(migrated: pd.DataFrame, target: pd.DataFrame, *,
                  priority: tuple[str, ...] = DEFAULT_PRIORITY) -> MappingResult:
    """Match stage 01's accepted members to the target's export (see the module rules)."""
    unknown = [p for p in priority if p not in IDENTIFIERS]
    if unknown or len(set(priority)) != len(priority) or not priority:
        raise ValueError(f"priority must name distinct identifiers among {list(IDENTIFIERS)}, got {list(priority)}")
    m, t = _keys(migrated, "legacy_id"), _keys(target, "target_id")
    cand, m_count, t_count = {}, {}, {}
    for ident in priority:
        col = IDENTIFIERS[ident]
        mv, tv = m[col], t[col]
        m_count[ident] = mv.map(mv[mv != ""].value_counts()).fillna(0).astype("int64")
        t_count[ident] = mv.map(tv[tv != ""].value_counts()).fillna(0).astype("int64")
        unique_t = (tv != "") & ~tv.duplicated(keep=False)
        lookup = pd.Series(t["target_id"][unique_t].to_numpy(), index=tv[unique_t].to_numpy())
        usable = (mv != "") & (m_count[ident] == 1) & (t_count[ident] == 1)
        cand[ident] = mv.where(usable).map(lookup).astype(object)
    cands = pd.DataFrame(cand, columns=list(priority))
    found = cands.notna()
    first = cands.bfill(axis=1).iloc[:, 0]
    has = found.any(axis=1)
    conflict = (found & cands.ne(first, axis=0)).any(axis=1)
    ok = has & ~conflict
    claimed = ok & first.where(ok).duplicated(keep=False) & first.notna()
    mapped = ok & ~claimed
    matched_by = found.idxmax(axis=1)

    id_map = pd.DataFrame({"legacy_id": m["legacy_id"][mapped], "target_id": first[mapped],
                           "matched_by": matched_by[mapped]}, columns=list(ID_MAP_COLUMNS))
    id_map = id_map.astype("str").sort_values("legacy_id", kind="stable").reset_index(drop=True)

    rows: list[tuple] = []
    for pos in np.flatnonzero(conflict.to_numpy()).tolist():
        picks = [(i, cands.at[pos, i]) for i in priority if found.at[pos, i]]
        rows.append(("conflicting", m.at[pos, "legacy_id"], ",".join(dict.fromkeys(v for _, v in picks)),
                     ",".join(i for i, _ in picks), m.at[pos, IDENTIFIERS[picks[0][0]]],
                     "; ".join(f"{i} -> {v}" for i, v in picks) + ": identifiers point to different target members",
                     m.at[pos, "line"]))
    claimants = pd.DataFrame({"pos": np.flatnonzero(claimed.to_numpy())})
    claimants["target"] = first.to_numpy()[claimants["pos"]]
    for target_id, group in claimants.groupby("target", sort=True):
        who = ", ".join(f"{m.at[p, 'legacy_id']} ({matched_by.at[p]})" for p in group["pos"])
        for pos in group["pos"].tolist():
            ident = matched_by.at[pos]
            rows.append(("ambiguous", m.at[pos, "legacy_id"], target_id, ident, m.at[pos, IDENTIFIERS[ident]],
                         f"target member {target_id} is picked by {len(group)} migrated members: {who}",
                         m.at[pos, "line"]))
    rows.extend(_unfound(m, t, priority, np.flatnonzero((~has).to_numpy()), m_count, t_count))
    mapped_targets = set(id_map["target_id"])
    for pos in np.flatnonzero((~t["target_id"].isin(mapped_targets)).to_numpy()).tolist():
        rows.append(("target_unmatched", "", t.at[pos, "target_id"], "", "",
                     "no migrated member maps to this target member", t.at[pos, "line"]))
    review = pd.DataFrame.from_records(rows, columns=list(REVIEW_COLUMNS))
    review = review.astype({c: "str" for c in REVIEW_COLUMNS if c != "line"}).astype({"line": "int64"})
    review["_order"] = review["reason"].map({r: i for i, r in enumerate(REVIEW_REASONS)})
    review = review.sort_values(["_order", "legacy_id", "target_id"], kind="stable").drop(columns="_order")
    return MappingResult(id_map=id_map, review=review.reset_index(drop=True), accepted=len(m),
                         target_members=len(t), priority=tuple(priority))


def _unfound(m: pd.DataFrame, t: pd.DataFrame, priority: tuple[str, ...], positions: np.ndarray,
             m_count: dict[str, pd.Series], t_count: dict[str, pd.Series]) -> list[tuple]:
    """Review rows for members no usable identifier found: ambiguous (shared and in the target) or not found."""
    rows = []
    holders: dict[str, pd.Series] = {}
    for ident in priority:
        col = IDENTIFIERS[ident]
        shared = m[col].iloc[positions][(t_count[ident].iloc[positions] >= 1)
                                        & (m_count[ident].iloc[positions] + t_count[ident].iloc[positions] > 2)]
        in_t = t[t[col].isin(set(shared))]
        holders[ident] = in_t.groupby(col)["target_id"].agg(lambda s: sorted(s))
    for pos in positions.tolist():
        parts, idents, targets = [], [], []
        for ident in priority:
            value = m.at[pos, IDENTIFIERS[ident]]
            mc, tc = int(m_count[ident].iat[pos]), int(t_count[ident].iat[pos])
            if not value or tc == 0 or (mc == 1 and tc == 1):
                continue
            idents.append(ident)
            if mc > 1:
                parts.append(f"{ident} shared by {mc} migrated members")
            if tc > 1:
                parts.append(f"{ident} shared by {tc} target members")
            targets.extend(holders[ident].get(value, []))
        if idents:
            rows.append(("ambiguous", m.at[pos, "legacy_id"], ",".join(dict.fromkeys(targets)), ",".join(idents),
                         m.at[pos, IDENTIFIERS[idents[0]]], "; ".join(parts) + ": never used to pick a member",
                         m.at[pos, "line"]))
            continue
        have = [i for i in priority if m.at[pos, IDENTIFIERS[i]]]
        detail = (f"no target member has this {' / '.join(have)}" if have
                  else f"the member has none of {', '.join(priority)}")
        rows.append(("not_found", m.at[pos, "legacy_id"], "", ",".join(have), "", detail, m.at[pos, "line"]))
    return rows


# ---------------------------------------------------------------- reference coverage


def legacy_member_keys(members: pd.DataFrame, default_region: str) -> pd.DataFrame:
    """Keys of every legacy member read (accepted or not), to tell a rejected member from an
    unknown one in :func:`coverage`: columns legacy_id, card_number, email_key, phone."""
    return pd.DataFrame({
        "legacy_id": _text(members, "legacy_id"),
        "card_number": _text(members, "card_number"),
        "email_key": normalize_emails(_text(members, "email"))["email_key"],
        "phone": normalize_phones(_text(members, "phone"), default_region)["phone"],
    })


def _codes(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques) of a text column, categorical or not; a missing value gets code -1."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy(), np.asarray(series.cat.categories, dtype=object)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return codes, np.asarray(uniques, dtype=object)


def _member_positions(refs: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
    """For each reference: the row of ``table`` it names, -1 none, -2 several, -3 empty reference.

    Works on the distinct values of each kind (codes of a categorical), so ten million ledger rows
    naming a few hundred thousand members cost a few hundred thousand look-ups.
    """
    out = np.full(len(refs), -1, dtype=np.int64)
    kind_codes, kind_names = _codes(refs["ref_kind"])
    for k, kind in enumerate(kind_names.tolist()):
        sel = np.flatnonzero(kind_codes == k)
        if not len(sel):
            continue
        codes, uniques = _codes(refs["ref_value"].iloc[sel])
        blank = np.append(uniques == "", True)[codes]  # code -1 (missing) indexes the appended True
        if kind == "phone_email":
            def column(name: str) -> np.ndarray:
                if name not in refs.columns:
                    return np.full(len(sel), "", dtype=object)
                return np.asarray(refs[name].iloc[sel].astype(object).fillna(""), dtype=object)
            phone = np.where(blank, "", np.append(uniques, "")[codes]).astype(object)
            email, raw = column("ref_value2"), column("ref_raw")
            pos = match_phone_email(table, phone, email, raw)
            blank = (blank & (raw == "")) | (email == "")
        elif kind in REF_KEYS:
            pos = lookup(table[REF_KEYS[kind]], uniques)[codes] if len(uniques) else np.full(len(sel), -1)
        else:
            raise ValueError(f"unknown ref_kind {kind!r}; expected one of {', '.join(REF_KEYS)}, phone_email")
        out[sel] = np.where(blank, -3, pos)
    return out


def coverage(refs: pd.DataFrame, id_map: pd.DataFrame, migrated: pd.DataFrame, *,
             legacy_members: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Resolve each reference to a target member ID through the migrated member it names.

    ``refs``: see :func:`loyalty_toolkit.sources.references.member_references`. ``legacy_members``
    (:func:`legacy_member_keys` of every member read) lets an orphan say that its member was
    rejected rather than unknown. Returns ``(resolved, orphans, per_input)`` with columns
    :data:`RESOLVED_COLUMNS`, :data:`ORPHAN_COLUMNS`, :data:`PER_INPUT_COLUMNS`. Orphan reasons:
    ``missing_reference`` (no identifier on the row), ``ambiguous_member`` (it fits several
    accepted members), ``member_rejected_or_unmapped`` (the member was rejected in stage 01, or
    accepted but not mapped: see the mapping review), ``unknown_member``.
    """
    refs = refs.reset_index(drop=True)
    members = _keys(migrated, "legacy_id")
    target_of = members["legacy_id"].map(id_map.set_index("legacy_id")["target_id"]).fillna("").to_numpy(dtype=object)
    pos = _member_positions(refs, members)
    found = np.maximum(pos, 0)
    ok = (pos >= 0) & (target_of[found] != "") if len(members) else np.zeros(len(refs), dtype=bool)

    mapped_ids = pd.unique(target_of[target_of != ""])
    t_code = pd.Index(mapped_ids).get_indexer(target_of) if len(mapped_ids) else np.full(len(members), -1)
    resolved = refs.loc[ok, ["input", "file", "line", "ref_kind", "ref_value"]].reset_index(drop=True)
    resolved["legacy_id"] = pd.Categorical.from_codes(pos[ok], categories=pd.Index(members["legacy_id"]))
    resolved["target_id"] = pd.Categorical.from_codes(t_code[pos[ok]].astype(np.int64),
                                                      categories=pd.Index(mapped_ids, dtype=object))

    bad = np.flatnonzero(~ok)
    orphans = refs.iloc[bad][[c for c in ORPHAN_COLUMNS if c in refs.columns]].reset_index(drop=True)
    p = pos[bad]
    legacy_ids = members["legacy_id"].to_numpy(dtype=object)
    legacy_of = np.where(p >= 0, legacy_ids[np.maximum(p, 0)] if len(members) else "", "").astype(object)
    reason = np.select([p == -3, p == -2, p >= 0], ["missing_reference", "ambiguous_member",
                                                    "member_rejected_or_unmapped"], "unknown_member").astype(object)
    detail = np.select([p == -3, p == -2, p >= 0],
                       ["the row names no member", "fits several accepted members: never picked",
                        "accepted member not mapped to a target member (see the mapping review)"],
                       "no accepted member has this reference").astype(object)
    unknown = np.flatnonzero(p == -1)
    if legacy_members is not None and len(unknown):
        lp = _member_positions(orphans.iloc[unknown], legacy_members.reset_index(drop=True))
        rejected = unknown[lp != -1]
        reason[rejected] = "member_rejected_or_unmapped"
        detail[rejected] = "member rejected in stage 01"
        hit = lp[lp != -1]
        legacy_all = _text(legacy_members.reset_index(drop=True), "legacy_id").to_numpy(dtype=object)
        legacy_of[rejected] = np.where(hit >= 0, legacy_all[np.maximum(hit, 0)] if len(legacy_all) else "", "")
    if "ref_value2" not in orphans.columns:
        orphans["ref_value2"] = ""
    orphans["reason"] = pd.Series(reason, dtype="str")
    orphans["legacy_id"] = pd.Series(legacy_of, dtype="str")
    orphans["detail"] = pd.Series(detail, dtype="str")
    orphans = orphans.reindex(columns=list(ORPHAN_COLUMNS))
    return resolved, orphans, _per_input(refs, ok)


def _per_input(refs: pd.DataFrame, ok: np.ndarray) -> pd.DataFrame:
    codes, names = _codes(refs["input"])
    n = len(names)
    total = np.bincount(codes[codes >= 0], minlength=n)
    good = np.bincount(codes[(codes >= 0) & ok], minlength=n)
    frame = pd.DataFrame({"input": pd.Series(names, dtype="str"), "references": total.astype("int64"),
                          "resolved": good.astype("int64"), "orphans": (total - good).astype("int64")})
    frame = frame[frame["references"] > 0]
    frame["coverage"] = frame["resolved"] / frame["references"]
    return frame.sort_values("input", kind="stable").reset_index(drop=True)
