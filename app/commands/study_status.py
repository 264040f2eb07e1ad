"""`piper-ws study --status`: where a study stands and what is left of it, read from disk.

A study on a CPU runs for days across many starts. Before a start, and while one runs, the
operator wants each row's state: scored (how well), scoring, training (at which step, how
fast, its last validation loss), sweeping or not started; and the hours still to go.
Nothing is trained, scored or written: the runs, results.sqlite and the ledger in `--out`
are read through the same `StudyRows` that names the runs for `study`, so the two always agree.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from statistics import median

from evaluate.tables import PAPER_TASKS

from .study_rows import CURVE_POINTS, CURVE_ROWS, StudyRows, curve_campaign


@dataclass(frozen=True)
class RowStatus:
    row: str
    state: str  # scored | scoring | training | stopped | sweeping | not started
    detail: str  # a score, a step, a count
    lr: float | None = None
    val_loss: float | None = None  # the row run's last validation loss
    steps_per_s: float | None = None  # the median of its runs' logged windows, else its strategy's
    steps_left: int = 0  # training steps still to run, its sweep's included
    trials_left: int = 0  # trials still to score, its learnability curve's included

    @property
    def hours_left(self) -> float | None:
        """Lane-hours of training left at `steps_per_s`; None where no speed is known yet."""
        if not self.steps_left:
            return 0.0
        return self.steps_left / self.steps_per_s / 3600 if self.steps_per_s else None


def study_status(study: StudyRows) -> list[RowStatus]:
    """Every row the study's command would run, in its order."""
    with _results(study) as store:
        return _rows(study, store)


def status_text(study: StudyRows) -> str:
    """What `--status` prints: a line per row and what is left (`require_study` first)."""
    require_study(study)
    with _results(study) as store:
        return format_status(study, _rows(study, store), trial_seconds(study, store))


def _rows(study: StudyRows, store) -> list[RowStatus]:
    study.recall(study.rows)
    return [_row_status(study, row, store) for row in study.rows]


def require_study(study: StudyRows) -> None:
    """Refuse a --name, --out or workspace that is not where this study is, naming the
    workspace's studies: a typo would otherwise read as a study with nothing done."""
    from evaluate.study import LEDGER_DIR, ledger_rows

    name, out, runs_dir = study.args.name, study.out.resolve(), study.workspace.runs_dir
    studies = study.workspace.studies()
    if studies.get(name, out) != out:
        raise ValueError(
            f"study {name!r} writes its tables to {studies[name]}, not {out}: give --out {studies[name]}"
        )
    if any(runs_dir.glob(f"{name}-*")) or any(e.settings.get("name") == name for e in ledger_rows(out)):
        return
    known = ", ".join(f"{n} (--out {o})" for n, o in studies.items())
    raise ValueError(
        f"nothing of study {name!r} here: no runs {name}-* in {runs_dir} and no entries in {out / LEDGER_DIR}; "
        + (
            f"check --name and --out: this workspace's studies are {known}"
            if known
            else "start it without --status"
        )
    )


@contextmanager
def _results(study: StudyRows):
    """The workspace's results.sqlite, or None before its first trial (reading creates no file)."""
    from evaluate.store import ResultsStore

    if not study.workspace.results_db.is_file():
        yield None
        return
    with ResultsStore(study.workspace.results_db) as store:
        yield store


def _scored(store, campaign: str) -> int:
    return store.counts(campaign)["scored"] if store is not None and store.has_campaign(campaign) else 0


def _row_status(study: StudyRows, row: str, store) -> RowStatus:
    from evaluate.study import final_val_loss, lr_grid, study_row
    from train.checkpoint import last_step
    from train.metrics import read_metrics
    from train.presets import get_preset

    args, runs_dir = study.args, study.workspace.runs_dir
    if row in study.adopted:
        entry = study.adopted[row]
        return RowStatus(
            row, "scored", f"{_pct(entry.row.average)} (ledger, {entry.scored_on})", entry.row.lr
        )
    trials = args.trials * len(PAPER_TASKS)  # --trials per task, every task
    curve_trials = trials * (CURVE_POINTS - 1) if row in CURVE_ROWS else 0
    speed = _speed(study, row)
    strategy = study.base_strategy(row)
    if strategy not in study.picked:  # no rate yet: its sweep runs first, or its strategy's first row's
        first = study.waits_for(row)
        grid = () if first or not args.sweep_steps else lr_grid(get_preset(study.preset(row)).strategy)
        swept = [min(last_step(runs_dir / study.sweep_run(strategy, lr)), args.sweep_steps) for lr in grid]
        steps_left = args.steps + len(grid) * args.sweep_steps - sum(swept)
        detail = f"after {first}'s sweep" if first else ""
        detail = f"sweep {swept.count(args.sweep_steps)}/{len(grid)} rates" if grid else detail
        state = "sweeping" if any(swept) else "not started"
        return RowStatus(row, state, detail, None, None, speed, steps_left, trials + curve_trials)

    run = study.run_name(row)
    run_dir = runs_dir / run
    lr, step = study.row_rate(row), last_step(run_dir)
    val_loss = final_val_loss(run_dir)
    if step < args.steps:
        if _is_training(run_dir):  # the step it has reached, ahead of its last checkpoint
            logged = max((r["step"] for r in read_metrics(run_dir, "train")), default=step)
            state, detail = "training", f"step {logged:,}/{args.steps:,}, saved {step:,} ({run})"
            step = max(step, logged)
        else:  # where the next start continues from
            state, detail = "stopped" if step else "not started", f"step {step:,}/{args.steps:,} ({run})"
        return RowStatus(row, state, detail, lr, val_loss, speed, args.steps - step, trials + curve_trials)
    scored = _scored(store, run)
    if scored < trials:
        detail = f"{scored}/{trials} trials ({run})"
        return RowStatus(row, "scoring", detail, lr, val_loss, speed, 0, trials - scored + curve_trials)
    curve_left = 0
    if row in CURVE_ROWS:  # scored at each earlier checkpoint once every row is scored
        campaigns = [curve_campaign(run, s) for s in study.curve_steps(row)[:-1]]
        curve_left = sum(trials - _scored(store, c) for c in campaigns)
    average = study_row(row, run_dir, store.trials(run)).average
    detail = _pct(average) + (f", curve: {curve_left} trials left" if curve_left else "")
    return RowStatus(row, "scored", detail, lr, val_loss, speed, 0, curve_left)


