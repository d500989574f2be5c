"""Stage 04 (rewards), pure logic: check Splio reward files and compute the state at the cutover.

Files are processed in Splio's order (masterreward, earnreward, burnreward; then by date). Each
row is checked against the rules below in the order listed for its scope; the first failing rule
rejects the row with its reason code, column and physical line. Every row read ends in exactly
one of accepted or rejected, per file (asserted).

Reason codes (a row of this table per code; a test checks it matches ``rewards.rules.REASON_CODES``):

| reason_code | scope | rule |
|---|---|---|
| MANDATORY_EMPTY | all | a mandatory value is NULL, "" or blank. masterreward: external_id, name, nqp_value, holding_days, validity_interval_count, validity_interval_type, forced_validity. earnreward: reward_id, card_code, earn_date, validity_start_date, validity_end_date, and attribution_id unless the reward's codes are auto-generated. burnreward: card_code, attribution_id |
| VALUE_TOO_LONG | master, earn | external_id, name or attribution_id longer than 128 characters |
| FLAG_INVALID | master | monetary, forced_validity, is_limited or is_auto_generated is not 0, 1 or empty (empty reads as 0) |
| MONETARY_TYPE_INVALID | master | monetary_type given but not `value` or `percentage` |
| MONETARY_VALUE_INVALID | master | monetary_value given but not a number >= 0 (digits, optional `.` decimals), or a percentage above 100 |
| MONETARY_INCOMPLETE | master | monetary is 1 without monetary_type or without monetary_value |
| NQP_VALUE_INVALID | master | nqp_value is not a positive integer (>= 1) |
| HOLDING_DAYS_INVALID | master | holding_days is not an integer >= 0 (0 allowed: Example 1's masterlight uses it) |
| VALIDITY_COUNT_INVALID | master | validity_interval_count is not a positive integer |
| VALIDITY_TYPE_INVALID | master | validity_interval_type is not days, weeks, months, years or a singular day, week, month, year (stored plural) |
| DATE_INCOMPLETE | all | a date without its time, or with hours (and minutes) only; forced validity dates alone accept a bare date as 00:00:00 |
| DATE_INVALID | all | a date that is not `YYYY-MM-DD HH:MM:SS` or not a real date and time |
| FORCED_VALIDITY_INCOMPLETE | master | forced_validity is 1 without forced_validity_start or forced_validity_end |
| VALIDITY_RANGE_INVALID | master, earn | validity starts after it ends (forced validity dates; validity_start_date, validity_end_date) |
| MAX_ATTRIBUTION_COUNT_INVALID | master | max_attribution_count given but not an integer >= 0 |
| STOCK_LIMITED_NOT_POSITIVE | master | is_limited is 1 and max_attribution_count is empty or 0 |
| AUTO_GENERATED_WITH_COUNT | master | is_auto_generated is 1, is_limited is not, and max_attribution_count > 0 |
| STOCK_MISSING | master | neither limited nor auto-generated, and max_attribution_count is empty |
| AUTO_GENERATION_MISSING | master | neither limited nor auto-generated, max_attribution_count is 0, and the reward has a value (monetary 1 or a monetary_value) |
| ITEM_STOCK_ZERO | master | neither limited nor auto-generated, max_attribution_count is 0, and the reward has no value (an item) |
| REWARD_UNKNOWN | earn | reward_id, after the optional legacy id -> external_id mapping, names no catalog reward |
| CARD_UNKNOWN | earn, burn | card_code maps to no migrated member |
| ATTRIBUTION_ID_AUTO_GENERATED | earn | attribution_id given for a reward whose codes are auto-generated (Splio fills it) |
| ATTRIBUTION_ID_DUPLICATE | earn | attribution_id already earned earlier in the run |
| QUANTITY_INVALID | earn | quantity given but not a positive integer (empty means 1) |
| EARN_DATE_AFTER_CUTOVER | earn | earn_date after the cutover (the legacy earn date is history; Splio gets the import day) |
| BURN_DATE_FUTURE | earn, burn | burn_date after the cutover |
| BURN_BEFORE_EARN | earn, burn | burn_date before the attribution's earn_date |
| STOCK_EXHAUSTED | earn | the quantities earned for a reward with a stock (max_attribution_count > 0) exceed it |
| ATTRIBUTION_UNKNOWN | burn | no accepted earned attribution has this attribution_id |
| BURN_DATE_MISSING | burn | burn_date is empty |
| ALREADY_BURNED | burn | the attribution was burned before: burn_date in earnreward, or an earlier burn row |
| ATTRIBUTION_CARD_MISMATCH | burn | the attribution belongs to another card |
| CONTROL_CHARACTER | all | the same identifiers or codes hold a control character (a NUL byte); the value is shown escaped |
| FORMULA_CELL | all | an identifier or code the target takes as written (masterreward external_id; earnreward reward_id, attribution_id; burnreward attribution_id) starts like a spreadsheet formula (`=`, `+`, `-`, `@`, tab, CR) |

Order of checks. masterreward: MANDATORY_EMPTY, CONTROL_CHARACTER, FORMULA_CELL, VALUE_TOO_LONG, FLAG_INVALID, MONETARY_TYPE_INVALID,
MONETARY_VALUE_INVALID, MONETARY_INCOMPLETE, NQP_VALUE_INVALID, HOLDING_DAYS_INVALID,
VALIDITY_COUNT_INVALID, VALIDITY_TYPE_INVALID, forced dates (DATE_*), FORCED_VALIDITY_INCOMPLETE,
VALIDITY_RANGE_INVALID, MAX_ATTRIBUTION_COUNT_INVALID, stock. earnreward: MANDATORY_EMPTY, CONTROL_CHARACTER, FORMULA_CELL,
REWARD_UNKNOWN, CARD_UNKNOWN, attribution_id (AUTO_GENERATED, MANDATORY_EMPTY, VALUE_TOO_LONG,
DUPLICATE), QUANTITY_INVALID, dates (DATE_*), VALIDITY_RANGE_INVALID, EARN_DATE_AFTER_CUTOVER, BURN_DATE_FUTURE,
BURN_BEFORE_EARN, STOCK_EXHAUSTED. burnreward: MANDATORY_EMPTY, CONTROL_CHARACTER, FORMULA_CELL, CARD_UNKNOWN, ATTRIBUTION_UNKNOWN,
BURN_DATE_MISSING, DATE_*, BURN_DATE_FUTURE, ALREADY_BURNED, ATTRIBUTION_CARD_MISMATCH,
BURN_BEFORE_EARN (the state of the attribution comes before its owner, so Example 3's
"already_burned" row, whose card is not the owner's, reads as already burned).

Stock rule (masterreward; empty is_limited and is_auto_generated read as 0). A
max_attribution_count > 0 is a cap on the quantities earned. If is_limited is 1 the count must be
> 0. Else if is_auto_generated is 1 (unlimited generated codes) the count must be 0 or empty. Else
codes come from the imports and a count is required: 0 is how Splio marks auto-generated codes, so
a reward with a value and count 0 lacks is_auto_generated, and an item with count 0 has no stock.
This makes Example 1 come out as its external_ids say: only masterlight (limited, 100) imports.

Where the seed's prose and its examples disagree, the examples win:
- holding_days "Positive integer": Example 1 imports with 0, so 0 is accepted.
- monetary is a mandatory column, yet every Example 1 row leaves it empty: empty means 0.
- validity_interval_type lists plurals; Example 1 uses day/week/month: singulars are accepted.
- max_attribution_count "must be 0 or greater if is_limited is 1": master_bad_stock (limited, 0)
  must fail, so a limited reward needs a count > 0.
And where the prose leaves a migration without a "now":
- earn_date "If absent, the current datetime" contradicts "Mandatory: Yes": it is mandatory.
- earnreward burn_date "If absent, the current datetime": empty means not burned.
- burnreward burn_date "If absent, the current datetime": that would be after the cutover, so
  BURN_DATE_MISSING.

NULL and "". A masterreward external_id already in the catalog (earlier in the run or in
``existing``) is an update: the row is merged onto the stored record, then checked. A non-empty
value replaces; "" never erases (the stored value stays); NULL keeps the stored value unless
``erase_on_null`` is set, when it empties the field. With ``erase_on_null`` every optional column
that was NULL is listed in the ``erase`` column (the intent a writer renders as NULL).

Dates are GMT+1 text (kept as written in the Splio columns) and stored as ``<column>_utc`` (ISO
text) and ``<column>_ts`` (datetime64[us, UTC]).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo

import pandas as pd

from loyalty_toolkit.errors import InputError
from loyalty_toolkit.model import REJECT_COLUMNS
from loyalty_toolkit.sources.splio import (
    MANDATORY_COLUMNS,
    SCOPE_COLUMNS,
    SplioFile,
    export_columns,
    null_columns,
    read_scope_files,
)
from loyalty_toolkit.stages.rewards import rules as R
from loyalty_toolkit.stages.rewards.rules import SPLIO_TZ, STAGE, RuleFailure

MASTER = SCOPE_COLUMNS["masterreward"]
EARN = SCOPE_COLUMNS["earnreward"]
BURN = SCOPE_COLUMNS["burnreward"]
CATALOG_EXTRAS = ("is_auto", "stock_limit", "forced_validity_start_utc", "forced_validity_start_ts",
                  "forced_validity_end_utc", "forced_validity_end_ts", "action", "erase", "file", "line")
ATTRIBUTION_EXTRAS = ("reward_external_id", "member_id", "quantity_int", "earn_date_utc", "earn_date_ts",
                      "validity_start_date_utc", "validity_start_date_ts", "validity_end_date_utc",
                      "validity_end_date_ts", "burn_date_utc", "burn_date_ts", "burned", "erase", "file", "line")
BURN_EXTRAS = ("reward_external_id", "member_id", "burn_date_utc", "burn_date_ts", "erase", "file", "line")
STATES = ("active", "burned", "expired")


@dataclass
class CatalogResult:
    """``catalog``: one row per reward after the run (Splio columns + extras); ``accepted``: one row
    per accepted line (file, line, external_id, action); ``rejects``: REJECT_COLUMNS."""

    catalog: pd.DataFrame
    accepted: pd.DataFrame
    rejects: pd.DataFrame


@dataclass
class RewardsResult:
    """Everything stage 04 computes from a set of Splio files."""

    catalog: pd.DataFrame
    attributions: pd.DataFrame
    burns: pd.DataFrame
    rejects: pd.DataFrame
    attribution_state: pd.DataFrame
    per_reward: pd.DataFrame
    counts: pd.DataFrame  # file, scope, rows, accepted, rejected


def validate_catalog(files: Iterable[SplioFile], *, existing: pd.DataFrame | Iterable[str] = (),
                     erase_on_null: bool = False, tz: tzinfo = SPLIO_TZ) -> CatalogResult:
    """Check masterreward files in Splio order and build the catalog.

    ``existing`` is the target's catalog: a frame with Splio columns (its rows are carried into
    the result with action ``unchanged`` unless updated) or just external_ids (then an update
    cannot be merged onto stored values and is checked as written).
    """
    files = sorted(files, key=lambda f: f.name.sort_key)
    for f in files:
        if f.scope != "masterreward":
            raise InputError(f"a {f.scope} file given as master rewards", stage=STAGE, file=f.name.filename)
    state: dict[str, dict[str, object]] = {}
    present: set[str] = set()
    if isinstance(existing, pd.DataFrame):
        present |= set(existing.columns) & set(MASTER)
        for rec in existing.to_dict("records"):
            text = {c: R.value(rec, c) for c in MASTER}
            state[text["external_id"]] = {**text, **_lenient_master(text, tz), "action": "unchanged", "erase": "",
                                          "file": "", "line": 0}
        known = set(state)
    else:
        known = set(existing)
    accepted: list[dict[str, object]] = []
    rejects: list[dict[str, object]] = []
    optional = _optional("masterreward")
    for f in files:
        present |= set(f.header)
        recs = _records(f.rows)
        for rec in recs:
            ext = R.value(rec, "external_id")
            prior = state.get(ext)
            merged, erase = _merge(rec, f.header, prior, optional, erase_on_null)
            try:
                typed = R.check_master(merged, tz=tz)
            except RuleFailure as fail:
                rejects.append(_reject(rec, ext, fail))
                continue
            line_action = "update" if ext in known or prior is not None else "create"
            # a reward created earlier in this run is still new to the target
            action = "create" if prior is not None and prior["action"] == "create" else line_action
            state[ext] = {**merged, **typed, "action": action, "erase": ",".join(erase),
                          "file": rec["_file"], "line": rec["_line"]}
            accepted.append({"file": rec["_file"], "line": rec["_line"], "external_id": ext, "action": line_action})
        _conserve(recs, accepted, rejects)
    cols = export_columns("masterreward", present)
    catalog = _frame(list(state.values()), cols, CATALOG_EXTRAS,
                     ("forced_validity_start", "forced_validity_end"))
    catalog["stock_limit"] = catalog["stock_limit"].astype("Int64")
    catalog["is_auto"] = catalog["is_auto"].astype(bool)
    acc = pd.DataFrame(accepted, columns=["file", "line", "external_id", "action"]).astype({"line": "int64"})
    return CatalogResult(catalog=catalog, accepted=acc, rejects=_rejects_frame(rejects))


def validate_earned(frame: pd.DataFrame | SplioFile, catalog: pd.DataFrame, card_to_member: Mapping[str, str], *,
                    cutover: datetime, reward_ids: Mapping[str, str] | None = None,
                    previous: pd.DataFrame | None = None, erase_on_null: bool = False,
                    tz: tzinfo = SPLIO_TZ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check earnreward rows (one file's or several concatenated in order) -> (attributions, rejects).

    ``reward_ids`` maps legacy internal reward ids to catalog external_ids (ids not in it are
    looked up as external_ids). ``previous`` holds attributions accepted from earlier files.
    """
    recs = _records(frame)
    cut = _utc(cutover)
    rewards = {R.value(r, "external_id"): r for r in catalog.to_dict("records")}
    seen: set[str] = set()
    used: Counter[str] = Counter()
    if previous is not None and len(previous):
        seen |= {a for a in previous["attribution_id"] if isinstance(a, str) and a}
        used.update({k: int(v) for k, v in previous.groupby("reward_external_id")["quantity_int"].sum().items()})
    ctx = R.EarnContext(rewards=rewards, card_to_member=card_to_member, reward_ids=reward_ids or {},
                        cutover=cut, tz=tz, seen=seen, used=used)
    optional = _optional("earnreward")
    accepted: list[dict[str, object]] = []
    rejects: list[dict[str, object]] = []
    for rec in recs:
        try:
            ok = R.check_earned(rec, ctx)
        except RuleFailure as fail:
            rejects.append(_reject(rec, R.value(rec, "attribution_id") or R.value(rec, "card_code"), fail))
            continue
        accepted.append({**{c: R.value(rec, c) for c in EARN}, **ok, "quantity": str(ok["quantity_int"]),
                         "burned": ok["burn_date_at"] is not None, "erase": _erase(rec, optional, erase_on_null),
                         "file": rec["_file"], "line": rec["_line"]})
    _conserve(recs, accepted, rejects)
    out = _frame(accepted, EARN, ATTRIBUTION_EXTRAS, ("earn_date", "validity_start_date", "validity_end_date",
                                                      "burn_date"))
    out["quantity_int"] = out["quantity_int"].astype("int64")
    out["burned"] = out["burned"].astype(bool)
    return out, _rejects_frame(rejects)


