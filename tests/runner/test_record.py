from loyalty_toolkit.runner.record import build_summary, stage_entry

DESIGN_STAGE_KEYS = {"name", "status", "rows_in", "rows_out", "rows_rejected", "seconds", "gates"}


def test_summary_has_exactly_the_design_fields():
    rec = {"rows_in": 3, "rows_out": 2, "rows_rejected": 1,
           "gates": [{"expectation": "e", "column": "c", "success": True, "critical": True, "unexpected_count": 0}]}
    s = build_summary("r1", [stage_entry("subset", "passed", 1.23456, rec), stage_entry("members", "skipped", None, None)],
                      None)
    assert set(s) == {"run_id", "status", "stages", "totals"}
    assert all(set(st) == DESIGN_STAGE_KEYS for st in s["stages"])
    assert s["status"] == "partial"  # a skipped stage is not a pass (nor, without a failure, a failure: #17)
    assert s["stages"][0]["seconds"] == 1.235


def test_failure_is_carried_in_totals():
    s = build_summary("r1", [stage_entry("subset", "failed", 1, None)], "stage 00_subset: boom")
    assert s["status"] == "failed" and s["totals"]["failure"] == "stage 00_subset: boom"


def _index_text(tmp_path, parameters, run_config):
    from loyalty_toolkit.runner.record import write_index

    manifest = {"config": {"migration": {"name": "m", "cutover": "2026-06-30"}, "run": run_config}, "inputs": {},
                "parameters": parameters}
    summary = build_summary("r1", [stage_entry("subset", "passed", 1, None)], None)
    return write_index(tmp_path, summary, manifest).read_text(encoding="utf-8")


def test_index_says_whether_personal_data_is_masked(tmp_path):
    assert "is masked in the reports" in _index_text(tmp_path, {"show_pii": False}, {"show_pii": False})
    for params, run_config in (({"show_pii": True}, {"show_pii": False}), ({"show_pii": False}, {"show_pii": True})):
        text = _index_text(tmp_path, params, run_config)
        assert "shown unmasked" in text and "is masked" not in text


def test_a_not_applicable_stage_does_not_fail_the_run_and_is_shown_plainly(tmp_path):
    from loyalty_toolkit.runner.record import write_index

    stages = [stage_entry("subset", "passed", 1, None), stage_entry("transfers", "not_applicable", None, None),
              stage_entry("report", "passed", 1, None)]
    s = build_summary("r1", stages, None, None, {"transfers": "no sources.ledger and no sources.opening_balances"})
    assert s["status"] == "passed" and s["totals"]["stages_not_applicable"] == 1
    assert s["totals"]["not_applicable"] == {"transfers": "no sources.ledger and no sources.opening_balances"}
    assert all(set(st) == DESIGN_STAGE_KEYS for st in s["stages"])
    assert build_summary("r1", stages[:2] + [stage_entry("report", "failed", 1, None)], "boom")["status"] == "failed"
    manifest = {"config": {"migration": {"name": "m", "cutover": "2026-06-30"}, "run": {}}, "inputs": {},
                "parameters": {}}
    page = write_index(tmp_path, s, manifest).read_text(encoding="utf-8")
    assert ("<tr class='not_applicable'><td>03_transfers</td><td>not applicable</td><td colspan='6'>no sources.ledger "
            "and no sources.opening_balances; not run</td></tr>") in page
    assert "Every stage that applies passed." in page and "Not applicable to this program: 03_transfers." in page


def test_the_index_marks_the_unmasked_reject_files_restricted(tmp_path):
    for rel in ("rejects/members.csv", "rejects/pii/members.csv"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("stage,line\n", encoding="utf-8")
    items = [line for line in _index_text(tmp_path, {}, {}).split("<li>") if "bytes)" in line]
    assert len(items) == 2
    assert "restricted" in next(i for i in items if "rejects/pii/members.csv" in i)
    assert "restricted" not in next(i for i in items if "rejects/members.csv" in i and "pii" not in i)
