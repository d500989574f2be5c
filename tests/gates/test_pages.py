"""The gate page, rendered from outcomes alone: masked by default, shown with show_pii, offline."""

from __future__ import annotations

import html
import re

from loyalty_toolkit.gates import GateReport, Outcome, pages
from loyalty_toolkit.runner.offline import page_problems

EMAIL = "jean.dupont@example.com"
PHONE = "+33612345678"


def _report() -> GateReport:
    return GateReport(stage="members", suites={"members": "Accepted members.", "rejects": "Rejected rows."}, outcomes=[
        Outcome(table="members", expectation="expect_column_values_to_match_regex", column="email", success=False,
                critical=False, unexpected_count=2, examples=[EMAIL, "ann@example.org"], position=1,
                kwargs={"column": "email", "regex": "^x$"}, element_count=8, unexpected_percent=25.0,
                description="Emails are well formed."),
        Outcome(table="members", expectation="expect_column_pair_values_to_be_equal", column=None, success=False,
                critical=True, unexpected_count=1, examples=[[PHONE, "+33600000000"]], position=2,
                kwargs={"column_A": "phone", "column_B": "mobile_phone"}, element_count=8, unexpected_percent=12.5),
        Outcome(table="rejects", expectation="expect_column_values_to_not_be_null", column="file", success=True,
                critical=True, unexpected_count=0, position=1, kwargs={"column": "file"}, element_count=3,
                unexpected_percent=0.0),
        Outcome(table="rejects", expectation="expect_column_values_to_be_in_set", column="reason_code",
                success=False, critical=True, unexpected_count=None, position=2, error="boom <b>",
                kwargs={"column": "reason_code", "value_set": ["A", "B"]}),
    ])


def test_examples_are_masked_by_default():
    page = pages.render_gate_page(_report())
    assert EMAIL not in page and "ann@example.org" not in page and PHONE not in page
    assert "j***@example.com" in page and "a***@example.org" in page
    assert "phone: ********5678, mobile_phone: ********0000" in page
    assert "is masked" in page


def test_show_pii_shows_the_raw_examples():
    page = pages.render_gate_page(_report(), show_pii=True)
    assert EMAIL in page and PHONE in page and "j***@example.com" not in page
    assert "<strong>shown</strong>" in page


def test_every_expectation_has_an_anchor_and_failures_link_to_them():
    report = _report()
    page = pages.render_gate_page(report)
    assert [pages.anchor(o) for o in report.outcomes] == ["members-1", "members-2", "rejects-1", "rejects-2"]
    for o in report.outcomes:
        assert f"<tr id='{pages.anchor(o)}'" in page
    failures = page.split("<h2>Failures</h2>", 1)[1].split("</ul>", 1)[0]
    # Critical failures are listed before warnings.
    assert failures.index("#members-2") < failures.index("#rejects-2") < failures.index("#members-1")
    assert "#rejects-1" not in failures
    assert "Gate failed" in page and "2 critical failed, 1 warnings" in page


def test_the_row_shows_type_column_arguments_severity_and_counts():
    page = pages.render_gate_page(_report())
    row = page.split("<tr id='members-1'", 1)[1].split("</tr>", 1)[0]
    for text in ("expect_column_values_to_match_regex", "<td>email</td>", "<code>regex</code>: <code>^x$</code>",
                 "<td>warning</td>", "<strong>FAIL</strong>", ">8<", ">2<", ">25<", "Emails are well formed."):
        assert text in row, text
    error_row = page.split("<tr id='rejects-2'", 1)[1].split("</tr>", 1)[0]
    assert "boom &lt;b&gt;" in error_row and "<td>critical</td>" in error_row


def test_a_passing_gate_says_so():
    report = _report()
    report.outcomes = [o for o in report.outcomes if o.success]
    page = pages.render_gate_page(report)
    assert "Gate passed" in page and "<h2>Failures</h2>" not in page


def test_the_page_is_self_contained(tmp_path):
    path = pages.write_gate_page(_report(), tmp_path / "data_docs" / "01_members")
    assert path == tmp_path / "data_docs" / "01_members" / "index.html"
    text = path.read_text(encoding="utf-8")
    assert "<script" not in text and "<link" not in text and "http" not in text
    assert page_problems(path) == []


def test_masks_are_idempotent_so_masked_outcomes_render_unchanged():
    masked = pages.mask_example_values({"column": "email"}, [EMAIL], show_pii=False)
    assert masked == ["j***@example.com"]
    assert pages.mask_example_values({"column": "email"}, masked, show_pii=False) == masked
    assert pages.mask_example_values({"column_list": ["first_name", "center"]},
                                     [{"first_name": "Thu Ha", "center": "C1"}], show_pii=False) == \
        [{"first_name": "T. H.", "center": "C1"}]
    assert pages.mask_observed("phone", [PHONE], show_pii=False) == ["********5678"]
    assert pages.mask_observed("points", 12, show_pii=False) == 12


def test_a_failed_gate_shows_observed_vs_required_examples_and_what_to_do():
    coverage = Outcome(table="summary", expectation="expect_column_values_to_be_between", column="member_coverage",
                       success=False, critical=True, unexpected_count=1, examples=[0.9949748743718593], position=1,
                       kwargs={"column": "member_coverage", "min_value": 1.0, "max_value": 1}, element_count=1,
                       description="Mapped / accepted members at or above the minimum.")
    box = pages.failure_box("02_mapping", [vars(coverage), *map(vars, _report().outcomes)])
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", box.split("</style>")[1])).split())
    assert "Gate failed: stage 02_mapping stopped on 3 critical expectation(s)" in text
    assert "observed vs required 0.995 vs required >= 1 and <= 1" in text
    assert "phone = mobile_phone on every row" in text and "1 of 8 rows break it" in text
    assert "the expectation could not run: boom" in text
    assert PHONE not in box and "********5678" in box, "examples are masked"
    assert "What to do:" in text


def test_micro_point_examples_read_as_points():
    deficit = Outcome(table="members", expectation="expect_column_values_to_be_in_set", column="deficit_units",
                      success=False, critical=False, unexpected_count=2, examples=[3_444_300_000, 478_000_000],
                      position=5, kwargs={"column": "deficit_units", "value_set": [0]}, element_count=90,
                      observed=1_000_000)
    page = pages.render_gate_page(GateReport(stage="transfers", outcomes=[deficit]))
    assert "3444300000" not in page and "3,444.3 points" in page and "478 points" in page
    assert "observed: <code>1 points</code>" in page
    frame = GateReport(stage="transfers", outcomes=[deficit]).to_frame()
    assert frame.loc[0, "examples"] == "3,444.3 points, 478 points" and frame.loc[0, "observed"] == "1 points"