def validate_burned(frame: pd.DataFrame | SplioFile, attributions: pd.DataFrame, *, cutover: datetime,
                    card_to_member: Mapping[str, str] | None = None, previous: pd.DataFrame | None = None,
                    erase_on_null: bool = False, tz: tzinfo = SPLIO_TZ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check burnreward rows against the accepted attributions -> (burns, rejects).

    A card is known when ``card_to_member`` has it or, without that mapping, when it holds an
    attribution. ``previous`` holds burns accepted from earlier burn files.
    """
    recs = _records(frame)
    cut = _utc(cutover)
    needed = ["attribution_id", "card_code", "earn_date_ts", "reward_external_id", "member_id", "burned",
              "burn_date", "file", "line"]
    by_id = {a["attribution_id"]: a for a in _dicts(attributions, needed) if a["attribution_id"]}
    cards = set(card_to_member) if card_to_member is not None else set(attributions["card_code"])
    burned: dict[str, str] = {a: f"burned on {r['burn_date']} (earnreward {r['file']} line {r['line']})"
                              for a, r in by_id.items() if r["burned"]}
    if previous is not None:
        for r in previous.to_dict("records"):
            burned[r["attribution_id"]] = f"burned on {r['burn_date']} ({r['file']} line {r['line']})"
    optional = _optional("burnreward")
    accepted: list[dict[str, object]] = []
    rejects: list[dict[str, object]] = []
    for rec in recs:
        try:
            burn, earned = R.check_burned(rec, cards=cards, attributions=by_id, burned=burned, cutover=cut, tz=tz)
        except RuleFailure as fail:
            rejects.append(_reject(rec, R.value(rec, "attribution_id") or R.value(rec, "card_code"), fail))
            continue
        burned[earned["attribution_id"]] = f"burned on {R.value(rec, 'burn_date')} ({rec['_file']} line {rec['_line']})"
        accepted.append({**{c: R.value(rec, c) for c in BURN}, "reward_external_id": earned["reward_external_id"],
                         "member_id": earned["member_id"], "burn_date_at": burn,
                         "erase": _erase(rec, optional, erase_on_null), "file": rec["_file"], "line": rec["_line"]})
    _conserve(recs, accepted, rejects)
    return _frame(accepted, BURN, BURN_EXTRAS, ("burn_date",)), _rejects_frame(rejects)


def reward_state(catalog: pd.DataFrame, attributions: pd.DataFrame, burns: pd.DataFrame, *,
                 cutover: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """State at the cutover -> (attribution_state, per_reward).

    An attribution is ``burned`` if a burn (in earnreward or burnreward) is at or before the
    cutover, else ``expired`` if its validity ended at or before the cutover, else ``active``.
    Per reward: attributions earned, burned, active, expired; stock used (sum of quantities)
    against max_attribution_count when the reward has a stock.
    """
    cut = pd.Timestamp(_utc(cutover))
    a = attributions
    done = burns[(burns["attribution_id"] != "") & (burns["burn_date_ts"] <= cut)]
    first_burn = done.groupby("attribution_id")["burn_date_ts"].min()
    # a burn_date in earnreward counts first; auto-generated codes (no id) cannot be burned by file
    at = a["burn_date_ts"].where(a["burn_date_ts"] <= cut)
    first = first_burn.to_dict()
    from_file = pd.Series([first.get(x) if x else None for x in a["attribution_id"]], index=a.index,
                          dtype="datetime64[us, UTC]")
    at = at.astype("datetime64[us, UTC]").fillna(from_file)
    expired = a["validity_end_date_ts"] <= cut
    state = pd.Series("active", index=a.index, dtype=str).mask(expired, "expired").mask(at.notna(), "burned")
    st = pd.DataFrame({"attribution_id": a["attribution_id"], "reward_external_id": a["reward_external_id"],
                       "card_code": a["card_code"], "member_id": a["member_id"], "quantity": a["quantity_int"],
                       "state": state, "burned_at": at,
                       "validity_end": a["validity_end_date_ts"], "file": a["file"], "line": a["line"]})
    by_state = pd.crosstab(st["reward_external_id"], st["state"]).reindex(columns=list(STATES), fill_value=0)
    per = pd.DataFrame({"external_id": catalog["external_id"], "name": catalog["name"]})
    ids = per["external_id"]
    per["earned"] = ids.map(st.groupby("reward_external_id").size()).fillna(0).astype("int64")
    for s_ in ("burned", "active", "expired"):
        per[s_] = ids.map(by_state[s_]).fillna(0).astype("int64")
    per["stock_used"] = ids.map(st.groupby("reward_external_id")["quantity"].sum()).fillna(0).astype("int64")
    per["max_attribution_count"] = catalog["stock_limit"].astype("Int64")
    per["stock_remaining"] = per["max_attribution_count"] - per["stock_used"]
    return st.reset_index(drop=True), per.reset_index(drop=True)


def validate_all(files: Iterable[SplioFile | str], card_to_member: Mapping[str, str], *, cutover: datetime,
                 reward_ids: Mapping[str, str] | None = None,
                 existing: pd.DataFrame | Iterable[str] = (), erase_on_null: bool = False,
                 tz: tzinfo = SPLIO_TZ) -> RewardsResult:
    """Run the three scopes in Splio's order over ``files`` (read files or paths) and the state."""
    files = list(files)
    paths = [f for f in files if not isinstance(f, SplioFile)]
    read = sorted([f for f in files if isinstance(f, SplioFile)] + read_scope_files(paths, stage=STAGE),
                  key=lambda f: f.name.sort_key)
    by_scope = {s: [f for f in read if f.scope == s] for s in ("masterreward", "earnreward", "burnreward")}
    cat = validate_catalog(by_scope["masterreward"], existing=existing, erase_on_null=erase_on_null, tz=tz)
    earn_rows = _concat([f.rows for f in by_scope["earnreward"]], EARN)
    attributions, earn_rej = validate_earned(earn_rows, cat.catalog, card_to_member, cutover=cutover,
                                             reward_ids=reward_ids,
                                             erase_on_null=erase_on_null, tz=tz)
    burn_rows = _concat([f.rows for f in by_scope["burnreward"]], BURN)
    burns, burn_rej = validate_burned(burn_rows, attributions, cutover=cutover, card_to_member=card_to_member,
                                      erase_on_null=erase_on_null, tz=tz)
    rejects = pd.concat([cat.rejects, earn_rej, burn_rej], ignore_index=True)
    st, per = reward_state(cat.catalog, attributions, burns, cutover=cutover)
    ok = Counter(list(cat.accepted["file"]) + list(attributions["file"]) + list(burns["file"]))
    bad = Counter(rejects["file"])
    counts = pd.DataFrame([{"file": f.name.filename, "scope": f.scope, "rows": len(f.rows),
                            "accepted": ok[f.name.filename], "rejected": bad[f.name.filename]} for f in read],
                          columns=["file", "scope", "rows", "accepted", "rejected"])
    return RewardsResult(catalog=cat.catalog, attributions=attributions, burns=burns, rejects=rejects,
                         attribution_state=st, per_reward=per, counts=counts)


# -- helpers ---------------------------------------------------------------------------------------

def _lenient_master(text: Mapping[str, str], tz: tzinfo) -> dict[str, object]:
    """Typed values of a stored reward; one our rules would refuse (or known by id only) is read as is."""
    try:
        return R.check_master(text, tz=tz)
    except RuleFailure:
        count = text.get("max_attribution_count", "")
        return {"is_auto": text.get("is_auto_generated") == "1",
                "stock_limit": int(count) if count.isdigit() and int(count) > 0 else None,
                "forced_validity_start_at": None, "forced_validity_end_at": None}


def _merge(rec: Mapping[str, object], header: Iterable[str], prior: Mapping[str, object] | None,
           optional: tuple[str, ...], erase_on_null: bool) -> tuple[dict[str, str], list[str]]:
    """The record after applying ``rec`` onto ``prior`` with Splio's NULL and "" semantics."""
    merged = {c: R.value(prior, c) if prior is not None else "" for c in MASTER}
    nulls = null_columns(R.value(rec, "_null_columns"))
    erase = []
    for c in header:
        v = R.value(rec, c)
        if c not in optional and c != "monetary":
            merged[c] = v  # a mandatory value is always written (an empty one is rejected)
        elif v:
            merged[c] = v
        elif c in nulls and erase_on_null:
            merged[c] = ""
            erase.append(c)
        # else: "" never erases and NULL keeps the stored value: the prior (or empty) value stays
    return merged, erase


def _optional(scope: str) -> tuple[str, ...]:
    return tuple(c for c in SCOPE_COLUMNS[scope] if c not in MANDATORY_COLUMNS[scope])


def _erase(rec: Mapping[str, object], optional: tuple[str, ...], erase_on_null: bool) -> str:
    if not erase_on_null:
        return ""
    nulls = null_columns(R.value(rec, "_null_columns"))
    return ",".join(c for c in optional if c in nulls)


def _records(frame: pd.DataFrame | SplioFile) -> list[dict[str, object]]:
    """Rows as dicts with ``_file``, ``_line`` and ``_null_columns`` (defaults for hand-made frames)."""
    if isinstance(frame, SplioFile):
        frame = frame.rows
    recs = _dicts(frame, list(frame.columns))
    for i, r in enumerate(recs):
        r["_file"] = r["_file"] if isinstance(r.get("_file"), str) else "<frame>"
        r["_line"] = int(r["_line"]) if "_line" in r and not pd.isna(r["_line"]) else i + 2
        r["_null_columns"] = r["_null_columns"] if isinstance(r.get("_null_columns"), str) else ""
    return recs


def _dicts(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, object]]:
    """Rows as dicts, column by column: far quicker than ``to_dict("records")`` on wide frames."""
    return [dict(zip(columns, vals)) for vals in zip(*(frame[c].tolist() for c in columns))]


