"""`piper-ws results`: the success table from results.sqlite, as Markdown or CSV.

piper-ws results                         # every campaign, Markdown on stdout
piper-ws results --campaign smolvla-sp --format csv --output table.csv
piper-ws results --trials                # the raw trial rows, newest last
piper-ws results --study big             # a study's rows, adopted ones included (its rows/ ledger)
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import asdict, fields
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("md", "csv"), default="md", help="output format (default: md)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--campaign", help="only this campaign (default: all)")
    source.add_argument(
        "--study", metavar="NAME", help="a study run on this workspace (`piper-ws study --name`)"
    )
    parser.add_argument(
        "--sort", default=None, help="sort rows by 'average', a task key, 'trainable_pct' or 'run'"
    )
    parser.add_argument("--trials", action="store_true", help="list the scored trials instead of the table")
    parser.add_argument("--aborted", action="store_true", help="with --trials: list the aborted trials too")
    parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")


def run(args: argparse.Namespace) -> int:
    from collect.workspace import Workspace
    from evaluate.store import ResultsStore, ResultsStoreError, TrialRecord
    from evaluate.tables import comparison_from_store

    workspace = Workspace.open(args.workspace)
    if args.study:
        table = _study_table(workspace, args)
        return 1 if table is None else _emit(_table_text(table, args), args.output)
    if not workspace.results_db.exists():
        studies = ", ".join(workspace.studies())
        print(
            f"no results yet: {workspace.results_db} does not exist; run `piper-ws eval` first"
            + (f", or show a study's rows with --study NAME ({studies})" if studies else ""),
            file=sys.stderr,
        )
        return 1
    try:
        with ResultsStore(workspace.results_db) as store:
            if args.campaign:
                store.campaign(args.campaign)  # a clear error for an unknown name
            _print_counts(store, args.campaign)
            if args.trials:
                trials = store.trials(args.campaign, include_aborted=args.aborted)
                text = _trials_text(trials, args.format, [f.name for f in fields(TrialRecord)])
            else:
                text = _table_text(comparison_from_store(store, args.campaign), args)
    except ResultsStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return _emit(text, args.output)


def _study_table(workspace, args: argparse.Namespace):
    """The study's comparison table, or None once the reason is printed."""
    from evaluate.study import study_comparison

    studies = workspace.studies()
    if args.study not in studies:
        known = ", ".join(studies) or "none yet"
        print(f"error: no study {args.study!r} on {workspace.root} (studies: {known}); "
              "run `piper-ws study --name NAME` on this workspace first", file=sys.stderr)  # fmt: skip
        return None
    if args.trials:
        print("error: a study's rows hold counts, not trials: for the trials scored here, "
              "`piper-ws results --campaign <run> --trials`", file=sys.stderr)  # fmt: skip
        return None
    try:
        table = study_comparison(args.study, studies[args.study])
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    print(f"study {args.study!r}: {len(table.rows)} rows from {studies[args.study]}", file=sys.stderr)
    return table


def _table_text(table, args: argparse.Namespace) -> str:
    if args.sort:
        table = table.sort_by(args.sort, descending=args.sort not in ("run",))
    return table.to_markdown() if args.format == "md" else table.to_csv()


def _emit(text: str, output: str | None) -> int:
    if output:
        Path(output).write_text(text)
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _print_counts(store, campaign: str | None) -> None:
    """The counts the Evaluate page shows, on stderr so that stdout stays a clean table."""
    for name in [campaign] if campaign else [c.name for c in store.campaigns()]:
        counts = store.counts(name)
        aborted = f", {counts['aborted']} aborted" if counts["aborted"] else ""
        print(f"campaign {name!r}: {counts['scored']} trials scored{aborted}", file=sys.stderr)


def _trials_text(trials, fmt: str, columns: list[str]) -> str:
    if fmt == "csv":
        import io

        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for t in trials:
            writer.writerow(asdict(t))
        return out.getvalue()
    shown = ["campaign", "run", "task", "trial_index", "outcome", "scorer", "duration_s", "seed", "note"]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for t in trials:
        row = asdict(t)
        lines.append("| " + " | ".join("" if row[c] is None else str(row[c]) for c in shown) + " |")
    return "\n".join(lines) + "\n"
