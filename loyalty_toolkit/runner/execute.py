"""Execute one stage notebook with papermill: the only module that imports papermill.

A raised exception, a cell timeout and a dead kernel all end as a failed stage with a one-line
cause; the executed notebook is written in every case, so a reviewer sees where it stopped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traitlets.config import Config

logging.getLogger("papermill").setLevel(logging.WARNING)  # applies when papermill is imported
logging.getLogger("traitlets").setLevel(logging.ERROR)


@dataclass
class Execution:
    """What happened to one notebook: ``ok``, or the error's name and one-line message."""

    ok: bool
    error_name: str = ""
    error_message: str = ""


def _kernel_env() -> None:
    # Kernels and Jupyter write runtime files under $HOME; a read-only or shared HOME (CI) must not
    # break a run, so keep them in a per-user temporary folder unless the user chose one.
    runtime = Path(tempfile.gettempdir()) / f"loyalty-migrate-jupyter-{os.getuid()}"
    for var, sub in (("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        if var not in os.environ:
            (runtime / sub).mkdir(parents=True, exist_ok=True)
            os.environ[var] = str(runtime / sub)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


def _ipc_config(folder: str) -> Config:
    """Talk to the kernel over IPC sockets in a private folder: no TCP port, no 'unencrypted TCP'
    warning, and no collision between concurrent runs (each gets its own socket path)."""
    c = Config()
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = os.path.join(folder, "kernel-ipc")
    return c


@contextlib.contextmanager
def _stderr_to(path: Path):
    """Send this process's stderr, which the kernel inherits, to ``path`` while a stage runs: the
    kernel's own chatter (shutdown interrupts, warnings) goes to the run record, not the terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


# What every stage kernel imports before its first cell can run: Great Expectations alone costs
# about 4 s of CPU, most of a small stage's time.
WARM_UP = "import loyalty_toolkit.gates, loyalty_toolkit.stages.context, great_expectations"


class WarmKernel:
    """A stage's kernel, started while the previous stage runs, its heavy imports done by then.

    On two cores the next kernel's start and imports overlap the current stage instead of adding
    to it. The warm-up runs silently (no output, no execution count), so the stage's notebook reads
    exactly as with a kernel started for it. If anything about it fails, the stage starts its own.
    """

    def __init__(self, cwd: Path, log: Path, start_timeout: int = 120) -> None:
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        _kernel_env()
        self._run_sync = run_sync
        self.start_timeout = start_timeout
        self._sockets = tempfile.TemporaryDirectory(prefix="lm-kernel-")
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "ab")  # the kernel's own stderr: its stage's log, as when started by it
        self.km: Any = AsyncKernelManager(kernel_name="python3", config=_ipc_config(self._sockets.name))
        self._client: Any = None
        self._msg_id = ""
        try:
            run_sync(self.km.start_kernel)(cwd=str(cwd), stderr=self._log)
            self._client = self.km.blocking_client()
            self._client.start_channels()
            self._msg_id = self._client.execute(WARM_UP, silent=True, store_history=False)
        except Exception:  # noqa: BLE001 - any failure: the stage starts a kernel of its own
            self.close()

    def take(self) -> Any:
        """The kernel manager for papermill once the warm-up is done, or None (then the stage
        starts its own kernel)."""
        if self._client is None:
            return None
        try:
            while True:
                reply = self._client.get_shell_msg(timeout=self.start_timeout)
                if reply["parent_header"].get("msg_id") == self._msg_id:
                    break
            self._client.stop_channels()
            self._client = None
            if not self._run_sync(self.km.is_alive)():
                raise RuntimeError("warm kernel died")
        except Exception:  # noqa: BLE001 - a warm-up that did not finish: start afresh
            self.close()
            return None
        return self.km

    def close(self) -> None:
        """Stop the kernel (if it runs) and free its sockets and log."""
        if self._client is not None:
            self._client.stop_channels()
            self._client = None
        try:
            if self._run_sync(self.km.is_alive)():
                self._run_sync(self.km.shutdown_kernel)(now=False)
        except Exception:  # noqa: BLE001 - already gone
            pass
        self._log.close()
        self._sockets.cleanup()


def execute_notebook(source: Path, output: Path, parameters: dict[str, Any], *, cwd: Path,
                     timeout_seconds: int, kernel: WarmKernel | None = None,
                     progress_bar: dict[str, Any] | bool = False) -> Execution:
    """Run ``source`` into ``output`` with ``parameters`` (plain strings, numbers and booleans),
    in ``kernel`` when one was started ahead for it (it is closed after); ``progress_bar`` is
    papermill's cell bar: False, or tqdm's options (``runner.progress``)."""
    for key, value in parameters.items():
        if not isinstance(value, (str, int, float, bool)) or value is None:
            raise TypeError(f"notebook parameter {key} must be a plain string or number, got {type(value).__name__}")
    # imported here, not at the top: every CLI command imports the runner, few execute a notebook
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    _kernel_env()
    output.parent.mkdir(parents=True, exist_ok=True)
    km = kernel.take() if kernel is not None else None
    try:
        with tempfile.TemporaryDirectory(prefix="lm-kernel-") as sockets, _stderr_to(output.with_suffix(".log")):
            pm.execute_notebook(str(source), str(output), parameters=parameters, kernel_name="python3",
                                language="python", progress_bar=progress_bar, cwd=str(cwd), log_output=False,
                                execution_timeout=timeout_seconds, start_timeout=120, report_mode=False,
                                config=_ipc_config(sockets), **({"km": km} if km is not None else {}))
    except PapermillExecutionError as exc:
        _log_traceback(output.with_suffix(".log"), exc.traceback)
        return Execution(False, exc.ename, _first_line(exc.evalue))
    except CellTimeoutError:
        return Execution(False, "CellTimeoutError", f"a cell ran longer than {timeout_seconds} s")
    except DeadKernelError as exc:
        return Execution(False, "DeadKernelError", f"the kernel died: {_first_line(str(exc))}")
    except RuntimeError as exc:  # kernel failed to start, or nbclient gave up on it
        return Execution(False, type(exc).__name__, _first_line(str(exc)))
    finally:
        if kernel is not None:
            kernel.close()
    return Execution(True)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _log_traceback(log: Path, traceback: list[str] | None) -> None:
    """Keep the cell's traceback for engineers in the stage log; the HTML page shows a plain box."""
    text = _ANSI.sub("", "\n".join(traceback or []))
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"\n--- the cell that stopped the stage raised:\n{text}\n")


def _first_line(text: str) -> str:
    text = str(text).strip()
    return text.splitlines()[0] if text else ""
