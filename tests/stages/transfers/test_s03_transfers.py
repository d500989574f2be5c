"""Stage 03 step module on a real run dir: the sample program through stages 00-02, then transfers.

The earlier stages run through their step modules (no papermill), as their notebooks would call them.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from loyalty_toolkit.errors import GateFailed
from loyalty_toolkit.stages.context import StageContext, open_stage
from loyalty_toolkit.stages.transfers import opening as transfers_opening
from loyalty_toolkit.stages.transfers import outputs as transfers_outputs
from loyalty_toolkit.stages.transfers import step as s03_transfers
from loyalty_toolkit.stages.transfers.engine import TransferResult
from loyalty_toolkit.store import StagingStore

RUN = "runs/t"
OUTPUTS = ("openloyalty/unit_transfers.json", "openloyalty/unit_transfers.xml", "haravan/opening_balances.csv")


def transfers_ctx(root: Path, **kw) -> StageContext:
    return open_stage("transfers", str(root / "migration.yml"), str(root / RUN), **kw)


def run_stage(root: Path):
    ctx = transfers_ctx(root)
    outcome = s03_transfers.run(ctx)
    report = s03_transfers.gate(ctx, outcome)
    return ctx, outcome, report


def output_bytes(run_dir: Path) -> dict[str, bytes]:
    files = {rel: (run_dir / "output" / rel).read_bytes() for rel in OUTPUTS}
    files["rejects/transfers.csv"] = (run_dir / "rejects" / "transfers.csv").read_bytes()
    return files


def test_stage_03_passes_and_commits_on_the_sample_program(program):
    ctx, outcome, report = run_stage(program)
    assert report.passed, report.to_frame()
    s03_transfers.commit(ctx, outcome, report)
    run_dir = program / RUN

    # the JSON is a list of transfers with whole points; the XML is well-formed with whole points
    items = json.loads((run_dir / "output" / OUTPUTS[0]).read_text(encoding="utf-8"))
    assert isinstance(items, list) and len(items) == outcome.slices.transfers > 0
    assert all(type(it["units"]) is int and it["units"] > 0 for it in items)
    assert {it["type"] for it in items} <= {"adding", "spending"}
    root = ET.parse(run_dir / "output" / OUTPUTS[1]).getroot()
    assert root.tag == "pointsTransfers"
    points = [n.findtext("points") for n in root.findall("pointsTransfer")]
    assert len(points) == len(items) and all(p.isdigit() and int(p) > 0 for p in points)
    assert sum(it["units"] for it in items) == sum(int(p) for p in points)
    with open(run_dir / "output" / OUTPUTS[2], encoding="utf-8-sig", newline="") as fh:
        haravan = list(csv.reader(fh))
    assert haravan[0] == ["phone", "email", "DTDauKy", "DTTichLuy"]
    assert len(haravan) - 1 == len(outcome.opening.balances)
    assert not (run_dir / ".pending" / "transfers").exists()

    # reconciliation: exactly zero per member and in total, the three ways
    for frame in (outcome.by_member, outcome.total, outcome.by_center, outcome.by_program):
        assert (frame["difference"] == 0).all() and (frame["transfer_difference"] == 0).all()
        assert frame["ok"].all()
    assert outcome.total.iloc[0]["owed_ledger"] == outcome.total.iloc[0]["transfers"]
    assert (outcome.roll_forward["difference"] == 0).all()

    record = json.loads((run_dir / "stages" / "03_transfers.json").read_text(encoding="utf-8"))
    assert record["status"] == "passed"
    assert record["rows_in"] == record["rows_out"] + record["rows_rejected"]
    frozen = ctx.frozen_inputs()
    assert record["rows_in"] == frozen["ledger"]["rows_kept"] + frozen["opening_balances"]["rows_kept"]
    totals = record["totals"]
    assert totals["points_difference"] == "0"
    assert totals["points_owed_before"] == totals["points_owed_after"]
    assert Decimal(totals["points_owed_before"]) > 0
    assert totals["transfers"]["count"] == len(items)
    assert set(totals["fallbacks"]) == {"fallback_missing_link", "fallback_unknown_link", "fallback_overflow"}
    assert "Paris Opéra" in totals["liability_per_center"]

    # seed 004's worked examples, in the committed lots table
    store = ctx.store
    assert "transfers" in store.completed_stages()
    lots = store.read_table("lots")
    g1 = lots[lots["user_id"] == "G0000001"].sort_values("line")
    g1_ledger = g1[g1["lot_id"].str.startswith("gp-")]
    assert [Decimal(v) for v in g1_ledger["accrued"]] == [Decimal(10), Decimal(11)]
    assert [Decimal(v) for v in g1_ledger["remaining"]] == [Decimal(10), Decimal(11)]
    ab = lots[lots["lot_id"] == "ab3cde"].iloc[0]
    assert ab["user_id"] == "G0000002"
    assert (Decimal(ab["accrued"]), Decimal(ab["consumed"]), Decimal(ab["remaining"])) == (100, 75, 25)
    assert ab["status"] == "open"
    transfers = store.read_table("unit_transfers")
    assert transfers.loc[transfers["lot_ids"] == "ab3cde", "points"].tolist() == [25]
    for table in ("lot_allocations", "lot_balances", "transfer_rejects", "reconciliation_member",
                  "liability_roll_forward", "opening_balances"):
        assert store.has_table(table), table

    # every reject has a file, a line and a reason; unmapped members' lots are itemised
    rejects = pd.read_csv(run_dir / "rejects" / "transfers.csv", dtype=str, keep_default_na=False)
    assert (rejects["line"].astype(int) >= 2).all()
    unmapped = rejects[rejects["reason_code"] == "MEMBER_UNMAPPED"]
    assert len(unmapped) == len(outcome.result.rejects) > 0
    mapped = set(store.read_table("member_map")["legacy_id"])
    assert not set(unmapped["value"]) & mapped


def test_a_rerun_writes_byte_identical_files(program):
    ctx, outcome, report = run_stage(program)
    s03_transfers.commit(ctx, outcome, report)
    first = output_bytes(program / RUN)
    ctx, outcome, report = run_stage(program)
    s03_transfers.commit(ctx, outcome, report)
    assert output_bytes(program / RUN) == first


def test_a_transfer_lost_fails_the_critical_gate_and_leaves_the_store_untouched(program, monkeypatch):
    real = s03_transfers.build_transfers

    def drop_one(*args, **kwargs) -> TransferResult:
        r = real(*args, **kwargs)
        # per_member (the engine's own bookkeeping) is left intact: the gate must not rely on it
        return TransferResult(transfers=r.transfers.iloc[1:].reset_index(drop=True), zero=r.zero, rejects=r.rejects,
                              review=r.review, per_member=r.per_member, residue_total=r.residue_total)

    monkeypatch.setattr(s03_transfers, "build_transfers", drop_one)
    store = StagingStore.for_run(program / RUN)
    before = store.digests()
    ctx, outcome, report = run_stage(program)
    assert not report.passed
    failed = {(o.table, o.expectation) for o in report.critical_failures}
    assert ("members", "expect_column_pair_values_to_be_equal") in failed
    assert ("totals", "expect_column_pair_values_to_be_equal") in failed
    assert ("centers", "expect_column_pair_values_to_be_equal") in failed
    with pytest.raises(GateFailed):
        s03_transfers.commit(ctx, outcome, report)
    assert ctx.store.digests() == before
    assert "transfers" not in ctx.store.completed_stages()
    assert not (program / RUN / "output" / "openloyalty" / "unit_transfers.json").exists()
    record = json.loads((program / RUN / "stages" / "03_transfers.json").read_text(encoding="utf-8"))
    assert record["status"] == "failed"


def test_a_mis_sized_lot_fails_per_center_too(program, monkeypatch):
    real = s03_transfers.build_transfers

    def inflate(*args, **kwargs) -> TransferResult:
        r = real(*args, **kwargs)
        t = r.transfers.copy()
        t.loc[0, "points"] += 1
        return TransferResult(transfers=t, zero=r.zero, rejects=r.rejects, review=r.review,
                              per_member=r.per_member, residue_total=r.residue_total)

    monkeypatch.setattr(s03_transfers, "build_transfers", inflate)
    ctx, outcome, report = run_stage(program)
    failed = {o.table for o in report.critical_failures}
    assert {"members", "totals", "centers", "programs"} <= failed


def test_other_settings_member_expiry_carry_money_json_only(program):
    ctx, outcome, report = run_stage(program)
    s03_transfers.commit(ctx, outcome, report)  # writes JSON and XML
    config = program / "migration.yml"
    config.write_text(config.read_text(encoding="utf-8") + """
