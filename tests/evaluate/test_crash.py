"""SIGKILL the evaluating process between trials and mid-trial: every scored trial survives."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from evaluate.store import ResultsStore

TARGET = Path(__file__).with_name("_kill_target.py")
ROOT = Path(__file__).resolve().parents[2]


def _run_until(db, stop_after: int, kill_on: str) -> list[tuple[str, int, str]]:
    """Start the child, read until `stop_after` SCORED lines, then kill it at the next `kill_on` line."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, str(TARGET), str(db)], stdout=subprocess.PIPE, text=True, env=env
    )
    scored = []
    try:
        for line in child.stdout:
            kind, *rest = line.split()
            if kind == "SCORED":
                scored.append((rest[0], int(rest[1]), rest[2]))
            if len(scored) >= stop_after and kind == kill_on:
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return scored


def _live_rows(db):
    with ResultsStore(db) as store:
        return [(t.task, t.trial_index, t.outcome) for t in store.trials("crash")]


def test_sigkill_mid_trial_and_between_trials_loses_no_scored_trial(tmp_path):
    db = tmp_path / "results.sqlite"
    # 1) killed while a trial is running: every trial reported SCORED is in the database.
    reported = _run_until(db, stop_after=3, kill_on="RUNNING")
    rows = _live_rows(db)
    assert len(reported) == 3 and rows[: len(reported)] == reported
    assert len(rows) == len(reported)  # the trial that was running was not scored
    # 2) resumed, then killed right after a score (between trials).
    reported += _run_until(db, stop_after=2, kill_on="SCORED")
    rows = _live_rows(db)
    assert set(reported) <= set(rows) and len(rows) == len(set(rows))
    assert [i for _, i, _ in rows] == list(range(len(rows)))  # resumed where it stopped, no gap, no repeat
    assert all(outcome == ("failure" if i % 3 == 0 else "success") for _, i, outcome in rows)
