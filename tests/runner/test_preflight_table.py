"""``validate``'s input table stays aligned whatever the lengths: every column starts at the same
place on every line, and a long name never runs into the next column."""

from __future__ import annotations

from loyalty_toolkit.runner.preflight import PreflightReport, PreflightRow

LONG = "rewards/a_very_long_masterreward_export_name_from_the_legacy_system_20260630.csv"


def test_columns_line_up_and_long_values_keep_their_column():
    report = PreflightReport(config=None, rows=[
        PreflightRow("members", "members.csv", "utf-8", ",", "1/1 mapped", 1234567),
        PreflightRow(LONG, LONG, "utf-16-le", "\t", "8/8 mapped", 8),
        PreflightRow("ledger", "ledger.csv", "cp1252", ";", "9/10 mapped", None, "missing column points"),
    ])
    lines = report.table().splitlines()
    header, rule, members, long, ledger = lines
    starts = [i for i, ch in enumerate(rule) if ch == "-" and (i == 0 or rule[i - 1] == " ")]
    assert len(starts) == 6
    for name, start in zip(("input", "encoding", "delim", "columns"), starts):
        assert header[start:].startswith(name)
    assert long.startswith(LONG + "  ") and long[starts[1]:].startswith("utf-16-le")
    assert long[starts[2]:].startswith("tab "), "a tab delimiter is named, not printed"
    assert members.split()[-2:] == ["1,234,567", "ok"] and long.split()[-2:] == ["8", "ok"]
    rows_end = starts[5] - 2  # rows are right-aligned on the column's right edge
    assert members[:rows_end].endswith("1,234,567") and long[:rows_end].endswith("8")
    assert ledger.endswith("missing column points") and ledger[starts[2]:].startswith(";")
