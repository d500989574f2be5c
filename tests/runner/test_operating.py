"""Operating errors are named, run ids are names (issue #17).

The runner's orchestration runs here with its stage execution replaced by a fake that commits
and records a stage as a notebook would (no kernel: ``program`` in conftest.py), so that an OSError can be injected at each
write point of the runner; a real full disk (``/dev/full``), a real file in the way and a real
permission denial (a child process dropped to ``nobody``: tests run as root, which chmod does
not stop) check the same lines without injection.
"""

from __future__ import annotations

import errno
import json
import re
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import loyalty_toolkit.runner as runner
from loyalty_toolkit.errors import LoyaltyError, OperatingError, UsageError
from loyalty_toolkit.runner import record
from loyalty_toolkit.runner.operating import check_run_id, kernel_operating_error



def _enospc(path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


# -- run ids -------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, why", [
    ("../../x", "path separator or '..'"), ("a/b", "path separator"), ("a\\b", "path separator"),
    ("..", "path separator or '..'"), ("", "it is empty"), ("a\x00b", "control character"),
    (".hidden", "not start with '.'"), ("-rf", "not start with '.' or '-'"), ("x" * 129, "at most 128"),
])
def test_a_run_id_that_is_not_a_name_is_refused_in_one_line(bad, why):
    with pytest.raises(UsageError) as err:
        check_run_id(bad)
    line = err.value.one_line()
    assert why in line and "is not a name" in line and "\n" not in line and err.value.exit_code == 2


@pytest.mark.parametrize("good", ["20261205T211604Z", "members_only", "r-1.2", "a..b"])
def test_plain_names_are_run_ids(good):
    assert check_run_id(good) == good


def test_a_path_as_run_id_writes_nothing_outside_output_dir(program):
    with pytest.raises(UsageError, match="is not a name"):
        runner.run(program, run_id="../../escaped")
    assert not (program.parent / "escaped").exists() and not (program.parent.parent / "escaped").exists()
    assert not (program.parent / "runs").exists()


# -- a path that is a file -----------------------------------------------------------------------

def test_an_output_dir_that_is_a_file_is_named_by_validate_and_run(program):
    # the config names it, with the line and column of output_dir (#17's config errors), before any
    # check of the inputs: validate and run refuse it the same way, exit 2
    (program.parent / "runs").write_text("not a folder")
    for check in (lambda: runner.preflight(program), lambda: runner.run(program, run_id="r1")):
        with pytest.raises(LoyaltyError) as err:
            check()
        assert err.value.exit_code == 2
        assert re.fullmatch(rf"{program.name}:\d+: column \d+: migration\.output_dir: {re.escape(str(program.parent / 'runs'))} "
                            r"is a file, not a directory: runs cannot be written in it", err.value.one_line())
    assert not (program.parent / "runs").is_dir()


def test_a_run_dir_that_is_a_file_is_named(program):
    (program.parent / "runs").mkdir()
    (program.parent / "runs" / "r1").write_text("not a folder")
    with pytest.raises(OperatingError, match=r"a file is in the way: run dir .*runs/r1 must be a folder"):
        runner.run(program, run_id="r1")


# -- OSError at each write point: the path named, exit 2, the record written or why not --------

def test_disk_full_while_a_stage_runs_names_the_path_and_writes_the_record(program, monkeypatch, fake_stage_run):
    run_dir = program.parent / "runs" / "r1"

    def full(stage, *a, **k):
        if stage == "mapping":
            raise _enospc(run_dir / "notebooks" / "02_mapping.ipynb")
        return fake_stage_run(stage, *a, **k)

    monkeypatch.setattr(runner, "_run_stage", full)
    with pytest.raises(OperatingError) as err:
        runner.run(program, run_id="r1")
    line = err.value.one_line()
    assert line == (f"disk full: {run_dir / 'notebooks' / '02_mapping.ipynb'} (No space left on device); "
                    f"run record: {run_dir / 'summary.json'}")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["totals"]["failure"].startswith("disk full: ")
    assert [s["status"] for s in summary["stages"]] == ["passed", "passed", "failed", "not_applicable",
                                                        "not_applicable", "skipped", "not_applicable"]
    assert "Run failed:</strong> disk full" in (run_dir / "index.html").read_text()
    assert runner.status(run_dir).splitlines()[0] == "run r1: failed"


