"""A study's rows on several lanes at once (`piper-ws study --parallel N`).

A lane is where one row's training jobs run: a GPU (`cuda:K`), on a CPU a lane `cpu:K`
with its share of the cores (`train.jobs`: one job per lane at a time), or with `--slurm` a
place in the cluster's queue (the row's jobs are submitted there). Rows start in the
study's order as lanes free up; a row that reuses another row's learning rate (a LoRA-SP
reading, full fine-tuning from random weights) starts once that row is done. Scoring runs in
the study's process, one row at a time.

Why on a CPU: the study's small policy does not keep two cores busy. On this project's 2-core
machine one LoRA-SP step takes 664 ms on two threads and about 990 ms on one, so two rows on a
thread each train 1.34x as many steps per hour (docs/guide/train.md, "Rows at once").
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from train.slurm import SlurmSpec


@dataclass(frozen=True)
class Lane:
    device: str | None  # what `piper-ws train --device` gets; None: its own default
    threads: int = 0  # torch threads of the lane's jobs; 0: torch's default (every core)
    slurm: SlurmSpec | None = None  # the row's jobs go to this Slurm cluster (device: None)
    slot: int = 0  # tells Slurm lanes apart: each is one row in the cluster's queue

    def __str__(self) -> str:
        return f"Slurm ({self.slot + 1})" if self.slurm else str(self.device)


def make_lanes(count: int, device: str | None, slurm: SlurmSpec | None = None) -> list[Lane]:
    """`count` lanes on `device` (cpu, cuda or None: a GPU if there is one), or in `slurm`'s
    queue; one local lane is the device as given. Refuses what the machine cannot hold, in one
    line (the cluster's queue holds any number)."""
    from train.jobs import default_device, gpu_count

    if count < 1:
        raise ValueError(f"--parallel must be at least 1, not {count}")
    if slurm is not None:
        return [Lane(None, slurm=slurm, slot=k) for k in range(count)]
    if count == 1:
        return [Lane(device)]
    kind = (device or default_device()).split(":")[0]
    if kind == "cpu":
        cores = len(os.sched_getaffinity(0))
        if count > cores:
            raise ValueError(f"--parallel {count} needs a core per lane; this machine gives {cores}")
        return [Lane(f"cpu:{k}", cores // count) for k in range(count)]
    if device not in (None, "cuda"):
        raise ValueError(
            f"--parallel spreads rows over GPUs cuda:0, cuda:1, ...: give --device cuda, not {device}"
        )
    if gpu_count() < count:
        raise ValueError(f"--parallel {count} needs {count} GPUs; this machine has {gpu_count()}")
    return [Lane(f"cuda:{k}") for k in range(count)]


def run_in_lanes(
    rows: list[str],
    lanes: list[Lane],
    run_row: Callable[[str, Lane], int],
    after: Callable[[str], str | None],
    on_done: Callable[[str], None],
) -> int:
    """`run_row(row, lane)` for every row, as many at once as there are lanes, each in a
    daemon thread (a stopped study does not wait for a scoring to end: every trial is
    committed as it ends). `after(row)`: the row that must be done first, or None.
    `on_done(row)` runs in this thread after each row. The first non-zero code stops new rows
    from starting; the rows already running end first (stop their jobs to end them sooner).
    Returns that code, or 0."""
    pending, running, code = list(rows), {}, 0  # running: lane -> row
    finished: queue.Queue = queue.Queue()

    def work(row: str, lane: Lane) -> None:
        try:
            finished.put((row, lane, run_row(row, lane), None))
        except BaseException as error:  # noqa: BLE001 - raised again in the study's thread
            finished.put((row, lane, 1, error))

    while True:
        free = [lane for lane in lanes if lane not in running]
        for row in list(pending):
            if code or not free:
                break
            if after(row) in (*pending, *running.values()):
                continue
            pending.remove(row)
            lane = free.pop(0)
            running[lane] = row
            threading.Thread(target=work, args=(row, lane), name=f"study row {row}", daemon=True).start()
        if not running:
            return code
        row, lane, row_code, error = finished.get()
        del running[lane]
        if error is not None:
            raise error
        code = code or row_code
        if not row_code:
            on_done(row)
