"""Training with 1 and N processes at the same global batch: steps/s and the ratio.

    .venv/bin/python benchmarks/bench_processes.py [--processes 2] [--steps 60] [--batch 8]

Both runs are real background jobs (`train.jobs.start_job`) on the tiny SmolVLA with
LoRA-SP r=8 and the same synthetic dataset as bench_train.py; N processes run over gloo on
the CPU (NCCL on GPUs with --device cuda). Steps/s is the median of each run's logged step
rates after the first window. Also prints the largest relative difference between the two
loss curves (they should agree: train.distributed). On a 2-core machine N processes share
the same cores, so the ratio says what the synchronisation costs, not what more cores buy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from bench_train import make_dataset

    from train.jobs import start_job, wait_job
    from train.metrics import read_metrics
    from train.presets import get_preset

    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="bench-processes-") as tmp:
        root = Path(tmp)
        make_dataset(root / "datasets" / "bench")
        curves, rates = {}, {}
        for n in (1, args.processes):
            config = get_preset(
                "smolvla-lora_sp", dataset="bench", run_name=f"p{n}", steps=args.steps, batch_size=args.batch,
                processes=n, log_every=5, val_every=10**6, checkpoint_every=10**6, adapter={"r": 8},
                device=args.device, lr_schedule="constant",
            )  # fmt: skip
            start_job(config, root / "runs", root / "datasets")
            record = wait_job(root / "runs" / f"p{n}", 1800)
            if record.state != "completed":
                print((root / "runs" / f"p{n}" / "train.log").read_text()[-3000:])
                return 1
            rows = read_metrics(root / "runs" / f"p{n}", kind="train")
            curves[n] = {r["step"]: r["loss"] for r in rows}
            rates[n] = statistics.median(r["steps_per_s"] for r in rows[1:])
            print(f"{n} process(es), global batch {args.batch}: {rates[n]:.2f} steps/s")
    n = args.processes
    gaps = {s: abs(curves[n][s] - curves[1][s]) / abs(curves[1][s]) for s in curves[1]}
    print("relative loss gap per logged step (float rounding differs; training amplifies it): "
          + " ".join(f"{s}:{g:.1e}" for s, g in gaps.items()))  # fmt: skip
    print(
        f"ratio {n} / 1 processes: {rates[n] / rates[1]:.3f}; first logged step's gap {gaps[min(gaps)]:.1e}"
    )
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
