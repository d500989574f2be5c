"""``loyalty-migrate``: a thin command line; each command is one library call.

Exit codes: 0 all stages passed; 1 a gate or stage failed (the run stopped there); 2 bad config,
bad input or bad usage, with a one-line cause and no traceback (set LOYALTY_MIGRATE_DEBUG=1 to
see one).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from loyalty_toolkit import __version__
from loyalty_toolkit.errors import LoyaltyError
from loyalty_toolkit.runner import preflight, run, status
from loyalty_toolkit.runner.progress import TerminalProgress
from loyalty_toolkit.runner.workspace import init_workspace, run_demo
from loyalty_toolkit.stages.mapping.rehearsal import rehearse_import
from loyalty_toolkit.targets.ol_profiles import DEFAULT_PROFILE, PROFILES, profile
from loyalty_toolkit.support.explain_run import explain_member
from loyalty_toolkit.support.repro import repro


def _one_line_errors(fn):
    """Turn every error into one line on stderr and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LoyaltyError as exc:
            click.echo(f"error: {exc.one_line()}", err=True)
            sys.exit(exc.exit_code)
        except (KeyboardInterrupt, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # an unexpected failure still gets one line, never a traceback
            if os.environ.get("LOYALTY_MIGRATE_DEBUG"):
                raise
            click.echo(f"error: internal error: {type(exc).__name__}: {' '.join(str(exc).split())}"
                       " (set LOYALTY_MIGRATE_DEBUG=1 for the traceback)", err=True)
            sys.exit(2)

    return wrapper


QUIET_HELP = ("Only one line per stage, as it ends: no start lines, no progress bar "
              "(also what a non-terminal output gets).")


def _report(result) -> None:
    if result.exit_code == 0:
        if result.status == "partial":  # what was asked passed, but not every stage ran
            click.echo(result.message)
        click.echo(f"{result.status}: {result.index}")
    else:
        click.echo(f"failed: {result.message}", err=True)
        click.echo(f"record: {result.index}", err=True)
    sys.exit(result.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loyalty-migrate")
def main() -> None:
    """Staged, gated, reproducible migration of a loyalty program."""


@main.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--members", default=200, show_default=True, help="Members in the sample program to start from.")
@_one_line_errors
def init_cmd(directory: Path, members: int) -> None:
    """Scaffold a migration workspace in DIRECTORY: a commented migration.yml and a sample program."""
    click.echo(f"wrote {init_workspace(directory, members=members)}")


@main.command("demo")
@click.option("--dir", "directory", default="demo", show_default=True, type=click.Path(path_type=Path),
              help="Workspace folder for the sample program and its runs.")
@click.option("--members", default=2000, show_default=True, help="Members in the sample program.")
@click.option("--seed", default=7, show_default=True, help="Seed of the deterministic generator.")
@click.option("--fraction", default=1.0, show_default=True, help="Subset fraction (below 1: a rehearsal).")
@click.option("--show-pii", is_flag=True, help="Do not mask personal data in reports.")
@click.option("--quiet", "-q", is_flag=True, help=QUIET_HELP)
@_one_line_errors
def demo_cmd(directory: Path, members: int, seed: int, fraction: float, show_pii: bool, quiet: bool) -> None:
    """Generate the bundled sample program and run every stage on it."""
    _report(run_demo(directory, members=members, seed=seed, fraction=fraction, show_pii=show_pii,
                     progress=TerminalProgress(quiet=quiet)))


@main.command("run")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--stages", default=None, help="Comma-separated stages to (re-)run in an existing run dir.")
@click.option("--run-id", default=None, help="Run id (folder name); defaults to the UTC time.")
@click.option("--show-pii", is_flag=True, help="Do not mask personal data in reports.")
@click.option("--quiet", "-q", is_flag=True, help=QUIET_HELP)
@_one_line_errors
def run_cmd(config: Path, stages: str | None, run_id: str | None, show_pii: bool, quiet: bool) -> None:
    """Run the staged migration described by CONFIG."""
    _report(run(config, stages=stages, run_id=run_id, show_pii=show_pii, progress=TerminalProgress(quiet=quiet)))


@main.command("verify")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--run-id", required=True, help="The run (folder name under output_dir) whose transfers were imported.")
@click.option("--show-pii", is_flag=True, help="Do not mask personal data in reports.")
@_one_line_errors
def verify_cmd(config: Path, run_id: str, show_pii: bool) -> None:
    """After the transfer import: prove each member's balance at the target (sources.target_balances)
    equals the points run RUN_ID transferred; mismatches are named, exit 1."""
    _report(run(config, stages=["verify"], run_id=run_id, show_pii=show_pii))


@main.command("validate")
@click.argument("config", type=click.Path(path_type=Path))
@_one_line_errors
def validate_cmd(config: Path) -> None:
    """Preflight CONFIG: inputs readable, encodings, delimiters, mapped columns, row counts, and
    which stages will run and why."""
    report = preflight(config)
    click.echo(report.table())
    click.echo(report.stage_plan())
    if report.problems:
        click.echo(f"error: {report.problems[0]}", err=True)
        sys.exit(2)


@main.command("rehearse-import")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Seed of the rehearsal's member IDs.")
@click.option("--keep-existing", is_flag=True, help="Import on top of earlier rehearsal imports (duplicates are refused).")
@click.option("--profile", "profile_name", default=DEFAULT_PROFILE, show_default=True, type=click.Choice(list(PROFILES)),
              help="The target profile whose member rules the rehearsal applies (docs/targets.md).")
@_one_line_errors
def rehearse_cmd(run_dir: Path, seed: int, keep_existing: bool, profile_name: str) -> None:
    """Import RUN_DIR's members XML into the local rehearsal target (a rehearsal, not the platform)."""
    r = rehearse_import(run_dir, seed=seed, fresh=not keep_existing, profile=profile(profile_name))
    click.echo(f"rehearsal (not the platform): {r.totals['totalSuccess']:,} imported, {r.totals['totalFailed']:,} refused;"
               f" result {r.import_result}; member export {r.members_export}")


@main.command("status")
@click.argument("run_dir", type=click.Path(path_type=Path))
@_one_line_errors
def status_cmd(run_dir: Path) -> None:
    """Print the stage table of RUN_DIR."""
    click.echo(status(run_dir))


@main.command("repro")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--stage", required=True, help="The stage to replay (name or number, e.g. transfers or 03).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="New or empty folder for the replay, outside the run [default: OUTPUT_DIR/repro/RUN_ID/STAGE-TIME].")
@_one_line_errors
def repro_cmd(run_dir: Path, stage: str, out: Path | None) -> None:
    """Re-execute one stage of RUN_DIR from its record and say, file by file, whether the outputs match.
    The run dir is only read.

    Exit 0: all identical; 1: a difference (or the replayed stage failed); 2: refused (an input changed)."""
    result = repro(run_dir, stage, out)
    click.echo(result.text())
    sys.exit(result.exit_code)


@main.command("explain")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("member")
@click.option("--show-pii", is_flag=True, help="Do not mask names, emails, phones and card numbers.")
@_one_line_errors
def explain_cmd(run_dir: Path, member: str, show_pii: bool) -> None:
    """Why MEMBER (legacy id, email, phone, card or target id) has the points RUN_DIR gives them."""
    click.echo(explain_member(run_dir, member, show_pii=show_pii), nl=False)
