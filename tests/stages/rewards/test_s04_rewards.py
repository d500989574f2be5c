"""Stage 04 step module on a real run dir: the sample program through stages 00-02, then rewards.

The earlier stages run through their step modules (no papermill), as their notebooks would call them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from loyalty_toolkit.errors import GateFailed
from loyalty_toolkit.model import expectations_dir
from loyalty_toolkit.sample.defects import BURN_UNKNOWN_ATTRIBUTION
from loyalty_toolkit.sources.splio import SCOPES, read_scope_file
from loyalty_toolkit.stages.context import StageContext, open_stage
from loyalty_toolkit.stages.rewards import step as s04_rewards
from loyalty_toolkit.stages.rewards.rules import ATTRIBUTION_UNKNOWN, CARD_UNKNOWN, REASON_CODES
from loyalty_toolkit.store import StagingStore

RUN = "runs/t"


def rewards_ctx(root: Path, **kw) -> StageContext:
    return open_stage("rewards", str(root / "migration.yml"), str(root / RUN), **kw)


def run_stage(root: Path):
    ctx = rewards_ctx(root)
    outcome = s04_rewards.run(ctx)
    report = s04_rewards.gate(ctx, outcome)
    return ctx, outcome, report


def test_stage_04_passes_and_commits_on_the_sample_program(program):
    ctx, outcome, report = run_stage(program)
    assert report.passed, report.to_frame()
    s04_rewards.commit(ctx, outcome, report)

    run_dir = program / RUN
    frozen = ctx.frozen_inputs()
    cons = outcome.conservation.set_index("input")
    reward_inputs = sorted(n for n in frozen if n.startswith("rewards/"))
    assert sorted(cons.index) == reward_inputs and len(reward_inputs) == 3
    for name in reward_inputs:  # rows counted by stage 00 = accepted + rejected, per file
        row = cons.loc[name]
        assert row["rows_read"] == frozen[name]["rows_kept"] == row["rows_accepted"] + row["rows_rejected"]
    rejects = outcome.result.rejects
    assert (rejects.groupby("file").size().reindex(cons["file"], fill_value=0).to_numpy()
            == cons["rows_rejected"].to_numpy()).all()

    record = json.loads((run_dir / "stages" / "04_rewards.json").read_text(encoding="utf-8"))
    assert record["status"] == "passed"
    assert record["rows_in"] == int(cons["rows_read"].sum())
    assert record["rows_in"] == record["rows_out"] + record["rows_rejected"]
    totals = record["totals"]
    assert set(totals["scopes"]) == set(SCOPES)
    assert sum(totals["states"].values()) == totals["attributions"] == len(outcome.result.attributions)

    store = ctx.store
    assert "rewards" in store.completed_stages()
    for table in ("reward_catalog", "reward_attributions", "reward_burns", "reward_state", "reward_stock",
                  "reward_rejects", "reward_conservation", "reward_coupons"):
        assert store.has_table(table), table
    assert store.count("reward_attributions") == len(outcome.result.attributions)
    assert store.count("reward_rejects") == len(rejects)
    state = store.read_table("reward_state")
    assert set(state["state"]) <= {"active", "burned", "expired"}

    # every accepted attribution belongs to a member accepted in stage 01 and mapped in stage 02
    mapped = set(store.read_table("member_map")["legacy_id"])
    assert set(outcome.result.attributions["member_id"]) <= mapped

    # the validated data back in Splio's naming, format and order, recounted from the files
    splio = sorted((run_dir / "output" / "splio").iterdir())
    assert [p.name for p in splio] == ["demo_burnreward_main_20260703.csv", "demo_earnreward_main_20260702.csv",
                                       "demo_masterreward_main_20260701.csv"]
    back = {read_scope_file(p).scope: read_scope_file(p) for p in splio}
    assert len(back["masterreward"].rows) == len(outcome.result.catalog)
    assert len(back["earnreward"].rows) == len(outcome.result.attributions)
    assert len(back["burnreward"].rows) == len(outcome.result.burns)
    # dates go back as written (GMT+1 text); UTC is in the store next to them
    earned = back["earnreward"].rows.set_index("attribution_id")["earn_date"]
    stored = store.read_table("reward_attributions").set_index("attribution_id")
    assert (earned == stored.loc[earned.index, "earn_date"]).all()
    assert stored["earn_date_utc"].str.endswith("+00:00").all()
    assert (run_dir / "rejects" / "rewards.csv").is_file()
    assert not (run_dir / ".pending" / "rewards").exists()


def test_coupon_files_hold_the_active_unused_codes_one_file_per_reward(program):
    ctx, outcome, report = run_stage(program)
    s04_rewards.commit(ctx, outcome, report)
    st = ctx.store.read_table("reward_state")
    active = st[(st["state"] == "active") & (st["attribution_id"] != "")]
    assert len(active), "the sample has rewards still active at the cutover"
    expected = {f"coupons_{ext}.csv": sorted(part["attribution_id"])
                for ext, part in active.groupby("reward_external_id")}
    out = program / RUN / "output" / "openloyalty"
    files = sorted(p.name for p in out.glob("coupons_*.csv"))
    assert files == sorted(expected)
    for name, codes in expected.items():
        lines = (out / name).read_text(encoding="utf-8").splitlines()
        assert sorted(lines) == codes, name  # one code per line, no header
    not_active = set(st.loc[st["state"] != "active", "attribution_id"])
    written = {c for name in files for c in (out / name).read_text(encoding="utf-8").split()}
    assert not written & not_active
    coupons = ctx.store.read_table("reward_coupons")
    assert set(coupons["code"]) == written
    assert (coupons["target_id"] != "").all()  # each code's member is known in the target


def test_burns_of_unknown_attributions_are_exactly_the_planted_defects(program):
    _, outcome, _ = run_stage(program)
    defects = pd.read_csv(program / "legacy" / "defects.csv", dtype=str, keep_default_na=False)
    planted = defects[defects["defect"] == BURN_UNKNOWN_ATTRIBUTION]
    assert len(planted) >= 3
    want = {(Path(f).name, int(line), key)
            for f, line, key in planted[["file", "line", "record_key"]].itertuples(index=False)}
    r = outcome.result.rejects
    got = r[r["reason_code"] == ATTRIBUTION_UNKNOWN]
    assert {(f, int(line), v) for f, line, v in got[["file", "line", "value"]].itertuples(index=False)} == want


def test_cards_of_members_not_migrated_are_rejected_as_unknown(program):
    ctx, outcome, _ = run_stage(program)
    members = ctx.store.read_table("members")
    mapped = set(ctx.store.read_table("member_map")["legacy_id"])
    holders = members[members["card_number"] != ""]
    shared = set(holders.loc[holders["card_number"].duplicated(keep=False), "card_number"])
    usable = set(holders.loc[holders["legacy_id"].isin(mapped), "card_number"]) - shared
    r = outcome.result.rejects
    card_rejects = r[r["reason_code"] == CARD_UNKNOWN]
    assert len(card_rejects), "the sample has reward rows of members that are not migrated"
    assert not set(card_rejects["value"]) & usable
    assert set(outcome.result.attributions["card_code"]) <= usable
    assert outcome.figures().totals["cards_shared"] == len(shared)


def test_a_failing_gate_leaves_the_store_and_the_outputs_untouched(program):
    run_dir = program / RUN
    inputs = json.loads((run_dir / "inputs" / "inputs.json").read_text(encoding="utf-8"))
    earn = next(n for n in inputs if "earnreward" in n)
    inputs[earn]["rows_kept"] += 1  # stage 00 counted one row more than stage 04 accounts for
    (run_dir / "inputs" / "inputs.json").write_text(json.dumps(inputs), encoding="utf-8")
    with StagingStore.for_run(run_dir) as store:
        before = store.digests()
    outputs_before = sorted(p.relative_to(run_dir).as_posix() for p in (run_dir / "output").rglob("*"))

    ctx, outcome, report = run_stage(program)
    assert not report.passed
    failed = {(o.table, o.expectation) for o in report.critical_failures}
    assert failed == {("conservation", "expect_column_pair_values_to_be_equal")}
    with pytest.raises(GateFailed) as err:
        s04_rewards.commit(ctx, outcome, report)
    assert err.value.stage == "rewards"

    with StagingStore.for_run(run_dir) as store:
        assert store.digests() == before
        assert "rewards" not in store.completed_stages()
    assert sorted(p.relative_to(run_dir).as_posix() for p in (run_dir / "output").rglob("*")) == outputs_before
    assert not (run_dir / "output" / "splio").exists()
    record = json.loads((run_dir / "stages" / "04_rewards.json").read_text(encoding="utf-8"))
    assert record["status"] == "failed"


def test_a_rerun_writes_identical_files_and_removes_stale_ones(program):
    out = program / RUN / "output"
    ctx, outcome, report = run_stage(program)
    s04_rewards.commit(ctx, outcome, report)
    first = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.csv")}
    (out / "openloyalty" / "coupons_rw-retired.csv").write_text("old-code\n", encoding="utf-8")
    (out / "splio" / "demo_earnreward_main_20260801.csv").write_text("stale\n", encoding="utf-8")
    ctx, outcome, report = run_stage(program)
    s04_rewards.commit(ctx, outcome, report)
    second = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.csv")}
    assert second == first
    assert (out / "openloyalty" / "members_0001.xml").is_file()  # stage 01's file is not touched


def test_notebook_tables_mask_card_codes(program):
    ctx, outcome, _ = run_stage(program)
    cards = set(ctx.store.read_table("members")["card_number"]) - {""}
    examples = outcome.reject_examples()
    assert len(examples)
    shown = set(examples["value"]) | set(examples["record_key"]) | set(outcome.active_sample()["card_code"])
    assert not shown & (cards | set(outcome.card_codes))
    assert any(v.startswith("***") for v in examples["value"])
    raw = s04_rewards.run(rewards_ctx(program, show_pii=True)).reject_examples()
    assert set(raw["value"]) & set(outcome.card_codes)

    funnel = outcome.funnel().set_index("step")["attributions"]
    assert funnel["earnreward rows read"] == funnel["earned: rejected"] + funnel["earned: accepted"]
    assert funnel["earned: accepted"] == (funnel["burned by the cutover"] + funnel["active at the cutover"]
                                          + funnel["expired by the cutover"])
    by_reason = outcome.rejects_by_reason()
    assert by_reason["rows"].sum() == len(outcome.result.rejects)
    assert list(outcome.stock()["external_id"]) == list(outcome.catalog()["external_id"])
    counts = outcome.counts().set_index("figure")["value"]
    assert counts["rows read (3 scopes)"] == counts["rows accepted"] + counts["rows rejected"]


def test_the_rejects_suite_knows_every_reason_code():
    suite = json.loads((expectations_dir() / "rewards.rejects.json").read_text(encoding="utf-8"))
    sets = [e["kwargs"]["value_set"] for e in suite["expectations"] if e["kwargs"].get("column") == "reason_code"]
    assert sets and set(sets[0]) == set(REASON_CODES)


def test_every_reason_code_is_documented():
    text = (expectations_dir().parent / "docs" / "rewards.md").read_text(encoding="utf-8")
    missing = [code for code in REASON_CODES if f"`{code}`" not in text]
    assert not missing
