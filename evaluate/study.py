"""The paper's comparison in simulation: what the study runs, and the tables it writes.

`piper-ws study` (app/commands/study.py) drives the stages; this module holds what they
share and what is computed from their files: the strategies and their presets, the
learning-rate grids and the pick from a sweep, the LoRA-SP readings the paper leaves open,
and the rows of the result table (success per task with Wilson intervals, average,
trainable %, active rank per group, step time, peak memory) read from `results.sqlite`
and the runs' `metrics.jsonl`. No torch here.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from evaluate.stats import Rate, fisher_exact, holm, wilson
from evaluate.tables import PAPER_TASKS, ComparisonRow, ComparisonTable, order_tasks, tally
from train.layout import RUN_CONFIG
from train.metrics import read_metrics

# Table I's rows, named as the presets' strategies (preset `<family>-<strategy>`), then the
# workstation's two other methods: VLA-GSE, and full fine-tuning from a capability-vector backbone.
STRATEGIES: tuple[str, ...] = (
    "full", "lora8", "lora32", "lora128", "adalora", "lora_moe", "lora_sp", "vla_gse", "capvector",
)  # fmt: skip
# LoRA usually wants about 10x full fine-tuning's rate (SCIENCE.md); each grid brackets its preset's rate.
FULL_LRS: tuple[float, ...] = (3e-5, 1e-4, 3e-4)
ADAPTER_LRS: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
# Readings of LoRA-SP the paper leaves open (training-config overrides on the lora_sp
# preset): the rate, the vision tower left out of the targets, a bounded score function, the
# router z-loss (squared, ~24 at init with r=128, outweighs the spectral term at 1e-3), the
# spectral loss (the paper's own ablation), eta, the z-loss's authors'-code form, the two
# best readings together, and a relu score. Run in this order, from what the big study's
# lora_sp row showed (Runs 23-26 of docs/results/study-cpu.md): at its sweep's 3e-3 its
# updates grew to hundreds of times the frozen layers' outputs and its policy stopped telling
# one scene from another (benchmarks/grounding.py), with or without the z-loss or the vision
# tower's adapters; at 1e-3 it turned with the object by step 5,000 as LoRA r=8 does. Its
# active rank fell at both rates.
READINGS_LR = 1e-3  # where LoRA-SP works (Run 26): a reading there reads its own change, not the rate's
LORA_SP_VARIANTS: dict[str, dict] = {
    # the control: lora_sp itself at 1e-3, not its sweep's pick (a reading that names only its
    # rate is its strategy's row at that rate, the run `lora_sp` would train there)
    "lora_sp-lr1e-03": {"lr": READINGS_LR},
    # these two came to 1e-3 by the study's rule (unstable at 3e-3: over the ceiling, NaN)
    "lora_sp-no_vision": {"targets": "smolvla:language,action"},  # every study family is SmolVLA
    "lora_sp-no_z": {"adapter": {"z_weight": 0.0}},
    # more vectors kept per token: at 1e-3 the router keeps about 5 of 32 (the paper: about
    # 60 of 128), as few as the low-rank LoRAs it scores like (Run 27)
    "lora_sp-eta0.99": {"adapter": {"eta": 0.99}, "lr": READINGS_LR},
    # scores in (0, 1): the router picks vectors but cannot make the update large (Run 25)
    "lora_sp-score_sigmoid": {"adapter": {"score_fn": "sigmoid"}, "lr": READINGS_LR},
    "lora_sp-no_spec": {"adapter": {"lambda_spec": 0.0}, "lr": READINGS_LR},
    "lora_sp-z_log1p": {"adapter": {"z_loss_form": "log1p"}, "lr": READINGS_LR},
    # the two readings that moved LoRA-SP most at 20,000 steps (Run 30), together: more
    # vectors kept and no z-loss pushing the router's logits down
    "lora_sp-eta0.99-no_z": {"adapter": {"eta": 0.99, "z_weight": 0.0}, "lr": READINGS_LR},
    "lora_sp-score_relu": {"adapter": {"score_fn": "relu"}, "lr": READINGS_LR},
    "lora_sp-eta0.8": {"adapter": {"eta": 0.8}, "lr": READINGS_LR},
}
LORA_SP_ROWS = ("lora_sp", *LORA_SP_VARIANTS)  # Table I's LoRA-SP row and its readings, in order
CSV_HEADER = ("strategy", *PAPER_TASKS, "avg", "trainable_pct", "active_rank")


def lr_grid(trained_strategy: str) -> tuple[float, ...]:
    """The grid for a run whose TrainConfig.strategy is `trained_strategy` (capvector is 'full')."""
    return FULL_LRS if trained_strategy == "full" else ADAPTER_LRS


def lr_tag(lr: float) -> str:
    """A learning rate as it appears in a run name: 0.001 -> '1e-03'."""
    return f"{lr:.0e}"


def final_val_loss(run_dir: Path) -> float | None:
    """The last validation loss the run logged (mean over its held-out tasks), or None."""
    rows = [r for r in read_metrics(run_dir) if r.get("kind") == "val" and r.get("val/mean") is not None]
    return float(rows[-1]["val/mean"]) if rows else None


def pick_lr(val_losses: dict[float, float | None]) -> float:
    """The rate with the lowest validation loss; a diverged run (None/NaN) never wins."""
    finite = {lr: v for lr, v in val_losses.items() if v is not None and v == v}
    if not finite:
        raise ValueError(f"no learning rate of {sorted(val_losses)} gave a validation loss")
    return min(finite, key=finite.get)


# A row's run whose validation loss rises this far above its sweep run's final one at the
# same rate has left what the sweep measured (a short sweep can like a rate that a long run
# diverges at): the study trains the row again at the sweep's best lower rate.
UNSTABLE_MARGIN = 0.10


def val_loss_ceiling(sweep_loss: float | None) -> float | None:
    """The highest validation loss a row's run may log at a rate whose sweep run ended at
    `sweep_loss` (None: no sweep loss, no ceiling)."""
    if sweep_loss is None or sweep_loss != sweep_loss:
        return None
    return sweep_loss * (1 + UNSTABLE_MARGIN)


def first_unstable_loss(run_dir: Path, ceiling: float) -> tuple[int, float] | None:
    """(step, loss) where the run first went unstable, or None: a mean validation loss above
    `ceiling`, or a training or validation loss that is not finite (metrics write it as null;
    given here as inf). A finite training loss is not judged: it is noisier than validation."""
    found = []
    for row in read_metrics(run_dir):
        key = {"val": "val/mean", "train": "loss"}.get(row.get("kind"))
        if key is None or key not in row:
            continue
        loss = row[key]
        if loss is None or not math.isfinite(loss):
            found.append((int(row["step"]), math.inf))
        elif key == "val/mean" and loss > ceiling:
            found.append((int(row["step"]), float(loss)))
    return min(found, default=None, key=lambda hit: hit[0])  # a resumed run logs some steps again


def lower_rate(val_losses: dict[float, float | None], lr: float) -> float | None:
    """The sweep's best rate below `lr`, or None: a rate a long run diverges at is too high,
    so the next try is lower, whatever the sweep says of the higher ones."""
    lower = {r: v for r, v in val_losses.items() if r < lr and v is not None and v == v}
    return min(lower, key=lower.get) if lower else None


@dataclass(frozen=True)
class UnstableRun:
    """A row's run stopped for a validation loss above its ceiling, or a loss gone NaN
    (`val_loss` inf), and the rate it went on at."""

    row: str
    lr: float
    step: int
    val_loss: float
    ceiling: float
    next_lr: float


@dataclass
class TrainingFigures:
    """What a run's metrics say about its cost and its adapters."""

    steps_per_s: float | None = None  # median over the logged windows
    peak_memory_mb: float | None = None
    trainable_pct: float | None = None
    active_rank: dict[str, float] = field(default_factory=dict)  # group -> mean active rank (LoRA-SP)
    final_loss: float | None = None
    final_val_loss: float | None = None
    overall_active_rank: float | None = None  # over every wrapped module, as the run logged it

    @property
    def mean_active_rank(self) -> float | None:
        """The run's own mean over modules; from the groups only where it did not log one."""
        if self.overall_active_rank is not None:
            return self.overall_active_rank
        return sum(self.active_rank.values()) / len(self.active_rank) if self.active_rank else None


