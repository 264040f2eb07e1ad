"""One process of a multi-process training run, as torchrun / `accelerate launch` start it:

    python -m train.worker RUN_DIR [--datasets-dir DIR] [--resume]

The job process (`train.jobs`) owns the run's record and the device lock and launches
`TrainConfig.processes` of these. Each trains its slice of every batch; they stop together
when the cancel file appears or a signal arrives; rank 0 writes the metrics, checkpoints
and `worker_result.json`, which the job reads when the launcher returns.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from .slurm import node_count
from .stop import install_stop_check

RESULT_FILE = "worker_result.json"


def launch_command(config, run_dir: Path, datasets_dir: str | None, resume: bool, port: int) -> list[str]:
    """The launcher line for `config.processes` workers on this machine (on each node of a
    multi-node Slurm allocation)."""
    worker = ["-m", "train.worker", str(run_dir), *(["--datasets-dir", datasets_dir] if datasets_dir else [])]
    worker += ["--resume"] if resume else []
    nodes = node_count()
    if nodes > 1:  # one torchrun per node of the Slurm allocation, meeting at the first node
        head = subprocess.run(
            ["scontrol", "show", "hostnames", os.environ["SLURM_JOB_NODELIST"]],
            capture_output=True,
            text=True,
        ).stdout.split()[0]
        launcher = [
            "srun",
            f"--nodes={nodes}",
            "--ntasks-per-node=1",
            sys.executable,
            "-m",
            "torch.distributed.run",
        ]
        launcher += [
            "--nnodes",
            str(nodes),
            "--nproc_per_node",
            str(config.processes),
            "--rdzv_backend",
            "c10d",
        ]
        launcher += [
            "--rdzv_endpoint",
            f"{head}:{port}",
            "--rdzv_id",
            os.environ.get("SLURM_JOB_ID", "piper"),
        ]
        return [*launcher, *worker]
    if config.accelerate_config:
        launcher = ["-m", "accelerate.commands.launch", "--config_file", config.accelerate_config]
        launcher += ["--num_processes", str(config.processes), "--main_process_port", str(port)]
    else:  # torchrun: accelerate reads its environment (gloo on CPU, NCCL on GPUs)
        launcher = ["-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(config.processes)]
        launcher += ["--master_addr", "127.0.0.1", "--master_port", str(port)]
    return [sys.executable, *launcher, *worker]


def read_result(run_dir: Path) -> dict | None:
    path = Path(run_dir) / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.worker")
    parser.add_argument("run_dir")
    parser.add_argument("--datasets-dir")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from .config import TrainConfig
    from .layout import RUN_CONFIG
    from .loop import run_training
    from .video_backend import quiet

    quiet()
    should_stop = install_stop_check(run_dir)
    config = TrainConfig.load(run_dir / RUN_CONFIG)
    try:
        result = run_training(
            config,
            run_dir,
            datasets_dir=args.datasets_dir,
            resume=args.resume,
            should_stop=should_stop,
        )
        from accelerate import PartialState

        if PartialState().is_main_process:
            fields = {**asdict(result), "checkpoint": str(result.checkpoint) if result.checkpoint else None}
            tmp = run_dir / (RESULT_FILE + ".tmp")
            tmp.write_text(json.dumps(fields))
            tmp.replace(run_dir / RESULT_FILE)
    finally:
        _end_process_group()
    return 0


def _end_process_group() -> None:
    """Destroy the process group before the interpreter shuts down: gloo's threads still
    holding work then abort a rank that has finished ("terminate called without an active
    exception", SIGABRT; pytorch/pytorch#190489), and the run reads as failed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
