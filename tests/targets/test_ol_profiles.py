"""The target profiles: one rule table each, printed in docs/targets.md, every rule with its source."""

from __future__ import annotations

import dataclasses
import re

import pytest

from loyalty_toolkit.config import OPENLOYALTY_PROFILES, load_config
from loyalty_toolkit.errors import ConfigError
from loyalty_toolkit.model import project_root
from loyalty_toolkit.targets import ol_profiles
from loyalty_toolkit.targets.ol_profiles import PROFILES, Profile, profile, profile_of, render_markdown

MEMBERS = "guest_id,first_name,last_name,email\nG1,Ann,Lee,a@x.fr\n"
BASE = """migration:
  name: t
  cutover: "2026-06-30T23:59:59+00:00"
sources:
  members:
    path: legacy/members.csv
"""


def test_the_config_knows_exactly_the_profiles_the_package_holds():
    assert set(OPENLOYALTY_PROFILES) == set(PROFILES)


def test_docs_targets_prints_every_rule_of_both_profiles():
    page = (project_root() / "docs" / "targets.md").read_text(encoding="utf-8")
    assert render_markdown() in page
    for rules in PROFILES.values():
        for rule in rules:
            assert f"| {rule.rule_id} |" in page


@pytest.mark.parametrize("rule", PROFILES["oss-3"], ids=lambda r: r.rule_id)
def test_every_oss_rule_names_the_real_file_and_line(rule):
    assert re.search(r"\.(php|js)(:\d+| \()", rule.source), rule.source


@pytest.mark.parametrize("rule", PROFILES["hosted"], ids=lambda r: r.rule_id)
def test_every_hosted_rule_names_a_documentation_page_or_the_code_it_keeps(rule):
    assert "help.openloyalty.io" in rule.source or ".php:" in rule.source


@pytest.mark.parametrize("name", list(PROFILES))
def test_each_profile_gives_the_writers_their_facts(name):
    p = profile(name)
    assert p.upload_limit_bytes() == {"hosted": 100_000_000, "oss-3": 16_000_000}[name]
    assert p.coupon_separator() == {"hosted": "\n", "oss-3": ";"}[name]
    assert p.transfer_formats() == {"hosted": ("json", "xml"), "oss-3": ("xml",)}[name]
    assert [r.element for r in p.ignored()] == {"hosted": [], "oss-3": ["expiry", "lock", "registeredOn"]}[name]
    assert p.member_rules()[-3:] == tuple(r for r in p.rules if r.kind == "unique")


def test_an_unknown_profile_is_a_config_error_with_line_and_column(write_config):
    text = BASE + "targets:\n  openloyalty:\n    profile: oss-4\n"
    with pytest.raises(ConfigError) as err:
        load_config(write_config(text, {"legacy/members.csv": MEMBERS}))
    e = err.value
    assert (e.file, e.line, e.column, e.field, e.exit_code) == ("migration.yml", 9, 14, "targets.openloyalty.profile", 2)
    assert "unknown target profile 'oss-4'" in e.one_line()


def test_a_rule_table_lacking_what_a_writer_needs_is_a_config_error_naming_the_profile_line(write_config, monkeypatch):
    text = BASE + "targets:\n  openloyalty:\n    profile: oss-3\n"
    cfg = load_config(write_config(text, {"legacy/members.csv": MEMBERS}))
    assert profile_of(cfg).upload_limit_bytes() == 16_000_000
    lacking = tuple(r for r in PROFILES["oss-3"] if r.kind != "upload_limit")
    monkeypatch.setitem(ol_profiles.PROFILES, "oss-3", lacking)
    with pytest.raises(ConfigError) as err:
        profile_of(cfg).upload_limit_bytes()
    assert (err.value.file, err.value.line, err.value.column) == ("migration.yml", 9, 14)
    assert "has no upload_limit rule" in err.value.one_line()


def test_a_profile_is_plain_data():
    p = profile("oss-3")
    assert isinstance(p, Profile) and all(dataclasses.is_dataclass(r) for r in p.rules)
