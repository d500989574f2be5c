"""Writing Splio files: names, quoting and NULL, the round trip through the reader, splitting at the limit."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from loyalty_toolkit.errors import UsageError
from loyalty_toolkit.sources.splio import export_columns, null_columns, parse_splio_name, read_scope_file
from loyalty_toolkit.stages.rewards.validation import validate_all, validate_catalog
from loyalty_toolkit.targets.splio import (
    MAX_OBJECTS,
    render_splio,
    splio_file_name,
    split_frame,
    write_rewards,
    write_scope,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "splio"
CUTOVER = datetime(2018, 9, 1, tzinfo=timezone.utc)
CARDS = {"CC0001": "M1", "CC0002": "M2", "CC0003": "M3", "CC0004": "M4"}
DAY = date(2019, 2, 14)


def burns_frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"card_code": [f"CC{i:04d}" for i in range(n)], "attribution_id": [f"A{i}" for i in range(n)],
                         "burn_date": ["2018-08-09 11:03:05"] * n, "context": ["x"] * n})


def test_file_name_follows_the_schema_and_parses_back() -> None:
    name = splio_file_name("mycompany", "earnreward", "silver_1", DAY)
    assert name == "mycompany_earnreward_silver_1_20190214.csv"
    n = parse_splio_name(name)
    assert (n.universe, n.scope, n.subsection, n.date) == ("mycompany", "earnreward", "silver_1", DAY)


@pytest.mark.parametrize("universe, scope, subsection", [
    ("my_company", "earnreward", "silver"),  # "_" in the universe would move the split
    ("", "earnreward", "silver"),
    ("acme", "rewards", "silver"),
    ("acme", "earnreward", ""),
    ("acme", "earnreward", "../x"),
])
def test_file_name_refuses_bad_parts(universe: str, scope: str, subsection: str) -> None:
    with pytest.raises(UsageError):
        splio_file_name(universe, scope, subsection, DAY)


def test_render_quotes_values_escapes_quotes_and_writes_erase_intents_as_null() -> None:
    frame = pd.DataFrame({"card_code": ['C"1', "C2"], "attribution_id": ["A1", "A2"], "context": ["", None],
                          "store_id": ["s", ""], "erase": ["", "context,store_id"]})
    text = render_splio(frame, ["card_code", "attribution_id", "context", "store_id"])
    assert text.splitlines() == ["card_code;attribution_id;context;store_id",
                                 '"C""1";"A1";"";"s"',
                                 '"C2";"A2";NULL;NULL']


def test_catalog_round_trips_through_the_reader(tmp_path: Path) -> None:
    res = validate_catalog([read_scope_file(FIXTURES / "demo_masterreward_main_20180701.csv"),
                            read_scope_file(FIXTURES / "demo_masterreward_main_20190214.csv")])
    cols = export_columns("masterreward", res.catalog.columns)
    assert "c0" in cols and "c1" not in cols and "image_url" not in cols
    [path] = write_scope(res.catalog, scope="masterreward", columns=cols, directory=tmp_path, universe="demo",
                         subsection="main", day=DAY)
    back = read_scope_file(path)
    assert list(back.header) == cols
    assert back.rows[cols].to_dict("records") == res.catalog[cols].to_dict("records")
    # values written back are the normalised ones, and "" stays a quoted empty string (never NULL)
    assert back.rows.set_index("external_id").loc["masterlight", "validity_interval_type"] == "months"
    assert all(null_columns(n) == set() for n in back.rows["_null_columns"])
    again = validate_catalog([back])
    assert again.rejects.empty and len(again.catalog) == len(res.catalog)


def test_earned_and_burned_round_trip(tmp_path: Path) -> None:
    legacy = {"1066": "welcome", "1086": "chocolate_bone", "1455": "corgi_bowl"}
    res = validate_all(sorted(FIXTURES.glob("demo_*.csv")), CARDS, cutover=CUTOVER, reward_ids=legacy)
    written = write_rewards({
        "masterreward": (res.catalog, export_columns("masterreward", res.catalog.columns)),
        "earnreward": (res.attributions, export_columns("earnreward", res.attributions.columns)),
        "burnreward": (res.burns, export_columns("burnreward", res.burns.columns)),
    }, directory=tmp_path, universe="demo", subsection="main", day=DAY)
    assert [p.name for p in written] == ["demo_masterreward_main_20190214.csv", "demo_earnreward_main_20190215.csv",
                                         "demo_burnreward_main_20190216.csv"]
    # reward_id is written as read (Example 2's legacy ids), so the same mapping applies again
    again = validate_all(written, CARDS, cutover=CUTOVER, reward_ids=legacy)
    assert again.rejects.empty
    assert again.attributions["attribution_id"].tolist() == res.attributions["attribution_id"].tolist()
    assert again.attribution_state["state"].tolist() == res.attribution_state["state"].tolist()


def test_split_at_a_tiny_limit_gives_consecutive_days(tmp_path: Path) -> None:
    frame = burns_frame(5)
    cols = ["card_code", "context", "burn_date", "attribution_id"]
    paths = write_scope(frame, scope="burnreward", columns=cols, directory=tmp_path, universe="demo",
                        subsection="main", day=date(2019, 2, 27), max_objects=2)
    assert [p.name for p in paths] == ["demo_burnreward_main_20190227.csv", "demo_burnreward_main_20190228.csv",
                                       "demo_burnreward_main_20190301.csv"]
    parts = [read_scope_file(p, max_objects=2).rows for p in paths]
    assert [len(p) for p in parts] == [2, 2, 1]
    assert pd.concat(parts)["attribution_id"].tolist() == frame["attribution_id"].tolist()


def test_write_rewards_chains_days_across_scopes_after_splits(tmp_path: Path) -> None:
    cols = ["card_code", "attribution_id", "burn_date"]
    earn = pd.DataFrame({c: ["x"] * 3 for c in ["reward_id", "card_code", "attribution_id", "earn_date",
                                                 "validity_start_date", "validity_end_date"]})
    written = write_rewards({"burnreward": (burns_frame(1), cols),
                             "earnreward": (earn, list(earn.columns))},
                            directory=tmp_path, universe="demo", subsection="main", day=DAY, max_objects=2)
    assert [p.name for p in written] == ["demo_earnreward_main_20190214.csv", "demo_earnreward_main_20190215.csv",
                                         "demo_burnreward_main_20190216.csv"]
    names = sorted((parse_splio_name(p) for p in written), key=lambda n: n.date)
    assert [n.scope for n in names] == ["earnreward", "earnreward", "burnreward"]  # date order = scope order


def test_empty_frame_writes_nothing(tmp_path: Path) -> None:
    assert write_scope(burns_frame(0), scope="burnreward", columns=["card_code", "attribution_id"],
                       directory=tmp_path, universe="demo", subsection="main", day=DAY) == []
    assert split_frame(burns_frame(0), 10) == []


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="200,000"):
        split_frame(burns_frame(1), MAX_OBJECTS + 1)
    with pytest.raises(UsageError, match="columns missing"):
        render_splio(burns_frame(1), ["card_code", "store_id"])
    with pytest.raises(UsageError, match="unknown Splio scope"):
        write_rewards({"coupons": (burns_frame(1), ["card_code"])}, directory=tmp_path, universe="demo",
                      subsection="main", day=DAY)
    kw = dict(scope="burnreward", columns=["card_code", "attribution_id"], directory=tmp_path, universe="demo",
              subsection="main", day=DAY)
    write_scope(burns_frame(1), **kw)
    with pytest.raises(UsageError, match="already exists"):
        write_scope(burns_frame(1), **kw)
