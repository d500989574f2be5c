"""validate's stage plan names every stage, the verify step after the import included."""

from __future__ import annotations

from loyalty_toolkit.runner.preflight import preflight
from loyalty_toolkit.runner.workspace import prepare_demo


def test_the_plan_says_why_the_verify_step_runs_or_waits(tmp_path):
    config = prepare_demo(tmp_path, members=30)
    assert "06_verify     runs            sources.target_balances (local rehearsal target)" in preflight(
        config).stage_plan()
    text = config.read_text(encoding="utf-8")
    start = text.index("  target_balances:")
    end = text.index("    rehearsal: true\n", start) + len("    rehearsal: true\n")
    config.write_text(text[:start] + text[end:], encoding="utf-8")
    assert "06_verify     runs            after the transfer import; waiting until sources.target_balances" in \
        preflight(config).stage_plan()