def _concat(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame({c: pd.Series([], dtype=str) for c in (*columns, "_file", "_null_columns")}
                            | {"_line": pd.Series([], dtype="int64")})
    return pd.concat(frames, ignore_index=True)


def _conserve(recs: list[dict[str, object]], accepted: list[dict[str, object]],
              rejects: list[dict[str, object]]) -> None:
    """Every row read is accepted or rejected, exactly once, per file."""
    read = Counter((r["_file"], r["_line"]) for r in recs)
    ended = Counter((r["file"], r["line"]) for r in accepted + rejects if (r["file"], r["line"]) in read)
    if read != ended:
        raise AssertionError(f"row conservation broken: {sum(read.values())} read, {sum(ended.values())} accounted")


def _reject(rec: Mapping[str, object], key: str, fail: RuleFailure) -> dict[str, object]:
    return {"stage": STAGE, "file": rec["_file"], "line": rec["_line"], "record_key": key, "column": fail.column,
            "reason_code": fail.code, "message": fail.message, "value": fail.value}


def _rejects_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(REJECT_COLUMNS)).astype({"line": "int64"})


def _frame(rows: list[dict[str, object]], text: Iterable[str], extras: tuple[str, ...],
           dates: tuple[str, ...]) -> pd.DataFrame:
    """Rows -> frame: Splio text columns, then extras; each ``<d>_at`` becomes ``<d>_utc``/``<d>_ts``."""
    text = list(text)
    data: dict[str, object] = {c: pd.Series([R.value(r, c) for r in rows], dtype=str) for c in text}
    for c in extras:
        base = c.removesuffix("_utc").removesuffix("_ts")
        if base in dates:
            at = [r.get(f"{base}_at") for r in rows]
            if c.endswith("_utc"):
                data[c] = pd.Series([a.isoformat() if a is not None else "" for a in at], dtype=str)
            else:
                data[c] = pd.Series(pd.to_datetime(pd.Series(at, dtype=object), utc=True)).astype("datetime64[us, UTC]")
        else:
            data[c] = pd.Series([r.get(c) for r in rows], dtype=object)
    out = pd.DataFrame(data, columns=[*text, *extras])
    if "line" in out:
        out["line"] = out["line"].astype("int64")
    for c in ("file", "erase", "action", "reward_external_id", "member_id"):
        if c in out:
            out[c] = out[c].astype(str)
    return out


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("cutover needs a UTC offset")
    return moment.astimezone(timezone.utc)
