"""StageContext records every file a stage wrote, with its sha256, so that ``repro`` can compare it."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from loyalty_toolkit.config import load_config
from loyalty_toolkit.errors import GateFailed
from loyalty_toolkit.gates import GateReport, Outcome
from loyalty_toolkit.stages.context import StageContext, StageFigures


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_finish_records_published_outputs_rejects_and_late_inputs(tmp_path, small_program):
    rd = tmp_path / "run"
    (rd / "inputs").mkdir(parents=True)
    (rd / "inputs" / "inputs.json").write_text("{}", encoding="utf-8")
    ctx = StageContext(stage="mapping", config=load_config(small_program), run_dir=rd)
    export = tmp_path / "export.csv"
    export.write_text("target_id\nT1\n", encoding="utf-8")
    ctx.freeze_input("target_members", export, rows=1)
    ctx.write_rejects(pd.DataFrame({"stage": ["mapping"], "file": ["m.csv"], "line": [3]}))
    (ctx.output_dir("openloyalty") / "members_0001.xml").write_text("<customers/>\n", encoding="utf-8")

    ctx.finish(GateReport(stage="mapping", outcomes=[]), StageFigures(1, 1, 0), {"member_map": pd.DataFrame({"a": [1]})})

    outputs = json.loads((rd / "stages" / "02_mapping.json").read_text())["outputs"]
    assert list(outputs) == ["inputs/target_members/export.csv", "output/openloyalty/members_0001.xml",
                             "rejects/mapping.csv", "rejects/pii/mapping.csv"]
    for rel, sha in outputs.items():  # recorded under the published path, with the published bytes
        assert (rd / rel).is_file() and _sha(rd / rel) == sha
    assert not (rd / ".pending" / "mapping").exists()
    ctx.store.close()


def _context(tmp_path, small_program) -> StageContext:
    rd = tmp_path / "run"
    (rd / "inputs").mkdir(parents=True)
    (rd / "inputs" / "inputs.json").write_text("{}", encoding="utf-8")
    return StageContext(stage="transfers", config=load_config(small_program), run_dir=rd)


def test_finish_publishes_the_pending_tables_with_the_stage(tmp_path, small_program):
    ctx = _context(tmp_path, small_program)
    pending = ctx.store.pending("transfers")
    pending.append("lots", pd.DataFrame({"lot": ["L1", "L2"]}))
    pending.append("lots", pd.DataFrame({"lot": ["L3"]}))
    ctx.finish(GateReport(stage="transfers", outcomes=[]), StageFigures(3, 3, 0), {"totals": pd.DataFrame({"n": [3]})},
               pending=pending)
    assert ctx.store.read_table("lots")["lot"].tolist() == ["L1", "L2", "L3"]
    assert json.loads(ctx.store.completed_stages()["transfers"]["tables"]) == ["lots", "totals"]
    ctx.store.close()


def test_a_failed_gate_drops_the_pending_tables(tmp_path, small_program):
    ctx = _context(tmp_path, small_program)
    before = ctx.store.digests()
    pending = ctx.store.pending("transfers")
    pending.append("lots", pd.DataFrame({"lot": ["L1"]}))
    failed = GateReport(stage="transfers", outcomes=[Outcome(table="lots", expectation="expect_x", column="lot",
                                                             success=False, critical=True, unexpected_count=1)])
    with pytest.raises(GateFailed):
        ctx.finish(failed, StageFigures(1, 1, 0), {"totals": pd.DataFrame({"n": [1]})}, pending=pending)
    assert ctx.store.digests() == before  # no pending table left behind, nothing committed
    assert json.loads((ctx.run_dir / "stages" / "03_transfers.json").read_text())["status"] == "failed"
    ctx.store.close()


def test_reject_files_are_masked_and_the_raw_rows_kept_in_a_restricted_file(tmp_path, small_program):
    rows = pd.DataFrame({"stage": ["transfers"] * 3, "file": ["o.csv"] * 3, "line": [4, 2, 3],
                         "record_key": ["+33612345678|ann@x.fr", "G1", "G2"],
                         "column": ["email", "date_of_birth", "Loyalty Points"],
                         "reason_code": ["R"] * 3, "message": ["email ann@x.fr is bad", "03/04/1990?", "-108 held"],
                         "value": ["ann@x.fr", "03/04/1990", "-108"]})
    ctx = StageContext(stage="transfers", config=load_config(small_program), run_dir=tmp_path)
    path = ctx.write_rejects(rows)
    shown = pd.read_csv(path, dtype=str, keep_default_na=False)
    raw = pd.read_csv(tmp_path / "rejects" / "pii" / "transfers.csv", dtype=str, keep_default_na=False)
    assert shown["line"].tolist() == raw["line"].tolist() == ["2", "3", "4"]
    assert shown["value"].tolist() == ["**/**/1990", "-108", "a***@x.fr"]
    assert shown["record_key"].tolist() == ["G1", "G2", "********5678|a***@x.fr"]
    assert shown["message"].tolist()[2] == "email a***@x.fr is bad"
    assert raw["value"].tolist() == ["03/04/1990", "-108", "ann@x.fr"]
    assert "'+33612345678|ann@x.fr" in raw["record_key"].tolist(), "a cell starting with + is neutralised"
    shown_pii = StageContext(stage="transfers", config=load_config(small_program), run_dir=tmp_path / "b",
                             show_pii=True).write_rejects(rows)
    assert "ann@x.fr" in shown_pii.read_text(encoding="utf-8")