def _speed(study: StudyRows, row: str) -> float | None:
    """Steps/s of the row's run; before it has one, of its strategy's row (a reading trains
    as fast as lora_sp) or, before that, of its strategy's sweep runs: an estimate."""
    from evaluate.study import lr_grid
    from train.presets import get_preset

    strategy = study.base_strategy(row)
    own = [study.run_name(row)] if strategy in study.picked else []
    if (adopted := study.adopted.get(strategy)) is not None and row != strategy:
        # the strategy's row was measured on the machine that scored it, which may be slower or
        # faster than this one: a sibling reading that trained here says more
        siblings = [study.run_name(r) for r in study.rows if r != row and study.base_strategy(r) == strategy]
        return _logged_speed(study, own + siblings) or adopted.row.figures.steps_per_s
    runs = [*own, study.run_name(strategy)] if own else []
    runs += [study.sweep_run(strategy, lr) for lr in lr_grid(get_preset(study.preset(row)).strategy)]
    return _logged_speed(study, runs)


def _logged_speed(study: StudyRows, runs: list[str]) -> float | None:
    """Steps/s of the first of `runs` that has logged a speed (the median of its windows)."""
    from evaluate.study import training_figures

    for run in runs:
        run_dir = study.workspace.runs_dir / run
        if run_dir.is_dir() and (speed := training_figures(run_dir).steps_per_s):
            return speed
    return None


def _is_training(run_dir) -> bool:
    from train.jobs import JobError, read_job
    from train.layout import JOB_FILE

    try:
        return (run_dir / JOB_FILE).is_file() and read_job(run_dir).active
    except (JobError, ValueError):  # a job file being rewritten: not known to train
        return False


def trial_seconds(study: StudyRows, store) -> float | None:
    """Wall seconds per scored trial: the median gap between consecutive trials of the study's
    campaigns on this workspace (the median passes over the stops between starts); None before any."""
    gaps = []
    for row in study.rows:
        run = study.run_name(row) if study.base_strategy(row) in study.picked else None
        if run is None or row in study.adopted or not _scored(store, run):
            continue
        times = [datetime.fromisoformat(t.scored_at) for t in store.trials(run)]
        gaps += [g for a, b in pairwise(times) if (g := (b - a).total_seconds()) > 0]
    return median(gaps) if gaps else None


def format_status(study: StudyRows, rows: list[RowStatus], trial_s: float | None) -> str:
    args = study.args
    width = max([len("row"), *(len(r.row) for r in rows)])
    lines = [
        f"Study {args.name}: {args.steps:,} steps per row, {args.trials} trials per task; "
        f"tables in {study.out}",
        f"{'row':<{width}} {'state':<12} {'lr':>7} {'val loss':>9} {'steps/s':>8} {'left':>13}  detail",
    ]
    for r in rows:
        lines.append(
            f"{r.row:<{width}} {r.state:<12} {_num(r.lr, '.0e'):>7} {_num(r.val_loss, '.4f'):>9} "
            f"{_num(r.steps_per_s, '.2f'):>8} {_left(r):>13}  {r.detail}"
        )
    train_h = sum(r.hours_left for r in rows if r.hours_left is not None)
    unknown = [r for r in rows if r.hours_left is None]
    trials = sum(r.trials_left for r in rows)
    if not train_h and not unknown and not trials:
        lines.append("Left: nothing; every row is scored.")
        return "\n".join(lines)
    score_h = trials * trial_s / 3600 if trial_s else None
    lanes = max(1, args.parallel)
    text = f"Left: {train_h:.1f} lane-hours of training"
    if unknown:
        steps = sum(r.steps_left for r in unknown)
        text += f" and {steps:,} steps of {len(unknown)} rows whose speed is not measured yet"
    text += f", {trials} trials" + (f" (about {score_h:.1f} h at {trial_s:.1f} s each)" if score_h else "")
    if score_h is not None:  # scoring takes its lane's share of the cores, as training does
        text += f": about {(train_h + score_h) / lanes:.1f} h with --parallel {lanes}"
        text += ", and those rows" if unknown else ""
    lines.append(text + ".")
    return "\n".join(lines)


def _left(row: RowStatus) -> str:
    if not row.steps_left:
        return "-"
    return f"{row.hours_left:.1f} h" if row.hours_left is not None else f"{row.steps_left:,} steps"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)
