"""Extracting member references from the ledger, the opening balances and the Splio reward files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loyalty_toolkit.config import load_config
from loyalty_toolkit.errors import InputError
from loyalty_toolkit.sources.references import REFERENCE_COLUMNS, member_references, read_column

MEMBERS = "guest_id,first_name,last_name\nG1,Jean,Dupont\n"
LEDGER = ("user id,record type name,Loyalty Points,note\n"
          "G1,accrual,100,\n"
          "\n"                                   # blank lines are not records
          " G2 ,accrual,50,\"two\nlines\"\n"     # a record spanning lines 4-5
          "G1,redemption,-20,\n"
          ",accrual,5,\n")
OPENING = ("phone,email,DTDauKy,DTTichLuy\n"
           "06 12 34 56 78,Jean.Dupont@Example.com,1000000,1500000\n"
           "0912345678,lan@example.vn,2000000,2000000\n"
           ",only@example.com,1,1\n")
EARN = ("reward_id;card_code;attribution_id;earn_date;validity_start_date;validity_end_date\n"
        "rw-1; 0001234 ;a1;2026-01-01 10:00:00;2026-01-01 10:00:00;2026-12-31 10:00:00\n"
        "rw-1;NULL;a2;2026-01-01 10:00:00;2026-01-01 10:00:00;2026-12-31 10:00:00\n")
BURN = "card_code;attribution_id;burn_date\n0001234;a1;2026-02-01 10:00:00\n"
MASTER = ("external_id;name;monetary;nqp_value;holding_days;validity_interval_count;validity_interval_type;"
          "forced_validity\nrw-1;Drink;0;50;0;30;days;0\n")
CONFIG = """
migration: {name: t, cutover: "2026-06-30T23:59:59+00:00"}
sources:
  members: {path: members.csv, default_region: FR}
  ledger: {path: ledger.csv}
  opening_balances: {path: opening.csv}
  rewards:
    files: [u_masterreward_s_20260101.csv, u_earnreward_s_20260101.csv, u_burnreward_s_20260102.csv]
