"""`piper-ws capvector`: make a capability-vector backbone (arXiv 2605.10903), in the foreground.

    piper-ws capvector --backbone mini-smolvla --dataset source-mini --steps 300 --name mini-smolvla-capvector

Fine-tunes the backbone twice on the dataset (full: plain SFT, then SFT + predicting the
state `--horizon` frames ahead), adds `--scale` x (aux - sft) to the backbone's weights and
writes the result, its vector and a card as a new local backbone directory. Then train on
it with the orthogonality regulariser: `piper-ws train --preset mini-capvector --backbone DIR`.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", required=True, help="tiny-smolvla | mini-smolvla | a backbone dir")
    parser.add_argument("--dataset", required=True, help="dataset name under datasets/ (or a path)")
    parser.add_argument("--steps", type=int, required=True, help="optimiser steps of each of the two runs")
    parser.add_argument(
        "--name", required=True, help="the new backbone's name (its dir in the backbone cache)"
    )
    parser.add_argument(
        "--horizon", type=int, default=10, help="frames ahead the aux run predicts (default 10)"
    )
    parser.add_argument("--aux-weight", type=float, default=1.0, help="weight of the aux loss (default 1)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="vector scale added to the backbone (default 1)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto", help="cpu | cuda:0 | auto")


def run(args: argparse.Namespace) -> int:
    from collect.workspace import Workspace
    from train.backbones import BackboneError
    from train.capvector import build_capvector_backbone

    workspace = Workspace.open(args.workspace)
    try:
        path = build_capvector_backbone(
            args.backbone,
            args.dataset,
            args.steps,
            args.name,
            datasets_dir=workspace.datasets_dir,
            aux_horizon=args.horizon,
            aux_weight=args.aux_weight,
            scale=args.scale,
            batch_size=args.batch_size,
            device=args.device,
        )
    except (BackboneError, ValueError, FileNotFoundError) as exc:
        print(f"capvector: {exc}", file=sys.stderr)
        return 2
    print(f"capability-vector backbone: {path}")
    print(f"next: piper-ws train --preset <family>-capvector --backbone {path} --dataset {args.dataset}")
    return 0
