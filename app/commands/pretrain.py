"""`piper-ws pretrain`: make the in-house backbone `mini-smolvla` in simulation.

    piper-ws pretrain                                   # corpus, full training, export; resumable
    piper-ws pretrain --device cuda --batch-size 64     # the same on a GPU
    piper-ws pretrain --size small --device cuda --batch-size 32   # small-smolvla: 83 M, 192x256 frames
    piper-ws pretrain --size tiny --episodes-per-task 2 --steps 50   # a quick look (tests)

Three stages, each continued from what is on disk when the same command runs again:

1. **corpus**: the source tasks (`collect/sim/tasks/source.py`: other objects, places,
   instructions and side-camera pose than the four evaluated tasks) recorded headless
   by the virtual operator, lockstep, into `datasets/<corpus>` (`piper-ws record`);
2. **training**: the scratch model (`scratch-mini-smolvla`, random weights) fully
   trained on the corpus as the run `runs/pretrain-<size>` (`piper-ws train`: a job the
   Train page and `train --list` show; Ctrl-C checkpoints);
3. **export**: the last checkpoint installed as backbone `mini-smolvla` (or
   `tiny-smolvla-pretrained`) in the model cache with `card.json` (corpus, steps, seed,
   final loss, parameters), which `--backbone` and the presets `mini-*` then use.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from dataclasses import dataclass
from importlib import metadata


@dataclass(frozen=True)
class Size:
    scratch: str  # the random-weight model pretraining starts from
    backbone: str  # what it exports
    image_size: str  # camera frames of its recordings (HxW): the model's image side wide, 3:4


SIZES = {
    "mini": Size("scratch-mini-smolvla", "mini-smolvla", "96x128"),  # results on a 2-core CPU
    "small": Size("scratch-small-smolvla", "small-smolvla", "192x256"),  # results on one GPU
    "tiny": Size("tiny-smolvla", "tiny-smolvla-pretrained", "96x128"),  # tests
}
CORPUS_SEED = 500_000  # scene seeds of the corpus, far from those of recorded target datasets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--size", choices=tuple(SIZES), default="mini", help="mini (a CPU), small (a GPU) or tiny (tests)"
    )
    parser.add_argument("--tasks", default="all", help="'all' source tasks or a comma list of them")
    parser.add_argument("--episodes-per-task", type=int, default=100, help="corpus episodes per source task")
    parser.add_argument("--image-size", metavar="HxW", help="corpus camera frames (default: the size's)")
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--device", help="cpu | cuda | cuda:N (default: a GPU if there is one)")
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads of the training (0: one per core)"
    )
    parser.add_argument("--corpus", help="corpus dataset name (default: source-<size>)")


def run(args: argparse.Namespace) -> int:
    from app.cli import main
    from collect.recording.plan import is_dataset
    from collect.sim.tasks import SOURCE_TASK_KEYS
    from collect.workspace import Workspace
    from train.backbones import read_card
    from train.checkpoint import has_checkpoint, last_step

    workspace = Workspace.open(args.workspace)
    scratch, name = SIZES[args.size].scratch, SIZES[args.size].backbone
    args.image_size = args.image_size or SIZES[args.size].image_size
    corpus = args.corpus or f"source-{args.size}"
    run_name = f"pretrain-{args.size}"
    tasks = ",".join(SOURCE_TASK_KEYS) if args.tasks.strip() == "all" else args.tasks
    prefix = ["--workspace", str(workspace.root)]

    from collect.workspace import LowDisk

    try:
        workspace.require_free_space("pretraining")  # checked again by the study between its stages
    except LowDisk as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _say(f"1/3 corpus: {corpus} ({tasks}, {args.episodes_per_task} episodes each)")
    record = ["record", "--backend", "sim", "--dataset", corpus, "--tasks", tasks, "--episodes",
              str(args.episodes_per_task), "--image-size", args.image_size, "--seed", str(CORPUS_SEED)]  # fmt: skip
    if is_dataset(workspace.datasets_dir / corpus):
        record.append("--resume")  # a complete corpus is left as it is
    if (code := main([*prefix, *record])) != 0:
        return _stopped("corpus", code)

    _say(f"2/3 training: run {run_name}, {scratch} from scratch, {args.steps} steps")
    if last_step(workspace.runs_dir / run_name) >= args.steps:
        _say(f"run {run_name} already reached step {args.steps}")
    else:
        train = ["train", "--dataset", corpus, "--preset", "smolvla-full", "--backbone", scratch, "--run", run_name,
                 "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
                 "--set", f"seed={args.seed}", "--set", "checkpoint_every=500", "--set", "val_episodes_per_task=1"]  # fmt: skip
        if args.device:
            train += ["--device", args.device]
        if args.threads:
            train += ["--set", f"threads={args.threads}"]
        if has_checkpoint(workspace.runs_dir / run_name):
            train.append("--resume")
        if (code := main([*prefix, *train])) != 0 or last_step(workspace.runs_dir / run_name) < args.steps:
            return _stopped("training", code or 1)

    card = read_card(name)
    if card is not None and card.get("run") == run_name and card.get("steps") == args.steps:
        _say(f"3/3 export: backbone {name!r} is up to date")
    else:
        path = _export(workspace, name, scratch, corpus, tasks, run_name, args)
        _say(f"3/3 export: backbone {name!r} at {path}")
    family = args.size if args.size != "tiny" else "smolvla"
    _say(f"fine-tune from it: piper-ws train --backbone {name} ... (presets {family}-*)")
    return 0


def _export(workspace, name: str, scratch: str, corpus: str, tasks: str, run_name: str, args) -> str:
    from train.backbones import export_pretrained
    from train.checkpoint import checkpoint_dir
    from train.layout import PRETRAINED

    run_dir = workspace.runs_dir / run_name
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train_rows = [r for r in rows if r.get("kind") == "train"]
    started = next((r for r in rows if r.get("event") in ("started", "resumed")), {})
    info = json.loads((workspace.datasets_dir / corpus / "meta" / "info.json").read_text())
    card = {
        "name": name,
        "from": scratch,
        "run": run_name,
        "corpus": {
            "dataset": corpus,
            "tasks": tasks.split(","),
            "episodes": info.get("total_episodes"),
            "frames": info.get("total_frames"),
            "image_size": args.image_size,
        },
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "final_loss": train_rows[-1]["loss"] if train_rows else None,
        "parameters": started.get("total"),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        # another physics or torch version records and trains a little differently: a rebuild
        # elsewhere is compared knowing which
        "software": {name: metadata.version(name) for name in ("mujoco", "torch", "lerobot")},
    }
    return str(export_pretrained(checkpoint_dir(run_dir) / PRETRAINED, name, card))


def _say(text: str) -> None:
    print(f"== pretrain: {text}", file=sys.stderr, flush=True)


def _stopped(stage: str, code: int) -> int:
    _say(f"stopped in the {stage} stage; run the same command again to continue from what is on disk")
    return code
