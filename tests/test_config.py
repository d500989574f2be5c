import re
from pathlib import Path

import pytest

from loyalty_toolkit.config import load_config
from loyalty_toolkit.errors import ConfigError

MEMBERS = "guest_id,first_name,last_name,email\nG1,Ann,Lee,a@x.fr\n"
BASE = """
migration:
  name: t
  cutover: "2026-06-30T23:59:59+00:00"
sources:
  members:
    path: legacy/members.csv
"""


def test_valid_config_resolves_paths_relative_to_the_file(write_config):
    cfg = load_config(write_config(BASE, {"legacy/members.csv": MEMBERS}))
    assert cfg.sources.members.path.is_absolute()
    assert cfg.sources.members.path.name == "members.csv"
    assert cfg.output_root() == cfg.root / "runs"
    assert cfg.subset.fraction == 1.0
    assert cfg.sources.members.column_map()["legacy_id"] == "guest_id"


@pytest.mark.parametrize("text, field, words", [
    (BASE.replace("legacy/members.csv", "legacy/guests.csv"), "sources.members.path", "no such file: legacy/guests.csv"),
    (BASE + "subset:\n  fraction: 0\n", "subset.fraction", "greater than 0"),
    (BASE + "subset:\n  fracton: 0.5\n", "subset.fracton", "unknown field"),
    (BASE.replace('cutover: "2026-06-30T23:59:59+00:00"', 'cutover: "2026-06-30T23:59:59"'), "migration.cutover",
     "UTC offset"),
    (BASE.replace("  name: t\n", ""), "migration.name", "required field is missing"),
    (BASE + "    timezone: Europe/Pariss\n", "sources.members.timezone", "unknown IANA timezone"),
    (BASE + "    delimiter: ':'\n", "sources.members.delimiter", "must be auto"),
    (BASE + "    columns:\n      emial: mail\n", "sources.members.columns", "unknown member field"),
    (BASE + "  reward_master_export:\n    rehearsal: false\n", "sources.reward_master_export",
     "set either rehearsal: true or path"),
    (BASE + "  reward_master_export:\n    rehearsal: true\n    columns:\n      id: Id\n",
     "sources.reward_master_export.columns", "unknown master reward export field"),
    (BASE + "rewards:\n  import_date: '2026-13-01'\n", "rewards.import_date", "date"),
])
def test_errors_name_the_file_and_the_field(write_config, text, field, words):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(text, {"legacy/members.csv": MEMBERS}))
    line = err.value.one_line()
    # issue #17: the line and column of the offending field, from the YAML loader's marks
    assert re.match(rf"migration\.yml:\d+: column \d+: {re.escape(field)}: ", line), line
    assert words in line
    assert "\n" not in line


def test_yaml_syntax_error_names_line_and_column(write_config):
    with pytest.raises(ConfigError) as err:
        load_config(write_config("migration:\n  name: [unclosed\n", {}))
    assert err.value.file == "migration.yml" and err.value.line is not None


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yml")


def test_fingerprint_changes_with_parameters(write_config):
    a = load_config(write_config(BASE, {"legacy/members.csv": MEMBERS}))
    b = load_config(write_config(BASE + "subset:\n  fraction: 0.5\n"))
    assert a.fingerprint() != b.fingerprint()


def test_template_config_is_valid(small_program: Path):
    cfg = load_config(small_program)
    assert cfg.sources.rewards is not None and len(cfg.sources.rewards.files) == 3
    assert set(cfg.input_files()) >= {"members", "ledger", "opening_balances"}


@pytest.mark.parametrize("day", ["2026-06-30", "2026-06-29"])
def test_an_import_day_before_the_cutover_is_one_line_with_line_and_column(write_config, day):
    # the cutover 2026-06-30 23:59:59 UTC is 2026-07-01 00:59:59 in Splio's GMT+1
    text = BASE + f"rewards:\n  historical: false\n  import_date: {day}\n"
    with pytest.raises(ConfigError) as err:
        load_config(write_config(text, {"legacy/members.csv": MEMBERS}))
    e = err.value
    assert (e.file, e.line, e.column, e.field, e.exit_code) == ("migration.yml", 10, 16, "rewards.import_date", 2)
    assert e.one_line().startswith(f"migration.yml:10: column 16: rewards.import_date: import day {day} is before")
    assert "2026-07-01 in Splio's timezone" in e.one_line()


