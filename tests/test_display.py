"""The shared table look: no index, nothing cut, numbers right with separators, points not micro-points."""

from __future__ import annotations

import re
from decimal import Decimal

import pandas as pd
import pytest

from loyalty_toolkit import display

LONG = "Every rejected row is listed in rejects/<stage>.csv with its file, line, reason code and message " * 2


def _cells(page: str, tag: str = "td") -> list[str]:
    return re.findall(rf"<{tag}(?:\s[^>]*)?>(.*?)</{tag}>", page)


def test_text_is_never_cut_and_there_is_no_index_column():
    frame = pd.DataFrame({"proves": [LONG, "short"]}, index=[7, 3])  # an index out of order after a sort
    page = display.table_html(frame)
    assert LONG.replace("<", "&lt;").replace(">", "&gt;") in page and "..." not in page
    assert _cells(page, "th") == ["proves"]  # no index header, no row numbers
    assert "<td>7</td>" not in page and "<td>3</td>" not in page


def test_numbers_align_right_with_separators_and_exact_digits():
    frame = pd.DataFrame({"figure": ["a", "b"], "rows": [1234567, 3], "points": [Decimal("447412.30"), Decimal("-478")],
                          "coverage": [0.9949, 1.0]})
    page = display.table_html(frame)
    assert "<td class='num'>1,234,567</td>" in page
    assert "<td class='num'>447,412.30</td>" in page and "<td class='num'>-478</td>" in page
    assert "<td class='num'>0.9949</td>" in page and "<td class='num'>1</td>" in page
    assert "<td>a</td>" in page  # text stays left


def test_micro_point_columns_read_as_points():
    frame = pd.DataFrame({"user_id": ["G1"], "deficit_units": [3_444_300_000]})
    page = display.table_html(frame)
    assert "3444300000" not in page
    assert "<th class='num'>deficit (points)</th>" in page and "<td class='num'>3,444.3</td>" in page


@pytest.mark.parametrize("value, text", [(3_444_300_000, "3,444.3"), (1, "0.000001"), (-478_000_000, "-478"),
                                         (0, "0")])
def test_points_text(value, text):
    assert display.points_text(value) == text


def test_a_long_table_shows_its_first_rows_and_says_where_the_rest_is():
    page = display.table_html(pd.DataFrame({"n": range(40)}), max_rows=10, more="rejects/transfers.csv")
    assert len(re.findall("<tr>", page)) == 11  # header + 10 rows
    assert "The first 10 of 40 rows; every row: rejects/transfers.csv." in page


def test_link_columns_and_failed_rows():
    frame = pd.DataFrame({"file": ["rejects/members.csv"], "agree": [False]})
    page = display.table_html(frame, links={"file": "../"}, fail_column="agree")
    assert "<a href='../rejects/members.csv'>rejects/members.csv</a>" in page
    assert "<tr class='lm-fail'>" in page and "<td>no</td>" in page


def test_a_collapsed_table_folds_under_its_summary_and_line_numbers_keep_their_digits():
    page = display.table_html(pd.DataFrame({"line": [12045], "rows": [12045]}), collapsed="Reject examples")
    assert "<details class='lm-details'><summary>Reject examples (1 rows; click to show)</summary>" in page
    assert "<td class='num'>12045</td>" in page and "<td class='num'>12,045</td>" in page


@pytest.mark.parametrize("value, text", [(0.9865319865319865, "0.9865"), (1.0, "1"), (1234567.25, "1,234,567.25"),
                                         (0.00001234, "1.234e-05"), (Decimal("447412.30"), "447,412.30")])
def test_number_text(value, text):
    assert display.number_text(value) == text


def test_a_column_of_numbers_with_blanks_still_aligns_right():
    page = display.table_html(pd.DataFrame({"unexpected": [12345, ""], "result": ["FAIL", "pass"]}))
    assert "<td class='num'>12,345</td>" in page and "<td class='num'></td>" in page and "<td>FAIL</td>" in page


def test_categorical_columns_show_like_any_other():
    frame = pd.DataFrame({"matched_by": pd.Categorical(["phone", "email"]), "n": pd.Categorical([1, 2])})
    page = display.table_html(frame)
    assert "<td>phone</td>" in page and "<td class='num'>2</td>" in page


def test_a_value_the_helper_cannot_show_falls_back_to_a_full_table_without_index(monkeypatch):
    monkeypatch.setattr(display, "table_html", lambda frame: 1 / 0)
    page = display.safe_table_html(pd.DataFrame({"proves": [LONG]}, index=[9]))
    assert LONG.strip().replace("<", "&lt;").replace(">", "&gt;") in page and "<th></th>" not in page
