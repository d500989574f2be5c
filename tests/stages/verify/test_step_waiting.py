"""Stage 06 before the import: without sources.target_balances it records that it is waiting and
passes (waiting is not a failure)."""

from __future__ import annotations

import json

from loyalty_toolkit.stages.context import open_stage
from loyalty_toolkit.stages.verify import step as s06_verify

RUN = "runs/t"


def test_without_the_export_the_step_waits_and_passes(program):
    config = program / "migration.yml"
    text = config.read_text(encoding="utf-8")
    start = text.index("  target_balances:")
    end = text.index("    rehearsal: true\n", start) + len("    rehearsal: true\n")
    config.write_text(text[:start] + text[end:], encoding="utf-8")
    ctx = open_stage("verify", str(config), str(program / RUN))
    outcome = s06_verify.run(ctx)
    assert outcome.state == "waiting" and outcome.mismatches().empty
    report = s06_verify.gate(ctx, outcome)
    assert report.passed
    s06_verify.commit(ctx, outcome, report)
    record = json.loads((program / RUN / "stages" / "06_verify.json").read_text(encoding="utf-8"))
    assert record["status"] == "passed" and record["totals"]["state"] == "waiting"
    assert "no sources.target_balances" in record["totals"]["why"]
