"""Bad input through the real CLI: one line naming file, line and column; exit code 2; no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "loyalty-migrate")
HEADER = "guest_id,first_name,last_name,email,mobile_phone,card_number\n"
CONFIG = """
migration:
  name: bad
  cutover: "2026-06-30T23:59:59+00:00"
sources:
  members:
    path: {path}
"""

CASES = {
    "empty-file": (b"", "members.csv:1: file is empty"),
    "header-only": (HEADER.encode(), "members.csv: no data rows"),
    "undecodable-bytes": ((HEADER + "G1,Ann,Lee,a@x.fr,0612345678,1\nG2,B\x9d,Lee,b@x.fr,0612345679,2\n").encode("latin-1"),
                          "members.csv:3: column"),
    "missing-mapped-column": (b"guest_id,first_name\nG1,Ann\n", None),
    "ragged-row": ((HEADER + "G1,Ann,Lee,a@x.fr,0612345678,1\nG2,Bob,Lee\n").encode(), "members.csv:3: expected 6 fields, found 3"),
}


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_member_file(tmp_path, case, command):
    content, expected = CASES[case]
    (tmp_path / "members.csv").write_bytes(content)
    cfg_text = CONFIG.format(path="members.csv")
    if case == "missing-mapped-column":
        cfg_text += "    columns:\n      email: email\n"
        expected = "members.csv:1: column email: mapped column missing from header"
    (tmp_path / "migration.yml").write_text(cfg_text)
    res = subprocess.run([CLI, command, "migration.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in res.stderr
    assert expected in err[0], err[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "no stage ran"


def test_config_pointing_nowhere(tmp_path):
    (tmp_path / "migration.yml").write_text(CONFIG.format(path="legacy/guests.csv"))
    res = subprocess.run([CLI, "run", "migration.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert res.stderr.strip() == "error: migration.yml:7: column 11: sources.members.path: no such file: legacy/guests.csv"


def test_missing_config_file(tmp_path):
    res = subprocess.run([CLI, "validate", "nope.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and res.stderr.strip() == "error: nope.yml: no such config file"


def test_an_import_day_before_the_cutover_is_refused_before_any_stage(tmp_path):
    (tmp_path / "members.csv").write_text(HEADER + "G1,Ann,Lee,a@x.fr,0612345678,1\n", encoding="utf-8")
    text = CONFIG.format(path="members.csv") + "rewards:\n  import_date: 2026-06-30\n"
    (tmp_path / "migration.yml").write_text(text, encoding="utf-8")
    for command in ("validate", "run"):
        res = subprocess.run([CLI, command, "migration.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert res.returncode == 2, res.stdout + res.stderr
        err = res.stderr.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in res.stderr
        assert err[0].startswith("error: migration.yml:9: column 16: rewards.import_date: import day 2026-06-30 is "
                                 "before the cutover"), err[0]
        assert not (tmp_path / "runs").exists()


# -- partial programs (issue #12): refused before any stage runs, or accepted as zero rows ------

PROGRAMS = Path(__file__).parent.parent / "fixtures" / "programs"
TARGET = "  target_members:\n    rehearsal: true\n"


def _program(tmp_path: Path, extra: str, *, target: bool = True, files: dict[str, bytes] | None = None) -> None:
    import shutil

    shutil.copytree(PROGRAMS / "legacy", tmp_path / "legacy")
    for rel, content in (files or {}).items():
        (tmp_path / rel).write_bytes(content)
    (tmp_path / "migration.yml").write_text(CONFIG.format(path="legacy/members.csv") + (TARGET if target else "")
                                            + extra)


CASES_PARTIAL = {
    "members-only-without-target": ("", False, None,
                                    "migration.yml: sources.target_members: stage 02 (mapping) always runs and needs it"),
    "reward-file-missing": ("  rewards:\n    files:\n      - legacy/rewards/demo_earnreward_main_20990101.csv\n",
                            True, None, "error: migration.yml:12: column 9: sources.rewards.files.0: no such file: "
                                        "legacy/rewards/demo_earnreward_main_20990101.csv"),
    "empty-ledger-file": ("  ledger:\n    path: legacy/points_liability.csv\n", True,
                          {"legacy/points_liability.csv": b""}, "points_liability.csv:1: file is empty"),
    "empty-opening-file": ("  opening_balances:\n    path: legacy/opening_balances.csv\n", True,
                           {"legacy/opening_balances.csv": b""}, "opening_balances.csv:1: file is empty"),
}


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", sorted(CASES_PARTIAL))
def test_partial_program_bad_input(tmp_path, case, command):
    extra, target, files, expected = CASES_PARTIAL[case]
    _program(tmp_path, extra, target=target, files=files)
    res = subprocess.run([CLI, command, "migration.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in res.stderr
    assert expected in err[0], err[0]
    assert not (tmp_path / "runs").exists(), "no stage ran"


def test_header_only_ledger_opening_and_splio_files_are_zero_rows(tmp_path):
    header = {p: (PROGRAMS / p).read_bytes().splitlines(keepends=True)[0] for p in (
        "legacy/points_liability.csv", "legacy/opening_balances.csv", "legacy/rewards/demo_earnreward_main_20260630.csv")}
    _program(tmp_path, "  ledger:\n    path: legacy/points_liability.csv\n  opening_balances:\n"
             "    path: legacy/opening_balances.csv\n  rewards:\n    files:\n"
             "      - legacy/rewards/demo_masterreward_main_20260630.csv\n"
             "      - legacy/rewards/demo_earnreward_main_20260630.csv\n", files=header)
    res = subprocess.run([CLI, "validate", "migration.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = {line.split()[0]: line for line in res.stdout.splitlines()}
    for name in ("ledger", "opening_balances", "rewards/demo_earnreward_main_20260630.csv"):
        assert rows[name].split()[-2:] == ["0", "ok"], rows[name]
    assert "03_transfers  runs            sources.ledger and sources.opening_balances" in res.stdout
