"""`piper-ws spectrum --base DIR --tuned DIR`: how much rank did a fine-tune use?

Compares two checkpoints of one backbone (e.g. the pretrained policy and a full
fine-tune of it): per module and per group (vision / language / action) the smallest k
whose top-k singular values of W_tuned - W_base hold eta of the update's energy, for
several eta, plus a plot of the cumulative energy curves. A guide to LoRA-SP's r.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, metavar="DIR", help="checkpoint before fine-tuning")
    parser.add_argument("--tuned", required=True, metavar="DIR", help="checkpoint after fine-tuning")
    parser.add_argument(
        "--eta", type=float, nargs="+", default=[0.5, 0.7, 0.8, 0.9, 0.99], help="energy targets"
    )
    parser.add_argument(
        "--targets",
        default=None,
        metavar="SPEC",
        help="modules to analyse: smolvla[:groups], pi0[:groups] or re:<regex> (default: detected)",
    )
    parser.add_argument(
        "--plot", default=None, metavar="PNG", help="plot path (default: spectrum.png in --tuned)"
    )
    parser.add_argument("--groups-only", action="store_true", help="print the per-group table only")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the ranks as JSON")


def run(args: argparse.Namespace) -> int:
    from train.adapters.spectrum import analyse, format_report, plot_energy_curves, read_weights
    from train.adapters.targets import parse_targets

    try:
        etas = tuple(args.eta)
        if not all(0 < e <= 1 for e in etas):
            raise ValueError(f"every --eta must be in (0, 1], got {list(etas)}")
        targets = parse_targets(args.targets) if args.targets else None
        report = analyse(read_weights(args.base), read_weights(args.tuned), targets, etas)
    except (FileNotFoundError, ValueError) as err:
        print(f"spectrum: {err}")
        return 2
    print(format_report(report, per_module=not args.groups_only))
    tuned = Path(args.tuned)
    plot = Path(args.plot) if args.plot else (tuned if tuned.is_dir() else tuned.parent) / "spectrum.png"
    try:
        print(f"energy curves: {plot_energy_curves(report, plot)}")
    except OSError as err:
        print(f"spectrum: cannot write the plot to {plot} ({err}); choose another path with --plot")
        return 2
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "modules": {
                        m.name: {"group": m.group, "shape": m.shape, "k": m.ranks} for m in report.modules
                    },
                    "groups": report.group_summary(),
                    "suggested_r": report.suggest_r(),
                },
                indent=2,
            )
        )
    return 0
