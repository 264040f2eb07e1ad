"""Success tables computed from the stored trials: the tally per task, and the
comparison across runs in the paper's layout (Tables I/II: strategy, trainable %,
active rank, success per task, average), exported as Markdown or CSV.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field

from evaluate.stats import Rate, wilson
from evaluate.store import ResultsStore, RunInfo, TrialRecord

# The paper's column order and headers; any other task follows, alphabetically.
PAPER_TASKS: tuple[str, ...] = ("open_pot", "pour_block", "press_button", "pick_grape")
TASK_HEADERS: dict[str, str] = {
    "open_pot": "Open",
    "pour_block": "Pour",
    "press_button": "Press",
    "pick_grape": "Pick-Place",
}


def order_tasks(tasks: Iterable[str]) -> list[str]:
    tasks = set(tasks)
    return [t for t in PAPER_TASKS if t in tasks] + sorted(tasks - set(PAPER_TASKS))


def tally(trials: Iterable[TrialRecord]) -> dict[tuple[str, str], Rate]:
    """(run, task) -> success rate over the scored, live trials."""
    counts: dict[tuple[str, str], list[int]] = {}
    for t in trials:
        if t.superseded or t.outcome not in ("success", "failure"):
            continue
        wins_and_total = counts.setdefault((t.run, t.task), [0, 0])
        wins_and_total[0] += t.outcome == "success"
        wins_and_total[1] += 1
    return {key: wilson(s, n) for key, (s, n) in counts.items()}


@dataclass
class ComparisonRow:
    campaign: str
    run: str
    strategy: str
    trainable_pct: float | None
    active_rank: float | None
    eta: float | None
    per_task: dict[str, Rate] = field(default_factory=dict)

    @property
    def overall(self) -> Rate:
        """All trials of the row pooled: the interval for the overall success rate."""
        return wilson(
            sum(r.successes for r in self.per_task.values()), sum(r.trials for r in self.per_task.values())
        )

    @property
    def average(self) -> float | None:
        """The paper's 'Avg.': the mean of the per-task success rates (tasks with trials)."""
        values = [r.value for r in self.per_task.values() if r.trials]
        return sum(values) / len(values) if values else None


@dataclass
class ComparisonTable:
    tasks: list[str]
    rows: list[ComparisonRow]

    def sort_by(self, key: str, descending: bool = True) -> ComparisonTable:
        """Sort by 'average', a task key, 'trainable_pct', 'active_rank' or 'run'. Missing values go last."""

        def value(row: ComparisonRow):
            if key == "average":
                return row.average
            if key in self.tasks:
                return row.per_task[key].value if key in row.per_task else None
            return getattr(row, key)

        present = [r for r in self.rows if value(r) is not None]
        missing = [r for r in self.rows if value(r) is None]
        return ComparisonTable(self.tasks, sorted(present, key=value, reverse=descending) + missing)

    def to_markdown(self) -> str:
        headers = ["Run", "Strategy", "Trainable %", "Active rank"]
        headers += [TASK_HEADERS.get(t, t) for t in self.tasks] + ["Avg.", "Overall (n)"]
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        for row in self.rows:
            cells = [
                row.run if row.campaign == row.run else f"{row.run} ({row.campaign})",
                row.strategy or "-",
                _num(row.trainable_pct),
                _num(row.active_rank, 0),
            ]
            cells += [row.per_task[t].percent() if t in row.per_task else "-" for t in self.tasks]
            cells += [_num(None if row.average is None else 100 * row.average), _overall(row.overall)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Success % with 95% Wilson intervals in brackets; Avg. is the mean over tasks.")
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        header = ["campaign", "run", "strategy", "trainable_pct", "active_rank", "eta"]
        for t in self.tasks:
            header += [f"{t}_successes", f"{t}_trials", f"{t}_rate", f"{t}_low", f"{t}_high"]
        header += ["average", "overall_successes", "overall_trials", "overall_low", "overall_high"]
        writer.writerow(header)
        for row in self.rows:
            values = [
                row.campaign,
                row.run,
                row.strategy,
                _raw(row.trainable_pct),
                _raw(row.active_rank),
                _raw(row.eta),
            ]
            for t in self.tasks:
                rate = row.per_task.get(t)
                if rate is None:
                    values += [0, 0, "", "", ""]
                else:
                    values += [rate.successes, rate.trials, _raw(rate.value), _raw(rate.low), _raw(rate.high)]
            overall = row.overall
            values += [
                _raw(row.average),
                overall.successes,
                overall.trials,
                _raw(overall.low),
                _raw(overall.high),
            ]
            writer.writerow(values)
        return out.getvalue()


def comparison_table(
    trials: Iterable[TrialRecord], runs: Iterable[RunInfo] = (), tasks: Iterable[str] | None = None
) -> ComparisonTable:
    """One row per (campaign, run), in first-seen order; run metadata from `runs` where known."""
    trials = [t for t in trials if not t.superseded and t.outcome in ("success", "failure")]
    info = {(r.campaign, r.run): r for r in runs}
    rows: dict[tuple[str, str], ComparisonRow] = {}
    for key, r in info.items():
        rows[key] = ComparisonRow(key[0], key[1], r.strategy, r.trainable_pct, r.active_rank, r.eta)
    by_row: dict[tuple[str, str], list[TrialRecord]] = {}
    for t in trials:
        key = (t.campaign, t.run)
        if key not in rows:
            rows[key] = ComparisonRow(t.campaign, t.run, t.strategy, None, None, None)
        by_row.setdefault(key, []).append(t)
    for key, row_trials in by_row.items():
        rows[key].per_task = {task: rate for (_, task), rate in tally(row_trials).items()}
    task_keys = order_tasks(tasks if tasks is not None else {t.task for t in trials})
    return ComparisonTable(task_keys, list(rows.values()))


def comparison_from_store(store: ResultsStore, campaign: str | None = None) -> ComparisonTable:
    return comparison_table(store.trials(campaign), store.runs(campaign))


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _raw(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _overall(rate: Rate) -> str:
    return f"{rate.percent()} ({rate.trials})" if rate.trials else "-"
