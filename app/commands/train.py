"""`piper-ws train`: fine-tune a policy headless, as the Train page does.

    piper-ws train --dataset NAME [--preset smolvla-lora_sp] [--backbone tiny-smolvla] [--steps N] [--run NAME]
    piper-ws train --resume --run NAME [--steps N]
    piper-ws train --list | --cancel NAME | --presets

The run goes to a background job (its own process group; see train/jobs.py); this
command follows its metrics.jsonl with a progress bar. Ctrl-C cancels it (checkpoint,
then stop); `--detach` returns at once and leaves it running.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", help="dataset name under the workspace's datasets/ (or a path)")
    parser.add_argument(
        "--preset", default=None, help="named preset (default smolvla-lora_sp); see --presets"
    )
    parser.add_argument(
        "--backbone",
        help="mini-smolvla | tiny-smolvla | tiny-pi0 | a hub id (lerobot/smolvla_base) | a local snapshot dir",
    )
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument(
        "--tasks", nargs="+", metavar="TASK", help="train on these task instructions only (default: all)"
    )
    parser.add_argument(
        "--device", help="cpu | cpu:N (a CPU lane) | cuda:0 | ... (default: a GPU if there is one)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        help="training processes (DDP; one GPU each); --batch-size is the global batch",
    )
    parser.add_argument(
        "--config",
        dest="accelerate_config",
        metavar="FILE",
        help="an accelerate config file (e.g. FSDP for pi0)",
    )
    parser.add_argument("--run", dest="run_name", help="run name (the folder under runs/)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field, JSON values: --set adapter='{\"r\": 64}' --set precision=bf16",
    )
    add_slurm_arguments(parser, "Slurm (submit the job to the cluster instead of training here)")
    parser.add_argument("--resume", action="store_true", help="continue --run from its last checkpoint")
    parser.add_argument("--detach", action="store_true", help="start the job and return")
    parser.add_argument("--list", action="store_true", help="list runs with their states")
    parser.add_argument("--cancel", metavar="RUN", help="cancel a running job (it checkpoints first)")
    parser.add_argument("--presets", action="store_true", help="list the presets")


def _overrides(args) -> dict:
    fields = {}
    keys = ("dataset", "backbone", "steps", "batch_size", "lr", "tasks", "device", "run_name", "processes")
    for key in (*keys, "accelerate_config"):
        value = getattr(args, key)
        if value is not None:
            fields[key] = value
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        try:
            fields[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            fields[key.strip()] = raw  # a bare string
    return fields


def add_slurm_arguments(parser: argparse.ArgumentParser, title: str) -> None:
    """The Slurm options, shared by `train` and `study` (which passes them on to its rows' jobs)."""
    slurm = parser.add_argument_group(title)
    slurm.add_argument(
        "--slurm", action="store_true", help="submit with sbatch; runs/ must be on a shared disk"
    )
    slurm.add_argument("--partition", help="Slurm partition (default: the cluster's)")
    slurm.add_argument("--gpus", type=int, default=0, help="GPUs per node (one training process each)")
    slurm.add_argument("--nodes", type=int, default=1)
    slurm.add_argument("--time", help="wall-time limit, HH:MM")


def slurm_spec(args):
    """The SlurmSpec of parsed Slurm options, or None without --slurm (refusing stray options)."""
    from train.slurm import SlurmSpec

    if not args.slurm:
        if args.partition or args.gpus or args.nodes != 1 or args.time:
            raise ValueError("--partition, --gpus, --nodes and --time go with --slurm")
        return None
    return SlurmSpec(partition=args.partition, gpus=args.gpus, nodes=args.nodes, time=args.time)


def slurm_argv(spec) -> list[str]:
    """`spec` as `piper-ws train` options: what `slurm_spec` reads back."""
    argv = ["--slurm", "--gpus", str(spec.gpus), "--nodes", str(spec.nodes)]
    return argv + [*(["--partition", spec.partition] if spec.partition else []),
                   *(["--time", spec.time] if spec.time else [])]  # fmt: skip


def _bar(fraction: float, width: int = 30) -> str:
    filled = int(round(width * max(0.0, min(1.0, fraction))))
    return "#" * filled + "-" * (width - filled)


def follow(run_dir, stream=None, poll_s: float = 1.0):
    """Print a progress line until the job ends (to stderr by default, the one in force at the
    call, not at import); returns its final record."""
    from train.jobs import read_job
    from train.metrics import format_eta, progress

    stream = stream or sys.stderr
    # On a terminal one line is redrawn; in a log file a line is written only when the step moves.
    interactive = stream.isatty()
    last_moved = None
    record = read_job(run_dir)
    while record.active:
        p = progress(run_dir)
        if record.state == "queued":
            moved = record.status
            where = "Slurm's queue" if record.slurm_job else f"line for {record.device}"
            line = f"{record.status}: waiting in {where} (cancel: piper-ws train --cancel {record.run_name})"
        else:
            moved = p["step"]
            loss = f"{p['loss']:.4f}" if p["loss"] is not None else "-"
            line = (
                f"{record.run_name} [{_bar(p['fraction'])}] step {p['step']}/{p['total_steps'] or record.total_steps} "
                f"loss {loss} ETA {format_eta(p['eta_s'])}"
            )
        if interactive:
            stream.write(f"\r{line}  ")
        elif moved != last_moved:
            stream.write(line + "\n")
        last_moved = moved
        stream.flush()
        time.sleep(poll_s)
        record = read_job(run_dir)
    if interactive:
        stream.write("\n")
    return record


def _print_runs(runs_dir) -> None:
    from train.jobs import list_jobs

    records = list_jobs(runs_dir)
    if not records:
        print(f"no runs in {runs_dir}")
        return
    print(f"{'run':24} {'state':10} {'strategy':9} {'step':>11} {'trainable':>9} {'loss':>8} {'val':>8}")
    for r in records:
        val = sum(r.final_val.values()) / len(r.final_val) if r.final_val else None
        pct = f"{r.trainable_percent:.1f}%" if r.trainable_percent is not None else "-"
        loss = f"{r.final_loss:.4f}" if r.final_loss is not None else "-"
        print(
            f"{r.run_name:24} {r.status:10} {r.strategy:9} {f'{r.step}/{r.total_steps}':>11} {pct:>9} "
            f"{loss:>8} {f'{val:.4f}' if val is not None else '-':>8}"
        )


def run(args) -> int:
    from collect.workspace import Workspace
    from train.jobs import JobError, cancel_job, start_job
    from train.presets import DEFAULT_PRESET, get_preset, preset_names

    workspace = Workspace.open(args.workspace)
    runs_dir = workspace.runs_dir
    if args.presets:
        print("\n".join(preset_names()))
        return 0
    if args.list:
        _print_runs(runs_dir)
        return 0
    if args.cancel:
        record = cancel_job(runs_dir / args.cancel, wait_s=600)
        print(f"{record.run_name}: {record.state} at step {record.step}")
        return 0 if record.state in ("canceled", "completed") else 1
    try:
        overrides = _overrides(args)
        slurm = slurm_spec(args)
        if args.resume:
            if not args.run_name:
                print("--resume needs --run NAME", file=sys.stderr)
                return 2
            overrides.pop("run_name")
            record = start_job(
                None,
                runs_dir,
                workspace.datasets_dir,
                run_name=args.run_name,
                resume=True,
                overrides=overrides,
                slurm=slurm,
            )
        else:
            if not args.dataset:
                print(
                    "--dataset NAME is required (a dataset under datasets/, see piper-ws record)",
                    file=sys.stderr,
                )
                return 2
            config = get_preset(args.preset or DEFAULT_PRESET, **overrides)
            record = start_job(config, runs_dir, workspace.datasets_dir, device=args.device, slurm=slurm)
    except (JobError, KeyError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    print(
        f"run {record.run_name}: {record.strategy} on {record.backbone}, "
        + (f"Slurm job {record.slurm_job}" if record.slurm_job else f"job pid {record.pid}")
        + f", dir {record.run_dir}"
    )
    print(f"log: {record.run_dir}/train.log")
    if args.detach:
        return 0
    try:
        record = follow(record.run_dir)
    except KeyboardInterrupt:
        print("\ncanceling (saving a checkpoint first) ...", file=sys.stderr)
        record = cancel_job(record.run_dir, wait_s=600)
    print(f"run {record.run_name}: {record.state} at step {record.step}/{record.total_steps}")
    if record.state == "failed":
        print(f"error: {record.error} (traceback in {record.run_dir}/train.log)", file=sys.stderr)
        return 1
    return 0
