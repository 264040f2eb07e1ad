"""What a row of `piper-ws study` is, and what the study already holds of it, read from disk.

A row (a strategy, the scratch baseline or a LoRA-SP reading) trains a preset at its
strategy's sweep pick (or at the rate a reading names), or at a lower rate where its run
there was unstable, as the run `<name>-<row>`; a row scored on another machine is adopted
from its ledger entry. This is the study without its stages: `study.Study` runs the rows,
`study_status` reads them, and both name every run through these methods, so the two always
agree.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

SCRATCH_ROW = "full_scratch"  # the learnability baseline: full fine-tuning from random weights
# The paper's Table I in the order that answers its question soonest (a row costs hours on a
# CPU): full fine-tuning and what pretraining buys, LoRA-SP, the LoRA r=128 it claims to beat,
# the other baselines. The LoRA-SP readings run next, as they say why LoRA-SP scored what it
# did; the newer methods, which the paper does not compare, last.
PAPER_ROWS = ("full", SCRATCH_ROW, "lora_sp", "lora128", "lora32", "lora8", "adalora", "lora_moe")
NEWER_ROWS = ("vla_gse", "capvector")
DEFAULT_ROW_ORDER = (*PAPER_ROWS, *NEWER_ROWS)  # every strategy's row, in the tables' order
CURVE_ROWS = ("full", SCRATCH_ROW)  # also scored at each checkpoint: success against training steps
CURVE_POINTS = 4  # checkpoints per row run: at 1/4, 1/2, 3/4 and all of the step budget
EVAL_SEED = 7  # base seed of the held-out scenes (recorded episodes use seeds seed..seed+N-1)
# The arguments that make two studies' rows comparable (a ledger entry is adopted only under
# the same values); --rows, --out, --device and the like change where and what, not a row.
SETTINGS = ("name", "family", "backbone", "scratch", "episodes_per_task", "image_size", "steps",
            "sweep_steps", "batch_size", "state_noise", "seed", "trials", "max_duration",
            "capvector_steps")  # fmt: skip


def say(text: str) -> None:
    print(f"== study: {text}", file=sys.stderr, flush=True)


class StudyRows:
    def __init__(self, args: argparse.Namespace, workspace) -> None:
        from evaluate.study import LORA_SP_VARIANTS

        self.args, self.workspace = args, workspace
        _fill_family_defaults(args)
        self.dataset = args.dataset or f"{args.name}-target"
        default_rows = [*PAPER_ROWS, *([] if args.no_readings else LORA_SP_VARIANTS), *NEWER_ROWS]
        self.rows = [r.strip() for r in args.rows.split(",")] if args.rows else default_rows
        # the tables show every row the study has scored, not only the rows this start runs (--rows)
        self.shown_rows = [*dict.fromkeys([*DEFAULT_ROW_ORDER, *LORA_SP_VARIANTS, *self.rows])]
        self.out = Path(args.out)
        self.sweep: dict[str, dict[float, float | None]] = {}
        self.picked: dict[str, float] = {}
        self.adopted: dict = {}  # row -> its LedgerEntry, for rows scored on another machine
        self.known_unstable: dict[str, list] = {}  # strategy -> its adopted row's UnstableRuns
        self.controls_trained_again: set[str] = set()  # refused adoption by `trains_control_again`
        self.sweeps_lock = threading.Lock()  # lanes' sweeps end at any time; sweep.md reads them all

    def base_strategy(self, row: str) -> str:
        """The preset strategy a row trains: readings are lora_sp, the scratch row is full."""
        return "full" if row == SCRATCH_ROW else row.split("-")[0]

    def preset(self, row: str) -> str:
        return f"{self.args.family}-{self.base_strategy(row)}"

    def run_name(self, row: str) -> str:
        """The row's run: at its strategy's sweep pick `<name>-<row>`, at a lower rate (the
        pick was unstable) `<name>-<row>-lr<rate>`. Read from disk, so every start agrees."""
        return self.run_at(row, self.row_rate(row))

    def run_at(self, row: str, lr: float | None) -> str:
        """`<name>-<row>` at its strategy's sweep pick, `<name>-<row>-lr<rate>` at another rate
        (a lower one, or the rate a reading names). A reading that names only its rate is its
        strategy's row at that rate, so it is that run: one run, whichever row asks for it
        (known once the sweep is: before, `lr` is None and the row goes by its own name)."""
        from evaluate.study import lr_tag

        if lr is not None and set(self.overrides(row)) == {"lr"}:
            row = self.base_strategy(row)
        base = f"{self.args.name}-{row}"
        picked = self.picked.get(self.base_strategy(row))
        return base if lr is None or lr == picked else f"{base}-lr{lr_tag(lr)}"

    def overrides(self, row: str) -> dict:
        """The training-config overrides a LoRA-SP reading puts on its preset ({} for other rows)."""
        from evaluate.study import LORA_SP_VARIANTS

        return LORA_SP_VARIANTS.get(row, {})

    def start_rate(self, row: str) -> float | None:
        """The rate the row trains at first: its strategy's sweep pick, or the rate a reading
        names. None before the sweep (a reading's rate is judged by its strategy's sweep too)."""
        picked = self.picked.get(self.base_strategy(row))
        return None if picked is None else self.overrides(row).get("lr", picked)

    def row_rate(self, row: str) -> float | None:
        """The rate the row trains at: its `start_rate`, stepped down to the sweep's
        best lower rate while the row's run at it, or its strategy's row's, was unstable
        (`unstable_at`). None before the sweep."""
        steps = list(self.rate_steps(row))
        return steps[-1][0] if steps else None

    def rate_steps(self, row: str):
        """(rate, where it was unstable or None, the lower rate the row went on at or None) from
        the row's start rate down to the rate it trains at. A rate with no lower one left is the
        last: the row stays there, and is scored there."""
        from evaluate.study import lower_rate

        strategy = self.base_strategy(row)
        lr = self.start_rate(row)
        while lr is not None:
            unstable = self.unstable_at(row, lr)
            lower = lower_rate(self.sweep[strategy], lr) if unstable else None
            yield lr, unstable, lower
            lr = lower

    def ceiling(self, row: str, lr: float | None) -> float | None:
        """The validation loss the row's run at `lr` must stay under, or None where it is not
        judged: the scratch row (its sweep ran on another backbone) and a rate with no lower
        one to go on at (the row trains to the end there, and is scored there)."""
        from evaluate.study import lower_rate, val_loss_ceiling

        losses = self.sweep.get(self.base_strategy(row)) or {}
        if row == SCRATCH_ROW or lr is None or lower_rate(losses, lr) is None:
            return None
        return val_loss_ceiling(losses.get(lr))

    def unstable_at(self, row: str, lr: float) -> tuple[str, int, float] | None:
        """(run, step, validation loss) where the row's run at `lr`, or its strategy's own row's
        (readings learn from it), rose above the rate's `ceiling`, here or, for an adopted row, on
        the machine that scored it (its ledger entry); None if neither did, or if it is not judged."""
        from evaluate.study import first_unstable_loss

        strategy = self.base_strategy(row)
        if (ceiling := self.ceiling(row, lr)) is None:
            return None
        for run in self.known_unstable.get(strategy, ()):  # found on the machine that scored the row
            if run.lr == lr:
                return self.run_at(strategy, lr), run.step, run.val_loss
        for judged in dict.fromkeys((strategy, row)):
            run = self.run_at(judged, lr)
            if (found := first_unstable_loss(self.workspace.runs_dir / run, ceiling)) is not None:
                return run, *found
        return None

    def unstable_runs(self) -> list:
        """The shown rows' own runs found unstable (`UnstableRun`s), for sweep.md: here, or for
        an adopted row on the machine that scored it (its ledger entry)."""
        from evaluate.study import UnstableRun

        found = []
        for row in self.shown_rows:
            if row in self.adopted:  # found on the machine that scored it, whose runs are not here
                found += self.adopted[row].unstable
                continue
            for lr, unstable, lower in self.rate_steps(row):
                if lower is not None and unstable[0] == self.run_at(row, lr):  # not its strategy's row's
                    found.append(UnstableRun(row, lr, unstable[1], unstable[2], self.ceiling(row, lr), lower))
        return found

    def waits_for(self, row: str) -> str | None:
        """The study's first row of this row's strategy, if another: its sweep picks the rate
        this row reuses (rows on two lanes must not run one sweep twice at once), so it goes first."""
        strategy = self.base_strategy(row)
        first = next(r for r in self.rows if self.base_strategy(r) == strategy)
        return None if first == row else first

    def settings(self) -> dict:
        return {key: getattr(self.args, key) for key in SETTINGS} | {"dataset": self.dataset}

    def ledger_path(self, row: str) -> Path:
        from evaluate.study import LEDGER_DIR

        return self.out / LEDGER_DIR / f"{row}.json"

    def adopt(self, row: str) -> bool:
        """Take the row from its ledger entry when this workspace has no run of it and the
        entry was scored under the same settings; its picked rate serves the rows that share
        its strategy, so their sweep is not run again either."""
        from evaluate.study import kept_name, read_ledger

        path = self.ledger_path(row)
        if (self.workspace.runs_dir / self.run_name(row)).exists() or not path.exists():
            return False
        entry = read_ledger(path)
        if entry is None:
            say(f"{path} cannot be read: running {row} again (the entry is rewritten when it is scored)")
            return False
        if entry.settings != self.settings():
            changed = sorted(
                k
                for k in {*entry.settings, *self.settings()}
                if entry.settings.get(k) != self.settings().get(k)
            )
            say(f"{path} was scored under other settings ({', '.join(changed)}): running {row} again")
            return False
        built = self.backbone_summary(row)
        unbuilt = not built and self.backbone_unbuilt(row)
        if entry.backbone and (unbuilt or (built and entry.backbone != built)):
            if unbuilt:  # only `--status` sees this: the study builds the backbone before it adopts
                say(f"{row}: its backbone was a build of {entry.backbone['name']}; this one is not built yet")
            else:
                say(
                    f"{row}: its backbone was another build of {built['name']} ({entry.backbone}); "
                    f"this one: {built}"
                )
            # a rebuild by the same recipe on another machine ends at another loss: a control
            # that would train again from a new build is counted as training again before it
            if self.trains_control_again(row, entry.row.lr, built):
                self.controls_trained_again.add(row)
                kept = kept_name(row, entry.backbone)
                say(
                    f"{row}: trained again from this build, as readings of this study are (the entry stays "
                    f"the control of that build's readings, kept as {kept} once this one is scored)"
                )
                return False
        self.adopted[row] = entry
        strategy = self.base_strategy(row)
        if row == strategy and entry.row.lr is not None:
            with self.sweeps_lock:
                # the sweep's pick: the row's rate, or the first it was unstable at (rates only step down)
                self.picked[strategy] = max([entry.row.lr, *(run.lr for run in entry.unstable)])
                self.sweep[strategy] = entry.sweep
                self.known_unstable[strategy] = entry.unstable
        say(f"{row}: adopted from {path} (scored on {entry.scored_on or 'another machine'})")
        return True

    def trains_control_again(self, row: str, lr: float | None, built: dict) -> bool:
        """Whether `row`, a readings' control (LoRA-SP at a rate, nothing else changed) scored at
        `lr` from another backbone build, trains again from this workspace's build `built`: when
        this study runs it and a reading at that rate is, or will be, trained from `built`
        (scored from it, its ledger entry says, or not scored yet, so it trains here). A reading
        is read against a control from its own build: a rebuild on another CPU moved the
        control's validation loss as much as the readings move it (Run 33 of
        docs/results/study-cpu.md). Table I's own `lora_sp` row is a
        result of its own, not only a yardstick: it is adopted as any row is."""
        from evaluate.study import is_control, is_reading, read_ledger

        if row not in self.rows or row == self.base_strategy(row) or not is_control(row):
            return False
        for reading in filter(is_reading, self.rows):
            entry = read_ledger(self.ledger_path(reading))
            if entry is not None and entry.settings == self.settings():
                if entry.backbone == built and entry.row.lr == lr:
                    return True
            elif self.start_rate(reading) in (lr, None):
                return True
        return False

    def recall(self, rows: list[str]) -> None:
        """What the study already holds of `rows`, without running anything: a ledger entry is
        adopted as usual, a strategy's finished sweep runs are read."""
        from evaluate.study import pick_lr

        for row in rows:
            strategy = self.base_strategy(row)
            if row in self.adopted or self.adopt(row) or strategy in self.sweep:
                continue
            if (losses := self.sweep_losses(strategy, finished_only=True)) is not None:
                self.sweep[strategy], self.picked[strategy] = losses, pick_lr(losses)

    def backbone_for(self, row: str) -> str | None:
        """None: the preset's own backbone (or --backbone)."""
        if row == SCRATCH_ROW:
            return self.args.scratch
        if row == "capvector":
            return str(self.capvector_dir)
        return self.args.backbone

    @property
    def capvector_dir(self) -> Path:
        from train.backbones import default_cache_dir

        return default_cache_dir() / f"{self.args.name}-capvector"

    def sweep_run(self, strategy: str, lr: float) -> str:
        from evaluate.study import lr_tag

        return f"{self.args.name}-sweep-{strategy}-{lr_tag(lr)}"

    def sweep_losses(self, strategy: str, finished_only: bool = False) -> dict[float, float | None] | None:
        """The final validation loss of the strategy's sweep run at each rate of its grid; with
        `finished_only`, None unless every run has trained its steps."""
        from evaluate.study import final_val_loss, lr_grid
        from train.checkpoint import last_step
        from train.presets import PRESETS, get_preset

        if not self.args.sweep_steps or self.preset(strategy) not in PRESETS:
            return None
        grid = lr_grid(get_preset(self.preset(strategy)).strategy)
        runs = {lr: self.workspace.runs_dir / self.sweep_run(strategy, lr) for lr in grid}
        if finished_only and any(last_step(d) < self.args.sweep_steps for d in runs.values()):
            return None
        return {lr: final_val_loss(d) for lr, d in runs.items()}

    def backbone_name(self, row: str) -> str:
        """The backbone the row trains from: --backbone, the scratch model, the capability
        vector's or the preset's own."""
        from train.presets import get_preset

        return self.backbone_for(row) or get_preset(self.preset(row)).backbone

    def backbone_summary(self, row: str) -> dict:
        from evaluate.study import backbone_summary
        from train.backbones import read_card

        name = self.backbone_name(row)
        return backbone_summary(read_card(name)) if "/" not in name else {}

    def backbone_unbuilt(self, row: str) -> bool:
        """Whether the row trains from an in-house backbone this workspace has not made yet (a
        new machine, before the study's backbone stage)."""
        from train.backbones import PRETRAINED_NAMES, read_card

        name = self.backbone_name(row)
        return name in PRETRAINED_NAMES and read_card(name) is None

    def curve_steps(self, row: str) -> list[int]:
        """The steps of the row run's checkpoints, the last one included (not resume points)."""
        from train.layout import CHECKPOINTS, RESUME_POINT

        root = self.workspace.runs_dir / self.run_name(row) / CHECKPOINTS
        if not root.is_dir():
            return []
        return sorted(
            int(p.name)
            for p in root.iterdir()
            if p.name.isdigit() and p.is_dir() and not (p / RESUME_POINT).exists()
        )


def _fill_family_defaults(args: argparse.Namespace) -> None:
    """--scratch and --image-size the family's in-house backbone was made with (pretrain.SIZES):
    the scratch row starts from its random weights, and the target data is recorded at its
    corpus's frame size. Other families: 96x128, and no scratch row unless --scratch names one."""
    from train.backbones import PRETRAINED_NAMES
    from train.presets import PRESETS

    from .pretrain import SIZES

    preset = PRESETS.get(f"{args.family}-full")
    size = next((s for s in SIZES.values() if preset and s.backbone == preset.backbone), None)
    if args.scratch is None and preset is not None:
        args.scratch = PRETRAINED_NAMES.get(preset.backbone)
    if args.image_size is None:
        args.image_size = size.image_size if size else "96x128"


def curve_campaign(run: str, step: int) -> str:
    return f"{run}-step{step}"
