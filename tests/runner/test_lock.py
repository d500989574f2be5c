"""One writer per run dir (issue #17): two real processes on one run dir, a stale lock, a holder
on another host, and the CLI refusing a second run at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loyalty_toolkit.runner.lock import HOLDER_FILE, RunLocked, read_holder, run_lock, this_host

CLI = str(Path(sys.executable).parent / "loyalty-migrate")
PROGRAMS = Path(__file__).parent.parent / "fixtures" / "programs"

# A second process that takes the lock, says so on stdout, and holds it until killed.
HOLD = """
import sys, time
from pathlib import Path
from loyalty_toolkit.runner.lock import run_lock
with run_lock(Path(sys.argv[1]), print):
    print("holding", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """A real process holding ``tmp_path/run``'s lock; yields (process, run dir)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    yield proc, run_dir
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_a_second_process_is_refused_at_once_naming_the_holder(holder):
    proc, run_dir = holder
    t0 = time.monotonic()
    with pytest.raises(RunLocked) as err:
        with run_lock(run_dir, print):
            pass
    assert time.monotonic() - t0 < 2, "refused at once, not after a wait"
    since = json.loads((run_dir / HOLDER_FILE).read_text())["since"]
    assert f"run dir is in use by pid {proc.pid} on host {this_host()} since {since}" in err.value.one_line()
    assert err.value.exit_code == 2 and "\n" not in err.value.one_line()
    assert read_holder(run_dir).pid == proc.pid, "the refused one leaves the holder's record alone"


def test_a_lock_whose_process_was_killed_is_reported_and_taken_over(holder):
    proc, run_dir = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    said: list[str] = []
    with run_lock(run_dir, said.append) as me:
        assert me.pid == os.getpid() and read_holder(run_dir) == me
    assert len(said) == 1 and said[0].startswith(f"stale lock: pid {proc.pid} on host {this_host()} since ")
    assert said[0].endswith("is no longer running; taking the run dir over")
    assert not (run_dir / HOLDER_FILE).exists(), "a clean exit removes the holder record"
    with run_lock(run_dir, said.append):  # and the next one finds nothing stale
        pass
    assert len(said) == 1


def test_a_stale_holder_on_another_host_is_refused_not_guessed(tmp_path):
    (tmp_path / HOLDER_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "since": "then"}))
    with pytest.raises(RunLocked) as err:
        with run_lock(tmp_path, print):
            pass
    assert "locked by pid 1 on host elsewhere.example since then, which cannot be checked" in str(err.value)
    assert (tmp_path / HOLDER_FILE).exists(), "another host's record is not ours to delete"


def test_the_cli_refuses_a_second_run_on_a_locked_run_id_with_exit_2(tmp_path):
    import shutil

    shutil.copytree(PROGRAMS, tmp_path, dirs_exist_ok=True)
    run_dir = tmp_path / "runs" / "busy"
    run_dir.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        res = subprocess.run([CLI, "run", "members_only.yml", "--run-id", "busy", "--stages", "subset"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"run dir is in use by pid {proc.pid} on host {this_host()} since" in lines[0]
    assert not (run_dir / "summary.json").exists() and not (run_dir / "manifest.json").exists(), "nothing written"


def test_a_held_run_dir_is_refused_before_the_slow_checks_and_a_free_one_is_untouched(holder, tmp_path):
    from loyalty_toolkit.runner.lock import LOCK_FILE, refuse_if_held

    proc, run_dir = holder
    with pytest.raises(RunLocked, match=f"in use by pid {proc.pid}"):
        refuse_if_held(run_dir)
    fresh = tmp_path / "fresh"
    refuse_if_held(fresh)  # nothing there: nothing created
    assert not fresh.exists()
    proc.kill()
    proc.wait()
    refuse_if_held(run_dir)  # free (a stale holder is run_lock's business): no error, nothing taken
    assert (run_dir / LOCK_FILE).is_file() and read_holder(run_dir).pid == proc.pid
