"""A training job on a Slurm cluster: the same job process (`python -m train.jobs`) started
by an sbatch script instead of by this machine.

    spec = SlurmSpec(partition="gpu", gpus=1, time="04:00")
    script = write_sbatch(run_dir, spec, job_command)    # runs/<run>/job.sbatch
    job_id = submit(script)                              # sbatch --parsable
    slurm_state(job_id)                                  # PENDING, RUNNING, COMPLETED, ...

The run directory must be on a file system the cluster's nodes share with this machine
(as labs' home and scratch directories are): the job process on the node writes the same
`job.json`, `metrics.jsonl` and checkpoints a local job writes, so the Train page and
`piper-ws train --list` follow it the same way. Slurm's own state only fills in what the
job process cannot say itself: still pending, or killed before it wrote a final state.
Several nodes: the job process launches one torchrun per node through `srun`, rendezvous
at the first node (`train.worker.launch_command`). No torch here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SBATCH_FILE = "job.sbatch"
# Slurm states after which the job is gone (the job process may not have said so itself)
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL",
         "DEADLINE")  # fmt: skip


class SlurmError(RuntimeError):
    """Slurm is not there or refused the job; the message says what it answered."""


@dataclass(frozen=True)
class SlurmSpec:
    partition: str | None = None  # None: the cluster's default partition
    gpus: int = 0  # per node
    nodes: int = 1
    time: str | None = None  # HH:MM wall-time limit; None: the partition's default

    def __post_init__(self) -> None:
        if self.gpus < 0 or self.nodes < 1:
            raise ValueError(f"--gpus must be >= 0 and --nodes >= 1, got {self.gpus} and {self.nodes}")
        if self.time is not None and not re.fullmatch(r"\d{1,4}:[0-5]\d", self.time):
            raise ValueError(f"--time {self.time!r}: expected HH:MM, e.g. 04:00")


def check_available(command: str = "train") -> None:
    """Refuse, naming the fix, where `piper-ws <command> --slurm` cannot reach a cluster."""
    missing = [tool for tool in ("sbatch", "squeue", "scancel", "scontrol") if shutil.which(tool) is None]
    if missing:
        raise SlurmError(
            f"no Slurm here ({', '.join(missing)} not found): run piper-ws {command} --slurm on the "
            "cluster's login node, or without --slurm"
        )


def write_sbatch(run_dir: Path, spec: SlurmSpec, job_command: list[str], workdir: Path) -> Path:
    """The batch script: resources from `spec`, then the job process itself (exec'd, so
    `scancel --signal=TERM --batch` reaches it and it checkpoints before stopping)."""
    lines = ["#!/bin/bash", f"#SBATCH --job-name=piper-{Path(run_dir).name}", f"#SBATCH --nodes={spec.nodes}"]
    lines += ["#SBATCH --ntasks-per-node=1", f"#SBATCH --output={Path(run_dir) / 'slurm-%j.out'}"]
    if spec.partition:
        lines.append(f"#SBATCH --partition={spec.partition}")
    if spec.gpus:
        lines.append(f"#SBATCH --gpus-per-node={spec.gpus}")
    if spec.time:
        lines.append(f"#SBATCH --time={spec.time}:00")
    lines += [
        "",
        f"cd {shlex.quote(str(workdir))}",
        "exec " + " ".join(shlex.quote(a) for a in job_command),
        "",
    ]
    script = Path(run_dir) / SBATCH_FILE
    script.write_text("\n".join(lines))
    return script


def submit(script: Path) -> str:
    """sbatch the script; returns the Slurm job id."""
    check_available()
    done = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SlurmError(f"sbatch refused the job: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip().split(";")[0]


def slurm_state(job_id: str) -> str | None:
    """Slurm's state of the job (PENDING, RUNNING, COMPLETED, CANCELLED, ...), or None when
    Slurm no longer knows it (finished longer ago than the cluster's MinJobAge)."""
    try:
        queued = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=20
        )
        if queued.returncode == 0 and queued.stdout.strip():
            return queued.stdout.split()[0]
        shown = subprocess.run(
            ["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"JobState=(\w+)", shown.stdout)
    return match.group(1) if match else None


def cancel(job_id: str, running: bool) -> None:
    """A running job gets SIGTERM in its batch process (it checkpoints, then ends canceled);
    a pending one is taken out of the queue."""
    command = ["scancel", "--signal=TERM", "--batch", job_id] if running else ["scancel", job_id]
    subprocess.run(command, capture_output=True, timeout=20)


def node_count() -> int:
    """Nodes of the Slurm allocation this process runs in (1 outside Slurm)."""
    return int(os.environ.get("SLURM_JOB_NUM_NODES", "1"))
