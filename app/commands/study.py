"""`piper-ws study`: the paper's Table I in simulation, from the in-house backbone.

    piper-ws study                                  # the whole study; run it again to continue
    piper-ws study --episodes-per-task 20 --steps 1500 --sweep-steps 200   # a CPU-sized pass
    piper-ws study --device cuda --batch-size 32    # the same on a GPU
    piper-ws study --parallel 2                     # two rows at once (two CPU lanes, or two GPUs)
    piper-ws study --status                         # each row's state and the hours left; trains nothing
    piper-ws study --slurm --gpus 1 --parallel 13   # every row at once, each row's jobs on the cluster

Every stage is a normal workstation command on the workspace, continued from what is on
disk when the same command runs again:

0. backbone: `piper-ws pretrain` when the in-house backbone is not built yet;
1. data: the four target tasks recorded by the virtual operator into `datasets/<name>-target`
   (with two lanes or more, by a child process while the backbone is built);
2. per row, in order (full, full from scratch, LoRA-SP, LoRA r=128/32/8, AdaLoRA, LoRA-MoE,
   the LoRA-SP readings, then VLA-GSE and capability vectors): a learning-rate sweep on
   validation loss (short runs `<name>-sweep-<row>-<lr>`), the run `<name>-<row>` at the
   picked rate with the same data, step budget and seed, and its scored trials (campaign
   `<name>-<row>`, the same held-out scenes for every row); with `--parallel N`, N rows at
   once (`study_lanes`); with `--slurm`, the rows' training runs are Slurm jobs and the
   study scores them where it runs;
3. once every row is scored, the learnability rows (CURVE_ROWS) also score their earlier
   checkpoints on those scenes (campaigns `<name>-<row>-step<N>`): last, because they
   refine rows that already have a result, and they cost as many trials again per point;
4. after each row and each curve, the tables in `--out`: `paper_table.csv` / `.md` / `.png`, `sweep.md`,
   `learnability.md` (full fine-tuning from the pretrained backbone against the same from
   random weights, and success against training steps) and `lora_sp_readings.md`, and each
   scored row's ledger entry `rows/<row>.json` (commit them with the tables).

A row whose run is not in this workspace but whose ledger entry in `--out` was scored
under the same settings is adopted, not trained again: a study that outlives its machine
continues on another from the committed entries (delete an entry to run its row again).
A readings' control scored from another build of the backbone is the exception: it trains
again where readings train from this build, and the other build's entry is kept as
`rows/<row>@<loss>.json`, the control of that build's readings.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .study_lanes import Lane, make_lanes, run_in_lanes
from .study_rows import CURVE_POINTS, CURVE_ROWS, EVAL_SEED, SCRATCH_ROW, StudyRows, curve_campaign, say
from .train import add_slurm_arguments, slurm_argv, slurm_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="study", help="prefix of the study's dataset, runs and campaigns")
    parser.add_argument(
        "--family",
        default="mini",
        help="preset family: mini (mini-smolvla, a CPU), small (small-smolvla, a GPU) or smolvla (tiny)",
    )
    parser.add_argument("--backbone", help="backbone of every row (default: the family's presets')")
    parser.add_argument(
        "--scratch", help="backbone of the full_scratch row (default: the family's before pretraining)"
    )
    parser.add_argument("--rows", help="comma list of rows (default: all strategies, full_scratch, readings)")
    parser.add_argument("--no-readings", action="store_true", help="skip the LoRA-SP readings rows")
    parser.add_argument(
        "--dataset", help="the recorded target dataset (default: <name>-target); another study's to share it"
    )
    parser.add_argument("--episodes-per-task", type=int, default=120)
    parser.add_argument(
        "--image-size", metavar="HxW", help="camera frames (default: the family's pretraining corpus's)"
    )
    parser.add_argument("--steps", type=int, default=3000, help="step budget of every row")
    parser.add_argument("--sweep-steps", type=int, default=300, help="steps of each sweep run (0: no sweep)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--state-noise", type=float, help="state_noise of every run (default: the presets')")
    parser.add_argument("--seed", type=int, default=0, help="training seed and first recorded scene seed")
    parser.add_argument("--trials", type=int, default=15, help="scored trials per task and row")
    parser.add_argument("--max-duration", type=float, default=20.0, metavar="S", help="seconds per trial")
    # The recipe of the committed mini-smolvla (docs/results/mini-smolvla-card.json): a study
    # that outlives its machine rebuilds the backbone its scored rows were trained from.
    parser.add_argument("--pretrain-steps", type=int, default=2500, help="if the backbone must be built")
    parser.add_argument(
        "--pretrain-episodes-per-task", type=int, default=30, help="its corpus, if it must be built"
    )
    parser.add_argument(
        "--capvector-steps", type=int, default=300, help="steps of each run that builds the capability vector"
    )
    parser.add_argument("--device", help="cpu | cuda | cuda:N (default: a GPU if there is one)")
    parser.add_argument(
        "--parallel", type=int, default=1, metavar="N",
        help="rows trained at once: on a CPU each on its share of the cores, else one GPU each",
    )  # fmt: skip
    parser.add_argument("--out", default="docs/results", help="where the tables and the chart go")
    parser.add_argument(
        "--status", action="store_true",
        help="print each row's state and the hours left, read from disk; train nothing",
    )  # fmt: skip
    add_slurm_arguments(
        parser, "Slurm (each row's training runs as a Slurm job; the study scores where it runs)"
    )


def run(args: argparse.Namespace) -> int:
    from collect.workspace import Workspace

    workspace = Workspace.open(args.workspace)
    try:
        study = Study(args, workspace)
        study.check()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.status:
        from evaluate.store import ResultsStoreError

        from .study_status import status_text

        try:
            print(status_text(study))
        except (ValueError, ResultsStoreError) as exc:  # not this workspace's study; a broken database
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    from collect.workspace import LowDisk

    try:
        return study.run()
    except LowDisk as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        say("stopped; run the same command to continue from what is on disk")
        return 130


class Study(StudyRows):
    """The stages that run the rows (sweep, training, scoring, the learnability curves) and the
    tables they write."""

    def __init__(self, args: argparse.Namespace, workspace) -> None:
        super().__init__(args, workspace)
        self.lanes: list[Lane] = []  # where rows train (study_lanes), set by check()
        self.started_runs: set[str] = set()  # training runs this study started: stopped with it
        self.recorder: subprocess.Popen | None = None  # the target's recording beside pretraining
        self.scoring = threading.Lock()  # rows are scored in this process, one at a time

    def check(self) -> None:
        """Refuse bad input before anything is recorded or trained."""
        from evaluate.study import LORA_SP_VARIANTS, STRATEGIES
        from train.presets import PRESETS, get_preset

        slurm = slurm_spec(self.args)
        if slurm is not None:
            from train.slurm import SlurmError, check_available

            if self.args.device:
                raise ValueError(
                    "with --slurm the rows train where Slurm puts them: give --gpus, not --device"
                )
            try:
                check_available("study")
            except SlurmError as exc:
                raise ValueError(str(exc)) from None
        self.lanes = make_lanes(self.args.parallel, self.args.device, slurm)
        known = {*STRATEGIES, SCRATCH_ROW, *LORA_SP_VARIANTS}
        unknown = [r for r in self.rows if r not in known]
        if unknown:
            raise ValueError(f"unknown study rows {unknown}; rows are {', '.join(sorted(known))}")
        missing = sorted({self.preset(r) for r in self.rows} - set(PRESETS))
        if missing:
            raise ValueError(
                f"no presets {missing} for family {self.args.family!r}; see `piper-ws train --presets`"
            )
        if SCRATCH_ROW in self.rows and not self.args.scratch:
            raise ValueError(
                f"the {SCRATCH_ROW} row needs --scratch NAME (random weights of the rows' architecture): "
                f"family {self.args.family!r} has no in-house one, or leave the row out (--rows)"
            )
        recorded = range(self.args.seed, self.args.seed + self.args.episodes_per_task)
        if clash := sorted(set(recorded) & held_out_seeds(self.args.trials)):
            raise ValueError(
                f"recorded scene seeds {recorded.start}..{recorded.stop - 1} include held-out evaluation "
                f"scenes ({clash[:3]}): pick another --seed"
            )
        if "capvector" in self.rows:
            from train.backbones import PRETRAINED_NAMES, resolve_backbone

            backbone = self.args.backbone or get_preset(self.preset("capvector")).backbone
            if backbone not in PRETRAINED_NAMES and not _corpus_of(resolve_backbone(backbone).path):
                raise ValueError(
                    f"the capvector row builds its vector on the backbone's pretraining corpus, and "
                    f"{backbone!r} has none: use an in-house backbone (mini-smolvla) or leave the row out (--rows)"
                )
        for name in ("steps", "episodes_per_task", "trials", "batch_size"):
            if getattr(self.args, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if self.args.state_noise is not None and not self.args.state_noise >= 0:
            raise ValueError(f"--state-noise is a std: give 0 or more, not {self.args.state_noise}")
        if self.args.episodes_per_task < 2 and self.args.sweep_steps:
            raise ValueError(
                "the sweep holds out one episode per task: record at least 2 (--episodes-per-task)"
            )

    # ------------------------------------------------------------------ stages
    def run(self) -> int:
        self.workspace.require_free_space("the study")
        if (code := self.inputs_stage()) != 0:
            return code
        self.recall_other_rows()
        self.adopt_scored_rows()
        try:
            code = run_in_lanes(
                [row for row in self.rows if row not in self.adopted],
                self.lanes,
                self.run_row,
                self.waits_for,
                lambda row: self.write_tables(),
            )
        except BaseException:  # Ctrl-C, a full disk: no training goes on without the study
            self.stop_jobs()
            raise
        if code != 0:
            return code
        for row in self.rows:
            if row in CURVE_ROWS and row not in self.adopted:
                say(f"curve: {row}")
                if (code := self.stages(row, None, (self.curve_stage,))) != 0:
                    return code
                self.write_tables()
        say(f"done: {self.out / 'paper_table.md'}")
        return 0

    def recall_other_rows(self) -> None:
        """What the study already holds of the rows this start does not run, for the tables."""
        self.recall([row for row in self.shown_rows if row not in self.rows])

    def adopt_scored_rows(self) -> None:
        """Adopt the rows of this start that a ledger entry holds before any lane starts, and
        write the tables once: written after each adoption, a restart's tables lacked the rows
        not adopted yet for minutes. In the rows' order, and only where the row's strategy's
        first row is adopted too: a row's run name and a control's adoption depend on the rate
        that row picks, so a row whose first row trains here is judged when its lane starts it."""
        for row in self.rows:
            if row not in self.adopted and self.waits_for(row) in (None, *self.adopted):
                self.adopt(row)
        if self.adopted:
            self.write_tables()

    def run_row(self, row: str, lane: Lane) -> int:
        """The row's sweep, training and scoring on `lane`; nothing for a row adopted or done."""
        where = f" on {lane}" if len(self.lanes) > 1 or lane.slurm else ""
        say(f"row {self.rows.index(row) + 1}/{len(self.rows)}: {row}{where}")
        if self.adopt(row):
            return 0  # adopted once its strategy's first row was: it goes into the tables now
        return self.stages(row, lane, (self.sweep_stage, self.train_stage, self.eval_stage))

    def stages(self, row: str, lane: Lane | None, stages) -> int:
        for stage in stages:
            self.workspace.require_free_space("the study")  # a stage never starts on a nearly full disk
            if (code := stage(row, lane)) != 0:
                say(f"stopped at row {row}; run the same command again to continue from what is on disk")
                return code
        return 0

    def stop_jobs(self) -> None:
        """Cancel the training jobs this study started that still run (each saves where it stopped)."""
        from train.jobs import cancel_job, list_jobs

        active = [
            r for r in list_jobs(self.workspace.runs_dir) if r.active and r.run_name in self.started_runs
        ]
        for record in active:
            say(f"canceling {record.run_name} (it saves a checkpoint first)")
            cancel_job(record.run_dir, wait_s=600)

    def _cli(self, *argv: str) -> int:
        from app.cli import main

        return main(["--workspace", str(self.workspace.root), *argv])

    def inputs_stage(self) -> int:
        """The backbone, when it is not built, and the target data. With two lanes or more they
        are made side by side: the target is recorded by a child process (the recorder keeps one
        core busy) while this one pretrains on the first lane's share of the cores. A machine
        that lost its disk rebuilds both in the time of the longer one."""
        size = self.backbone_to_build()
        if size is None or len(self.lanes) < 2 or self.lanes[0].slurm:
            return self.backbone_stage(size, None) or self.data_stage()
        say(f"data: {self.dataset} recorded by a child process while the backbone is built")
        self.recorder = subprocess.Popen([sys.executable, "-m", "app.cli", *self.data_argv()])
        try:
            code = self.backbone_stage(size, self.lanes[0])
            recorded = self.recorder.wait()
        except BaseException:  # Ctrl-C: the recorder saves its last episode and ends
            self.recorder.send_signal(signal.SIGINT)
            self.recorder.wait()
            raise
        if recorded != 0:
            say(f"recording {self.dataset} stopped (exit code {recorded}); run the same command again")
        return code or recorded

    def backbone_to_build(self) -> str | None:
        """The pretrain size of the rows' in-house backbone when it is not built, else None."""
        from train.backbones import PRETRAINED_NAMES, read_card
        from train.presets import get_preset

        from .pretrain import SIZES

        backbone = self.args.backbone or get_preset(self.preset(self.rows[0])).backbone
        if backbone not in PRETRAINED_NAMES or read_card(backbone) is not None:
            return None
        return next(name for name, s in SIZES.items() if s.backbone == backbone)

    def backbone_stage(self, size: str | None, lane: Lane | None) -> int:
        if size is None:
            return 0
        steps, episodes = self.args.pretrain_steps, self.args.pretrain_episodes_per_task
        say(
            f"backbone of size {size} is not built: pretraining it ({episodes} episodes per task, {steps} steps)"
        )
        argv = ["pretrain", "--size", size, "--steps", str(steps), "--episodes-per-task", str(episodes)]
        device = lane.device if lane else self.args.device
        argv += ["--device", device] if device else []
        argv += ["--threads", str(lane.threads)] if lane and lane.threads else []
        return self._cli(*argv)

    def data_argv(self) -> list[str]:
        from collect.recording.plan import is_dataset

        argv = ["--workspace", str(self.workspace.root), "record", "--backend", "sim", "--dataset", self.dataset,
                "--tasks", "all", "--episodes", str(self.args.episodes_per_task), "--image-size",
                self.args.image_size, "--seed", str(self.args.seed)]  # fmt: skip
        if is_dataset(self.workspace.datasets_dir / self.dataset):
            argv.append("--resume")  # a complete dataset is left as it is
        return argv

    def data_stage(self) -> int:
        from app.cli import main

        say(f"data: {self.dataset}, {self.args.episodes_per_task} episodes per target task")
        return main(self.data_argv())

    def train(
        self,
        row: str,
        run: str,
        steps: int,
        lr: float,
        lane: Lane,
        extra: dict | None = None,
        *,
        sweep: bool = False,
        max_val_loss: float | None = None,
    ) -> int:
        """One training run of the row's preset, continued from its last checkpoint. A row's run
        checkpoints CURVE_POINTS times (what the learnability curve scores); a sweep run rarely.
        A run still training from an earlier start of the study (one killed, or whose Slurm
        allocation ended, while its jobs went on) is followed, not started twice."""
        from train.checkpoint import has_checkpoint, last_step
        from train.jobs import read_job
        from train.layout import JOB_FILE

        from .train import follow

        run_dir = self.workspace.runs_dir / run
        if last_step(run_dir) >= steps:
            return 0
        if (run_dir / JOB_FILE).is_file() and read_job(run_dir).active:
            say(f"{run} is still training from an earlier start: following it")
            self.started_runs.add(run)
            follow(run_dir)
            if last_step(run_dir) >= steps:
                return 0
        if (run_dir / JOB_FILE).is_file() and (job := read_job(run_dir)).state == "unstable":
            # a rate the sweep has a lower one for moved on (`row_rate`); here there is none
            say(f"{run} ended unstable at step {job.step} (a loss gone NaN, or above its ceiling) and "
                "continued it would again: leave its row out (--rows) or sweep lower rates")  # fmt: skip
            return 1
        argv = ["train", "--dataset", self.dataset, "--preset", self.preset(row), "--run", run,
                "--steps", str(steps), "--batch-size", str(self.args.batch_size), "--lr", repr(lr),
                "--set", f"seed={self.args.seed}", "--set", "val_episodes_per_task=1",
                "--set", f"checkpoint_every={max(50 if sweep else 1, steps // CURVE_POINTS)}",
                "--set", f"val_every={max(25, steps // 6)}",
                "--set", "val_batches=4"]  # fmt: skip
        if not sweep:  # set on every start: a run continued takes the ceiling of today's sweep
            argv += ["--set", f"max_val_loss={json.dumps(max_val_loss)}"]
        if self.args.state_noise is not None:
            argv += ["--set", f"state_noise={self.args.state_noise}"]
        backbone = self.backbone_for(row)
        if backbone:
            argv += ["--backbone", backbone]
        if lane.slurm:
            argv += slurm_argv(lane.slurm)
        elif lane.device:
            argv += ["--device", lane.device]
        if not lane.slurm:  # also 0 (every core): a run continued on another lane takes that lane's share
            argv += ["--set", f"threads={lane.threads}"]
        for key, value in (extra or {}).items():
            argv += ["--set", f"{key}={json.dumps(value)}"]
        if has_checkpoint(run_dir):  # a step-0 one too: a run stopped before its first step saved
            argv.append("--resume")
        self.started_runs.add(run)
        code = self._cli(*argv)
        return code or (0 if last_step(run_dir) >= steps else 1)

    def capvector_stage(self, lane: Lane) -> int:
        """The capability vector, built on the pretraining corpus's tasks (other tasks than the
        four evaluated, as in the paper: a small task set), once."""
        from train.backbones import CARD_FILE, resolve_backbone
        from train.presets import get_preset

        if (self.capvector_dir / CARD_FILE).is_file():
            return 0
        backbone = self.args.backbone or get_preset(self.preset("capvector")).backbone
        corpus = _corpus_of(resolve_backbone(backbone).path)
        say(f"capability vector: {self.args.capvector_steps} steps x 2 on {corpus}")
        _use_threads(lane)  # it trains in this process
        argv = ["capvector", "--backbone", backbone, "--dataset", corpus, "--steps", str(self.args.capvector_steps),
                "--name", self.capvector_dir.name, "--batch-size", str(self.args.batch_size)]  # fmt: skip
        return self._cli(*argv, *(["--device", lane.device] if lane.device else []))

    def sweep_stage(self, row: str, lane: Lane) -> int:
        """Short runs at each rate of the grid; the lowest final validation loss wins. Rows that
        share a strategy (the readings, the scratch row) reuse their strategy's pick."""
        from evaluate.study import lr_grid, pick_lr
        from train.presets import get_preset

        strategy = self.base_strategy(row)
        if strategy in self.picked:
            return 0
        if strategy == "capvector" and (code := self.capvector_stage(lane)) != 0:
            return code
        preset = get_preset(self.preset(row))
        if not self.args.sweep_steps:
            self.picked[strategy] = preset.lr
            return 0
        for lr in lr_grid(preset.strategy):
            run = self.sweep_run(strategy, lr)
            if (code := self.train(strategy, run, self.args.sweep_steps, lr, lane, sweep=True)) != 0:
                return code
        losses = self.sweep_losses(strategy)
        with self.sweeps_lock:
            self.sweep[strategy] = losses
            self.picked[strategy] = pick_lr(losses)
        self.write_sweep()
        say(f"sweep {strategy}: picked lr {self.picked[strategy]:g} of {losses}")
        return 0

    def write_sweep(self) -> None:
        from evaluate.study import sweep_markdown

        with self.sweeps_lock:  # lanes' sweeps end at any time
            if self.sweep:
                _write(self.out / "sweep.md", sweep_markdown(self.sweep, self.picked, self.unstable_runs()))

    def train_stage(self, row: str, lane: Lane) -> int:
        """The row's run at `row_rate`; a run stopped as unstable (its validation loss above the
        rate's ceiling) is kept, and the row trains again at the sweep's best lower rate."""
        # the rate goes in as --lr (`row_rate`): set as an override it would undo a step down
        extra = {key: value for key, value in self.overrides(row).items() if key != "lr"}
        while True:
            lr = self.row_rate(row)
            ceiling = self.ceiling(row, lr)
            code = self.train(
                row, self.run_at(row, lr), self.args.steps, lr, lane, extra, max_val_loss=ceiling
            )
            if (next_lr := self.row_rate(row)) == lr:
                return code
            run, step, loss = self.unstable_at(row, lr)
            say(f"{row}: {run} is unstable at lr {lr:g} (loss {loss:.4f} at step {step}; ceiling "
                 f"{ceiling:.4g}): training at lr {next_lr:g}")  # fmt: skip
            self.write_sweep()

    def eval_stage(self, row: str, lane: Lane | None = None, checkpoint: int | None = None) -> int:
        """The row's trials on the held-out scenes (the campaign resumes from results.sqlite):
        of its last checkpoint, or of the one at step `checkpoint` (campaign `<run>-step<N>`).
        In this process, one row at a time, on the lane's share of the cores."""
        campaign = (
            self.run_name(row) if checkpoint is None else curve_campaign(self.run_name(row), checkpoint)
        )
        with self.scoring:
            _use_threads(lane)
            return self._cli(
                "eval", "--run", self.run_name(row), "--backend", "sim", "--tasks", "all",
                "--trials", str(self.args.trials), "--seed", str(EVAL_SEED), "--campaign", campaign,
                "--image-size", self.args.image_size, "--max-duration", str(self.args.max_duration),
                "--checkpoint", "last" if checkpoint is None else str(checkpoint),
            )  # fmt: skip

    def curve_stage(self, row: str, lane: Lane | None = None) -> int:
        """A learnability row: the same trials of each earlier checkpoint (success against steps)."""
        for step in self.curve_steps(row)[:-1]:
            if (code := self.eval_stage(row, checkpoint=step)) != 0:
                return code
        return 0

    # ------------------------------------------------------------------ outputs
    def write_tables(self) -> None:
        from evaluate.store import ResultsStore
        from evaluate.study import (
            LORA_SP_ROWS,
            STRATEGIES,
            base_row,
            curve_markdown,
            paper_table_csv,
            paper_table_markdown,
            readings_markdown,
            study_row,
            success_chart,
            variant_order,
        )

        with ResultsStore(self.workspace.results_db) as store:
            scored = {  # row -> its trials; a campaign with no trial yet (stopped as it began) is no row
                r: found
                for r in self.shown_rows
                if r not in self.adopted and (found := store.trials(self.run_name(r)))
            }
            done, trials = list(scored), [t for found in scored.values() for t in found]
            curve = {  # row -> [(step, its trials)]: the learnability rows', and any a reading has
                r: scored_steps
                for r in done
                if (scored_steps := self.scored_checkpoints(store, r)) or r in CURVE_ROWS
            }
        rows = {r: study_row(r, self.workspace.runs_dir / self.run_name(r), trials) for r in done}
        points = {
            r: [(s, study_row(r, self.workspace.runs_dir / self.run_name(r), t)) for s, t in steps]
            + [(self.curve_steps(r)[-1], rows[r])]
            for r, steps in curve.items()
        }
        for r in done:
            self.write_ledger(r, rows[r], points.get(r, []))
        builds = {r: self.backbone_summary(r) for r in done}  # which backbone build each row trained from
        for r, entry in [*self.adopted.items(), *self.other_builds().items()]:
            rows[r], points[r], builds[r] = entry.row, entry.curve, entry.backbone
        table = [rows[s] for s in STRATEGIES if s in rows]
        header = (
            f"Study `{self.args.name}`: {self.args.episodes_per_task} recorded episodes per task "
            f"({self.args.image_size}), {self.args.steps} steps at batch {self.args.batch_size}, "
            f"{self.args.trials} trials per task on held-out scenes; success % [95% Wilson]. Peak MB: "
            "the GPU memory allocated, or on a CPU the process's peak resident memory, which counts the "
            "memory-mapped frame cache as training reads it.\n\n"
        )
        self.workspace.record_study(self.args.name, self.out)  # the Results page's `Study: <name>`
        _write(self.out / "paper_table.csv", paper_table_csv(table))
        _write(self.out / "paper_table.md", header + paper_table_markdown(table))
        if table:
            success_chart(table, self.out / "paper_table.png", f"simulated Table I ({self.args.name})")
        learn = [r for r in CURVE_ROWS if r in rows]
        if learn:
            curves = [(r, step, row) for r in learn for step, row in points.get(r, [])]
            _write(
                self.out / "learnability.md",
                header + paper_table_markdown([rows[r] for r in learn]) + "\n" + curve_markdown(curves),
            )
        readings = sorted((r for r in rows if base_row(r) in LORA_SP_ROWS), key=variant_order)
        if len(readings) > 1:
            text = header + paper_table_markdown([rows[r] for r in readings])
            if against := readings_markdown(rows, builds):
                text += f"\n{against}"
            if curves := [
                (r, step, row) for r in readings if len(points.get(r, [])) > 1 for step, row in points[r]
            ]:
                text += "\n" + curve_markdown(curves)
            _write(self.out / "lora_sp_readings.md", text)
        self.write_sweep()

    def scored_checkpoints(self, store, row: str) -> list[tuple[int, list]]:
        """(step, trials) of the row run's earlier checkpoints scored on the held-out scenes: by
        the study (a learnability row's curve) or by hand (`piper-ws eval --checkpoint N
        --campaign <run>-step<N>`, a reading's); one whose scoring was cut short is left out."""
        from evaluate.tables import PAPER_TASKS

        points = []
        for step in self.curve_steps(row)[:-1]:
            found = store.trials(curve_campaign(self.run_name(row), step))
            if len(found) >= self.args.trials * len(PAPER_TASKS):
                points.append((step, found))
        return points

    def write_ledger(self, row: str, scored, curve) -> None:
        """The row's entry in `<out>/rows/`: what a study on another machine adopts."""
        import platform
        import time

        from evaluate.study import LedgerEntry

        strategy = self.base_strategy(row)
        path = self.ledger_path(row)
        path.parent.mkdir(parents=True, exist_ok=True)
        backbone = self.backbone_summary(row)
        self.keep_other_build(row, backbone)
        entry = LedgerEntry(
            settings=self.settings(),
            row=scored,
            curve=curve,
            sweep=self.sweep.get(strategy, {}) if row == strategy else {},
            scored_on=f"{platform.node()}, {time.strftime('%Y-%m-%d')}",
            backbone=backbone,
            unstable=[run for run in self.unstable_runs() if run.row == row],
        )
        _write(path, entry.to_json())

    def keep_other_build(self, row: str, backbone: dict) -> None:
        """The row's entry scored from another backbone build, about to be replaced by this
        build's: kept as `<row>@<build>` (`kept_name`), the control of that build's readings."""
        from evaluate.study import kept_row, read_ledger

        earlier = read_ledger(self.ledger_path(row))
        if earlier is None or not earlier.backbone or not backbone or earlier.backbone == backbone:
            return
        earlier.row = kept_row(earlier.row, earlier.backbone)
        _write(self.ledger_path(earlier.row.strategy), earlier.to_json())
        say(f"{row}: the entry scored from another backbone build is kept as {earlier.row.strategy}")

    def other_builds(self) -> dict:
        """This study's entries scored from another backbone build, by name: those kept as
        `<row>@<build>`, and the entry of a control that trains again here from this build
        (`trains_control_again`) until this build's is scored. That build's readings are read
        against them."""
        from evaluate.study import BUILD_MARK, kept_row, ledger_rows

        found = {}
        for entry in ledger_rows(self.out):
            name = entry.row.strategy
            if entry.settings != self.settings() or not entry.backbone:
                continue
            if BUILD_MARK not in name:
                # decided by this start (its run may not have begun yet), or begun by an earlier one
                trains_again = name in self.controls_trained_again
                trains_again |= (self.workspace.runs_dir / self.run_name(name)).exists()
                if not trains_again or name in self.adopted or entry.backbone == self.backbone_summary(name):
                    continue
                entry.row = kept_row(entry.row, entry.backbone)
            found[entry.row.strategy] = entry
        return found


def held_out_seeds(trials: int) -> set[int]:
    """The scene seeds the study's trials run on (the campaign's own rule, base EVAL_SEED)."""
    from collect.sim.tasks import TASK_KEYS
    from evaluate.campaign import CampaignSpec

    spec = CampaignSpec(name="held-out", runs=("any",), tasks=TASK_KEYS, trials=trials, seed=EVAL_SEED)
    return {slot.seed for slot in spec.slots()}


def _corpus_of(backbone_dir: Path) -> str | None:
    """The dataset an in-house backbone was pretrained on (its card), or None."""
    from train.backbones import CARD_FILE

    card = backbone_dir / CARD_FILE
    return (json.loads(card.read_text()).get("corpus") or {}).get("dataset") if card.is_file() else None


def _use_threads(lane: Lane | None) -> None:
    """What runs in the study's process (scoring, the capability vector's runs) keeps to the
    lane's share of the cores, like the lane's jobs."""
    if lane is not None and lane.threads:
        import torch

        torch.set_num_threads(lane.threads)


def _write(path: Path, text: str) -> None:
    """Replace `path` whole (a killed study never leaves half a table); `--out` is made on the
    first write, so that reading a study (`--status`) leaves no folder behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