"""
FILES = {"members.csv": MEMBERS, "ledger.csv": LEDGER, "opening.csv": OPENING,
         "u_masterreward_s_20260101.csv": MASTER, "u_earnreward_s_20260101.csv": EARN,
         "u_burnreward_s_20260102.csv": BURN}


@pytest.fixture
def refs(write_config) -> pd.DataFrame:
    cfg = load_config(write_config(CONFIG, FILES))
    return member_references(cfg, cfg.input_files())


def rows(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(r) for r in frame.astype(object).itertuples(index=False)]


def test_every_member_reference_with_file_line_and_kind(refs: pd.DataFrame) -> None:
    assert list(refs.columns) == list(REFERENCE_COLUMNS)
    assert rows(refs) == [
        ("ledger", "ledger.csv", 2, "legacy_id", "G1", "", ""),
        ("ledger", "ledger.csv", 4, "legacy_id", "G2", "", ""),
        ("ledger", "ledger.csv", 6, "legacy_id", "G1", "", ""),
        ("ledger", "ledger.csv", 7, "legacy_id", "", "", ""),
        ("opening_balances", "opening.csv", 2, "phone_email", "+33612345678", "jean.dupont@example.com",
         "06 12 34 56 78"),
        # read in the default region; coverage re-reads it in the region of the member the email names
        ("opening_balances", "opening.csv", 3, "phone_email", "+33912345678", "lan@example.vn", "0912345678"),
        ("opening_balances", "opening.csv", 4, "phone_email", "", "only@example.com", ""),
        ("rewards/u_burnreward_s_20260102.csv", "u_burnreward_s_20260102.csv", 2, "card", "0001234", "", ""),
        ("rewards/u_earnreward_s_20260101.csv", "u_earnreward_s_20260101.csv", 2, "card", "0001234", "", ""),
        ("rewards/u_earnreward_s_20260101.csv", "u_earnreward_s_20260101.csv", 3, "card", "", "", ""),
    ]


def test_text_columns_are_categorical_so_big_ledgers_stay_small(refs: pd.DataFrame) -> None:
    for column in REFERENCE_COLUMNS:
        expected = np.int64 if column == "line" else "category"
        assert refs[column].dtype == expected, column
    ledger = refs[refs["input"] == "ledger"]
    assert set(ledger["ref_value"]) == {"G1", "G2", ""}


def test_mapped_user_id_column_and_only_requested_inputs(write_config) -> None:
    text = CONFIG.replace("ledger: {path: ledger.csv}", 'ledger: {path: ledger.csv, columns: {user_id: "guest"}}')
    ledger = "guest;points\nG9;1\n"
    cfg = load_config(write_config(text, {**FILES, "ledger.csv": ledger}))
    refs = member_references(cfg, {"ledger": cfg.input_files()["ledger"], "members": cfg.input_files()["members"]})
    assert rows(refs) == [("ledger", "ledger.csv", 2, "legacy_id", "G9", "", "")]


def test_no_inputs_gives_an_empty_frame(write_config) -> None:
    cfg = load_config(write_config(CONFIG, FILES))
    refs = member_references(cfg, {"rewards/u_masterreward_s_20260101.csv":
                                   cfg.input_files()["rewards/u_masterreward_s_20260101.csv"]})
    assert refs.empty and list(refs.columns) == list(REFERENCE_COLUMNS)


@pytest.mark.parametrize("name, text, line, column, words", [
    ("ledger.csv", "guest id,points\nG1,1\n", 1, "user id", "missing from header"),
    ("ledger.csv", "user id,points\nG1,1\nG2\n", 3, None, "expected 2 fields"),
    ("ledger.csv", 'user id,points\nG1,"1\n', 2, None, "malformed quoting"),
    ("opening.csv", "phone,DTDauKy\n0612345678,1\n", 1, "email", "missing from header"),
    ("u_earnreward_s_20260101.csv", "reward_id;attribution_id\nrw;a\n", 1, None, "mandatory column"),
])
def test_unreadable_input_names_file_line_column(write_config, name, text, line, column, words) -> None:
    cfg = load_config(write_config(CONFIG, {**FILES, name: text}))
    with pytest.raises(InputError) as exc:
        member_references(cfg, cfg.input_files())
    err = exc.value
    assert (err.file, err.line, err.stage) == (name, line, "mapping")
    if column is not None:
        assert err.column == column
    assert words in err.message


def test_read_column_keeps_one_column_interned(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_bytes("\ufeffa;user id;b\r\nx; G1 ;y\r\nx;G2;y\r\n\r\nx;G1;y\r\n".encode("utf-8"))
    codes, uniques, lines = read_column(p, "user id")
    assert uniques == ["G1", "G2"]
    assert codes.tolist() == [0, 1, 0] and lines.tolist() == [2, 3, 5]


def _read_column_strict(path: Path, header: str):
    """``read_column`` through the csv module only (its fast path switched off)."""
    from unittest import mock

    with mock.patch("loyalty_toolkit.sources.references._read_column_fast", return_value=None):
        return read_column(path, header)


@pytest.mark.parametrize("content", [
    "a,user id,b\nx, G1 ,y\nx,G2,y\nx,G1 ,y\nx,,y\nx,G3,y\nx,G2,y\n",
    "\ufeffa;user id\r\nx;Z9\r\nx; A1\r\nx;A1\r\n",
    "user id\n  \nG1\n",  # a whitespace-only line: pyarrow refuses, the csv loop skips it
    "a,user id\nx,G1\n\nx,G2\n",  # a blank line: not for the fast path
    'a,user id\nx,"G1"\n',  # quotes: not for the fast path
    "\na,user id\nx,G1\n",  # a blank line before the header
])
def test_read_column_fast_path_answers_as_the_csv_loop(tmp_path: Path, content: str) -> None:
    p = tmp_path / "l.csv"
    p.write_bytes(content.encode("utf-8"))
    codes, uniques, lines = read_column(p, "user id")
    s_codes, s_uniques, s_lines = _read_column_strict(p, "user id")
    assert uniques == s_uniques and codes.tolist() == s_codes.tolist() and lines.tolist() == s_lines.tolist()


def test_read_column_fast_path_on_the_sample_ledger(small_program: Path) -> None:
    from loyalty_toolkit.sources.references import _read_column_fast

    ledger = small_program.parent / "legacy" / "points_liability.csv"
    assert _read_column_fast(ledger, "utf-8", ",", "user id", None) is not None
    fast, strict = read_column(ledger, "user id"), _read_column_strict(ledger, "user id")
    assert fast[1] == strict[1] and fast[0].tolist() == strict[0].tolist() and fast[2].tolist() == strict[2].tolist()
    assert len(fast[1]) > 100


def test_read_column_fast_path_names_a_missing_header_as_the_csv_loop(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_bytes(b"a,b\nx,y\n")
    with pytest.raises(InputError) as fast:
        read_column(p, "user id")
    with pytest.raises(InputError) as strict:
        _read_column_strict(p, "user id")
    assert fast.value.one_line() == strict.value.one_line()


def test_an_input_with_no_rows_combines_with_the_others_whatever_its_category_dtype():
    """Issue #17: a header-only burnreward file failed stage 02 with 'dtype of categories must be the same'."""
    from loyalty_toolkit.sources.references import _combine, _part

    empty = _part("rewards/b.csv", Path("b.csv"), np.zeros(0, dtype=np.int64), "card", pd.Series([], dtype="str"))
    empty["ref_value"] = pd.Categorical(np.asarray([], dtype=object))  # object categories, as pandas infers them
    rows = _part("rewards/e.csv", Path("e.csv"), np.array([2, 3]), "card", pd.Series(["C1", "C2"]))
    both = _combine([empty, rows])
    assert both["ref_value"].astype(str).tolist() == ["C1", "C2"] and both["line"].tolist() == [2, 3]
