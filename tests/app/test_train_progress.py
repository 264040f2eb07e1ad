"""`piper-ws train` progress: a redrawn line on a terminal, one line per step in a log."""

import io
from types import SimpleNamespace

import train.jobs
import train.metrics
from app.commands.train import follow


def test_progress_writes_one_line_per_step_when_not_a_terminal(monkeypatch):
    # Queued for two polls (one line), then running for four; the step moves on polls 1, 2 and 4.
    steps = iter([0, 0, 5, 10, 10, 15])
    states = iter(["queued", "queued", "running", "running", "running", "running", "completed"])

    def read_job(run_dir):
        state = next(states)
        return SimpleNamespace(
            active=state != "completed", state=state, status=f"{state} behind a" if state == "queued" else state,
            slurm_job="", device="cpu", run_name="run", total_steps=20,
        )  # fmt: skip

    monkeypatch.setattr(train.jobs, "read_job", read_job)
    monkeypatch.setattr(
        train.metrics,
        "progress",
        lambda run_dir: {"step": next(steps), "total_steps": 20, "fraction": 0.5, "loss": 1.0, "eta_s": 3.0},
    )
    log = io.StringIO()  # not a tty
    follow("run", stream=log, poll_s=0)
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("queued behind a: waiting in line for cpu")
    assert [line.split(" step ")[1].split()[0] for line in lines[1:]] == ["5/20", "10/20", "15/20"]
    assert all(line.startswith("run [") for line in lines[1:])  # named: a study trains rows side by side
    assert "\r" not in log.getvalue()
