"""`piper-ws study --status`: each row's state and the hours left, read from what a study
leaves on disk (runs, results.sqlite, the ledger), with nothing trained, scored or written."""

import argparse
import json
import shutil
import subprocess
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta

from app.cli import main
from evaluate.store import ResultsStore, TrialRecord
from tests.evaluate._ledger import TASKS

STUDY = ["--family", "smolvla", "--backbone", "tiny-smolvla", "--scratch", "tiny-smolvla",
         "--rows", "full,full_scratch,lora_sp,lora128,lora32,lora_sp-no_z", "--steps", "1000",
         "--sweep-steps", "100", "--trials", "2", "--device", "cpu", "--parallel", "2"]  # fmt: skip


def _run(workspace, name, step, *, speed=None, val=None):
    """A run as `piper-ws train` leaves it: its last checkpoint and its metrics."""
    run_dir = workspace.runs_dir / name
    (run_dir / "checkpoints" / f"{step:06d}").mkdir(parents=True)
    (run_dir / "checkpoints" / "last").write_text(f"{step:06d}")
    lines = [{"kind": "train", "step": step, "steps_per_s": speed}] if speed else []
    lines += [{"kind": "val", "step": step, "val/mean": val}] if val is not None else []
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def _score(workspace, campaign, successes, at_s):
    """Trials of `campaign`, one per task in turn for each of `successes`, scored at `at_s`."""
    with ResultsStore(workspace.results_db) as store:
        store.create_campaign(campaign, "sim", {})
        for index, (success, at) in enumerate(zip(successes, at_s, strict=True)):
            stamp = datetime(2026, 12, 5, 10, tzinfo=UTC) + timedelta(seconds=at)
            outcome = "success" if success else "failure"
            record = TrialRecord(campaign, campaign, TASKS[index % 4], index // 4, outcome, "predicate")
            store.add_trial(replace(record, scored_at=stamp.isoformat()))


def _job(workspace, run, pid):
    """The job record of a run whose training process is `pid`, as `start_job` writes it."""
    from train.jobs import JobRecord, _proc_start
    from train.layout import JOB_FILE

    run_dir = workspace.runs_dir / run
    record = JobRecord(run, str(run_dir), state="running", pid=pid, proc_start=_proc_start(pid))
    (run_dir / JOB_FILE).write_text(json.dumps(asdict(record)))


def _study(workspace, out, *extra_rows):
    from app.commands.study import Study, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = [*STUDY, "--out", str(out)]
    argv[argv.index("--rows") + 1] += "".join(f",{row}" for row in extra_rows)
    return Study(parser.parse_args(argv), workspace)


def test_status_reads_each_rows_state_and_the_hours_left_from_disk(workspace, tmp_path, capsys):
    from app.commands.study_status import study_status
    from collect.workspace import Workspace
    from evaluate.stats import wilson
    from evaluate.study import LedgerEntry, StudyRow, TrainingFigures

    out = tmp_path / "results"
    # full: scored on another machine under this study's settings (its ledger entry)
    per_task = {task: wilson(s, 15) for task, s in zip(TASKS, (7, 1, 11, 1), strict=True)}
    full = StudyRow("full", "study-full", 1e-4, per_task, TrainingFigures(steps_per_s=1.9))
    ledger = _study(workspace, out).ledger_path("full")
    ledger.parent.mkdir(parents=True)
    ledger.write_text(LedgerEntry(_study(workspace, out).settings(), full, scored_on="elsewhere").to_json())
    # lora_sp: swept (1e-3 the best), its row stopped at step 400 at 0.5 steps/s
    for lr, loss in (("3e-04", 0.3), ("1e-03", 0.2), ("3e-03", 0.25)):
        _run(workspace, f"study-sweep-lora_sp-{lr}", 100, speed=0.4, val=loss)
    _run(workspace, "study-lora_sp", 400, speed=0.5, val=0.18)
    # lora128: one sweep run of three done, one half-way
    _run(workspace, "study-sweep-lora128-3e-04", 100, speed=2.0, val=0.3)
    _run(workspace, "study-sweep-lora128-1e-03", 50, speed=2.0)
    # lora32: swept and trained; 5 of its 8 trials scored, 6 s apart but for a stop of two hours
    for lr, loss in (("3e-04", 0.3), ("1e-03", 0.2), ("3e-03", 0.25)):
        _run(workspace, f"study-sweep-lora32-{lr}", 100, speed=1.0, val=loss)
    _run(workspace, "study-lora32", 1000, speed=1.0, val=0.12)
    _score(workspace, "study-lora32", (1, 0, 1, 1, 0), (0, 6, 12, 7212, 7218))
    runs_before = sorted(p.name for p in workspace.runs_dir.iterdir())

    rows = {r.row: r for r in study_status(_study(workspace, out))}
    assert list(rows) == ["full", "full_scratch", "lora_sp", "lora128", "lora32", "lora_sp-no_z"]
    assert (rows["full"].state, rows["full"].detail) == ("scored", "33.3% (ledger, elsewhere)")  # 20/60
    scratch = rows["full_scratch"]  # at full's rate and, until it trains, full's speed
    assert (scratch.state, scratch.lr, scratch.steps_per_s, scratch.steps_left) == (
        "not started",
        1e-4,
        1.9,
        1000,
    )
    assert scratch.trials_left == 8 * 4  # its trials, then its 3 earlier checkpoints' (the curve)
    sp = rows["lora_sp"]
    assert (sp.state, sp.lr, sp.val_loss, sp.steps_left) == ("stopped", 1e-3, 0.18, 600)
    assert sp.hours_left == 600 / 0.5 / 3600
    lora128 = rows["lora128"]  # 150 sweep steps and the row's 1,000 left, at the sweep's speed
    assert (lora128.state, lora128.detail, lora128.steps_left, lora128.steps_per_s) == (
        "sweeping", "sweep 1/3 rates", 1150, 2.0)  # fmt: skip
    lora32 = rows["lora32"]
    assert (lora32.state, lora32.detail, lora32.trials_left) == ("scoring", "5/8 trials (study-lora32)", 3)
    reading = rows["lora_sp-no_z"]  # at lora_sp's rate, as fast as lora_sp trains
    assert (reading.state, reading.lr, reading.steps_per_s, reading.steps_left) == (
        "not started",
        1e-3,
        0.5,
        1000,
    )

    capsys.readouterr()
    assert main(["--workspace", str(workspace.root), "study", *STUDY, "--out", str(out), "--status"]) == 0
    printed = capsys.readouterr().out
    assert [
        "lora_sp",
        "stopped",
        "1e-03",
        "0.1800",
        "0.50",
        "0.3",
        "h",
        "step",
        "400/1,000",
        "(study-lora_sp)",
    ] in [line.split() for line in printed.splitlines()]
    # lane-hours: 600 + 1,000 (the reading) steps at 0.5/s, 1,150 at 2/s, 1,000 at full's 1.9/s
    train_h = 1600 / 0.5 / 3600 + 1150 / 2.0 / 3600 + 1000 / 1.9 / 3600
    trials = 32 + 8 + 8 + 3 + 8  # full_scratch and its curve, lora_sp, lora128, lora32, the reading
    assert f"Left: {train_h:.1f} lane-hours of training, {trials} trials (about" in printed
    assert "at 6.0 s each" in printed  # the median gap between scored trials: not the stop
    assert f"about {(train_h + trials * 6.0 / 3600) / 2:.1f} h with --parallel 2." in printed
    # it only read: no run started, nothing recorded, no table written
    assert sorted(p.name for p in workspace.runs_dir.iterdir()) == runs_before
    assert not workspace.datasets_dir.exists() or not any(workspace.datasets_dir.iterdir())
    assert sorted(p.name for p in out.iterdir()) == ["rows"]

    # a wrong name or folder is refused in one line that says what to give
    workspace.record_study("study", out)
    status = ["--workspace", str(workspace.root), "study", *STUDY, "--out", str(out), "--status"]
    assert main([*status, "--name", "studdy"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: nothing of study 'studdy' here: no runs studdy-* in {workspace.runs_dir}")
    assert (
        err.endswith(f"this workspace's studies are study (--out {out.resolve()})\n") and err.count("\n") == 1
    )
    assert main([*status, "--out", str(tmp_path / "elsewhere")]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"error: study 'study' writes its tables to {out.resolve()}, not {tmp_path / 'elsewhere'}: give --out {out.resolve()}\n"
    )
    assert not (tmp_path / "elsewhere").exists()

    # a results.sqlite that is not a database: one line that says what to do with it
    shutil.copy(workspace.results_db, tmp_path / "results.sqlite.good")
    workspace.results_db.write_text("not a database")
    assert main(status) == 1
    err = capsys.readouterr().err.splitlines()[-1]  # after the study's line on the adopted row
    assert err.startswith(f"error: {workspace.results_db} is not a usable results database")
    assert err.endswith("rename it to results.sqlite.broken) and a fresh one will be created.")
    shutil.copy(tmp_path / "results.sqlite.good", workspace.results_db)

    # lora_sp trains again: the step it has logged, ahead of its checkpoint, is where it is
    with (workspace.runs_dir / "study-lora_sp" / "metrics.jsonl").open("a") as metrics:
        metrics.write(json.dumps({"kind": "train", "step": 450, "steps_per_s": 0.5}) + "\n")
    job = subprocess.Popen(["sleep", "60"])  # stands in for the training process
    try:
        _job(workspace, "study-lora_sp", job.pid)
        sp = next(r for r in study_status(_study(workspace, out)) if r.row == "lora_sp")
        assert (sp.state, sp.detail, sp.steps_left) == (
            "training",
            "step 450/1,000, saved 400 (study-lora_sp)",
            550,
        )
    finally:
        job.kill()
        job.wait()
    sp = next(r for r in study_status(_study(workspace, out)) if r.row == "lora_sp")
    assert (sp.state, sp.steps_left) == ("stopped", 600)  # its process is gone: it continues from 400

    # a study that has scored nothing yet: no results.sqlite, and reading it creates none
    fresh = Workspace.open(tmp_path / "fresh")
    rows = study_status(_study(fresh, out))
    assert [r.state for r in rows] == [
        "scored",
        "not started",
        "not started",
        "not started",
        "not started",
        "not started",
    ]
    assert not fresh.results_db.exists()

    # lora32's last 3 trials scored, all successes: 6 of 8, 75% over the four tasks
    with ResultsStore(workspace.results_db) as store:
        for index in range(5, 8):
            trial = TrialRecord(
                "study-lora32", "study-lora32", TASKS[index % 4], index // 4, "success", "predicate"
            )
            store.add_trial(trial)
    rows = {r.row: r for r in study_status(_study(workspace, out))}
    assert (rows["lora32"].state, rows["lora32"].detail, rows["lora32"].trials_left) == ("scored", "75.0%", 0)


def test_status_columns_line_up_under_the_longest_row_name(workspace, tmp_path):
    from app.commands.study_status import RowStatus, format_status

    rows = [RowStatus("full", "scored", "33.3%", lr=1e-4),
            RowStatus("lora_sp-score_sigmoid", "not started", "step 0/1,000", lr=1e-3, steps_per_s=2.0,
                      steps_left=1000)]  # fmt: skip
    table = format_status(_study(workspace, tmp_path / "results"), rows, trial_s=None).splitlines()[1:4]
    assert [
        line.index(state) for line, state in zip(table, ("state", "scored", "not started"), strict=True)
    ] == [len("lora_sp-score_sigmoid") + 1] * 3


def test_a_reading_that_trains_here_is_timed_by_its_own_run_not_its_adopted_strategy(workspace, tmp_path):
    """lora_sp was scored on a faster machine (its ledger: 2.19 steps/s); its reading trains
    here at 1.37: the hours left are at this machine's speed."""
    from app.commands.study_status import study_status
    from evaluate.stats import wilson
    from evaluate.study import LedgerEntry, StudyRow, TrainingFigures

    out = tmp_path / "results"
    study = _study(workspace, out)
    per_task = {task: wilson(0, 15) for task in TASKS}
    lora_sp = StudyRow("lora_sp", "study-lora_sp", 1e-3, per_task, TrainingFigures(steps_per_s=2.19))
    study.ledger_path("lora_sp").parent.mkdir(parents=True)
    study.ledger_path("lora_sp").write_text(
        LedgerEntry(study.settings(), lora_sp, scored_on="elsewhere").to_json()
    )

    before = {r.row: r for r in study_status(_study(workspace, out))}["lora_sp-no_z"]
    assert (before.state, before.steps_per_s) == ("not started", 2.19)  # an estimate: its strategy's

    study = _study(workspace, out)
    study_status(study)  # adopts lora_sp, so the reading's run is named
    _run(workspace, study.run_name("lora_sp-no_z"), 200, speed=1.37)
    reading = {r.row: r for r in study_status(_study(workspace, out))}["lora_sp-no_z"]
    assert (reading.state, reading.steps_per_s, reading.steps_left) == ("stopped", 1.37, 800)
    assert reading.hours_left == 800 / 1.37 / 3600

    # a reading not started yet is timed by its sibling that trained here, not by the ledger
    waiting = {r.row: r for r in study_status(_study(workspace, out, "lora_sp-no_vision"))}[
        "lora_sp-no_vision"
    ]
    assert (waiting.state, waiting.steps_per_s) == ("not started", 1.37)