@pytest.mark.parametrize("point", ["retire", "final index", "final summary", "manifest"])
def test_an_oserror_at_each_write_point_is_one_line_with_its_path(program, monkeypatch, point):
    run_dir = program.parent / "runs" / "r1"
    if point == "retire":
        monkeypatch.setattr(runner.publish, "retire", lambda rd, stages: (_ for _ in ()).throw(
            PermissionError(errno.EACCES, "Permission denied", str(rd / "staging.db"))))
        expect = f"permission denied: {run_dir / 'staging.db'}; run record: {run_dir / 'summary.json'}"
    elif point == "final index":
        real = record.write_index

        def index(rd, summary, manifest):
            if summary["status"] != "running":
                raise _enospc(rd / "index.html")
            return real(rd, summary, manifest)

        monkeypatch.setattr(record, "write_index", index)
        expect = (f"disk full: {run_dir / 'index.html'} (No space left on device); run record: "
                  f"{run_dir / 'summary.json'} (index.html not rewritten: No space left on device)")
    elif point == "final summary":
        real = record.write_json

        def write_json(path, data):
            if path.name == "summary.json" and data["status"] != "running":
                raise _enospc(path)
            return real(path, data)

        monkeypatch.setattr(record, "write_json", write_json)
        expect = (f"disk full: {run_dir / 'summary.json'} (No space left on device); the run record could not "
                  f"be written (No space left on device: {run_dir / 'summary.json'})")
    else:
        monkeypatch.setattr(record, "write_manifest", lambda rd, **k: (_ for _ in ()).throw(
            _enospc(rd / "manifest.json")))
        expect = (f"disk full: {run_dir / 'manifest.json'} (No space left on device); no run record written: "
                  "the run stopped before its first record")
    with pytest.raises(OperatingError) as err:
        runner.run(program, run_id="r1")
    assert err.value.one_line() == expect and err.value.exit_code == 2
    if point in ("retire", "final index"):
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "failed" and summary["totals"]["failure"] == expect.split("; run record")[0]
    assert not (run_dir / ".run.lock.json").exists(), "the lock is released on the way out"


def test_a_real_full_disk_is_named(program):
    """``/dev/full`` answers every write with ENOSPC: the run's index.html points there."""
    run_dir = program.parent / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "index.html").symlink_to("/dev/full")
    with pytest.raises(OperatingError) as err:
        runner.run(program, run_id="r1", stages="subset")
    assert err.value.one_line().startswith(f"disk full: {run_dir / 'index.html'} (No space left on device); "
                                           f"run record: {run_dir / 'summary.json'}")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


def _run_as_nobody(cfg: Path) -> str:
    """``run --stages subset`` in a forked child that dropped to user ``nobody`` (root ignores
    file modes); returns ``exit code|one line`` of the error it met. Everything the run imports
    is imported by the caller first, while root can still read it."""
    runner.preflight(cfg)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                runner.run(cfg, run_id="r1", stages="subset")
                said = "no error"
            except LoyaltyError as exc:
                said = f"{exc.exit_code}|{exc.one_line()}"
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                said = f"other|{type(exc).__name__}: {exc}"
            os.write(write, said.encode())
        finally:
            os._exit(0)
    os.close(write)
    said = os.read(read, 10_000).decode()
    os.waitpid(pid, 0)
    return said


def test_a_real_permission_denial_is_named(program):
    """Root ignores file modes, so a forked child drops to ``nobody`` before it runs; the
    workspace is under /tmp (pytest's own folder is root-only)."""
    work = Path(tempfile.mkdtemp(prefix="lm-perm-", dir="/tmp"))
    try:
        shutil.copytree(program.parent, work, dirs_exist_ok=True)
        for p in [work, *work.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        (work / "runs").mkdir(mode=0o555)
        (work / "runs").chmod(0o555)
        cfg = work / "members_only.yml"
        said = _run_as_nobody(cfg)
        assert said == (f"2|permission denied: {work / 'runs' / 'r1'}; no run record written: "
                        "the run dir could not be created")
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- a stage's kernel stopped by the machine -----------------------------------------------------

@pytest.mark.parametrize("name, message, expect", [
    ("OSError", str(_enospc("/r/output/openloyalty/members.xml")),
     "disk full: /r/output/openloyalty/members.xml (No space left on device)"),
    ("PermissionError", str(PermissionError(errno.EACCES, "Permission denied", "/r/rejects/members.csv")),
     "permission denied: /r/rejects/members.csv"),
    ("NotADirectoryError", str(NotADirectoryError(errno.ENOTDIR, "Not a directory", "/r/rejects/x.csv")),
     "a part of the path is a file, not a folder: /r/rejects/x.csv (Not a directory)"),
    ("LoyaltyError", "/r/staging.db: could not write the staging database: database or disk is full",
     "/r/staging.db: could not write the staging database: database or disk is full"),
    ("InputError", "members.csv:3: bad", None),
    ("GateFailed", "gate failed", None),
])
def test_a_stage_stopped_by_the_machine_is_named_in_plain_words(name, message, expect):
    assert kernel_operating_error(name, message) == expect


def test_a_run_dir_whose_lock_cannot_be_taken_is_named(program):
    """As ``nobody`` (see the test above) in a run dir it may not write: the lock file is named."""
    work = Path(tempfile.mkdtemp(prefix="lm-perm-", dir="/tmp"))
    try:
        shutil.copytree(program.parent, work, dirs_exist_ok=True)
        for p in [work, *work.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        (work / "runs" / "r1").mkdir(parents=True)
        (work / "runs").chmod(0o755)
        (work / "runs" / "r1").chmod(0o555)
        cfg = work / "members_only.yml"
        said = _run_as_nobody(cfg)
        assert said == (f"2|permission denied: {work / 'runs' / 'r1' / '.run.lock'}; no run record written: "
                        "the run dir's lock could not be taken")
    finally:
        shutil.rmtree(work, ignore_errors=True)
