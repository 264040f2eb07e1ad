"""How a training run is asked to stop, and how its processes notice.

Two ways, both ending in a checkpoint at the next step: a cancel file in the run directory
(what `train.jobs.cancel_job` writes; every worker of a multi-process run sees it and they
stop at the same step), or SIGTERM / SIGINT to a process (a single-process job, the end of
a session). The job process and each worker process (`train.worker`) install the same
check. No torch here: the GUI imports it through `train.jobs`.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from .layout import CANCEL_FILE


def request_cancel(run_dir: str | Path) -> None:
    (Path(run_dir) / CANCEL_FILE).write_text(str(time.time()))


def clear_cancel(run_dir: str | Path) -> None:
    """Forget an earlier request: a run started or resumed again trains."""
    (Path(run_dir) / CANCEL_FILE).unlink(missing_ok=True)


def install_stop_check(run_dir: str | Path) -> Callable[[], bool]:
    """Catch SIGTERM and SIGINT in this process (so that the run saves instead of dying) and
    return `should_stop()`: true once either arrived or the run's cancel file exists."""
    cancel_file = Path(run_dir) / CANCEL_FILE
    signaled = False

    def on_signal(signum, frame) -> None:
        nonlocal signaled
        signaled = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return lambda: signaled or cancel_file.exists()
