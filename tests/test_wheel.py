"""The built wheel is the whole tool: installed into a fresh venv, without the checkout, it finds
its notebooks and suites as package data and runs the demo (no network: the dependencies come
from this venv's site-packages)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from loyalty_toolkit.model import project_root

pytestmark = pytest.mark.slow
SOURCES = ("loyalty_toolkit", "notebooks", "expectations", "pyproject.toml", "setup.py", "README.md")


def _run(*args, cwd: Path, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    res = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a clean copy of the sources (no stale build/ of the checkout)."""
    src, dist = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    for name in SOURCES:
        path = project_root() / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", dist, src, cwd=src)
    (whl,) = dist.glob("loyalty_migrate-*.whl")
    return whl


def test_the_wheel_holds_the_notebooks_and_suites(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, pattern in (("notebooks", "*.ipynb"), ("expectations", "*.json")):
        for path in (project_root() / folder).glob(pattern):
            assert f"loyalty_toolkit/{folder}/{path.name}" in names
    assert any(n.startswith("loyalty_toolkit/templates/nbconvert/offline/") for n in names)


def test_installed_from_the_wheel_the_demo_runs_without_the_checkout(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(_run(py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path).stdout.strip())
    # the dependencies: this venv's packages, after the fresh venv's own (where the wheel goes)
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n" + sysconfig.get_path("platlib") + "\n")
    _run(py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel, cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("LOYALTY_MIGRATE_HOME", "PYTHONPATH")}
    # nbconvert's templates are data files of this venv (share/jupyter), not of its site-packages
    env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
    where = _run(py, "-c", "import loyalty_toolkit.model as m; print(m.__file__); print(m.notebooks_dir()); "
                 "print(m.expectations_dir())", cwd=tmp_path, env=env).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where

    res = _run(env_dir / "bin" / "loyalty-migrate", "demo", "--dir", "ws", "--members", "60", cwd=tmp_path, env=env)
    # output is no terminal: one line per stage, as it ends (issue #16), then the index
    stages = [line.split()[:2] for line in res.stdout.splitlines() if re.match(r"\d\d_[a-z]+ ", line)]
    assert stages == [[stem, "passed"] for stem in ("00_subset", "01_members", "02_mapping", "03_transfers",
                                                    "04_rewards", "05_report", "06_verify")], res.stdout
    m = re.search(r"passed: (\S+index\.html)", res.stdout)
    assert m, res.stdout
    run_dir = (tmp_path / m.group(1)).parent
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "passed" and all(s["status"] == "passed" for s in summary["stages"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["environment"]["lock_file"] is None, "no checkout, no lock: the record says so"
    assert set(manifest["notebooks"]) >= {"00_subset.ipynb", "05_report.ipynb"}