def training_figures(run_dir: Path) -> TrainingFigures:
    rows = read_metrics(run_dir)
    train = [r for r in rows if r.get("kind") == "train"]
    started = [r for r in rows if r.get("event") in ("started", "resumed")]
    speeds = sorted(r["steps_per_s"] for r in train if r.get("steps_per_s"))
    figures = TrainingFigures(
        steps_per_s=speeds[len(speeds) // 2] if speeds else None,
        peak_memory_mb=max((r["peak_memory_mb"] for r in train if r.get("peak_memory_mb")), default=None),
        final_loss=train[-1].get("loss") if train else None,
        final_val_loss=final_val_loss(run_dir),
    )
    if started and started[-1].get("total"):
        figures.trainable_pct = 100.0 * started[-1]["trainable"] / started[-1]["total"]
    if train:
        prefix = "active_rank/"
        figures.active_rank = {
            k[len(prefix) :]: float(v)
            for k, v in train[-1].items()
            if k.startswith(prefix) and "/" not in k[len(prefix) :] and v is not None
        }
        figures.overall_active_rank = figures.active_rank.pop("mean", None)  # not a group
    return figures


@dataclass
class StudyRow:
    strategy: str
    run: str
    lr: float | None
    per_task: dict[str, Rate]
    figures: TrainingFigures

    @property
    def average(self) -> float | None:
        """The paper's Avg.: the mean of the per-task rates, only once every task has trials."""
        if any(task not in self.per_task for task in PAPER_TASKS):
            return None
        return sum(self.per_task[t].value for t in PAPER_TASKS) / len(PAPER_TASKS)


def study_row(strategy: str, run_dir: Path, trials) -> StudyRow:
    """A row from the scored trials of `run_dir`'s run (any campaign) and its metrics."""
    config = json.loads((run_dir / RUN_CONFIG).read_text()) if (run_dir / RUN_CONFIG).exists() else {}
    rates = {task: rate for (run, task), rate in tally(trials).items() if run == run_dir.name}
    return StudyRow(strategy, run_dir.name, config.get("lr"), rates, training_figures(run_dir))


# A scored row outlives the machine it ran on: `<out>/rows/<row>.json`, committed with the
# tables, holds what the tables need (trials per task, figures, curve, sweep) and the
# study settings it was scored under. A later study with the same settings on a machine
# that lacks the row's run adopts it instead of training it again.
LEDGER_DIR = "rows"


@dataclass
class LedgerEntry:
    settings: dict  # the study arguments that make rows comparable (StudyRows.settings())
    row: StudyRow
    curve: list[tuple[int, StudyRow]] = field(default_factory=list)  # (checkpoint step, its row)
    sweep: dict[float, float | None] = field(default_factory=dict)  # lr -> final validation loss
    scored_on: str = ""  # host and date, for the reader
    backbone: dict = field(default_factory=dict)  # what its backbone's card says (backbone_summary)
    unstable: list[UnstableRun] = field(default_factory=list)  # its runs stopped before the one scored

    def to_json(self) -> str:
        return json.dumps(
            {
                "settings": self.settings,
                "row": _row_json(self.row),
                "curve": [[step, _row_json(row)] for step, row in self.curve],
                "sweep": [[lr, loss] for lr, loss in sorted(self.sweep.items())],
                "scored_on": self.scored_on,
                "unstable": [asdict(run) for run in self.unstable],
                "backbone": self.backbone,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> LedgerEntry:
        data = json.loads(text)
        return cls(
            settings=data["settings"],
            row=_row_from_json(data["row"]),
            curve=[(int(step), _row_from_json(row)) for step, row in data.get("curve", [])],
            sweep={float(lr): loss for lr, loss in data.get("sweep", [])},
            scored_on=data.get("scored_on", ""),
            backbone=data.get("backbone", {}),
            unstable=[UnstableRun(**run) for run in data.get("unstable", [])],
        )


def _row_json(row: StudyRow) -> dict:
    return {
        "strategy": row.strategy,
        "run": row.run,
        "lr": row.lr,
        "trials": {task: [rate.successes, rate.trials] for task, rate in row.per_task.items()},
        "figures": asdict(row.figures),
    }


def _row_from_json(data: dict) -> StudyRow:
    per_task = {task: wilson(int(s), int(n)) for task, (s, n) in data["trials"].items()}
    return StudyRow(data["strategy"], data["run"], data["lr"], per_task, TrainingFigures(**data["figures"]))


def backbone_summary(card: dict | None) -> dict:
    """What tells two builds of an in-house backbone apart: a rebuild by the same recipe on
    another machine gives the same corpus and steps, and a final loss close to, not equal to,
    the first build's."""
    if not card:
        return {}
    return {"name": card.get("name"), "corpus_frames": (card.get("corpus") or {}).get("frames"),
            "steps": card.get("steps"), "seed": card.get("seed"), "final_loss": card.get("final_loss")}  # fmt: skip


def read_ledger(path: Path) -> LedgerEntry | None:
    """The entry at `path`, or None when there is none or it cannot be read (then the row is
    simply run again: the file is rewritten when it is scored)."""
    try:
        return LedgerEntry.from_json(path.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ledger_rows(out: Path) -> list[LedgerEntry]:
    """Every readable entry under `<out>/rows/`: the rows scored on this machine and those
    adopted from another, Table I's strategies in their order, then the other rows by name."""
    entries = [e for path in sorted((out / LEDGER_DIR).glob("*.json")) if (e := read_ledger(path))]
    rank = {strategy: i for i, strategy in enumerate(STRATEGIES)}
    return sorted(entries, key=lambda e: (rank.get(e.row.strategy, len(rank)), e.row.strategy))


def ledger_stamp(out: Path) -> tuple:
    """Changes whenever a row is scored, adopted or rewritten: the Results page re-reads then."""
    return tuple((p.name, p.stat().st_mtime_ns) for p in sorted((out / LEDGER_DIR).glob("*.json")))


def study_comparison(name: str, out: Path) -> ComparisonTable:
    """The study's rows as the Results page and `piper-ws results --study` show them."""
    if not out.is_dir():
        raise FileNotFoundError(
            f"study {name!r} wrote to {out}, which is gone: if its folder moved, "
            f"`piper-ws study --name {name} --out DIR` points this workspace at DIR"
        )
    rows = [
        ComparisonRow(
            f"study {name}",
            e.row.run,
            e.row.strategy,
            e.row.figures.trainable_pct,
            e.row.figures.mean_active_rank,
            None,
            dict(e.row.per_task),
        )
        for e in ledger_rows(out)
    ]
    return ComparisonTable(order_tasks(t for row in rows for t in row.per_task), rows)


def _pct(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{100 * value:.{digits}f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def paper_table_csv(rows: list[StudyRow]) -> str:
    """docs/results/paper_table.csv: success in %, one row per strategy (empty until scored)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        tasks = [_pct(row.per_task[t].value) if t in row.per_task else "" for t in PAPER_TASKS]
        writer.writerow(
            [
                row.strategy,
                *tasks,
                _pct(row.average),
                _num(row.figures.trainable_pct, 2),
                _num(row.figures.mean_active_rank),
            ]
        )
    return out.getvalue()


def _cell(rate: Rate | None) -> str:
    return rate.percent() if rate is not None else "-"


def paper_table_markdown(rows: list[StudyRow]) -> str:
    headers = ["Strategy", "lr", "Open", "Pour", "Press", "Pick-Place", "Avg.", "Trainable %"]
    headers += ["Active rank (per group)", "Steps/s", "Peak MB"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        f = row.figures
        ranks = ", ".join(f"{g} {v:.1f}" for g, v in sorted(f.active_rank.items())) or "-"
        ranks += f" (mean {f.mean_active_rank:.1f})" if f.active_rank else ""
        cells = [row.strategy, f"{row.lr:g}" if row.lr else "-"]
        cells += [_cell(row.per_task.get(t)) for t in PAPER_TASKS]
        cells += [_pct(row.average) or "-", _num(f.trainable_pct, 2) or "-", ranks]
        cells += [_num(f.steps_per_s, 2) or "-", _num(f.peak_memory_mb, 0) or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# A row kept from another build of the backbone (its ledger entry, once this workspace's build
# scored the row again) is named `<row>@<that build's final pretraining loss>`.
BUILD_MARK = "@"


def kept_name(name: str, backbone: dict) -> str:
    """`name` scored from the backbone build `backbone` (`backbone_summary`), named by its final
    pretraining loss, which is what two builds by the same recipe differ in:
    `lora_sp-lr1e-03@0.0856`."""
    loss = backbone.get("final_loss")
    return f"{name}{BUILD_MARK}{loss:.4f}" if loss is not None else f"{name}{BUILD_MARK}unknown"


def kept_row(row: StudyRow, backbone: dict) -> StudyRow:
    """`row` under its kept name, its run's too: the Results page tells rows apart by run."""
    return replace(row, strategy=kept_name(row.strategy, backbone), run=kept_name(row.run, backbone))


def base_row(name: str) -> str:
    """The row a name stands for: `lora_sp-lr1e-03@0.0856` is `lora_sp-lr1e-03` on that build."""
    return name.split(BUILD_MARK)[0]


def is_control(name: str) -> bool:
    """LoRA-SP with nothing changed but, at most, its rate: the yardstick of the readings."""
    row = base_row(name)
    return row in LORA_SP_ROWS and set(LORA_SP_VARIANTS.get(row, {})) <= {"lr"}


def is_reading(name: str) -> bool:
    """A LoRA-SP reading that changes more than the rate: it is read against a control."""
    return base_row(name) in LORA_SP_VARIANTS and not is_control(name)


def reading_controls(rows: dict[str, StudyRow], builds: dict[str, dict] | None = None) -> dict[str, str]:
    """Each scored LoRA-SP reading -> its control: `lora_sp` trained at the reading's rate from
    the same backbone build (`builds`: row -> its `backbone_summary`), with nothing else
    changed (the row itself, or a reading that names only a rate), so the difference between
    the two is the reading's own change. Readings with no such control scored are left out."""
    builds = builds or {}
    controls = sorted((r for r in rows if is_control(r)), key=variant_order)
    readings = sorted((r for r in rows if is_reading(r)), key=variant_order)
    pairs = {}
    for reading in readings:
        same = [
            c
            for c in controls
            if rows[c].lr == rows[reading].lr and builds.get(c, {}) == builds.get(reading, {})
        ]
        if same:
            pairs[reading] = same[0]
    return pairs


def variant_order(name: str) -> tuple[int, str]:
    """LoRA-SP's rows in the readings' order, a row kept from another build beside its row."""
    return LORA_SP_ROWS.index(base_row(name)), name


def readings_markdown(rows: dict[str, StudyRow], builds: dict[str, dict] | None = None) -> str:
    """Each reading against its control (`reading_controls`): every task's trials pooled, the
    difference in points, Fisher's exact two-sided p and Holm's adjustment of it over every
    pair in the table. Empty with no pair scored."""
    pooled = {r: _pooled(row) for r, row in rows.items()}  # (successes, trials) over every task
    pairs = {r: c for r, c in reading_controls(rows, builds).items() if pooled[r][1] and pooled[c][1]}
    if not pairs:
        return ""
    lines = [
        "Each reading against its control, LoRA-SP at the same rate from the same build of the "
        "backbone with nothing else changed (a control named `row@loss` was trained from the "
        "build whose pretraining ended at that loss): "
        "successes over all four tasks' trials, the difference in points, and Fisher's exact "
        "test (two-sided p: the chance of a split of the successes at least this uneven if the "
        f"reading changed nothing). Holm's p adjusts each p for the {len(pairs)} readings tested "
        "together: below 0.05, the reading stands apart even though several were tried.",
        "",
        "| Reading | lr | Control | Successes | Control's | Difference | p | Holm's p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    p_values = [fisher_exact(pooled[r], pooled[c]) for r, c in pairs.items()]
    for (reading, control), p, adjusted in zip(pairs.items(), p_values, holm(p_values), strict=True):
        ours, theirs = pooled[reading], pooled[control]
        gap = 100 * (ours[0] / ours[1] - theirs[0] / theirs[1])
        cells = [
            reading,
            f"{rows[reading].lr:g}",
            control,
            f"{ours[0]}/{ours[1]}",
            f"{theirs[0]}/{theirs[1]}",
        ]
        cells += [f"{gap:+.1f}", f"{p:.2f}", f"{adjusted:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    waiting = [r for r in rows if is_reading(r) and r not in pairs]
    if waiting:
        names = ", ".join(f"`{r}`" for r in sorted(waiting, key=variant_order))
        lines += ["", f"Not read yet, for want of a scored control at their rate from their build: {names}."]
    return "\n".join(lines) + "\n"


def _pooled(row: StudyRow) -> tuple[int, int]:
    return sum(r.successes for r in row.per_task.values()), sum(r.trials for r in row.per_task.values())


def curve_markdown(points: list[tuple[str, int, StudyRow]]) -> str:
    """Success against training steps: (row, checkpoint step, that checkpoint's scored row)."""
    lines = ["Success against training steps (the same held-out scenes at each checkpoint):", ""]
    lines += [
        "| Strategy | step | Open | Pour | Press | Pick-Place | Avg. |",
        "|---|---|---|---|---|---|---|",
    ]
    for strategy, step, row in sorted(points, key=lambda p: (p[0], p[1])):
        cells = [
            strategy,
            str(step),
            *(_cell(row.per_task.get(t)) for t in PAPER_TASKS),
            _pct(row.average) or "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def sweep_markdown(
    sweep: dict[str, dict[float, float | None]],
    picked: dict[str, float],
    unstable: list[UnstableRun] = (),
) -> str:
    lines = ["| Strategy | lr | final validation loss | picked |", "|---|---|---|---|"]
    order = {s: i for i, s in enumerate(STRATEGIES)}  # the table's order, whichever sweep ended first
    for strategy in sorted(sweep, key=lambda s: order.get(s, len(order))):
        for lr, loss in sorted(sweep[strategy].items()):
            mark = "yes" if picked.get(strategy) == lr else ""
            lines.append(f"| {strategy} | {lr:g} | {_num(loss, 4) or 'diverged/missing'} | {mark} |")
    if unstable:
        lines += [
            "",
            f"Rows unstable at their rate (validation loss above {1 + UNSTABLE_MARGIN:g}x the sweep run's, "
            "or a loss gone NaN: inf):",
            "",
        ]
    for run in unstable:
        lines.append(
            f"- `{run.row}` at {run.lr:g}: {run.val_loss:.4f} at step {run.step:,} (ceiling {run.ceiling:.4f}); "
            f"trained again at {run.next_lr:g}"
        )
    return "\n".join(lines) + "\n"


def success_chart(rows: list[StudyRow], path: Path, title: str) -> None:
    """Grouped bars: success per task for each strategy, with the Wilson intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    width = 0.8 / max(1, len(rows))
    for i, row in enumerate(rows):
        xs, ys, lows, highs = [], [], [], []
        for j, task in enumerate(PAPER_TASKS):
            rate = row.per_task.get(task)
            if rate is None:
                continue
            xs.append(j + (i - (len(rows) - 1) / 2) * width)
            ys.append(100 * rate.value)
            lows.append(100 * (rate.value - rate.low))
            highs.append(100 * (rate.high - rate.value))
        ax.bar(xs, ys, width, yerr=[lows, highs], capsize=2, label=row.strategy)
    ax.set_xticks(range(len(PAPER_TASKS)), PAPER_TASKS)
    ax.set_ylabel("success %")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(ncol=4, fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
