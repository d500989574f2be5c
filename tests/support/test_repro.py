"""``repro`` without kernels: refusals on changed inputs, seeding of the replay folder, and the
file, table and figure comparisons on tiny hand-made run dirs (the e2e test replays a real stage)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from loyalty_toolkit.errors import ReproMismatch, UsageError
from loyalty_toolkit.model import notebooks_dir
from loyalty_toolkit.runner.execute import Execution
from loyalty_toolkit.store import StagingStore
from loyalty_toolkit.support import repro as repro_mod
from loyalty_toolkit.support.repro import (
    DIFFERENT,
    IDENTICAL,
    MISSING,
    Comparison,
    ReproResult,
    compare_figures,
    compare_file,
    compare_table,
    _inside,
    first_key_difference,
    repro,
)

PIPELINE = ["subset", "members", "mapping"]
MEMBERS = pd.DataFrame({"legacy_id": ["L1", "L2"], "email": ["a@x.fr", "b@x.fr"], "points": [10, 20]})
XML = "<customers>\n<customer>L1</customer>\n<customer>L2</customer>\n</customers>\n"
REJECTS = "stage,file,line,reason_code\nmembers,m.csv,4,EMAIL_INVALID\n"


def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _commit(rd: Path, stage: str, tables: dict[str, pd.DataFrame]) -> None:
    with StagingStore.for_run(rd) as store:
        store.commit_stage(stage, tables, inputs_fingerprint="i", parameters_fingerprint="p", details={"n": 2})


def _members_record(rd: Path, xml: str = XML, rejects: str | None = REJECTS, seconds: float = 1.5) -> dict:
    outputs = {"output/openloyalty/members_0001.xml": _sha(xml)}
    if rejects is not None:
        outputs["rejects/members.csv"] = _sha(rejects)
    return {"name": "members", "status": "passed", "rows_in": 3, "rows_out": 2, "totals": {"xml_files": 1},
            "gate_report": {"docs_index": f"{rd}/data_docs/01_members/index.html"},
            "compute_seconds": seconds, "peak_rss_mb": 300.0 + seconds, "outputs": outputs}


def _write_members_stage(rd: Path, members: pd.DataFrame = MEMBERS, xml: str = XML, rejects: str | None = REJECTS,
                         seconds: float = 1.5) -> None:
    """What stage 01 leaves in a run dir: its import file, rejects, table, ledger row and JSON."""
    _write(rd / "output" / "openloyalty" / "members_0001.xml", xml)
    if rejects is not None:
        _write(rd / "rejects" / "members.csv", rejects)
    _commit(rd, "members", {"members": members, "member_rejects": pd.DataFrame({"line": [4]})})
    _write(rd / "stages" / "01_members.json", json.dumps(_members_record(rd, xml, rejects, seconds)))


@pytest.fixture
def run_dir(tmp_path, small_program) -> Path:
    """A recorded run of three stages over one legacy file, made by hand (no kernel)."""
    rd = tmp_path / "runs" / "r1"
    source = _write(tmp_path / "legacy" / "members.csv", "id\nL1\nL2\nbad\n")
    frozen = _write(rd / "inputs" / "members" / "members.csv", source.read_text())
    target = _write(rd / "inputs" / "target_members" / "export.csv", "target_id\nT1\n")
    info = {"members": {"source_path": str(source), "frozen_path": "inputs/members/members.csv", "size": 17,
                        "sha256": _sha(frozen.read_bytes()), "source_sha256": _sha(source.read_bytes()),
                        "rows_read": 3, "rows_kept": 3, "encoding": "utf-8", "delimiter": ","},
            "target_members": {"source_path": str(rd / "rehearsal" / "export.csv"),
                               "frozen_path": "inputs/target_members/export.csv", "size": 14,
                               "sha256": _sha(target.read_bytes()), "source_sha256": _sha(target.read_bytes()),
                               "rows_read": 1, "rows_kept": 1, "encoding": "", "delimiter": "", "stage": "mapping"}}
    _write(rd / "inputs" / "inputs.json", json.dumps(info, indent=2, sort_keys=True))
    _commit(rd, "subset", {"inputs": pd.DataFrame({"input": ["members"], "rows_read": [3]})})
    _write(rd / "stages" / "00_subset.json", json.dumps({"name": "subset", "status": "passed", "outputs": {}}))
    _write_members_stage(rd)
    _commit(rd, "mapping", {"member_map": pd.DataFrame({"legacy_id": ["L1"], "target_id": ["T1"]})})
    _write(rd / "stages" / "02_mapping.json", json.dumps({"name": "mapping", "status": "passed", "outputs": {}}))
    manifest = {"run_id": "r1", "config_path": str(small_program), "config_sha256": _sha(small_program.read_bytes()),
                "inputs": {n: {"path": i["source_path"], "frozen_path": i["frozen_path"], "sha256": i["sha256"],
                               "source_sha256": i["source_sha256"]} for n, i in info.items()},
                "pipeline": PIPELINE, "parameters": {"show_pii": False},
                "notebooks": {p.name: _sha(p.read_bytes()) for p in notebooks_dir().glob("*.ipynb")},
                "suites": {}, "versions": {}}
    _write(rd / "manifest.json", json.dumps(manifest))
    _write(rd / "summary.json", json.dumps({"run_id": "r1", "stages": [{"name": s, "status": "passed"}
                                                                        for s in PIPELINE]}))
    return rd


@pytest.fixture
def replay_with(monkeypatch):
    """Replace the kernel by a function that plays stage 01 in the replay folder; record what it saw."""
    seen: dict = {}

    def install(play):
        def fake_execute(source, output, parameters, *, cwd, timeout_seconds):
            new = Path(parameters["run_dir"])
            seen.update(source=Path(source).name, params=parameters, cwd=cwd)
            with StagingStore.for_run(new) as store:
                seen["tables"] = set(store.table_names())
                seen["ledger"] = set(store.completed_stages())
            seen["inputs"] = json.loads((new / "inputs" / "inputs.json").read_text())
            seen["frozen"] = (new / "inputs" / "members" / "members.csv").read_text()
            play(new)
            return Execution(True)

        monkeypatch.setattr(repro_mod, "execute_notebook", fake_execute)
        return seen

    return install


# -- refusals ----------------------------------------------------------------------------------------

def test_a_changed_frozen_input_is_refused_naming_the_file_and_both_hashes(run_dir, replay_with):
    seen = replay_with(lambda new: pytest.fail("must not replay"))
    frozen = run_dir / "inputs" / "members" / "members.csv"
    recorded = _sha(frozen.read_bytes())
    frozen.write_text("id\nL1\nL2\nbad\nL9\n")
    with pytest.raises(ReproMismatch) as err:
        repro(run_dir, "members")
    line = err.value.one_line()
    assert "members.csv" in line and "frozen copy of input members changed" in line
    assert recorded in line and _sha(frozen.read_bytes()) in line and "\n" not in line
    assert err.value.exit_code == 2 and not seen
    assert not (run_dir / "repro").exists(), "a refused replay leaves no folder behind"


def test_a_changed_config_is_refused(run_dir, tmp_path):
    config = _write(tmp_path / "copy.yml", "migration: {}\n")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    _write(run_dir / "manifest.json", json.dumps({**manifest, "config_path": str(config),
                                                  "config_sha256": _sha(config.read_bytes())}))
    config.write_text("migration: {}\n# edited\n")
    with pytest.raises(ReproMismatch, match=r"copy.yml: the config changed since the run: sha256 [0-9a-f]{64} recorded"):
        repro(run_dir, "members")


def test_stage_00_checks_the_sources_it_reads_again(run_dir, tmp_path):
    _write(tmp_path / "legacy" / "members.csv", "id\nL1\n")
    with pytest.raises(ReproMismatch, match=r"input members changed since the run"):
        repro(run_dir, "subset")
    (tmp_path / "legacy" / "members.csv").unlink()
    with pytest.raises(ReproMismatch, match=r"input members is gone since the run"):
        repro(run_dir, "00")


def test_a_changed_import_file_of_an_earlier_stage_is_refused(run_dir):
    _write(run_dir / "output" / "openloyalty" / "members_0001.xml", XML.replace("L2", "L3"))
    with pytest.raises(ReproMismatch, match="import file output/openloyalty/members_0001.xml of stage 01_members"):
        repro(run_dir, "mapping")


def test_a_stage_that_did_not_pass_or_does_not_exist_is_a_usage_error(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["stages"][1]["status"] = "failed"
    _write(run_dir / "summary.json", json.dumps(summary))
    with pytest.raises(UsageError, match="stage 01_members did not pass in this run"):
        repro(run_dir, "mapping")
    with pytest.raises(UsageError, match="unknown stage 'rewards'"):
        repro(run_dir, "rewards")
    with pytest.raises(UsageError, match="not a run dir"):
        repro(run_dir / "nothing", "members")


def test_a_not_applicable_stage_has_nothing_to_replay_and_does_not_block_a_later_one(run_dir):
    from loyalty_toolkit.support.repro import _check_passed

    stages = ["subset", "members", "mapping", "transfers", "rewards", "report"]
    statuses = ["passed"] * 3 + ["not_applicable"] * 2 + ["passed"]
    _write(run_dir / "summary.json", json.dumps({"run_id": "r1", "stages": [
        {"name": n, "status": st} for n, st in zip(stages, statuses)]}))
    with pytest.raises(UsageError, match="stage 03_transfers did not apply to this program"):
        _check_passed(run_dir, "transfers", stages[:3])
    _write(run_dir / "stages" / "05_report.json", json.dumps({"name": "report", "status": "passed"}))
    assert _check_passed(run_dir, "report", stages[:5]) == ["subset", "members", "mapping"]


# -- a replay ----------------------------------------------------------------------------------------

def test_a_faithful_replay_is_identical_and_is_seeded_with_earlier_work_only(run_dir, replay_with):
    seen = replay_with(lambda new: _write_members_stage(new, seconds=9.0))
    result = repro(run_dir, "01_members")
    assert result.exit_code == 0, result.text()
    assert seen["source"] == "01_members.ipynb" and seen["params"]["show_pii"] is False
    assert seen["params"]["run_dir"] == str(result.replay_dir) == str(seen["cwd"])
    # beside the run, never inside it (issue #16: the archived run dir is only read)
    assert result.replay_dir.parent == run_dir.parent / "repro" / "r1" and result.replay_dir.name.startswith("members-")
    assert not (run_dir / "repro").exists()
    # Earlier stage's table, inputs and ledger row only: not this stage's, not a later stage's.
    assert seen["tables"] == {"inputs"} and seen["ledger"] == {"subset"}
    assert set(seen["inputs"]) == {"members"} and seen["frozen"] == "id\nL1\nL2\nbad\n"
    lines = result.text().splitlines()
    for expected in ("identical  file     output/openloyalty/members_0001.xml",
                     "identical  file     rejects/members.csv", "identical  table    members: 2 rows",
                     "identical  table    member_rejects: 1 rows", "identical  ledger   _stages[members]",
                     "identical  figures  stages/01_members.json"):
        assert any(line.startswith(expected) for line in lines), (expected, lines)
    assert lines[-1].startswith("result: identical (6 ")
    assert json.loads((result.replay_dir / "repro.json").read_text())["identical"] is True
    with StagingStore.for_run(run_dir) as store:  # the run's own database is untouched
        assert set(store.completed_stages()) == set(PIPELINE)


def test_a_replay_that_differs_says_where_without_showing_values(run_dir, replay_with):
    changed = MEMBERS.assign(email=["a@x.fr", "c@x.fr"])
    replay_with(lambda new: _write_members_stage(new, members=changed, xml=XML.replace("L2", "L3"), rejects=None))
    result = repro(run_dir, "members")
    assert result.exit_code == 1
    by_name = {c.name: c for c in result.comparisons}
    assert by_name["members"].status == DIFFERENT
    assert by_name["members"].detail == "2 vs 2 rows; first difference at row 2 (rowid order), column email"
    xml = by_name["output/openloyalty/members_0001.xml"]
    assert xml.status == DIFFERENT and xml.detail.startswith("first difference at line 3, byte 12 (73 vs 73 bytes)")
    assert by_name["rejects/members.csv"].status == MISSING
    assert by_name["member_rejects"].status == IDENTICAL
    assert "c@x.fr" not in result.text() and "b@x.fr" not in result.text()
    assert result.text().splitlines()[-1] == "result: DIFFERENT (3 of 6 differ or are missing)"


def test_a_replayed_stage_that_fails_is_a_difference(run_dir, monkeypatch):
    monkeypatch.setattr(repro_mod, "execute_notebook",
                        lambda *a, **k: Execution(False, "GateFailed", "[members] gate failed: x"))
    result = repro(run_dir, "members")
    assert result.exit_code == 1 and result.failure == "GateFailed: [members] gate failed: x"
    assert "failed: the replayed stage did not pass: GateFailed" in result.text()
    assert {c.status for c in result.comparisons} == {MISSING}


def test_changed_code_is_reported_not_refused(run_dir, replay_with):
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["notebooks"]["01_members.ipynb"] = "0" * 64
    manifest["suites"] = {"members.gone.json": "1" * 64}
    manifest["versions"] = {"pandas": "0.0.1"}
    _write(run_dir / "manifest.json", json.dumps(manifest))
    replay_with(lambda new: _write_members_stage(new))
    result = repro(run_dir, "members")
    assert result.exit_code == 0
    notes = "\n".join(result.notes)
    assert "notebook 01_members.ipynb changed since the run (sha256 000000000000 recorded" in notes
    assert "suite members.gone.json changed since the run (sha256 111111111111 recorded, none today)" in notes
    # package versions are warnings, one line per package (issue #16), not notes
    assert "pandas" not in notes
    assert [w for w in result.warnings if w.startswith("pandas ")] == [
        f"pandas 0.0.1 at the run, {pd.__version__} installed now"]
    assert f"warning: pandas 0.0.1 at the run, {pd.__version__} installed now" in result.text().splitlines()


def test_every_locked_package_at_another_version_is_a_warning_and_a_changed_lock_too(run_dir, replay_with):
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["environment"] = {"lock_file": "requirements.lock", "lock_sha256": "2" * 64,
                               "packages": {"numpy": "1.0.0", "pandas": pd.__version__, "no-such-package": "1.0"}}
    _write(run_dir / "manifest.json", json.dumps(manifest))
    replay_with(lambda new: _write_members_stage(new))
    result = repro(run_dir, "members")
    assert result.exit_code == 0, "versions are reported, not refused"
    import numpy
    assert result.warnings[:2] == ["no-such-package 1.0 at the run, not installed now",
                                   f"numpy 1.0.0 at the run, {numpy.__version__} installed now"]
    assert result.warnings[2].startswith("requirements.lock differs from the run's (sha256 222222222222 at the run")
    assert len(result.warnings) == 3  # pandas is the same: no line
    assert json.loads((result.replay_dir / "repro.json").read_text())["warnings"] == result.warnings


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): _sha(p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_out_puts_the_replay_there_and_the_run_dir_is_left_byte_for_byte(run_dir, replay_with, tmp_path):
    before = _digests(run_dir)
    replay_with(lambda new: _write_members_stage(new))
    result = repro(run_dir, "members", out=tmp_path / "replays" / "mine")
    assert result.exit_code == 0 and result.replay_dir == (tmp_path / "replays" / "mine").resolve()
    assert (result.replay_dir / "repro.json").is_file() and (result.replay_dir / "staging.db").is_file()
    assert _digests(run_dir) == before
    default = repro(run_dir, "members")  # the default too: beside the run, the run unchanged
    assert default.exit_code == 0 and not _inside(default.replay_dir, run_dir)
    assert _digests(run_dir) == before


def test_out_inside_the_run_or_not_empty_is_refused(run_dir, replay_with, tmp_path):
    replay_with(lambda new: pytest.fail("must not replay"))
    with pytest.raises(UsageError, match="inside the archived run"):
        repro(run_dir, "members", out=run_dir / "replay")
    _write(tmp_path / "full" / "x.txt", "x")
    with pytest.raises(UsageError, match="exists and is not empty"):
        repro(run_dir, "members", out=tmp_path / "full")
    assert not (run_dir / "replay").exists()


# -- comparisons on tiny folders -----------------------------------------------------------------------

def test_compare_file(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _write(a / "f.csv", "h\n1\n2\n")
    _write(b / "f.csv", "h\n1\n2\n")
    assert compare_file(a, b, "f.csv").status == IDENTICAL
    assert "no longer matches" in compare_file(a, b, "f.csv", recorded_sha="0" * 64).detail
    _write(b / "f.csv", "h\n1\n2\n3\n")
    c = compare_file(a, b, "f.csv")
    assert (c.status, c.detail) == (DIFFERENT, "the replay has more lines, from line 4 (6 vs 8 bytes)")
    _write(b / "f.csv", "h\n1\n")
    assert compare_file(a, b, "f.csv").detail.startswith("the replay ends after line 2")
    assert compare_file(a, b, "g.csv").status == MISSING


def test_compare_table_sees_types_order_and_excluded_columns(tmp_path):
    with StagingStore(tmp_path / "a.db") as a, StagingStore(tmp_path / "b.db") as b:
        a.commit_stage("s", {"t": pd.DataFrame({"k": ["x", "y"], "n": [1, 2]})}, inputs_fingerprint="",
                       parameters_fingerprint="")
        b.commit_stage("s", {"t": pd.DataFrame({"k": ["x", "y"], "n": [1.0, 2.0]})}, inputs_fingerprint="",
                       parameters_fingerprint="")
        assert compare_table(a, b, "t").detail.startswith("columns differ: k TEXT,n INTEGER vs k TEXT,n REAL")
        b.commit_stage("s", {"t": pd.DataFrame({"k": ["y", "x"], "n": [2, 1]})}, inputs_fingerprint="",
                       parameters_fingerprint="")
        assert compare_table(a, b, "t").detail == "2 vs 2 rows; first difference at row 1 (rowid order), column k"
        b.commit_stage("s", {"t": pd.DataFrame({"k": ["x", "y", "z"], "n": [1, 2, 3]})}, inputs_fingerprint="",
                       parameters_fingerprint="")
        assert compare_table(a, b, "t").detail == "2 vs 3 rows; row 3 is only in the replay"
        b.commit_stage("s", {"t": pd.DataFrame({"k": ["x", "y"], "n": [1, 2]})}, inputs_fingerprint="",
                       parameters_fingerprint="")
        assert compare_table(a, b, "t") == Comparison("table", "t", IDENTICAL, "2 rows")
        # Committed at different times: the ledger matches only with completed_at left out.
        a.db.execute("UPDATE _stages SET completed_at = '2000-01-01T00:00:00+00:00'")
        assert compare_table(a, b, "_stages").status == DIFFERENT
        assert compare_table(a, b, "_stages", exclude=("completed_at",)).status == IDENTICAL
        assert compare_table(a, b, "nope").status == MISSING


def test_figures_ignore_times_memory_and_the_run_dir(tmp_path):
    a, b = tmp_path / "run", tmp_path / "run" / "repro" / "x"
    rec_a = {"status": "passed", "compute_seconds": 1, "peak_rss_mb": 2, "docs": f"{a}/data_docs/i.html",
             "totals": {"points": 10, "list": [1, 2]}, "outputs": {"f": "1"}}
    rec_b = {**rec_a, "compute_seconds": 5, "peak_rss_mb": 7, "docs": f"{b}/data_docs/i.html", "outputs": {}}
    _write(a / "stages" / "01_members.json", json.dumps(rec_a))
    _write(b / "stages" / "01_members.json", json.dumps(rec_b))
    assert compare_figures(a, b, "members").status == IDENTICAL
    _write(b / "stages" / "01_members.json", json.dumps({**rec_b, "totals": {"points": 10, "list": [1, 3]}}))
    assert compare_figures(a, b, "members").detail == "first difference at totals.list[1]"


def test_first_key_difference():
    assert first_key_difference({"a": {"b": [1, {"c": 2}]}}, {"a": {"b": [1, {"c": 3}]}}) == "a.b[1].c"
    assert first_key_difference({"a": 1}, {"a": 1, "b": 2}) == "b"
    assert first_key_difference([1], [1, 2]) == "(top level) (length 1 vs 2)"
    assert first_key_difference({"a": 1}, {"a": 1.0}) == "a"  # 1 and 1.0 are different bytes in a file
    assert first_key_difference({"a": [1]}, {"a": [1]}) is None


def test_result_exit_code_and_text(tmp_path):
    r = ReproResult(tmp_path / "r1", "transfers", tmp_path / "r1" / "repro" / "t")
    assert r.exit_code == 1, "nothing compared is not a proof"
    r.comparisons = [Comparison("file", "output/x.json", IDENTICAL)]
    assert r.exit_code == 0 and r.text().splitlines()[0] == "replay of stage 03_transfers of run r1"


def test_a_replay_of_a_run_dir_being_written_is_refused_at_once(run_dir):
    """One writer per run dir (#17): a replay on a run dir whose lock is held is refused at once."""
    from loyalty_toolkit.runner.lock import RunLocked, run_lock

    with run_lock(run_dir, print):
        with pytest.raises(RunLocked, match=r"run dir is in use by pid \d+ on host"):
            repro(run_dir, "members")
