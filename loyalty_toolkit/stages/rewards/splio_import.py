"""Stage 04 (rewards), pure logic: what of the validated rewards goes to Splio, and how.

Rewards go to Splio in two steps, like members to the target (docs/rewards.md, "Two steps"):
step one is the masterreward file; step two, once Splio's master reward export gives each
reward's internal id, the earnreward and burnreward files naming rewards by that id.

Which attributions are migrated as earned, and what their rows say:

- only the attributions **active** at the cutover (not burned, not expired) are earned in Splio;
  their ``earn_date`` is the import day (Splio: "needs to be the import day or after"), written as
  the first second of the import day that is after the cutover; their validity dates are kept and
  the legacy earn date goes to ``context``;
- earnreward rows carry no ``burn_date`` column: Splio reads an absent burn_date as "the current
  datetime of the server", so a column left empty could burn a reward at import;
- burnreward rows go out only for attributions migrated as earned;
- burned and expired attributions are **history**: listed and counted, written only when
  ``rewards.historical`` asks for a history export (their legacy dates, outside Splio's rule).

Every accepted earn and burn row gets one ``fate``: ``earned`` (in the step-two files),
``waiting`` (no export yet), ``unresolved`` (its master reward is not in the export) or
``history``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

import numpy as np
import pandas as pd

from loyalty_toolkit.sources.splio import export_columns
from loyalty_toolkit.stages.rewards.validation import RewardsResult

FATES = ("earned", "waiting", "unresolved", "history")
PLAN_COLUMNS = ("kind", "attribution_id", "reward_external_id", "internal_id", "member_id", "card_code", "state", "fate",
                "written", "legacy_earn_date", "earn_date", "file", "line")
RESOLUTION_COLUMNS = ("external_id", "internal_id", "active", "history", "status")
SPLIO_FORMAT = "%Y-%m-%d %H:%M:%S"
IMPORT_CHECKS = ("earn_reward_id_is_internal", "earn_date_on_or_after_import_day", "earnreward_has_no_burn_date",
                 "active_earned_or_listed", "burn_only_for_earned", "history_not_earned")
CHECK_EXAMPLES = 5


def earn_instant(import_day: date, cutover: datetime, tz: tzinfo) -> datetime:
    """The earn instant written for migrated rewards (UTC): the first whole second on the import day
    (Splio's timezone) that is after the cutover."""
    start = datetime.combine(import_day, time(0), tzinfo=tz)
    after = cutover.astimezone(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
    return max(start, after).astimezone(timezone.utc)


@dataclass
class RewardImport:
    """The step-two rows and every accepted row's fate."""

    import_day: date | None
    earn_date: str  # the earn_date text written (Splio's timezone); "" without an import day
    exported: bool  # a master reward export was read
    ids: dict[str, str]  # external_id -> internal id (the export's)
    earn_upload: pd.DataFrame  # earnreward rows to import (Splio columns)
    burn_upload: pd.DataFrame  # burnreward rows to import
    history_earn: pd.DataFrame  # earnreward history rows (rewards.historical)
    history_burn: pd.DataFrame  # burnreward history rows (rewards.historical)
    plan: pd.DataFrame  # PLAN_COLUMNS: one row per accepted earn and burn row
    resolution: pd.DataFrame  # RESOLUTION_COLUMNS: one row per catalog reward
    earn_columns: list[str]
    burn_columns: list[str]
    history_unwritable: int  # burned by an earnreward burn_date but without a code: no burnreward row can burn it

    def counts(self) -> dict[str, object]:
        """Rows per kind and fate, and the figures the report reads."""
        p = self.plan
        out: dict[str, object] = {f"{kind}_{fate}": int(((p["kind"] == kind) & (p["fate"] == fate)).sum())
                                  for kind in ("earn", "burn") for fate in FATES}
        out.update({"import_date": self.import_day.isoformat() if self.import_day else "",
                    "earn_date": self.earn_date, "export": self.exported,
                    "step": "two" if self.exported else "one",
                    "earn_rows_written": len(self.earn_upload), "burn_rows_written": len(self.burn_upload),
                    "history_earn_rows_written": len(self.history_earn),
                    "history_burn_rows_written": len(self.history_burn),
                    "history_unwritable": self.history_unwritable,
                    "rewards_resolved": int((self.resolution["status"] == "resolved").sum()),
                    "rewards_unresolved": int((self.resolution["status"] == "not_in_export").sum())})
        return out


def plan_import(result: RewardsResult, *, ids: Mapping[str, str] | None, import_day: date | None,
                cutover: datetime, tz: tzinfo, historical: bool, earn_header: set[str],
                burn_header: set[str]) -> RewardImport:
    """Sort every accepted row into its fate and build the step-two (and history) rows.

    ``ids`` is the master reward export (None: not read yet). ``earn_header``/``burn_header`` are
    the columns the input files of each scope had (optional columns are written only if present).
    """
    a = result.attributions.reset_index(drop=True)
    state = result.attribution_state["state"].reset_index(drop=True).astype(str)
    ext = a["reward_external_id"].astype(str)
    known = dict(ids) if ids is not None else {}
    internal = ext.map(lambda e: known.get(e, "")).astype(str)
    active = (state == "active").to_numpy()
    resolved = (internal != "").to_numpy()
    fate = np.where(~active, "history", np.where(ids is None, "waiting", np.where(resolved, "earned", "unresolved")))
    earn_text = ""
    if import_day is not None:
        earn_text = earn_instant(import_day, cutover, tz).astimezone(tz).strftime(SPLIO_FORMAT)

    earn_cols = export_columns("earnreward", (earn_header - {"burn_date"}) | {"context"})
    burn_cols = export_columns("burnreward", burn_header)
    earned = a[fate == "earned"]
    earn_upload = earned.assign(reward_id=internal[fate == "earned"], earn_date=earn_text,
                                context=[_with_legacy(c, d) for c, d in zip(earned["context"], earned["earn_date"])])
    fate_of = dict(zip(a["attribution_id"], fate))
    b = result.burns.reset_index(drop=True)
    b_fate = np.array([fate_of.get(x, "history") for x in b["attribution_id"]], dtype=object)
    burn_upload = b[b_fate == "earned"]

    # History: burned and expired attributions with their legacy dates, when the config asks for it.
    hist = (fate == "history") & resolved & historical
    in_earn = a["burned"].to_numpy() & (a["burn_date"] != "").to_numpy()
    no_code = (a["attribution_id"] == "").to_numpy()
    unwritable = hist & in_earn & no_code  # a burn without a code cannot be written: keep it out entirely
    hist &= ~unwritable
    history_earn = a[hist].assign(reward_id=internal[hist])
    embedded = a[hist & in_earn]
    history_burn = pd.concat([
        pd.DataFrame({"card_code": embedded["card_code"], "attribution_id": embedded["attribution_id"],
                      "burn_date": embedded["burn_date"], "store_id": embedded.get("store_id", ""),
                      "context": [f"burn_date of earnreward {f} line {n}" for f, n in
                                  zip(embedded["file"], embedded["line"])],
                      "file": embedded["file"], "line": embedded["line"]}),
        b[(b_fate == "history") & np.isin(b["attribution_id"], history_earn["attribution_id"])],
    ], ignore_index=True)
    hist_burn_cols = export_columns("burnreward", burn_header | ({"burn_date", "context"} if len(embedded) else set()))

    written = np.where(fate == "earned", "earnreward", np.where(hist, "history", ""))
    plan_earn = pd.DataFrame({"kind": "earn", "attribution_id": a["attribution_id"], "reward_external_id": ext,
                              "internal_id": internal, "member_id": a["member_id"], "card_code": a["card_code"],
                              "state": state, "fate": fate,
                              "written": written, "legacy_earn_date": a["earn_date"],
                              "earn_date": np.where(fate == "earned", earn_text, a["earn_date"]),
                              "file": a["file"], "line": a["line"]})
    hist_ids = set(history_earn["attribution_id"])
    b_written = np.where(b_fate == "earned", "burnreward",
                         np.where(np.isin(b["attribution_id"], list(hist_ids)), "history", ""))
    plan_burn = pd.DataFrame({"kind": "burn", "attribution_id": b["attribution_id"],
                              "reward_external_id": b["reward_external_id"],
                              "internal_id": b["reward_external_id"].map(lambda e: known.get(e, "")).astype(str),
                              "member_id": b["member_id"], "card_code": b["card_code"], "state": "burned",
                              "fate": b_fate, "written": b_written,
                              "legacy_earn_date": "", "earn_date": "", "file": b["file"], "line": b["line"]})
    plan = pd.concat([plan_earn, plan_burn], ignore_index=True).reindex(columns=list(PLAN_COLUMNS))
    plan = plan.astype({c: str for c in PLAN_COLUMNS if c != "line"}).astype({"line": "int64"})
    return RewardImport(import_day=import_day, earn_date=earn_text, exported=ids is not None, ids=known,
                        earn_upload=earn_upload.reset_index(drop=True), burn_upload=burn_upload.reset_index(drop=True),
                        history_earn=history_earn.reset_index(drop=True),
                        history_burn=history_burn.reset_index(drop=True), plan=plan,
                        resolution=_resolution(result.catalog, plan_earn, known, ids is not None),
                        earn_columns=earn_cols, burn_columns=hist_burn_cols if len(embedded) else burn_cols,
                        history_unwritable=int(unwritable.sum()))


def _with_legacy(context: str, legacy_earn: str) -> str:
    """The context written: the legacy context, then the legacy earn date (GMT+1 text as written)."""
    note = f"legacy earn_date {legacy_earn}"
    return f"{context}; {note}" if context else note


def _resolution(catalog: pd.DataFrame, plan_earn: pd.DataFrame, ids: Mapping[str, str], exported: bool) -> pd.DataFrame:
    """Per catalog reward: its internal id, attributions to migrate and in history, and whether
    the master reward is resolved (``resolved``, ``not_in_export``, ``waiting``; ``nothing_to_migrate``
    when no attribution is active)."""
    ext = catalog["external_id"].astype(str)
    active = plan_earn[plan_earn["state"] == "active"].groupby("reward_external_id").size()
    history = plan_earn[plan_earn["state"] != "active"].groupby("reward_external_id").size()
    n_active = ext.map(active).fillna(0).astype("int64")
    internal = ext.map(lambda e: ids.get(e, "")).astype(str)
    status = np.where(n_active == 0, "nothing_to_migrate",
                      np.where(not exported, "waiting", np.where(internal != "", "resolved", "not_in_export")))
    return pd.DataFrame({"external_id": ext, "internal_id": internal, "active": n_active,
                         "history": ext.map(history).fillna(0).astype("int64"), "status": status},
                        columns=list(RESOLUTION_COLUMNS)).reset_index(drop=True)


def import_checks(imp: RewardImport, state: pd.DataFrame, earn_headers: Mapping[str, list[str]],
                  earn_read: pd.DataFrame, burn_read: pd.DataFrame) -> pd.DataFrame:
    """The step-two rules as a check table (one row per rule of IMPORT_CHECKS: rows looked at,
    rows breaking it, up to CHECK_EXAMPLES of their ids), recounted from the files read back.

    ``earn_headers``: every earnreward file written (upload and history) -> its header;
    ``earn_read``/``burn_read``: the rows of the upload earnreward and burnreward files.
    """
    internal_ids = set(imp.ids.values())
    rid = earn_read.get("reward_id", pd.Series([], dtype=str)).astype(str)
    att = earn_read.get("attribution_id", pd.Series([], dtype=str)).astype(str)
    earn_dates = earn_read.get("earn_date", pd.Series([], dtype=str)).astype(str)
    floor = imp.import_day.isoformat() if imp.import_day else "9999-12-31"
    active = state[state["state"].astype(str) == "active"]
    fates = imp.plan[imp.plan["kind"] == "earn"]
    listed = set(zip(fates["file"], fates["line"]))
    earned_ids = set(fates.loc[fates["fate"] == "earned", "attribution_id"]) - {""}
    history_ids = set(fates.loc[fates["fate"] == "history", "attribution_id"]) - {""}
    burn_att = burn_read.get("attribution_id", pd.Series([], dtype=str)).astype(str)
    files = pd.Series(list(earn_headers), dtype=str)
    rules = [
        ("earn_reward_id_is_internal", rid, ~rid.isin(internal_ids), rid),
        # "YYYY-MM-DD HH:MM:SS" text compares as dates do
        ("earn_date_on_or_after_import_day", earn_dates, earn_dates.str[:10] < floor, att),
        ("earnreward_has_no_burn_date", files, files.map(lambda f: "burn_date" in earn_headers[f]).astype(bool), files),
        ("active_earned_or_listed", active["file"],
         ~pd.Series([(f, n) in listed for f, n in zip(active["file"], active["line"])], index=active.index, dtype=bool),
         active["attribution_id"].astype(str)),
        ("burn_only_for_earned", burn_att, ~burn_att.isin(earned_ids), burn_att),
        ("history_not_earned", att, att.isin(history_ids), att),
    ]
    rows = []
    for name, looked, failing, key in rules:
        bad = key[failing.to_numpy()] if len(looked) else key[:0]
        rows.append({"check": name, "rows": len(looked), "failing": int(failing.sum()) if len(looked) else 0,
                     "examples": ", ".join(pd.unique(bad)[:CHECK_EXAMPLES])})
    return pd.DataFrame(rows, columns=["check", "rows", "failing", "examples"]).astype({"rows": "int64",
                                                                                           "failing": "int64"})