def test_the_import_day_may_be_the_cutovers_day_in_splio_time_or_later(write_config):
    for day in ("2026-07-01", "2026-07-15"):
        cfg = load_config(write_config(BASE + f"rewards:\n  import_date: '{day}'\n", {"legacy/members.csv": MEMBERS}))
        assert cfg.rewards.import_date.isoformat() == day
    cfg = load_config(write_config(BASE, {"legacy/members.csv": MEMBERS}))
    assert cfg.rewards.import_date is None and cfg.rewards.historical is False


def test_a_date_yaml_cannot_read_is_a_config_error_not_a_traceback(write_config):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(BASE + "rewards:\n  import_date: 2026-13-01\n", {"legacy/members.csv": MEMBERS}))
    assert err.value.file == "migration.yml" and "month must be in 1..12" in err.value.one_line()


@pytest.mark.parametrize("extra, transfers, rewards", [
    ("", False, False),
    ("  ledger:\n    path: legacy/ledger.csv\n", True, False),
    ("  opening_balances:\n    path: legacy/ob.csv\n", True, False),
    ("  rewards:\n    files: [legacy/demo_earnreward_main_20260630.csv]\n", False, True),
    ("  rewards:\n    files: []\n", False, False),
])
def test_the_stage_plan_follows_the_sources(write_config, extra, transfers, rewards):
    files = {"legacy/members.csv": MEMBERS, "legacy/ledger.csv": "x\n", "legacy/ob.csv": "x\n",
             "legacy/demo_earnreward_main_20260630.csv": "x\n"}
    plan = load_config(write_config(BASE + extra, files)).stage_plan()
    assert list(plan) == ["subset", "members", "mapping", "transfers", "rewards", "report", "verify"]
    assert {s for s, why in plan.items() if why is None} == {"subset", "members", "mapping", "report"} | (
        {"transfers", "verify"} if transfers else set()) | ({"rewards"} if rewards else set())
    assert all(why for s, why in plan.items() if s in ("transfers", "rewards") and why is not None)


def test_each_phone_source_has_its_own_region_defaulting_to_the_members(write_config):
    files = {"legacy/members.csv": MEMBERS, "legacy/ob.csv": "x\n"}
    cfg = load_config(write_config(BASE + "  opening_balances:\n    path: legacy/ob.csv\n    default_region: VN\n"
                                   "  target_members:\n    rehearsal: true\n", files))
    assert (cfg.phone_region("members"), cfg.phone_region("opening_balances"), cfg.phone_region("target_members")) \
        == ("FR", "VN", "FR")


@pytest.mark.parametrize("text, where", [
    (BASE.replace("legacy/members.csv", "legacy/guests.csv"), (7, 11)),
    (BASE + "subset:\n  fracton: 0.5\n", (9, 3)),           # an unknown field: its key
    (BASE + "    encoding: rot13\n", (8, 15)),
    (BASE.replace("  name: t\n", ""), (3, 3)),               # a missing field: the mapping it belongs to
])
def test_config_errors_point_at_the_line_and_column(write_config, text, where):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(text, {"legacy/members.csv": MEMBERS}))
    assert (err.value.line, err.value.column) == where, err.value.one_line()


def test_a_date_that_does_not_exist_is_named_by_its_line(write_config):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(BASE + "rewards:\n  import_date: 2026-13-01\n", {"legacy/members.csv": MEMBERS}))
    assert (err.value.line, err.value.column) == (9, 16) and "month must be in 1..12" in err.value.message


def test_yaml_nested_thousands_deep_is_a_one_line_error(write_config):
    with pytest.raises(ConfigError) as err:
        load_config(write_config("migration: " + "[" * 5000 + "]" * 5000 + "\n", {}))
    assert err.value.line == 1 and "nested too deeply" in err.value.one_line()
