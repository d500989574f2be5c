"""What a run was installed with: the lock file's sha256 and the version of every package it pins,
as installed, so a replay months later can name each package that differs (docs/support.md).

``requirements.lock`` (``make lock``) pins every dependency, transitively, with hashes; ``make``
installs exactly it. An install without the lock (a wheel, a conda environment) records the key
packages' versions instead, and says there was no lock.
"""

from __future__ import annotations

import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from loyalty_toolkit.model import project_root
from loyalty_toolkit.stages.context import file_sha256

LOCK_FILE = "requirements.lock"
NOT_INSTALLED = "not installed"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def lock_path() -> Path | None:
    """The checkout's lock file, or None (an install from a wheel has no checkout)."""
    path = project_root() / LOCK_FILE
    return path if path.is_file() else None


def locked_versions(path: Path) -> dict[str, str]:
    """``{package: version}`` for every ``name==version`` line of a lock file."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _PIN.match(line)
        if m:
            pins[_normal(m.group(1))] = m.group(2)
    return pins


def installed_version(name: str) -> str:
    if name == "python":
        return platform.python_version()
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return NOT_INSTALLED


def environment_record(key_packages: tuple[str, ...], lock: Path | None = None) -> dict[str, Any]:
    """The manifest's ``environment``: the lock (name, sha256), the installed version of every
    package it pins (of ``key_packages`` without a lock), and the packages that differ from it."""
    lock = lock if lock is not None else lock_path()
    pins = locked_versions(lock) if lock else {}
    names = sorted(pins) if pins else sorted(_normal(n) for n in key_packages)
    packages = {n: installed_version(n) for n in names}
    return {"lock_file": lock.name if lock else None,
            "lock_sha256": file_sha256(lock) if lock else None,
            "packages": packages,
            "differ_from_lock": [f"{n} {_installed(packages[n])}, {pins[n]} locked"
                                 for n in names if pins and packages[n] != pins[n]]}


def version_warnings(recorded: dict[str, Any] | None, versions: dict[str, str] | None = None) -> list[str]:
    """One line per package whose installed version differs from a run's record (its
    ``environment`` and, for runs recorded before it, its key ``versions``), and one if the lock
    file changed since."""
    recorded = recorded or {}
    was = {_normal(k): v for k, v in (versions or {}).items()}
    was.update(recorded.get("packages") or {})
    lines = [f"{name} {ver} at the run, {_installed(now)} now"
             for name, ver in sorted(was.items()) if (now := installed_version(name)) != ver]
    lock = lock_path()
    now_sha = file_sha256(lock) if lock else None
    if recorded.get("lock_sha256") and now_sha != recorded["lock_sha256"]:
        lines.append(f"{recorded.get('lock_file') or LOCK_FILE} differs from the run's (sha256 "
                     f"{recorded['lock_sha256'][:12]} at the run, {now_sha[:12] if now_sha else 'no lock'} now)")
    return lines


def _installed(version: str) -> str:
    return version if version == NOT_INSTALLED else f"{version} installed"


def _normal(name: str) -> str:
    """Package names compare as pip compares them: case, ``_`` and ``.`` do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()
