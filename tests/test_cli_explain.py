"""``loyalty-migrate explain``: the story on stdout and exit 0; one line on stderr and exit 2 when the
member is ambiguous, unknown, or the run dir is not one."""

from __future__ import annotations

from click.testing import CliRunner

from loyalty_toolkit import cli


def invoke(*args: str):
    return CliRunner().invoke(cli.main, ["explain", *map(str, args)])


def test_a_member_found_prints_the_story_and_exits_0(explain_run):
    res = invoke(explain_run(), "1111222233")
    assert res.exit_code == 0, res.output
    assert res.output.startswith("Member user-a (query '******2233' matched by card)")
    assert "owed 68.5 = transferred 68 + residue 0.5" in res.output


def test_show_pii_unmasks(explain_run):
    res = invoke(explain_run(), "user-a", "--show-pii")
    assert res.exit_code == 0 and "email      Ada.Lovelace@example.com" in res.output


def test_an_ambiguous_member_is_one_line_and_exit_2(explain_run):
    res = invoke(explain_run(), "shared@example.com")
    assert res.exit_code == 2
    assert res.output.splitlines() == ["error: 2 members match 's***@example.com': user-b (email), user-c (email); "
                                       "give one of these legacy ids, or a card number or target id"]


def test_an_unknown_member_is_one_line_and_exit_2(explain_run):
    res = invoke(explain_run(), "G404")
    assert res.exit_code == 2
    assert len(res.output.splitlines()) == 1
    assert res.output.startswith("error: ") and "no member matches 'G404'" in res.output


def test_a_folder_that_is_not_a_run_dir_is_exit_2(tmp_path):
    res = invoke(tmp_path, "user-a")
    assert res.exit_code == 2 and "no manifest.json" in res.output and "Traceback" not in res.output
