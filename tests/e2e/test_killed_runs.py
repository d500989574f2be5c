"""End to end: a run killed (SIGKILL, whole process tree) at points of stages 03 and 04, on the
first run and on re-runs of passed stages, leaves a record that never contradicts the database
(issue #17). The small program of ``tests/fixtures/programs/`` with members, ledger, opening
balances and rewards, through the real CLI, kernels, spool writer and SQLite.

Kill points come from ``loyalty_toolkit/checkpoints.py``: the process that reaches
``LOYALTY_MIGRATE_PAUSE_AT`` writes ``LOYALTY_MIGRATE_PAUSE_FILE`` and sleeps; the test then
stops the CLI's whole process tree (kernels run in sessions of their own, so the tree is walked
through /proc, every process stopped, then killed). See docs/reliability-runs.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loyalty_toolkit.checkpoints import PAUSE_AT, PAUSE_FILE
from loyalty_toolkit.model import notebook_name

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "loyalty-migrate")
PROGRAMS = Path(__file__).parent.parent / "fixtures" / "programs"
RUN = "k"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The fixture programs' files, and a config with every source (points_only.yml + rewards)."""
    work = tmp_path_factory.mktemp("killed")
    shutil.copytree(PROGRAMS, work, dirs_exist_ok=True)
    rewards = (work / "rewards_only.yml").read_text(encoding="utf-8")
    text = (work / "points_only.yml").read_text(encoding="utf-8")
    text += rewards[rewards.index("  rewards:\n"):]
    (work / "full.yml").write_text(text, encoding="utf-8")
    return work


def _cli(ws: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (PAUSE_AT, PAUSE_FILE)}
    return subprocess.run([CLI, *args], cwd=ws, capture_output=True, text=True, timeout=900, env=env)


