"""Set-up agrees with itself: environment.yml and pyproject list the same dependencies, and the
layering contracts hold."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(spec: str) -> str:
    return re.split(r"[<>=!~ \[]", spec, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(s): s.replace(" ", "") for s in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(s): s.replace(" ", "") for s in env["dependencies"] if isinstance(s, str)}
    conda.pop("python"), conda.pop("pip")
    assert conda == wanted


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme


def test_layering_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is installed with the test extra"
    res = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:]


def test_make_installs_exactly_the_lock_for_demo_and_test():
    """`make demo` and `make test` both need the venv stamp, which installs the lock with hashes
    required and then the project without resolving anything else."""
    make = (ROOT / "Makefile").read_text()
    stamp = re.search(r"^\$\(STAMP\): (.*)\n((?:\t.*\n)+)", make, re.M)
    assert stamp and "$(LOCK)" in stamp.group(1)
    recipe = stamp.group(2)
    assert "--require-hashes -r $(LOCK)" in recipe and "--no-deps" in recipe
    assert re.search(r"^LOCK := requirements\.lock$", make, re.M)
    for target in ("demo", "test"):
        assert re.search(rf"^{target}: \$\(STAMP\)", make, re.M)


def test_the_lock_pins_every_dependency_with_hashes():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = (ROOT / "requirements.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.split("\n", 2)[2])
    pins = {}
    for block in blocks:
        m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", block)
        assert m, block[:80]
        assert "--hash=sha256:" in block, f"{m.group(1)} has no hash"
        pins[_name(m.group(1))] = m.group(2)
    wanted = {_name(s) for s in project["dependencies"] + project["optional-dependencies"]["test"]}
    assert wanted <= set(pins), sorted(wanted - set(pins))
    assert len(pins) > len(wanted), "transitive dependencies are pinned too"


def test_make_lab_starts_as_root_too():
    """JupyterLab refuses root without --allow-root; containers and CI run as root."""
    make = shutil.which("make")
    if make is None:
        import pytest
        pytest.skip("make is not installed")
    dry = subprocess.run([make, "-n", "lab"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    (lab,) = [line for line in dry.splitlines() if "jupyter lab" in line]
    assert ("--allow-root" in lab) == (os.getuid() == 0), lab
