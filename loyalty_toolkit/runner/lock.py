"""One writer per run dir: the exclusive lock a run holds from its first write to its last.

The lock itself is an OS lock (``filelock``: flock on ``RUN_DIR/.run.lock``), which the kernel
releases when its holder dies, however it dies; who holds it (pid, host, since when, command) is
written next to it in ``RUN_DIR/.run.lock.json`` and removed on a clean exit. So a holder file
found by a process that got the lock is a stale lock: its process died without cleaning up. On
this host that is proven (the pid is not running, or runs but cannot hold the lock we now hold)
and the lock is taken over, saying so; a holder on another host cannot be checked from here and
is refused rather than guessed. See docs/reliability-runs.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable, Iterator

from filelock import FileLock, Timeout

from loyalty_toolkit.errors import UsageError

LOCK_FILE = ".run.lock"          # the OS lock (never deleted: deleting a flock file races)
HOLDER_FILE = ".run.lock.json"   # who holds it; present after a clean exit only if a run died


class RunLocked(UsageError):
    """Another process writes this run dir (or may: a holder on another host): exit 2."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    since: str
    command: str = ""

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host} since {self.since}"


def this_host() -> str:
    return socket.gethostname()


def read_holder(run_dir: Path) -> Holder | None:
    """The holder written in ``run_dir``, or None (no run, or one that ended cleanly)."""
    try:
        data = json.loads((Path(run_dir) / HOLDER_FILE).read_text(encoding="utf-8"))
        return Holder(int(data["pid"]), str(data["host"]), str(data["since"]), str(data.get("command", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    try:  # a killed child its parent has not reaped yet is a zombie: dead for our purpose
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def live_holder(run_dir: Path) -> tuple[Holder | None, bool]:
    """For ``status`` (which never takes the lock): the holder recorded in ``run_dir`` and
    whether it is still running. A holder on another host is assumed alive (it cannot be checked)."""
    holder = read_holder(run_dir)
    if holder is None:
        return None, False
    return holder, holder.host != this_host() or pid_alive(holder.pid)


def _in_use(run_dir: Path) -> RunLocked:
    holder = read_holder(run_dir)
    who = holder.describe() if holder else "another process (which has not written its pid yet)"
    return RunLocked(f"run dir is in use by {who}; wait for that run to end, or use another --run-id",
                     file=str(run_dir))


def refuse_if_held(run_dir: Path) -> None:
    """Fail at once if a run holds ``run_dir``, before the slow checks (preflight counts every
    input's rows) that come before :func:`run_lock`; takes nothing and creates nothing."""
    if not (Path(run_dir) / LOCK_FILE).is_file():
        return
    probe = FileLock(str(Path(run_dir) / LOCK_FILE), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        raise _in_use(Path(run_dir)) from None
    except OSError:
        return  # cannot even open it: run_lock will say so, naming the path
    probe.release()


@contextlib.contextmanager
def run_lock(run_dir: Path, say: Callable[[str], None]) -> Iterator[Holder]:
    """Hold ``run_dir``'s lock for the block; a second writer fails at once (:class:`RunLocked`,
    one line naming the holder). A stale lock is reported through ``say`` and taken over."""
    run_dir = Path(run_dir)
    lock = FileLock(str(run_dir / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise _in_use(run_dir) from None
    try:
        stale = read_holder(run_dir)
        if stale is not None and stale.host != this_host():
            raise RunLocked(f"run dir was locked by {stale.describe()}, which cannot be checked from host "
                            f"{this_host()}; if that run is gone, delete {run_dir / HOLDER_FILE}",
                            file=str(run_dir))
    except BaseException:
        lock.release()
        raise
    try:
        if stale is not None:
            why = ("is no longer running" if not pid_alive(stale.pid)
                   else "is running but no longer holds the lock (its pid was reused)")
            say(f"stale lock: {stale.describe()} {why}; taking the run dir over")
        me = Holder(os.getpid(), this_host(), datetime.now(UTC).isoformat(timespec="seconds"),
                    " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "")
        tmp = run_dir / (HOLDER_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(me), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, run_dir / HOLDER_FILE)
        yield me
    finally:
        with contextlib.suppress(OSError):
            (run_dir / HOLDER_FILE).unlink()
        lock.release()