def _tree(root: int) -> set[int]:
    """``root`` and every process descended from it (through /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo += parents.get(pid, [])
    return out


def _kill_tree(root: int) -> int:
    """SIGSTOP the tree until no new process appears (stopped processes cannot fork), then SIGKILL
    all of it. Returns how many processes were killed."""
    stopped: set[int] = set()
    while (tree := _tree(root)) - stopped:
        for pid in tree - stopped:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        stopped |= tree
    for pid in stopped:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(stopped)


def _run_killed_at(ws: Path, point: str, *args: str) -> str:
    """Start ``run`` with ``args``, wait until it reaches ``point``, kill its process tree; return
    what it had printed on stderr."""
    marker = ws / f"paused-{point.replace(':', '-')}"
    marker.unlink(missing_ok=True)
    env = {**os.environ, PAUSE_AT: point, PAUSE_FILE: str(marker)}
    err = ws / "killed.stderr"
    with open(err, "wb") as stderr:
        proc = subprocess.Popen([CLI, "run", "full.yml", "--run-id", RUN, *args], cwd=ws, env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    deadline = time.monotonic() + 600
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {point}: {err.read_text()}")
        if time.monotonic() > deadline:
            _kill_tree(proc.pid)
            pytest.fail(f"the run never reached {point}")
        time.sleep(0.1)
    killed = _kill_tree(proc.pid)
    # a point inside a stage: the runner and at least the stage's kernel
    assert killed >= (1 if point.endswith(":done") else 2), killed
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return err.read_text()


def _db(run_dir: Path) -> tuple[set[str], set[str]]:
    """The stages ``_stages`` holds and the pending tables left in the database."""
    with sqlite3.connect(run_dir / "staging.db") as db:
        stages = {r[0] for r in db.execute("SELECT stage FROM _stages")}
        pending = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                            "AND name LIKE '\\_pending\\_%' ESCAPE '\\'")}
    return stages, pending


def _status(ws: Path) -> dict[str, str]:
    res = _cli(ws, "status", f"runs/{RUN}")
    assert res.returncode == 0, res.stderr
    rows = {}
    for line in res.stdout.splitlines()[2:]:
        parts = line.split()
        if len(parts) >= 2 and parts[0][:2].isdigit() and parts[0][2] == "_" and "applicable:" not in line:
            rows[parts[0][3:]] = parts[1] if parts[1] != "not" else "not run"
    rows["run"] = res.stdout.splitlines()[0].split(": ", 1)[1]
    rows["text"] = res.stdout
    return rows


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_record(ws: Path, *, committed_unrecorded: str | None = None) -> dict[str, str]:
    """What must hold after every kill and every run: a stage the summary calls passed has its
    ``_stages`` row, its record and every import file that record lists (same sha256); a stage it
    does not call passed has no ``_stages`` row (except ``committed_unrecorded``, killed between
    its commit and its record, which ``status`` must then name) and no file in ``output/``."""
    run_dir = ws / "runs" / RUN
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    committed, _ = _db(run_dir)
    status = _status(ws)
    listed = set()
    for s in summary["stages"]:
        name, stem = s["name"], notebook_name(s["name"])
        if s["status"] == "passed":
            assert status[name] == "passed"
            assert name in committed, f"{stem} passed in the record, not in the database"
            rec = json.loads((run_dir / "stages" / f"{stem}.json").read_text(encoding="utf-8"))
            assert rec["status"] == "passed"
            for rel, sha in rec["outputs"].items():
                if rel.startswith("output/"):
                    listed.add(rel)
                    assert _sha(run_dir / rel) == sha, f"{rel} is not the file {stem} recorded"
        else:
            assert status[name] != "passed"
            if name == committed_unrecorded:
                assert name in committed and f"{stem} committed its tables" in status["text"]
            else:
                assert name not in committed, f"{stem} is {s['status']} in the record but committed in the database"
    page = (run_dir / "index.html").read_text(encoding="utf-8")
    if summary["status"] == "running":  # the page a reviewer opens does not say passed either
        assert "Run under way, or interrupted" in page and "All stages passed" not in page
    if committed_unrecorded is None:
        on_disk = {p.relative_to(run_dir).as_posix() for p in (run_dir / "output").rglob("*") if p.is_file()}
        assert on_disk <= listed, f"files no passed stage vouches for: {sorted(on_disk - listed)}"
    return status


def _no_leftovers(run_dir: Path) -> None:
    assert _db(run_dir)[1] == set(), "pending tables left"
    assert not (run_dir / ".staging-spool").exists() or not any((run_dir / ".staging-spool").iterdir())
    assert not (run_dir / ".pending").exists() or not any((run_dir / ".pending").iterdir())
    assert not list((run_dir / "stages").glob("*.pending"))
    assert not (run_dir / ".run.lock.json").exists(), "a run that ended left its holder file"


def test_a_run_killed_anywhere_in_stages_03_and_04_never_contradicts_its_database(workspace):
    ws, run_dir = workspace, workspace / "runs" / RUN

    # 1. first run, killed in stage 03 while its spool writer has work: nothing of 03 committed
    _run_killed_at(ws, "transfers:spooled")
    status = _check_record(ws)
    assert status["run"].startswith("interrupted") and status["transfers"] == "interrupted"
    assert [status[s] for s in ("subset", "members", "mapping", "rewards", "report")] == \
        ["passed"] * 3 + ["not run"] * 2
    committed, pending = _db(run_dir)
    assert committed == {"subset", "members", "mapping"}
    assert pending or (run_dir / ".staging-spool" / "transfers").is_dir(), "the kill left the stage's pending work"
    refused = _cli(ws, "run", "full.yml", "--run-id", RUN, "--stages", "rewards")
    assert refused.returncode == 2 and "needs stage transfers to have passed" in refused.stderr
    assert "(it is interrupted)" in refused.stderr
    # even a refused run takes the lock first, so it is the one that cleans up, saying so
    said = refused.stderr
    assert "note: stale lock: pid" in said and "is no longer running; taking the run dir over" in said
    assert ("note: removed pending table _pending_transfers_" in said
            or "note: removed spool folder .staging-spool/transfers" in said), said
    _no_leftovers(run_dir)

    # 2. killed in stage 04 (its first run) after its commit, before its files and record
    _run_killed_at(ws, "rewards:committed", "--stages", "transfers,rewards,report")
    status = _check_record(ws, committed_unrecorded="rewards")
    assert status["transfers"] == "passed" and status["rewards"] == "interrupted" and status["report"] == "not run"
    assert not list((run_dir / "output" / "splio").glob("*")) if (run_dir / "output" / "splio").exists() else True

    # 3. a re-run of the passed stage 03 (the case), killed before its commit
    record03 = json.loads((run_dir / "stages" / "03_transfers.json").read_text(encoding="utf-8"))
    files03 = [run_dir / rel for rel in record03["outputs"] if rel.startswith("output/")]
    assert len(files03) >= 2 and all(f.is_file() for f in files03)
    said = _run_killed_at(ws, "transfers:recorded", "--stages", "transfers")
    assert "note: rolled back stage 04_rewards: committed to the database by an interrupted run" in said, said
    status = _check_record(ws)
    assert status["transfers"] == "interrupted" and _db(run_dir)[0] == {"subset", "members", "mapping"}
    assert not (run_dir / "stages" / "03_transfers.json").exists()
    assert not [f for f in files03 if f.exists()], "a stage under way has no import file in output/"
    refused = _cli(ws, "run", "full.yml", "--run-id", RUN, "--stages", "rewards")
    assert refused.returncode == 2 and "needs stage transfers" in refused.stderr
    assert "note: removed unpublished stage record stages/03_transfers.json.pending" in refused.stderr

    # 4. killed after stage 03's import files went out, before its record did
    _run_killed_at(ws, "transfers:published", "--stages", "transfers,rewards,report")
    status = _check_record(ws, committed_unrecorded="transfers")
    assert status["transfers"] == "interrupted"

    # 5. the whole run again: cleans, rolls back, passes
    # (stage 06 verify, #13, follows the report: a re-run of stage 03 makes it stale too)
    done = _cli(ws, "run", "full.yml", "--run-id", RUN, "--stages", "transfers,rewards,report,verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note: rolled back stage 03_transfers" in done.stderr
    status = _check_record(ws)
    assert status["run"] == "passed" and _db(run_dir)[0] == {"subset", "members", "mapping", "transfers",
                                                              "rewards", "report", "verify"}
    _no_leftovers(run_dir)

    # 6. a re-run of the passed stage 04, killed before its commit; then after the runner's
    # last step of it (the summary not yet rewritten)
    _run_killed_at(ws, "rewards:recorded", "--stages", "rewards")
    status = _check_record(ws)
    assert status["transfers"] == "passed" and status["rewards"] == "interrupted" and status["report"] == "skipped"
    assert "rewards" not in _db(run_dir)[0] and "report" not in _db(run_dir)[0]
    refused = _cli(ws, "run", "full.yml", "--run-id", RUN, "--stages", "report")
    assert refused.returncode == 2 and "needs stage rewards" in refused.stderr
    _run_killed_at(ws, "rewards:done", "--stages", "rewards")
    status = _check_record(ws, committed_unrecorded="rewards")
    assert status["rewards"] == "interrupted"

    # 7. and once more to the end
    done = _cli(ws, "run", "full.yml", "--run-id", RUN, "--stages", "rewards,report,verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _check_record(ws)["run"] == "passed"
    _no_leftovers(run_dir)
