"""`piper-ws demo`: the whole loop, headless, on the simulated PiPER, at a small scale.

    piper-ws demo                      # ~5 min on an idle 2-core CPU (record 3 min, train 1, eval 1.5)
    piper-ws demo --tasks press_button --steps 30 --trials 1   # a quick look

1. record a few episodes per task with the virtual operator   (`piper-ws record`)
2. fine-tune a tiny SmolVLA with LoRA-SP briefly               (`piper-ws train`)
3. evaluate it on seeded sim trials, scored by the predicates  (`piper-ws eval`)
4. print the results table                                      (`piper-ws results`)

Each stage is the same command an operator would type (shown before it runs). A stage
whose output already exists is skipped, so running the demo again resumes it; `--fresh`
starts over under new names. A tiny model trained for minutes on a handful of episodes is
not expected to succeed often: the demo shows the workflow, not the paper's numbers.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", default="all", help="'all' or comma-separated task keys")
    parser.add_argument(
        "--episodes", type=int, default=2, help="episodes recorded per task (>= 2: one is held out)"
    )
    parser.add_argument("--steps", type=int, default=120, help="training steps (batch 4)")
    parser.add_argument("--trials", type=int, default=2, help="evaluation trials per task")
    parser.add_argument("--max-duration", type=float, default=8.0, metavar="S", help="seconds per trial")
    parser.add_argument("--name", default="demo", help="dataset, run and campaign name prefix")
    parser.add_argument("--fresh", action="store_true", help="start over under a new, timestamped name")


def stages(args: argparse.Namespace, name: str) -> list[tuple[str, list[str]]]:
    run = f"{name}-smolvla-lora_sp"
    return [
        (
            "record",
            [
                "record",
                "--backend",
                "sim",
                "--dataset",
                name,
                "--tasks",
                args.tasks,
                "--episodes",
                str(args.episodes),
                "--image-size",
                "240x320",
            ],
        ),
        (
            "train",
            [
                "train",
                "--dataset",
                name,
                "--preset",
                "smolvla-lora_sp",
                "--backbone",
                "tiny-smolvla",
                "--steps",
                str(args.steps),
                "--batch-size",
                "4",
                "--device",
                "cpu",
                "--run",
                run,
            ],
        ),
        (
            "eval",
            [
                "eval",
                "--run",
                run,
                "--backend",
                "sim",
                "--tasks",
                args.tasks,
                "--trials",
                str(args.trials),
                "--max-duration",
                str(args.max_duration),
                "--image-size",
                "240x320",
                "--campaign",
                f"{name}-eval",
            ],
        ),
        ("results", ["results", "--campaign", f"{name}-eval"]),
    ]


def run(args: argparse.Namespace) -> int:
    from app.cli import COMMANDS, main
    from collect.recording.plan import is_dataset
    from collect.workspace import Workspace

    workspace = Workspace.open(args.workspace)
    name = args.name + (time.strftime("-%Y%m%d-%H%M%S") if args.fresh else "")
    prefix = ["--workspace", str(workspace.root)]
    total_start = time.monotonic()
    missing = []
    for stage, argv in stages(args, name):
        if argv[0] not in COMMANDS:
            missing.append(argv[0])
            print(
                f"\n== {stage}: `piper-ws {argv[0]}` is not available in this build; skipped", file=sys.stderr
            )
            continue
        if stage == "record" and is_dataset(workspace.datasets_dir / name):
            argv = [*argv, "--resume"]  # finishes a partly recorded plan; a complete one is left as is
        elif _already_done(stage, workspace, name):
            print(
                f"\n== {stage}: already done in {workspace.root}; skipped (use --fresh to redo)",
                file=sys.stderr,
            )
            continue
        print(f"\n== {stage}: piper-ws {shlex.join(argv)}", file=sys.stderr, flush=True)
        start = time.monotonic()
        status = main(prefix + argv)
        print(
            f"== {stage}: exit {status} after {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True
        )
        if status != 0:
            print(
                f"demo stopped at {stage}; fix the error above and run `piper-ws demo` again to resume",
                file=sys.stderr,
            )
            return status
    print(
        f"\ndemo finished in {(time.monotonic() - total_start) / 60:.1f} min; workspace {workspace.root}",
        file=sys.stderr,
    )
    if missing:
        print(f"not run (commands missing from this build): {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


def _already_done(stage: str, workspace, name: str) -> bool:
    """Skip training when the run already has a checkpoint."""
    if stage == "train":
        run_dir = workspace.runs_dir / f"{name}-smolvla-lora_sp"
        return any(run_dir.glob("checkpoints/last*")) if run_dir.exists() else False
    return False  # eval resumes by itself; results always prints
