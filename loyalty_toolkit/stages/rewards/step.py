"""Stage 04, rewards: check the Splio reward files, take the rewards' state at the cutover, and
write the validated data back as Splio files plus the target's coupon files.

The rules live in the pure modules (``stages/rewards/validation.py``, ``stages/rewards/rules.py``; every
rule and reason code is in ``docs/rewards.md``). This step reads the **frozen** reward files,
builds the card -> member map from stage 02 (a card counts only when its member was accepted in
stage 01 **and** mapped to a target member in stage 02, and no other accepted member holds the
same card), and writes, pending the gate:

- ``output/splio/``: step one, the accepted catalog (masterreward); step two, once Splio's master
  reward export (or the local rehearsal's) gives the internal ids, the earnreward rows of the
  rewards still usable at the cutover, earned on the import day, and their burnreward rows, in
  Splio's own format and naming (``universe_scope_subsection_YYYYMMDD.csv``, at most 200,000
  objects per file; ``stages/rewards/splio_import.py`` says what goes where). Without an export, the
  earn and burn rows are listed as waiting;
- ``output/splio_history/`` (``rewards.historical`` only): burned and expired rewards with their
  legacy dates, a history export outside Splio's rules;
- ``output/openloyalty/coupons_<reward external_id>.csv``: the codes (Splio attribution ids) of
  the rewards still active and unused at the cutover, one file per reward. Open Loyalty documents
  its coupon import as a "CSV of codes"; the file holds one code per line, no header (profile
  ``hosted``), or the codes separated by ``;`` (profile ``oss-3``), split below the profile's upload limit.

Row conservation is a critical gate computed independently: the rows stage 00 counted in each
frozen file equal that file's accepted + rejected rows. The rows written to the output files are
recounted by reading the files back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from loyalty_toolkit.errors import ConfigError
from loyalty_toolkit.mask import mask_phone
from loyalty_toolkit.sources.splio import SCOPES, SplioFile, export_columns, read_scope_file, read_scope_files
from loyalty_toolkit.stages.context import StageContext, StageFigures
from loyalty_toolkit.stages.rewards.import_steps import master_ids, require_import_day, step_two_checks
from loyalty_toolkit.stages.rewards.splio_import import RewardImport, plan_import
from loyalty_toolkit.stages.rewards.validation import STATES, RewardsResult, validate_all
from loyalty_toolkit.targets.ol_coupons import COUPON_PREFIX, coupon_file_name, read_coupon_file, write_coupon_files
from loyalty_toolkit.targets.ol_profiles import profile_of
from loyalty_toolkit.targets.splio import MAX_OBJECTS, write_rewards

CONSERVATION_COLUMNS = ("input", "file", "scope", "rows_read", "rows_parsed", "rows_accepted", "rows_rejected",
                        "rows_accounted")
OUTPUT_COLUMNS = ("output", "files", "rows_expected", "rows_written")
COUPON_COLUMNS = ("reward_external_id", "code", "quantity", "legacy_id", "target_id", "card_code",
                  "validity_end_utc", "coupon_file", "source_file", "source_line")


@dataclass
class CardMap:
    """Card code -> legacy member id, for the members that count as migrated."""

    card_to_member: dict[str, str]
    shared_cards: int  # cards held by several accepted members: never used (as in stage 02)
    unmapped_cards: int  # cards of accepted members that stage 02 did not map

    @classmethod
    def build(cls, members: pd.DataFrame, member_map: pd.DataFrame) -> CardMap:
        cards = pd.DataFrame({"legacy_id": members["legacy_id"].astype(str).str.strip(),
                              "card": members["card_number"].fillna("").astype(str).str.strip()})
        cards = cards[cards["card"] != ""]
        shared = cards["card"].duplicated(keep=False)
        mapped = cards["legacy_id"].isin(set(member_map["legacy_id"].astype(str).str.strip()))
        usable = cards[~shared & mapped]
        return cls(card_to_member=dict(zip(usable["card"], usable["legacy_id"])),
                   shared_cards=int(cards.loc[shared, "card"].nunique()),
                   unmapped_cards=int((~shared & ~mapped).sum()))


@dataclass
class RewardsOutcome:
    result: RewardsResult
    reward_import: RewardImport  # what goes to Splio in step two, and every row's fate
    checks: pd.DataFrame  # the step-two rules, recounted from the files written (splio_import.IMPORT_CHECKS)
    conservation: pd.DataFrame  # one row per frozen reward file
    outputs: pd.DataFrame  # one row per output kind: rows expected vs rows read back from the files
    coupons: pd.DataFrame  # the codes written, with their member (COUPON_COLUMNS)
    splio_files: list[Path]
    coupon_files: list[Path]
    history_files: list[Path]
    cards: CardMap
    cutover: datetime
    historical: bool
    erase_on_null: bool
    card_codes: frozenset[str] = field(default_factory=frozenset)  # every card code read (for masking)
    show_pii: bool = False

    # -- figures -------------------------------------------------------------------------------

    def _scope_counts(self) -> dict[str, dict[str, int]]:
        c = self.conservation
        out = {}
        for scope in SCOPES:
            part = c[c["scope"] == scope]
            out[scope] = {"files": len(part), "rows": int(part["rows_parsed"].sum()),
                          "accepted": int(part["rows_accepted"].sum()), "rejected": int(part["rows_rejected"].sum())}
        return out

    def _states(self) -> dict[str, int]:
        s = self.result.attribution_state["state"].value_counts()
        return {state: int(s.get(state, 0)) for state in STATES}

    def figures(self) -> StageFigures:
        scopes = self._scope_counts()
        active = self.result.attribution_state["state"] == "active"
        no_code = active & (self.result.attribution_state["attribution_id"] == "")
        rejects = self.result.rejects
        return StageFigures(
            rows_in=sum(s["rows"] for s in scopes.values()),
            rows_out=sum(s["accepted"] for s in scopes.values()),
            rows_rejected=sum(s["rejected"] for s in scopes.values()),
            totals={
                "scopes": scopes,
                "states": self._states(),
                "rewards_in_catalog": len(self.result.catalog),
                "attributions": len(self.result.attributions),
                "burns": len(self.result.burns),
                "rejects_by_reason": {str(k): int(v)
                                      for k, v in rejects["reason_code"].value_counts().sort_index().items()},
                "splio_files": len(self.splio_files),
                "coupon_files": len(self.coupon_files),
                "coupon_codes": len(self.coupons),
                "active_without_code": int(no_code.sum()),
                "active_quantity_over_1": int((active & (self.result.attribution_state["quantity"] > 1)).sum()),
                "cards_shared": self.cards.shared_cards,
                "cards_unmapped": self.cards.unmapped_cards,
                "historical": self.historical,
                "history_files": len(self.history_files),
                "erase_on_null": self.erase_on_null,
                "import": self.reward_import.counts(),
            })

    # -- notebook tables -----------------------------------------------------------------------

    def counts(self) -> pd.DataFrame:
        """The headline counts as a two-column table."""
        f = self.figures()
        rows = [("rows read (3 scopes)", f.rows_in), ("rows accepted", f.rows_out), ("rows rejected", f.rows_rejected)]
        for scope, c in f.totals["scopes"].items():
            rows += [(f"{scope}: rows", c["rows"]), (f"{scope}: accepted", c["accepted"]),
                     (f"{scope}: rejected", c["rejected"])]
        rows += [(f"attributions {s} at the cutover", n) for s, n in f.totals["states"].items()]
        imp = f.totals["import"]
        rows += [("import day (earn_date of migrated rewards)", imp["import_date"] or "(not set)"),
                 ("master reward export read (step two)", "yes" if imp["export"] else "no: step one only"),
                 ("earnreward rows written (active at the cutover)", imp["earn_rows_written"]),
                 ("earn rows waiting for the master reward export", imp["earn_waiting"]),
                 ("earn rows whose master reward is not in the export", imp["earn_unresolved"]),
                 ("burnreward rows written", imp["burn_rows_written"]),
                 ("burn rows waiting for the master reward export", imp["burn_waiting"]),
                 ("history: burned or expired, not migrated as earned", imp["earn_history"]),
                 ("history files written (rewards.historical)", f.totals["history_files"])]
        rows += [("coupon files (Open Loyalty)", f.totals["coupon_files"]), ("coupon codes", f.totals["coupon_codes"]),
                 ("active rewards without a code", f.totals["active_without_code"]),
                 ("Splio files written", f.totals["splio_files"]),
                 ("cards shared by several members (not used)", f.totals["cards_shared"])]
        return pd.DataFrame(rows, columns=["figure", "value"])

    def conservation_table(self) -> pd.DataFrame:
        return self.conservation

    def catalog(self) -> pd.DataFrame:
        """The reward catalog after the run: one row per reward."""
        c = self.result.catalog
        return pd.DataFrame({
            "external_id": c["external_id"], "name": c["name"], "monetary_type": c["monetary_type"],
            "monetary_value": c["monetary_value"], "nqp_value": c["nqp_value"],
            "validity": c["validity_interval_count"] + " " + c["validity_interval_type"],
            "forced_validity": c["forced_validity"], "forced_validity_end_utc": c["forced_validity_end_utc"],
            "is_limited": c["is_limited"], "stock_limit": c["stock_limit"], "auto_generated_codes": c["is_auto"],
            "action": c["action"]})

    def funnel(self) -> pd.DataFrame:
        """Earned rows read -> rejected / accepted -> burned, active, expired (for ``charts.bar``)."""
        scopes = self._scope_counts()["earnreward"]
        states = self._states()
        steps = [("earnreward rows read", scopes["rows"]), ("earned: rejected", scopes["rejected"]),
                 ("earned: accepted", scopes["accepted"]), ("burned by the cutover", states["burned"]),
                 ("active at the cutover", states["active"]), ("expired by the cutover", states["expired"])]
        return pd.DataFrame(steps, columns=["step", "attributions"])

    def rejects_by_reason(self) -> pd.DataFrame:
        """Rejected rows per scope and reason code; ``reason`` (scope: code) labels the chart."""
        r = self.result.rejects
        if r.empty:
            return pd.DataFrame({"reason": [], "scope": [], "reason_code": [], "rows": []})
        scope = r["file"].map(self._scope_of)
        out = (r.assign(scope=scope).groupby(["scope", "reason_code"]).size().rename("rows").reset_index()
               .sort_values(["scope", "rows"], ascending=[True, False], kind="stable").reset_index(drop=True))
        out.insert(0, "reason", out["scope"] + ": " + out["reason_code"])
        return out

    def reject_examples(self, n: int = 3) -> pd.DataFrame:
        """A few rejects per reason; card codes masked like phones unless ``show_pii``."""
        r = self.result.rejects.sort_values(["reason_code", "file", "line"], kind="stable")
        r = r.groupby("reason_code").head(n).reset_index(drop=True)
        return self._mask_cards(r, ("record_key", "value"))

    def stock(self) -> pd.DataFrame:
        """Per reward: earned, burned, active, expired; stock used against max_attribution_count."""
        return self.result.per_reward

    def coupon_summary(self) -> pd.DataFrame:
        """The coupon files written: one per reward with active, unused codes."""
        if self.coupons.empty:
            return pd.DataFrame({"reward_external_id": [], "coupon_file": [], "codes": []})
        return self.coupons.groupby(["reward_external_id", "coupon_file"]).size().rename("codes").reset_index()

    def output_table(self) -> pd.DataFrame:
        return self.outputs

    def resolution(self) -> pd.DataFrame:
        """Per master reward: its internal id from the export, attributions to migrate and in history,
        and whether it is resolved, not in the export, or waiting for the export."""
        return self.reward_import.resolution

    def fates(self) -> pd.DataFrame:
        """Accepted earn and burn rows per fate: earned (step-two files), waiting, unresolved, history."""
        p = self.reward_import.plan
        return p.groupby(["kind", "fate", "written"]).size().rename("rows").reset_index()

    def waiting(self, n: int = 10) -> pd.DataFrame:
        """Some rows not written yet (no export, or a master reward missing from it); cards masked."""
        p = self.reward_import.plan
        w = p[p["fate"].isin(["waiting", "unresolved"])].head(n).reset_index(drop=True)
        return self._mask_cards(w, ("card_code",))

    def history(self, n: int = 10) -> pd.DataFrame:
        """Some burned and expired attributions: history, not migrated as earned; cards masked."""
        p = self.reward_import.plan
        h = p[(p["kind"] == "earn") & (p["fate"] == "history")].head(n).reset_index(drop=True)
        return self._mask_cards(h, ("card_code",))

    def import_checks(self) -> pd.DataFrame:
        return self.checks

    def active_sample(self, n: int = 10) -> pd.DataFrame:
        """Some active attributions with their member (card codes masked)."""
        st = self.result.attribution_state
        a = st[st["state"] == "active"].head(n)[["attribution_id", "reward_external_id", "card_code", "member_id",
                                                   "quantity", "validity_end"]].reset_index(drop=True)
        return self._mask_cards(a, ("card_code",))

    # -- helpers -------------------------------------------------------------------------------

    def _scope_of(self, filename: str) -> str:
        hit = self.conservation.loc[self.conservation["file"] == filename, "scope"]
        return str(hit.iloc[0]) if len(hit) else ""

    def _mask_cards(self, frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
        if self.show_pii or frame.empty:
            return frame
        out = frame.copy()
        for col in columns:
            if col == "card_code":
                out[col] = out[col].map(mask_phone)
            else:  # a reject's key or value is a card code when the row named no attribution
                out[col] = out[col].map(lambda v: mask_phone(v) if v in self.card_codes else v)
        return out


# -- run ---------------------------------------------------------------------------------------

def run(ctx: StageContext) -> RewardsOutcome:
    """Read the frozen Splio files, validate them against stage 02's members, write the outputs
    (pending the gate) and the rejects."""
    cfg = ctx.config
    src = cfg.sources.rewards
    if src is None or not src.files:
        raise ConfigError("stage 04 needs sources.rewards.files (the Splio reward files)", stage=ctx.stage,
                          file=cfg.path.name, field="sources.rewards")
    tz = ZoneInfo(src.timezone)
    frozen = ctx.frozen_inputs()
    names = sorted(n for n in frozen if n.startswith("rewards/"))
    files = read_scope_files([ctx.input_path(n) for n in names], stage=ctx.stage)
    member_map = ctx.store.read_table("member_map", columns=["legacy_id", "target_id"])
    cards = CardMap.build(ctx.store.read_table("members", columns=["legacy_id", "card_number"]), member_map)
    rules = cfg.rewards
    cutover = cfg.migration.cutover
    result = validate_all(files, cards.card_to_member, cutover=cutover, reward_ids=rules.reward_id_map,
                          erase_on_null=rules.erase_on_null, tz=tz)
    ctx.write_rejects(result.rejects)
    require_import_day(cfg, result, ctx.stage)

    # Step one: the catalog. Step two needs Splio's internal ids, from its master reward export.
    splio_dir = ctx.output_dir("splio")
    day = rules.import_date or cutover.astimezone(tz).date()
    headers = {s: set().union(*([set(f.header) for f in files if f.scope == s] or [set()])) for s in SCOPES}
    master_files = _write_splio({"masterreward": (result.catalog, export_columns("masterreward",
                                                                                 headers["masterreward"]))},
                                files, splio_dir, day)
    ids = master_ids(ctx, master_files, result.catalog)
    imp = plan_import(result, ids=ids, import_day=rules.import_date, cutover=cutover, tz=tz,
                      historical=rules.historical, earn_header=headers["earnreward"],
                      burn_header=headers["burnreward"])
    step_two = {"earnreward": (imp.earn_upload, imp.earn_columns),
                "burnreward": (imp.burn_upload, export_columns("burnreward", headers["burnreward"]))}
    splio_files = master_files + _write_splio(step_two, files, splio_dir, day)
    history_files: list[Path] = []
    if rules.historical and ids is not None:
        history = {"earnreward": (imp.history_earn, export_columns("earnreward", headers["earnreward"] - {"burn_date"})),
                   "burnreward": (imp.history_burn, imp.burn_columns)}
        history_files = _write_splio(history, files, ctx.output_dir("splio_history"), day)
    coupons = _coupons(result, member_map)
    target = profile_of(ctx.config)  # the coupon file's format and upload limit are the profile's
    coupon_files = write_coupon_files(coupons, ctx.output_dir("openloyalty"), separator=target.coupon_separator(),
                                      max_file_bytes=target.upload_limit_bytes())

    by_name = {f"rewards/{f.name.filename}": f for f in files}
    conservation = _conservation(names, frozen, by_name, result)
    outputs = _outputs(result, imp, splio_files, history_files, coupons, coupon_files)
    card_codes = frozenset(c for f in files if "card_code" in f.rows.columns for c in f.rows["card_code"] if c)
    return RewardsOutcome(result=result, reward_import=imp, checks=step_two_checks(imp, result, splio_files, history_files),
                          conservation=conservation, outputs=outputs, coupons=coupons,
                          splio_files=splio_files, coupon_files=coupon_files, history_files=history_files,
                          cards=cards, cutover=cutover, historical=rules.historical,
                          erase_on_null=rules.erase_on_null, card_codes=card_codes, show_pii=ctx.show_pii)


def _write_splio(scopes: dict[str, tuple[pd.DataFrame, list[str]]], files: list[SplioFile], directory: Path,
                 day) -> list[Path]:
    """Rows in Splio's format, named after the first input file's universe and subsection, the
    first file dated ``day`` (the import day), each next one the following day."""
    if not files:
        return []
    first = files[0].name
    return write_rewards(scopes, directory=directory, universe=first.universe, subsection=first.subsection, day=day,
                         max_objects=MAX_OBJECTS)


def _coupons(result: RewardsResult, member_map: pd.DataFrame) -> pd.DataFrame:
    """The active, unused attributions that carry a code (auto-generated ones have none)."""
    st = result.attribution_state
    active = st[(st["state"] == "active") & (st["attribution_id"] != "")]
    target = dict(zip(member_map["legacy_id"].astype(str), member_map["target_id"].astype(str)))
    out = pd.DataFrame({
        "reward_external_id": active["reward_external_id"].astype(str),
        "code": active["attribution_id"].astype(str),
        "quantity": active["quantity"].astype("int64"),
        "legacy_id": active["member_id"].astype(str),
        "target_id": active["member_id"].map(target).fillna("").astype(str),
        "card_code": active["card_code"].astype(str),
        "validity_end_utc": active["validity_end"].map(_iso).astype(str),
        "coupon_file": active["reward_external_id"].map(coupon_file_name).astype(str),
        "source_file": active["file"].astype(str),
        "source_line": active["line"].astype("int64"),
    }, columns=list(COUPON_COLUMNS))
    return out.sort_values(["coupon_file", "source_file", "source_line"], kind="stable").reset_index(drop=True)


def _iso(moment) -> str:
    return "" if moment is None or pd.isna(moment) else moment.isoformat()


def _conservation(names: list[str], frozen: dict, files: dict[str, SplioFile], result: RewardsResult) -> pd.DataFrame:
    """Per frozen file: rows stage 00 counted vs rows accepted + rejected here."""
    counts = result.counts.set_index("file")
    rejected = result.rejects["file"].value_counts()
    rows = []
    for name in names:
        f = files.get(name)
        filename = name.removeprefix("rewards/")
        accepted = int(counts["accepted"].get(filename, 0))
        bad = int(rejected.get(filename, 0))
        rows.append({"input": name, "file": filename, "scope": f.scope if f is not None else "",
                     # counted by stage 00 on the frozen file, independently of the Splio reader
                     "rows_read": int(frozen[name]["rows_kept"]),
                     "rows_parsed": len(f.rows) if f is not None else 0,
                     "rows_accepted": accepted, "rows_rejected": bad, "rows_accounted": accepted + bad})
    return pd.DataFrame(rows, columns=list(CONSERVATION_COLUMNS))


def _outputs(result: RewardsResult, imp: RewardImport, splio_files: list[Path], history_files: list[Path],
             coupons: pd.DataFrame, coupon_files: list[Path]) -> pd.DataFrame:
    """Rows the outputs must hold vs rows read back from the files written."""
    back: dict[str, list[int]] = {f"{d}/{s}": [] for d in ("splio", "splio_history") for s in SCOPES}
    for p in splio_files + history_files:
        f = read_scope_file(p)
        back[f"{p.parent.name}/{f.scope}"].append(len(f.rows))
    expected = {"splio/masterreward": len(result.catalog), "splio/earnreward": len(imp.earn_upload),
                "splio/burnreward": len(imp.burn_upload)}
    if history_files:
        expected |= {"splio_history/earnreward": len(imp.history_earn),
                     "splio_history/burnreward": len(imp.history_burn)}
    rows = [{"output": k, "files": len(back[k]), "rows_expected": n, "rows_written": sum(back[k])}
            for k, n in expected.items()]
    rows.append({"output": "openloyalty/coupons", "files": len(coupon_files),
                 "rows_expected": int(coupons["code"].nunique()) if len(coupons) else 0,
                 "rows_written": sum(len(read_coupon_file(p)) for p in coupon_files)})
    return pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))


# -- gate and commit ---------------------------------------------------------------------------

def _gate_tables(outcome: RewardsOutcome) -> dict[str, pd.DataFrame]:
    r = outcome.result
    catalog = r.catalog[["external_id", "name", "validity_interval_type", "action"]].copy()
    catalog["stock_limit"] = r.catalog["stock_limit"].astype("float64")
    catalog["is_auto"] = r.catalog["is_auto"].astype(bool)
    st = r.attribution_state
    state = pd.DataFrame({"attribution_id": st["attribution_id"].where(st["attribution_id"] != "", None),
                          "reward_external_id": st["reward_external_id"], "state": st["state"],
                          "quantity": st["quantity"], "file": st["file"], "line": st["line"]})
    per = r.per_reward
    stock = pd.DataFrame({"external_id": per["external_id"], "earned": per["earned"],
                          "accounted": per["burned"] + per["active"] + per["expired"],
                          "stock_used": per["stock_used"],
                          "max_attribution_count": per["max_attribution_count"].astype("float64")})
    rejects = r.rejects.drop(columns=["record_key", "value"])  # may hold card codes: kept out of Data Docs
    return {"conservation": outcome.conservation, "catalog": catalog, "rejects": rejects, "state": state,
            "stock": stock, "outputs": outcome.outputs, "import": outcome.checks}


def gate(ctx: StageContext, outcome: RewardsOutcome):
    """Critical: row conservation per file, a unique and sane catalog, rejects with a known reason
    and a line, one state per attribution, stock never exceeded, outputs holding every row they
    should, and the step-two rules (internal ids, earn dates, no burn_date, coverage). Warning:
    rejected rows."""
    return ctx.gate(_gate_tables(outcome))


def _store_tables(outcome: RewardsOutcome) -> dict[str, pd.DataFrame]:
    r = outcome.result

    def no_ts(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=[c for c in frame.columns if c.endswith("_ts")])

    st = r.attribution_state.copy()
    for col in ("burned_at", "validity_end"):
        st[f"{col}_utc"] = st[col].map(_iso).astype(str)
    st = st.drop(columns=["burned_at", "validity_end"])
    return {"reward_catalog": no_ts(r.catalog), "reward_attributions": no_ts(r.attributions),
            "reward_burns": no_ts(r.burns), "reward_state": st, "reward_stock": r.per_reward,
            "reward_rejects": r.rejects, "reward_conservation": outcome.conservation,
            "reward_coupons": outcome.coupons, "reward_import": outcome.reward_import.plan,
            "reward_resolution": outcome.reward_import.resolution}


def commit(ctx: StageContext, outcome: RewardsOutcome, gate_report) -> None:
    """Record the figures and commit the tables; raises GateFailed on a critical failure.

    Once the new files are published, files an earlier run of this stage left in ``output/splio``
    or as ``output/openloyalty/coupons_*.csv`` that this run did not write are removed, so the
    output folder never offers a stale file for upload."""
    imp = outcome.reward_import
    params = {"historical": outcome.historical, "erase_on_null": outcome.erase_on_null,
              "import_date": imp.import_day.isoformat() if imp.import_day else None}
    ctx.finish(gate_report, outcome.figures(), _store_tables(outcome), parameters=params)
    out = ctx.run_dir / "output"
    keep = {out / p.parent.name / p.name for p in outcome.splio_files + outcome.coupon_files + outcome.history_files}
    stale = (list((out / "splio").glob("*.csv")) + list((out / "splio_history").glob("*.csv"))
             + list((out / "openloyalty").glob(f"{COUPON_PREFIX}*.csv")))
    for p in stale:
        if p not in keep:
            p.unlink()
