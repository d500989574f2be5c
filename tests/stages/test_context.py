"""StageContext records every file a stage wrote, with its sha256, so that ``repro`` can compare it."""

from __future__ import annotations

import hashlib
import json

import pandas as pd

from loyalty_toolkit.config import load_config
from loyalty_toolkit.gates import GateReport
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
                             "rejects/mapping.csv"]
    for rel, sha in outputs.items():  # recorded under the published path, with the published bytes
        assert (rd / rel).is_file() and _sha(rd / rel) == sha
    assert not (rd / ".pending" / "mapping").exists()
    ctx.store.close()
