"""Reading Splio reward files: names, order, header rules, NULL versus "", line numbers, file-level refusals."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from loyalty_toolkit.errors import InputError
from loyalty_toolkit.sources.splio import (
    CUSTOM_COLUMNS, SCOPE_COLUMNS, export_columns, null_columns, order_files, parse_splio_name, read_scope_file,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "splio"
EXAMPLE_1 = FIXTURES / "demo_masterreward_main_20190214.csv"
EXAMPLE_2 = FIXTURES / "demo_earnreward_main_20150106.csv"
EXAMPLE_3 = FIXTURES / "demo_burnreward_main_20180901.csv"
BURN_HEADER = "card_code;context;burn_date;attribution_id"


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


@pytest.mark.parametrize("name, expected", [
    ("mycompany_masterreward_silver_20190214.csv", ("mycompany", "masterreward", "silver", date(2019, 2, 14))),
    ("mycompany_earnreward_silver_20190214.csv", ("mycompany", "earnreward", "silver", date(2019, 2, 14))),
    ("mycompany_burnreward_silver_20190214.csv", ("mycompany", "burnreward", "silver", date(2019, 2, 14))),
    ("my_company_burnreward_silver_20200229.csv", ("my_company", "burnreward", "silver", date(2020, 2, 29))),
    ("acme_earnreward_gold_vip_20190101.csv", ("acme", "earnreward", "gold_vip", date(2019, 1, 1))),
    ("acme_earnreward_masterreward_20190101.csv", ("acme", "earnreward", "masterreward", date(2019, 1, 1))),
])
def test_parse_splio_name_accepts(name: str, expected: tuple) -> None:
    n = parse_splio_name(Path("/some/dir") / name)
    assert (n.universe, n.scope, n.subsection, n.date) == expected
    assert n.filename == name


@pytest.mark.parametrize("name, part", [
    ("mycompany_rewards_silver_20190214.csv", "scope"),         # not one of the three scopes
    ("mycompany_MasterReward_silver_20190214.csv", "scope"),    # scopes are lower case
    ("mycompany_masterreward_silver_20190230.csv", "date"),     # no 30 February
    ("mycompany_masterreward_silver_2019-02-14.csv", "date"),
    ("mycompany_masterreward_silver_190214.csv", "date"),
    ("mycompany_masterreward_20190214.csv", "name"),           # subsection missing
    ("masterreward_silver_20190214.csv", "name"),              # universe missing
    ("_masterreward_silver_20190214.csv", "universe"),         # empty universe
    ("u_masterreward___20190214.csv", "subsection"),            # empty subsection
    ("mycompany_masterreward_silver_20190214.txt", "extension"),
    ("mycompany_masterreward_silver_20190214.CSV", "extension"),
])
def test_parse_splio_name_refuses(name: str, part: str) -> None:
    with pytest.raises(InputError) as exc:
        parse_splio_name(name)
    assert exc.value.file == name
    assert exc.value.column == part
    assert "universe_scope_subsection_YYYYMMDD.csv" in str(exc.value)


def test_files_are_ordered_by_scope_then_date() -> None:
    names = ["u_burnreward_s_20190101.csv", "u_earnreward_s_20190301.csv", "u_masterreward_s_20190401.csv",
             "u_earnreward_s_20190201.csv", "u_masterreward_s_20180101.csv", "u_burnreward_s_20180101.csv"]
    assert [p.name for p in order_files(names)] == [
        "u_masterreward_s_20180101.csv", "u_masterreward_s_20190401.csv", "u_earnreward_s_20190201.csv",
        "u_earnreward_s_20190301.csv", "u_burnreward_s_20180101.csv", "u_burnreward_s_20190101.csv"]


def test_example_1_reads_with_null_and_quoted_values() -> None:
    f = read_scope_file(EXAMPLE_1)
    assert f.scope == "masterreward"
    assert f.header[:3] == ("external_id", "name", "monetary")
    rows = f.rows
    assert len(rows) == 6
    assert rows["_line"].tolist() == [2, 3, 4, 5, 6, 7]
    assert set(rows["_file"]) == {EXAMPLE_1.name}
    first = rows.iloc[0]
    assert first["external_id"] == "mastertest_missing_price"
    assert first["monetary_value"] == "2"
    assert first["nqp_value"] == ""  # ;; is NULL, carried as "" and listed in _null_columns
    assert null_columns(first["_null_columns"]) == {
        "monetary", "monetary_type", "nqp_value", "description", "rich_description", "is_limited",
        "max_attribution_count"}
    assert rows.iloc[3]["max_attribution_count"] == "100"
    assert "holding_days" not in null_columns(rows.iloc[3]["_null_columns"])  # "0" quoted is a value


def test_example_2_quoted_header_and_example_3_unquoted_null() -> None:
    earn = read_scope_file(EXAMPLE_2)
    assert earn.header == ("reward_id", "card_code", "attribution_id", "quantity", "context", "earn_date",
                           "validity_start_date", "validity_end_date")
    assert len(earn.rows) == 10
    burn = read_scope_file(EXAMPLE_3)
    assert len(burn.rows) == 8
    assert burn.rows.iloc[0]["attribution_id"] == ""
    assert null_columns(burn.rows.iloc[0]["_null_columns"]) == {"attribution_id"}
    assert burn.rows.iloc[5]["burn_date"] == "2018-09-09"


def test_null_empty_string_and_lookalikes(tmp_path: Path) -> None:
    """Only a bare NULL or a bare empty field is NULL; "", "NULL" quoted and " NULL" are text."""
    p = write(tmp_path, "u_burnreward_s_20190101.csv", BURN_HEADER + "\n"
              'CC1;NULL;"";"NULL"\n'
              'CC2; NULL;NULL ;\n')
    rows = read_scope_file(p).rows
    assert rows["context"].tolist() == ["", " NULL"]
    assert rows["burn_date"].tolist() == ["", "NULL "]
    assert rows["attribution_id"].tolist() == ["NULL", ""]
    assert null_columns(rows.iloc[0]["_null_columns"]) == {"context"}
    assert null_columns(rows.iloc[1]["_null_columns"]) == {"attribution_id"}


def test_quoted_field_over_several_lines_keeps_physical_line_numbers(tmp_path: Path) -> None:
    p = write(tmp_path, "u_burnreward_s_20190101.csv", "\ufeff" + BURN_HEADER + "\r\n"
              'CC1;"line one\r\nline ""two""\r\nline three";2018-08-09 11:03:05;A1\r\n'
              "\r\n"
              "CC2;plain;2018-08-09 11:03:05;A2\r\n")
    f = read_scope_file(p)
    assert f.header[0] == "card_code"  # the BOM is not part of the first column name
    assert f.rows["_line"].tolist() == [2, 6]
    assert f.rows.iloc[0]["context"] == 'line one\r\nline "two"\r\nline three'


def test_custom_columns_c0_to_c31_only_in_masterreward() -> None:
    assert CUSTOM_COLUMNS[0] == "c0" and CUSTOM_COLUMNS[-1] == "c31" and len(CUSTOM_COLUMNS) == 32
    assert "c31" in SCOPE_COLUMNS["masterreward"] and "c32" not in SCOPE_COLUMNS["masterreward"]
    assert not any(c in SCOPE_COLUMNS[s] for c in CUSTOM_COLUMNS for s in ("earnreward", "burnreward"))


def test_export_columns_keep_mandatory_and_present_optional_ones() -> None:
    cols = export_columns("masterreward", ["external_id", "c3", "description", "unrelated"])
    assert cols[:3] == ["external_id", "name", "monetary"]
    assert "description" in cols and "c3" in cols and "c0" not in cols and "unrelated" not in cols
    assert export_columns("burnreward", []) == ["card_code", "attribution_id"]


@pytest.mark.parametrize("text, line, column, words", [
    ("card_code;context;burn_date\nCC1;x;2018-08-09 11:03:05\n", 1, "attribution_id", "mandatory column"),
    (BURN_HEADER + ";points\n", 1, "points", "unrecognised column"),
    (BURN_HEADER + ";c0\n", 1, "c0", "unrecognised column"),
    ("card_code;card_code;attribution_id\n", 1, "card_code", "twice"),
    ("Card_Code;attribution_id\n", 1, "Card_Code", "unrecognised column"),
    (BURN_HEADER + "\nCC1;x;2018-08-09 11:03:05\n", 2, "attribution_id", "expected 4 fields, found 3"),
    (BURN_HEADER + "\nCC1;x;2018-08-09 11:03:05;A1;extra\n", 2, 5, "expected 4 fields, found 5"),
    (BURN_HEADER + '\nCC1;x;2018-08-09 11:03:05;A1\nCC2;"open;2018;A2\n', 3, 2, "not closed"),
    (BURN_HEADER + '\nCC1;"x"y;2018-08-09 11:03:05;A1\n', 2, 2, "after a closing quote"),
    (BURN_HEADER + '\nCC1;x"y;2018-08-09 11:03:05;"A1"\n', 2, 2, "quote inside an unquoted field"),
    ("", 1, None, "empty file"),
])
def test_file_level_refusals(tmp_path: Path, text: str, line: int, column, words: str) -> None:
    p = write(tmp_path, "u_burnreward_s_20190101.csv", text)
    with pytest.raises(InputError) as exc:
        read_scope_file(p)
    assert (exc.value.file, exc.value.line, exc.value.column) == (p.name, line, column)
    assert words in exc.value.message
    assert exc.value.stage == "rewards"


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    p = write(tmp_path, "u_burnreward_s_20190101.csv", BURN_HEADER + "\nCC1;café;2018-08-09 11:03:05;A1\n",
              encoding="latin-1")
    with pytest.raises(InputError) as exc:
        read_scope_file(p)
    assert exc.value.line == 2 and "UTF-8" in exc.value.message


def test_more_objects_than_the_limit_refuses_the_file(tmp_path: Path) -> None:
    body = "".join(f"CC{i};x;2018-08-09 11:03:05;A{i}\n" for i in range(3))
    p = write(tmp_path, "u_burnreward_s_20190101.csv", BURN_HEADER + "\n" + body)
    assert len(read_scope_file(p, max_objects=3).rows) == 3
    with pytest.raises(InputError) as exc:
        read_scope_file(p, max_objects=2)
    assert exc.value.line == 4 and "more than 2 objects" in exc.value.message


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    f = read_scope_file(write(tmp_path, "u_burnreward_s_20190101.csv", BURN_HEADER + "\n"))
    assert f.rows.empty and list(f.rows.columns)[:4] == BURN_HEADER.split(";")
