"""A training process's step rate while another process holds a core, by OpenMP spin setting.

    .venv/bin/python benchmarks/bench_contention.py [--seconds 10] [--spins 1000,10000] [--shape tiny-smolvla]

Each figure is a fresh process (libgomp reads GOMP_SPINCOUNT when torch loads) training the
policy on synthetic batches (batch 4, 96x128 images) for --seconds after a warm-up, with
libgomp's default spinning and with each count of --spins (the training jobs start with
`train.threads.OMP_SPIN_COUNT`), first with every core free, then beside another training
process on one thread, started in its own session as training jobs are. With the kernel's
autogroup scheduling (on by default) each session gets its fair share of the CPU whatever
the nice values, so a thread that spins while its partner waits for the other session's
turn burns its own share. Prints steps/s and the ratio to the default per case. The "every
core free" row means that only on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def child(args) -> None:
    """Train for args.seconds; print steps/s as the last line."""
    import torch
    from bench_train import build_policy, synthetic_batch

    torch.set_num_threads(args.threads)
    policy, _ = build_policy(args.shape, "cpu")
    policy.train()
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    vocab = max(m.num_embeddings for m in policy.modules() if isinstance(m, torch.nn.Embedding))
    batch = synthetic_batch(policy.config, 4, "cpu", vocab, image_size=(96, 128))

    def step() -> None:
        loss, _ = policy(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < args.seconds:
        step()
        steps += 1
    print(f"{steps / (time.perf_counter() - start):.3f}")


def contender(args) -> subprocess.Popen:
    """A one-thread training process in its own session (as a job) that runs until killed, warmed up."""
    argv = [sys.executable, __file__, "--child", "--seconds", "1e9", "--threads", "1", "--shape", args.shape]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    time.sleep(15)  # past its imports and warm-up steps
    return proc


def measure(args, spin: str | None) -> float:
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"), HF_HUB_OFFLINE="1")
    env.pop("GOMP_SPINCOUNT", None)
    if spin is not None:
        env["GOMP_SPINCOUNT"] = spin
    argv = [sys.executable, __file__, "--child", "--seconds", str(args.seconds),
            "--threads", str(args.threads), "--shape", args.shape]  # fmt: skip
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shape", default="tiny-smolvla", help="a backbone bench_train.build_policy takes")
    parser.add_argument("--spins", help="comma list of GOMP_SPINCOUNT values (default: the jobs' own)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    from train.threads import OMP_SPIN_COUNT

    spins = args.spins.split(",") if args.spins else [OMP_SPIN_COUNT]
    print(f"{args.shape}, {args.threads} threads, {os.cpu_count()} cores, {args.seconds:g} s per figure; "
          f"jobs use GOMP_SPINCOUNT={OMP_SPIN_COUNT}")  # fmt: skip
    print(f"| cores | default | {' | '.join(spins)} |")
    print("|---|---|" + "---|" * len(spins))
    for case in ("every core free", "beside a training process"):
        other = contender(args) if case != "every core free" else None
        try:
            default = measure(args, None)
            cells = [f"{(v := measure(args, spin)):.2f} ({v / default:.2f}x)" for spin in spins]
        finally:
            if other is not None:
                other.kill()
                other.wait()
        print(f"| {case} | {default:.2f} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