transfers:
  granularity: member_expiry
  negative_balance: carry
  rounding: ROUND_DOWN
  point_value: "0.0125"
  formats: [json]
""", encoding="utf-8")
    ctx, outcome, report = run_stage(program)
    assert report.passed, report.to_frame()
    assert outcome.slices.spending == int((outcome.lots.balances["deficit_units"] > 0).sum()) > 0
    rf = outcome.roll_forward
    assert all(c == o + a - r - e for c, o, a, r, e in zip(rf["closing_value"], rf["opening_value"],
                                                           rf["accrued_value"], rf["redeemed_value"],
                                                           rf["expired_value"]))
    s03_transfers.commit(ctx, outcome, report)
    out = program / RUN / "output" / "openloyalty"
    assert (out / "unit_transfers.json").is_file() and not (out / "unit_transfers.xml").exists()
    totals = json.loads((program / RUN / "stages" / "03_transfers.json").read_text(encoding="utf-8"))["totals"]
    assert totals["points_difference"] == "0" and totals["granularity"] == "member_expiry"
    assert all("value" in v for v in totals["liability_per_center"].values())


def test_national_phones_of_opening_rows_are_read_as_stage_02_reads_them():
    members = pd.DataFrame({"legacy_id": ["G1", "G2"], "email_key": ["an@x.vn", "bo@x.fr"],
                            "phone": ["+84912345678", "+33612345678"]})
    balances = pd.DataFrame({"phone": ["+33912345678", "+33612345678"], "phone_raw": ["0912345678", "0612345678"],
                             "email_key": ["an@x.vn", "bo@x.fr"]})
    out, reread = transfers_opening.member_phones(balances, members)
    assert reread == 1
    assert out["phone"].tolist() == ["+84912345678", "+33612345678"]
    assert balances["phone"].tolist() == ["+33912345678", "+33612345678"]  # the input is not modified


def test_written_files_are_recounted_from_disk(tmp_path):
    expected = (2, 30)
    good = tmp_path / "good.json"
    good.write_text('[\n  {"units": 10, "type": "adding", "comment": "transfer a; lots x"},\n'
                    '  {"units": 20, "type": "adding", "comment": "transfer b; lots y"}\n]\n', encoding="utf-8")
    row = transfers_outputs.output_row("json", "points", [good], expected, transfers_outputs.json_items([good]))
    assert (row["rows_written"], row["total_written"], row["bad_values"], row["duplicate_ids"]) == (2, 30, 0, 0)

    fraction = tmp_path / "fraction.json"
    fraction.write_text('[\n  {"units": 10.5, "comment": "transfer a; lots x"},\n'
                        '  {"units": 20, "comment": "transfer a; lots y"}\n]\n', encoding="utf-8")
    row = transfers_outputs.output_row("json", "points", [fraction], expected, transfers_outputs.json_items([fraction]))
    assert (row["bad_values"], row["duplicate_ids"], row["total_written"]) == (1, 1, 20)

    truncated = tmp_path / "truncated.xml"
    truncated.write_text("<pointsTransfers><pointsTransfer><points>10</points></pointsTransfer>", encoding="utf-8")
    row = transfers_outputs.output_row("xml", "points", [truncated], expected, transfers_outputs.xml_items([truncated]))
    assert row["bad_values"] == 1 and row["problem"].startswith("ParseError")

    not_a_list = tmp_path / "object.json"
    not_a_list.write_text('{"units": 10}\n', encoding="utf-8")
    with pytest.raises(ValueError):
        list(transfers_outputs.json_list(not_a_list))


def test_the_ledger_read_in_small_blocks_gives_the_same_files_and_figures(program, monkeypatch):
    """Stage 03 reads the ledger block by block (sources/ledger_stream): blocks of 16 KB instead of
    one whole-file read change no output file, reject or figure."""
    from loyalty_toolkit.sources.ledger import read as ledger_read
    from loyalty_toolkit.sources.ledger import stream as ledger_stream

    def stage_files_and_record():
        ctx, outcome, report = run_stage(program)
        s03_transfers.commit(ctx, outcome, report)
        record = json.loads((program / RUN / "stages" / "03_transfers.json").read_text(encoding="utf-8"))
        return output_bytes(program / RUN), {k: record[k] for k in ("rows_in", "rows_out", "rows_rejected", "totals")}

    whole = stage_files_and_record()  # the sample ledger is under 1 MiB: read whole
    blocks = []
    real = ledger_stream.parse_ledger

    def counting(frame, **kw):
        blocks.append(len(frame))
        return real(frame, **kw)

    monkeypatch.setattr(ledger_read, "_FAST_BYTES", 0)
    monkeypatch.setattr(ledger_stream, "BLOCK_BYTES", 1 << 14)
    monkeypatch.setattr(ledger_stream, "parse_ledger", counting)
    assert stage_files_and_record() == whole
    assert len(blocks) >= 10
