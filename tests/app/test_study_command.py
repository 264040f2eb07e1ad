"""`piper-ws study` at test scale: data, sweep, rows trained and scored, the tables written;
running it again redoes nothing; bad input is refused before anything is recorded."""

import argparse
import csv
import dataclasses
import json
import shutil
import time

import pytest

from app.cli import build_parser, main
from train.presets import get_preset

pytestmark = pytest.mark.slow

SMALL = ["--family", "smolvla", "--backbone", "tiny-smolvla", "--scratch", "tiny-smolvla",
         "--rows", "full,lora_sp-no_z", "--episodes-per-task", "2", "--image-size", "48x64",
         "--steps", "3", "--sweep-steps", "2", "--batch-size", "2", "--trials", "1",
         "--max-duration", "0.5", "--device", "cpu"]  # fmt: skip


def _events(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r["event"] for r in map(json.loads, lines) if r.get("kind") == "event"]


@pytest.mark.timeout(1800)  # ~10 training jobs, each a fresh process: minutes on 2 busy cores
def test_study_runs_every_stage_writes_the_tables_and_resumes(workspace, tmp_path, monkeypatch, capsys):
    from collect.workspace import Workspace
    from evaluate.store import ResultsStore

    monkeypatch.setenv("PIPER_WS_MODEL_CACHE", str(tmp_path / "models"))
    out = tmp_path / "results"
    argv = ["--workspace", str(workspace.root), "study", *SMALL, "--out", str(out)]
    assert main(argv) == 0

    runs = sorted(p.name for p in workspace.runs_dir.iterdir() if not p.name.startswith("."))
    expected = {f"study-sweep-full-{lr}" for lr in ("3e-05", "1e-04", "3e-04")}
    expected |= {f"study-sweep-lora_sp-{lr}" for lr in ("3e-04", "1e-03", "3e-03")}
    assert {r for r in runs if r.startswith("study-sweep")} == expected
    assert {"study-full", "study-lora_sp-no_z"} <= set(runs)
    # the reading trains the lora_sp preset with its override, at the rate lora_sp's sweep picked
    config = json.loads((workspace.runs_dir / "study-lora_sp-no_z" / "config.json").read_text())
    assert config["strategy"] == "lora_sp" and config["adapter"]["z_weight"] == 0.0
    assert config["state_noise"] == get_preset("smolvla-lora_sp").state_noise  # the family's own
    sweep = (out / "sweep.md").read_text()
    picked = [line for line in sweep.splitlines() if line.startswith("| lora_sp") and line.endswith("yes |")]
    assert len(picked) == 1 and f"| {config['lr']:g} |" in picked[0]

    campaigns = ("study-full", "study-lora_sp-no_z", "study-full-step1", "study-full-step2")
    with ResultsStore(workspace.results_db) as store:
        scored = {c: len(store.trials(c)) for c in campaigns}
        seeds = {c: sorted(t.seed for t in store.trials(c)) for c in campaigns}
        first_trial = {c: min(t.id for t in store.trials(c)) for c in campaigns}
    # 4 tasks x 1 trial on the held-out scenes, for each row and each earlier checkpoint of `full`
    assert scored == dict.fromkeys(campaigns, 4) and len({tuple(v) for v in seeds.values()}) == 1
    # every row is scored before any learnability point: a study cut short has the rows first
    assert (
        first_trial["study-lora_sp-no_z"] < first_trial["study-full-step1"] < first_trial["study-full-step2"]
    )
    curve = (out / "learnability.md").read_text().split("against training steps")[1].splitlines()
    curve = [line for line in curve if line.startswith("| full |")]
    assert [line.split(" | ")[1] for line in curve] == ["1", "2", "3"]  # success against steps
    table = list(csv.reader((out / "paper_table.csv").open()))
    assert table[0] == ["strategy", "open_pot", "pour_block", "press_button", "pick_grape", "avg",
                        "trainable_pct", "active_rank"]  # fmt: skip
    assert [row[0] for row in table[1:]] == ["full"]  # readings go to their own table
    assert all(cell != "" for cell in table[1][1:7])
    assert "lora_sp-no_z" not in (out / "paper_table.md").read_text()
    assert (out / "paper_table.png").stat().st_size > 0

    before = {r: _events(workspace.runs_dir / r) for r in runs}
    assert main(argv) == 0  # everything is on disk: nothing is trained or scored again
    assert {r: _events(workspace.runs_dir / r) for r in runs} == before
    with ResultsStore(workspace.results_db) as store:
        assert {c: len(store.trials(c)) for c in scored} == scored

    # a start that runs some rows (--rows) leaves the others' rows and sweeps in the tables
    written = {n: (out / n).read_text() for n in ("paper_table.csv", "paper_table.md", "sweep.md")}
    assert main([*argv, "--rows", "lora_sp-no_z"]) == 0
    assert {n: (out / n).read_text() for n in written} == written

    # another study (a longer learnability run, say) on the same recorded data
    other = [*argv, "--name", "long", "--dataset", "study-target", "--rows", "full", "--sweep-steps", "0",
             "--state-noise", "0.2"]  # fmt: skip
    assert main([*other, "--out", str(tmp_path / "long")]) == 0
    assert [p.name for p in workspace.datasets_dir.iterdir() if not p.name.startswith(".")] == [
        "study-target"
    ]
    config = json.loads((workspace.runs_dir / "long-full" / "config.json").read_text())
    assert config["dataset"] == "study-target" and config["state_noise"] == 0.2

    # a new machine: an empty workspace (the recorded data copied over), the same --out with
    # the committed tables and ledger entries: every row is adopted, none trained or scored
    assert sorted(p.name for p in (out / "rows").iterdir()) == ["full.json", "lora_sp-no_z.json"]
    tables = {n: (out / n).read_text() for n in ("paper_table.csv", "paper_table.md", "learnability.md")}
    for name in tables:  # written again from the entries alone
        (out / name).unlink()
    fresh = Workspace.open(tmp_path / "fresh")
    shutil.copytree(workspace.datasets_dir / "study-target", fresh.datasets_dir / "study-target")
    capsys.readouterr()
    assert main(["--workspace", str(fresh.root), *argv[2:]]) == 0
    assert "full: adopted from" in capsys.readouterr().err
    assert not fresh.runs_dir.exists() or not any(fresh.runs_dir.iterdir())
    assert {n: (out / n).read_text() for n in tables} == tables


@pytest.mark.timeout(1200)
def test_the_newer_methods_rows_train_from_an_in_house_backbone_and_the_vector_is_built_once(
    workspace, tmp_path, monkeypatch
):
    """VLA-GSE and capability vectors, the study's last rows: vla_gse trains its own adapter;
    capvector first builds its vector on the backbone's own pretraining corpus (not the four
    evaluated tasks), then fine-tunes fully from backbone + vector. Both land in Table I."""
    from train.backbones import read_card

    monkeypatch.setenv("PIPER_WS_MODEL_CACHE", str(tmp_path / "models"))
    out = tmp_path / "results"
    argv = ["--workspace", str(workspace.root), "study", *SMALL, "--out", str(out), "--rows", "vla_gse,capvector",
            "--backbone", "tiny-smolvla-pretrained", "--pretrain-steps", "2", "--pretrain-episodes-per-task", "1",
            "--capvector-steps", "2"]  # fmt: skip
    assert main(argv) == 0

    vector = read_card("study-capvector")["capability_vector"]
    assert vector["from_backbone"] == "tiny-smolvla-pretrained"
    assert vector["dataset"] == read_card("tiny-smolvla-pretrained")["corpus"]["dataset"]  # the source tasks
    runs = {row: workspace.runs_dir / f"study-{row}" for row in ("vla_gse", "capvector")}
    configs = {row: json.loads((run / "config.json").read_text()) for row, run in runs.items()}
    assert configs["vla_gse"]["strategy"] == "vla_gse"
    assert configs["vla_gse"]["backbone"] == "tiny-smolvla-pretrained"
    assert configs["capvector"]["strategy"] == "full"
    assert configs["capvector"]["backbone"] == str(tmp_path / "models" / "study-capvector")

    table = {row[0]: row for row in csv.reader((out / "paper_table.csv").open())}
    assert list(table) == ["strategy", "vla_gse", "capvector"]
    assert all(cell != "" for cell in table["vla_gse"][1:8])  # scored, with its active rank
    assert float(table["vla_gse"][6]) < 100 and table["capvector"][6] == "100.00"

    before = {row: _events(run) for row, run in runs.items()}
    assert main(argv) == 0  # all on disk: the vector is not built again, nothing trains again
    assert read_card("study-capvector")["capability_vector"] == vector
    assert {row: _events(run) for row, run in runs.items()} == before


def test_bad_rows_and_seed_ranges_are_refused_before_anything_is_recorded(
    workspace, tmp_path, monkeypatch, capsys
):
    out = ["--out", str(tmp_path / "results")]
    base = ["--workspace", str(workspace.root), "study", *out]
    assert main([*base, "--rows", "full,lora_xl"]) == 1
    assert "unknown study rows ['lora_xl']" in capsys.readouterr().err
    from app.commands.study import held_out_seeds

    assert main([*base, "--seed", str(min(held_out_seeds(15)) - 3)]) == 1
    assert "held-out evaluation scenes" in capsys.readouterr().err
    assert main([*base, "--state-noise", "-0.3"]) == 1
    assert "--state-noise is a std" in capsys.readouterr().err
    assert main([*base, "--device", "cpu", "--parallel", "64"]) == 1
    assert "needs a core per lane" in capsys.readouterr().err
    assert main([*base, "--partition", "gpu"]) == 1
    assert "go with --slurm" in capsys.readouterr().err
    assert main([*base, "--slurm", "--device", "cuda"]) == 1
    assert "give --gpus, not --device" in capsys.readouterr().err
    assert main([*base, "--slurm", "--time", "12h"]) == 1
    assert "expected HH:MM" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without Slurm's commands
    assert main([*base, "--slurm"]) == 1
    assert "no Slurm here" in capsys.readouterr().err
    assert not (workspace.datasets_dir / "study-target").exists() and not workspace.runs_dir.exists()


@pytest.mark.timeout(1200)
def test_with_slurm_each_rows_training_is_a_slurm_job_and_rows_queue_at_once(
    slurm_cluster, workspace, tmp_path, monkeypatch
):
    """The rows' runs are submitted to the cluster (tests/slurm_cluster.py), two in its queue
    at once with --parallel 2, followed to the end, and scored here."""
    from evaluate.store import ResultsStore
    from train.jobs import read_job
    from train.slurm import SBATCH_FILE

    monkeypatch.setenv("PIPER_WS_MODEL_CACHE", str(tmp_path / "models"))
    out = tmp_path / "results"
    local = SMALL[: SMALL.index("--device")]  # where a row trains is Slurm's to say
    argv = ["--workspace", str(workspace.root), "study", *local, "--rows", "lora_sp,lora8",
            "--sweep-steps", "0", "--slurm", "--time", "00:10", "--parallel", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0

    jobs = {row: read_job(workspace.runs_dir / f"study-{row}") for row in ("lora_sp", "lora8")}
    assert {r: (j.state, j.step) for r, j in jobs.items()} == dict.fromkeys(jobs, ("completed", 3))
    assert (
        jobs["lora_sp"].slurm_job
        and jobs["lora8"].slurm_job
        and len({j.slurm_job for j in jobs.values()}) == 2
    )
    for row in jobs:
        assert "#SBATCH --time=00:10:00" in (workspace.runs_dir / f"study-{row}" / SBATCH_FILE).read_text()
    first, second = sorted(jobs.values(), key=lambda j: j.started)
    assert second.started < first.finished  # in the queue together, and trained together
    with ResultsStore(workspace.results_db) as store:
        assert {row: len(store.trials(f"study-{row}")) for row in jobs} == dict.fromkeys(jobs, 4)
    table = (out / "paper_table.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in table[1:]] == ["lora8", "lora_sp"]


def test_a_nearly_full_disk_is_refused_before_anything_is_recorded(workspace, tmp_path, monkeypatch, capsys):
    import collect.workspace

    monkeypatch.setattr(collect.workspace, "MIN_FREE_GB", 1e9)  # no disk has that much free
    for command in (["study", "--out", str(tmp_path / "results")], ["pretrain", "--size", "tiny"]):
        assert main(["--workspace", str(workspace.root), *command]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: only ") and "GB free in" in err and "run the same command again" in err
        assert "\n" not in err
    assert not any(workspace.datasets_dir.iterdir()) and not workspace.runs_dir.exists()


def _study(workspace, out, *extra):
    from app.commands.study import Study, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return Study(parser.parse_args([*SMALL, "--out", str(out), *extra]), workspace)


def test_a_family_brings_its_scratch_model_and_frame_size(workspace, tmp_path):
    from app.commands.pretrain import SIZES
    from app.commands.study import Study, add_arguments
    from train.backbones import PRETRAINED_NAMES

    parser = argparse.ArgumentParser()
    add_arguments(parser)

    def study(*argv):
        return Study(parser.parse_args([*argv, "--out", str(tmp_path)]), workspace)

    # the defaults the committed mini rows were scored under (their ledger settings) stay
    assert (study().args.scratch, study().args.image_size) == ("scratch-mini-smolvla", "96x128")
    small = study("--family", "small")
    assert (small.args.scratch, small.args.image_size) == ("scratch-small-smolvla", "192x256")
    assert get_preset(small.preset("lora_sp")).backbone == "small-smolvla"
    assert study("--family", "small", "--image-size", "240x320").args.image_size == "240x320"
    with pytest.raises(ValueError, match="full_scratch row needs --scratch"):
        study("--family", "smolvla").check()  # no in-house scratch model of that architecture
    for size in SIZES.values():  # pretrain makes each size's backbone from its scratch model
        assert PRETRAINED_NAMES[size.backbone] == size.scratch


def test_rows_of_one_strategy_wait_for_its_first_row_whose_sweep_they_reuse(workspace, tmp_path):
    study = _study(workspace, tmp_path, "--rows", "lora_sp-no_z,full,lora_sp-eta0.8,full_scratch,lora_sp")
    waits = {row: study.waits_for(row) for row in study.rows}
    assert waits == {"lora_sp-no_z": None, "full": None, "lora_sp-eta0.8": "lora_sp-no_z",
                     "full_scratch": "full", "lora_sp": "lora_sp-no_z"}  # fmt: skip


def test_a_ledger_entry_is_adopted_only_under_the_same_settings(workspace, tmp_path, monkeypatch, capsys):
    from evaluate.stats import wilson
    from evaluate.study import LedgerEntry, StudyRow, TrainingFigures

    monkeypatch.setenv("PIPER_WS_MODEL_CACHE", str(tmp_path / "models"))
    card = {"name": "tiny-smolvla", "corpus": {"frames": 100}, "steps": 50, "seed": 0, "final_loss": 0.5}
    (tmp_path / "models" / "tiny-smolvla").mkdir(parents=True)
    (tmp_path / "models" / "tiny-smolvla" / "card.json").write_text(json.dumps(card))
    out = tmp_path / "results"
    study = _study(workspace, out)
    row = StudyRow("full", "study-full", 1e-4, {"open_pot": wilson(7, 15)}, TrainingFigures(steps_per_s=1.9))
    another_build = {**study.backbone_summary("full"), "final_loss": 0.49}
    entry = LedgerEntry(study.settings(), row, [(5, row)], {1e-4: 0.1, 3e-4: 0.2}, "elsewhere", another_build)
    path = study.ledger_path("full")
    path.parent.mkdir(parents=True)
    path.write_text(entry.to_json())

    assert study.adopt("full")  # a rebuild by the same recipe: adopted, and the reader is told
    err = capsys.readouterr().err
    assert "adopted from" in err and "its backbone was another build of tiny-smolvla" in err
    adopted = study.adopted["full"]
    assert adopted.row.per_task["open_pot"] == wilson(7, 15) and adopted.curve[0][0] == 5
    assert study.picked["full"] == 1e-4 and study.sweep["full"] == {1e-4: 0.1, 3e-4: 0.2}
    study.write_tables()  # the workspace learns where the study's rows are: the Results page reads them
    assert workspace.studies() == {"study": out.resolve()}
    assert "| full | 0.0001 | 46.7 [24.8, 69.9] |" in (out / "paper_table.md").read_text()

    other = _study(workspace, out, "--trials", "2")  # another study's rows are not comparable
    assert not other.adopt("full") and "full" not in other.picked
    assert "other settings (trials)" in capsys.readouterr().err

    (workspace.runs_dir / "study-full").mkdir(parents=True)  # this machine has the run: it goes on
    assert not _study(workspace, out).adopt("full")
    (workspace.runs_dir / "study-full").rmdir()

    path.write_text(path.read_text()[:40])  # cut short: the row runs again, and says why
    assert not _study(workspace, out).adopt("full")
    assert "cannot be read: running full again" in capsys.readouterr().err


def test_a_restart_adopts_its_scored_rows_first_and_writes_the_tables_once_whole(workspace, tmp_path):
    """The committed tables are never rewritten short of rows a restart is still adopting; a
    reading whose strategy's first row trains here waits for that row's rate, in its lane."""
    from evaluate.stats import wilson
    from evaluate.study import LedgerEntry, StudyRow, TrainingFigures

    out = tmp_path / "results"
    study = _study(workspace, out, "--rows", "full,lora_sp,lora8,lora_sp-no_z")
    for name, lr in (("full", 1e-4), ("lora8", 3e-3), ("lora_sp-no_z", 1e-3)):
        row = StudyRow(name, f"study-{name}", lr, {"open_pot": wilson(3, 15)}, TrainingFigures())
        entry = LedgerEntry(study.settings(), row, [], {lr: 0.1}, "elsewhere", {})
        study.ledger_path(name).parent.mkdir(parents=True, exist_ok=True)
        study.ledger_path(name).write_text(entry.to_json())
    written = []
    write_tables = study.write_tables

    def write_and_read_back():
        write_tables()
        written.append([line[0] for line in csv.reader((out / "paper_table.csv").open())][1:])

    study.write_tables = write_and_read_back
    study.adopt_scored_rows()
    assert written == [["full", "lora8"]]
    assert set(study.adopted) == {"full", "lora8"}  # lora_sp-no_z: once lora_sp has picked its rate


def test_the_readings_control_trains_again_from_this_build_and_the_other_builds_entry_is_kept(
    workspace, tmp_path, monkeypatch, capsys
):
    """A reading is read against a control from its own backbone build: when this study trains
    a reading from this workspace's build, the control scored from another build is trained
    again (Table I's own row is still adopted), without touching the committed entry until
    this build's control is scored; then the other build's entry is kept as `<row>@<loss>`."""
    from evaluate.stats import wilson
    from evaluate.study import LedgerEntry, StudyRow, TrainingFigures, read_ledger, study_comparison

    monkeypatch.setenv("PIPER_WS_MODEL_CACHE", str(tmp_path / "models"))
    card = {"name": "tiny-smolvla", "corpus": {"frames": 100}, "steps": 50, "seed": 0, "final_loss": 0.5}
    (tmp_path / "models" / "tiny-smolvla").mkdir(parents=True)
    (tmp_path / "models" / "tiny-smolvla" / "card.json").write_text(json.dumps(card))
    out = tmp_path / "results"
    rows = "lora_sp,lora_sp-lr1e-03,lora_sp-eta0.99"
    study = _study(workspace, out, "--rows", rows)
    other_build = {**study.backbone_summary("lora_sp"), "final_loss": 0.49}

    def write_entry(name, lr, wins, build):
        row = StudyRow(name, f"study-{name}", lr, {"open_pot": wilson(wins, 15)}, TrainingFigures())
        entry = LedgerEntry(study.settings(), row, [], {1e-3: 0.2, 3e-3: 0.1} if name == "lora_sp" else {},
                            "elsewhere", build)  # fmt: skip
        study.ledger_path(name).parent.mkdir(parents=True, exist_ok=True)
        study.ledger_path(name).write_text(entry.to_json())

    write_entry("lora_sp", 3e-3, 0, other_build)
    write_entry("lora_sp-lr1e-03", 1e-3, 7, other_build)
    committed = study.ledger_path("lora_sp-lr1e-03").read_text()

    assert study.adopt("lora_sp")  # a result of its own: adopted, as any row of another build is
    assert not study.adopt("lora_sp-eta0.99")  # no entry: it trains here, from this build
    assert not study.adopt("lora_sp-lr1e-03")
    assert "lora_sp-lr1e-03: trained again from this build" in capsys.readouterr().err
    assert study.ledger_path("lora_sp-lr1e-03").read_text() == committed  # --status reads this too
    # from the moment it is decided, before its run begins, the tables show the entry as the
    # control of the readings of 0.49's build: a restart's one write of the tables keeps it
    assert list(study.other_builds()) == ["lora_sp-lr1e-03@0.4900"]
    restart = _study(workspace, out, "--rows", rows)
    restart.adopt_scored_rows()
    assert "| lora_sp-lr1e-03@0.4900 | 0.001 |" in (out / "lora_sp_readings.md").read_text()
    later = _study(workspace, out, "--rows", rows)  # a later start does not ask: the run is here
    assert later.other_builds() == {}
    (workspace.runs_dir / "study-lora_sp-lr1e-03").mkdir(parents=True)  # its run started here
    assert list(later.other_builds()) == ["lora_sp-lr1e-03@0.4900"]
    (workspace.runs_dir / "study-lora_sp-lr1e-03").rmdir()

    # a reading scored from the other build only: that build's control serves it
    write_entry("lora_sp-eta0.99", 1e-3, 9, other_build)
    assert _study(workspace, out, "--rows", rows).adopt("lora_sp-lr1e-03")
    assert _study(workspace, out, "--rows", "lora_sp,lora_sp-lr1e-03").adopt("lora_sp-lr1e-03")

    # this build's control scored: the other build's entry is kept beside it, once
    here = StudyRow(
        "lora_sp-lr1e-03", "study-lora_sp-lr1e-03", 1e-3, {"open_pot": wilson(2, 15)}, TrainingFigures()
    )
    for _ in range(2):
        study.write_ledger("lora_sp-lr1e-03", here, [])
    kept = read_ledger(out / "rows" / "lora_sp-lr1e-03@0.4900.json")
    assert kept.row.strategy == "lora_sp-lr1e-03@0.4900" and kept.row.per_task["open_pot"] == wilson(7, 15)
    assert kept.backbone == other_build and kept.row.run == "study-lora_sp-lr1e-03@0.4900"
    shown = [(row.strategy, row.run) for row in study_comparison("study", out).rows]  # the Results page
    assert ("lora_sp-lr1e-03@0.4900", "study-lora_sp-lr1e-03@0.4900") in shown
    assert ("lora_sp-lr1e-03", "study-lora_sp-lr1e-03") in shown
    assert read_ledger(study.ledger_path("lora_sp-lr1e-03")).backbone == study.backbone_summary("lora_sp")
    assert list(study.other_builds()) == ["lora_sp-lr1e-03@0.4900"]


def test_before_a_new_machine_has_built_its_backbone_status_counts_the_control_as_training_again(
    workspace, tmp_path, monkeypatch, capsys
):
    """On a fresh workspace `--status` runs before the study pretrains its backbone: a readings'
    control scored from a build is counted as training again (a rebuild ends at another loss),
    so the hours left include it; Table I's own row is still adopted."""
    from app.commands.study_status import study_status
    from evaluate.stats import wilson
    from evaluate.study import LedgerEntry, StudyRow, TrainingFigures, backbone_summary

    monkeypatch.setenv("PIPER_WS_MODEL_CACHE", str(tmp_path / "models"))
    card = {"name": "tiny-smolvla-pretrained", "corpus": {"frames": 100}, "steps": 50, "seed": 0,
            "final_loss": 0.49}  # fmt: skip
    rows = ("--backbone", "tiny-smolvla-pretrained", "--rows", "lora_sp,lora_sp-lr1e-03,lora_sp-eta0.8")
    out = tmp_path / "results"
    study = _study(workspace, out, *rows)
    for name, lr in (("lora_sp", 3e-3), ("lora_sp-lr1e-03", 1e-3)):
        row = StudyRow(name, f"study-{name}", lr, {"open_pot": wilson(4, 15)}, TrainingFigures())
        sweep = {1e-3: 0.2, 3e-3: 0.1} if name == "lora_sp" else {}
        entry = LedgerEntry(study.settings(), row, [], sweep, "elsewhere", backbone_summary(card))
        study.ledger_path(name).parent.mkdir(parents=True, exist_ok=True)
        study.ledger_path(name).write_text(entry.to_json())

    status = {r.row: r for r in study_status(study)}
    assert status["lora_sp"].state == "scored"
    assert status["lora_sp-lr1e-03"].state == "not started"
    assert status["lora_sp-lr1e-03"].steps_left == study.args.steps
    assert (
        "lora_sp-lr1e-03: its backbone was a build of tiny-smolvla-pretrained; this one is not built yet"
        in (capsys.readouterr().err)
    )

    (tmp_path / "models" / "tiny-smolvla-pretrained").mkdir(parents=True)  # built, at the same loss
    (tmp_path / "models" / "tiny-smolvla-pretrained" / "card.json").write_text(json.dumps(card))
    assert _study(workspace, out, *rows).adopt("lora_sp-lr1e-03")


def test_the_rate_an_adopted_row_was_unstable_at_travels_with_its_ledger_entry(
    workspace, tmp_path, monkeypatch
):
    """On another machine the readings start at the rate their strategy's row was scored at,
    not at the sweep's pick that it was unstable at, and sweep.md still says why."""
    from evaluate.stats import wilson
    from evaluate.study import LedgerEntry, StudyRow, TrainingFigures, UnstableRun, read_ledger

    monkeypatch.setenv("PIPER_WS_MODEL_CACHE", str(tmp_path / "models"))
    out = tmp_path / "results"
    study = _study(workspace, out, "--rows", "lora_sp,lora_sp-no_z")
    row = StudyRow("lora_sp", "study-lora_sp-lr1e-04", 1e-4, {"open_pot": wilson(7, 15)}, TrainingFigures())
    unstable = [UnstableRun("lora_sp", 1e-3, 25, 0.5, 0.22, 1e-4)]
    entry = LedgerEntry(study.settings(), row, [], {1e-4: 0.3, 1e-3: 0.2}, "elsewhere", {}, unstable)
    path = study.ledger_path("lora_sp")
    path.parent.mkdir(parents=True)
    path.write_text(entry.to_json())
    assert read_ledger(path).unstable == unstable

    assert study.adopt("lora_sp")
    assert study.picked["lora_sp"] == 1e-3  # the sweep's pick, as on the machine that scored the row
    assert study.row_rate("lora_sp-no_z") == 1e-4
    assert study.run_name("lora_sp-no_z") == "study-lora_sp-no_z-lr1e-04"
    study.write_sweep()
    sweep = (out / "sweep.md").read_text()
    assert "| lora_sp | 0.001 | 0.2000 | yes |" in sweep
    assert "- `lora_sp` at 0.001: 0.5000 at step 25 (ceiling 0.2200); trained again at 0.0001" in sweep


def test_sweep_md_keeps_the_unstable_runs_of_adopted_readings(workspace, tmp_path, monkeypatch):
    """A reading that was unstable at its strategy's pick and scored at a lower rate on
    another machine: the next machine's sweep.md still lists the run it had to leave."""
    from evaluate.stats import wilson
    from evaluate.study import LedgerEntry, StudyRow, TrainingFigures, UnstableRun

    monkeypatch.setenv("PIPER_WS_MODEL_CACHE", str(tmp_path / "models"))
    out = tmp_path / "results"
    study = _study(workspace, out, "--rows", "lora_sp,lora_sp-no_z")
    scores = {"open_pot": wilson(7, 15)}
    strategy_row = StudyRow("lora_sp", "study-lora_sp", 3e-3, scores, TrainingFigures())
    reading = StudyRow("lora_sp-no_z", "study-lora_sp-no_z-lr1e-03", 1e-3, scores, TrainingFigures())
    left = UnstableRun("lora_sp-no_z", 3e-3, 2710, float("inf"), 0.223, 1e-3)
    sweep = {1e-3: 0.21, 3e-3: 0.2}
    for name, row, unstable in (("lora_sp", strategy_row, []), ("lora_sp-no_z", reading, [left])):
        path = study.ledger_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(LedgerEntry(study.settings(), row, [], sweep, "elsewhere", {}, unstable).to_json())
        assert study.adopt(name)

    study.write_sweep()
    listed = (out / "sweep.md").read_text()
    assert "- `lora_sp-no_z` at 0.003: inf at step 2,710 (ceiling 0.2230); trained again at 0.001" in listed
    assert "- `lora_sp` at" not in listed  # the strategy's own row was stable at its pick


def test_a_readings_checkpoints_scored_by_hand_join_its_ledger_entry_and_the_readings_curve(
    workspace, tmp_path, monkeypatch
):
    """A reading's earlier checkpoint scored with `piper-ws eval --checkpoint N --campaign
    <run>-step<N>` on the study's scenes becomes a point of its curve (ledgered, so another
    machine shows it too); a checkpoint whose scoring was cut short does not."""
    from evaluate.store import ResultsStore, TrialRecord
    from evaluate.study import LedgerEntry
    from evaluate.tables import PAPER_TASKS

    monkeypatch.setenv("PIPER_WS_MODEL_CACHE", str(tmp_path / "models"))
    out = tmp_path / "results"
    study = _study(workspace, out, "--rows", "lora_sp,lora_sp-no_z")  # 1 trial per task
    for row in ("lora_sp", "lora_sp-no_z"):
        run_dir = workspace.runs_dir / study.run_name(row)
        for step in (1, 2, 3):
            (run_dir / "checkpoints" / f"{step:06d}").mkdir(parents=True)
        (run_dir / "config.json").write_text(json.dumps({"lr": 1e-3}))

    def score(campaign, run, wins, tasks=PAPER_TASKS):
        store.create_campaign(campaign, "sim", {})
        for i, task in enumerate(tasks):
            store.add_trial(
                TrialRecord(campaign, run, task, 0, "success" if i < wins else "failure", "predicate")
            )

    reading = study.run_name("lora_sp-no_z")
    with ResultsStore(workspace.results_db) as store:
        score(study.run_name("lora_sp"), study.run_name("lora_sp"), 1)
        score(reading, reading, 3)  # its last checkpoint: the row
        score(f"{reading}-step1", reading, 1)
        score(f"{reading}-step2", reading, 2, tasks=PAPER_TASKS[:2])  # stopped half-way
    study.write_tables()

    text = (out / "lora_sp_readings.md").read_text().split("against training steps")[1]
    curve = [line.split(" | ")[:2] for line in text.splitlines() if line.startswith("| lora_sp")]
    assert curve == [["| lora_sp-no_z", "1"], ["| lora_sp-no_z", "3"]]  # nothing for lora_sp
    entry = LedgerEntry.from_json(study.ledger_path("lora_sp-no_z").read_text())
    assert [(step, row.average) for step, row in entry.curve] == [(1, 0.25), (3, 0.75)]


def test_the_default_rows_are_every_strategy_with_lora_sp_and_lora128_early_and_readings_before_newer_methods(
    tmp_path,
):
    from app.commands.study_rows import DEFAULT_ROW_ORDER, NEWER_ROWS, SCRATCH_ROW, StudyRows
    from evaluate.study import LORA_SP_VARIANTS, STRATEGIES

    assert sorted(set(DEFAULT_ROW_ORDER) - {SCRATCH_ROW}) == sorted(STRATEGIES)
    assert len(DEFAULT_ROW_ORDER) == len(set(DEFAULT_ROW_ORDER))
    assert DEFAULT_ROW_ORDER[2:4] == ("lora_sp", "lora128")  # the paper's comparison, soonest

    def run_order(*flags):
        args = build_parser().parse_args(["study", "--out", str(tmp_path), *flags])
        return StudyRows(args, workspace=None).rows

    rows = run_order()
    assert sorted(rows) == sorted([*DEFAULT_ROW_ORDER, *LORA_SP_VARIANTS])
    assert rows.index("lora_moe") < rows.index("lora_sp-no_z") < rows.index(NEWER_ROWS[0])
    assert run_order("--no-readings") == [r for r in rows if r not in LORA_SP_VARIANTS]
    assert run_order("--rows", "lora8,full") == ["lora8", "full"]


@pytest.mark.timeout(600)
def test_a_run_still_training_from_an_earlier_start_is_followed_not_started_again(workspace, tmp_path):
    """A study killed outright (or whose Slurm allocation ended) leaves its row's job training;
    the same command again waits for that job instead of failing on a run that is busy."""
    from app.commands.study_lanes import Lane
    from tests.app import train_fixtures
    from train.checkpoint import last_step
    from train.jobs import read_job, start_job

    train_fixtures().make_dataset(workspace.datasets_dir / "tiny")
    config = get_preset(
        "smolvla-lora_sp", dataset="tiny", steps=3, batch_size=2, adapter={"r": 8},
        backbone_cache=str(tmp_path / "models"), run_name="study-full",
    )  # fmt: skip
    earlier = start_job(config, workspace.runs_dir, workspace.datasets_dir, device="cpu")
    study = _study(workspace, tmp_path / "results")
    assert study.train("full", "study-full", 3, 1e-4, Lane("cpu")) == 0
    final = read_job(workspace.runs_dir / "study-full")
    assert final.state == "completed" and final.pid == earlier.pid and last_step(final.run_dir) == 3


def test_a_run_stopped_before_its_first_step_is_resumed_from_its_step_0_checkpoint(workspace, tmp_path):
    """A study stopped while a row's run was still loading saves that run at step 0; the same
    command again continues it (it was refused: a run with a checkpoint, started afresh), on
    the lane it now has: a run begun on one core of two, continued by `--parallel 1`, gets both."""
    from dataclasses import asdict

    from app.commands.study_lanes import Lane
    from tests.app import train_fixtures
    from train.checkpoint import has_checkpoint, last_step
    from train.jobs import JobRecord, read_job
    from train.layout import JOB_FILE
    from train.loop import run_training

    study = _study(workspace, tmp_path / "results")
    train_fixtures().make_dataset(workspace.datasets_dir / study.dataset)
    run_dir = workspace.runs_dir / "study-full"
    config = get_preset(
        "smolvla-lora_sp", dataset=study.dataset, steps=3, batch_size=2, adapter={"r": 8},
        backbone_cache=str(tmp_path / "models"), run_name="study-full", threads=1,
    )  # fmt: skip
    stopped = run_training(config, run_dir, workspace.datasets_dir, should_stop=lambda: True)
    canceled = JobRecord(run_name="study-full", run_dir=str(run_dir), state="canceled")
    (run_dir / JOB_FILE).write_text(json.dumps(asdict(canceled)))
    assert stopped.state == "canceled" and has_checkpoint(run_dir) and last_step(run_dir) == 0

    assert study.train("full", "study-full", 3, 1e-4, Lane("cpu")) == 0
    final = read_job(run_dir)
    assert final.state == "completed" and final.resumes == 1 and last_step(run_dir) == 3
    assert json.loads((run_dir / "config.json").read_text())["threads"] == 0  # Lane("cpu"): every core


@pytest.mark.timeout(600)
def test_a_row_unstable_at_its_rate_trains_again_at_the_sweeps_best_lower_rate(
    workspace, tmp_path, monkeypatch
):
    """A short sweep can pick a rate a long run diverges at: a row's run whose validation loss
    rises above 1.1x its sweep run's stops there (job state `unstable`), is kept, and the row
    trains again at the best lower rate; the strategy's readings start at that rate."""
    from app.commands.study_lanes import Lane
    from tests.app import train_fixtures
    from train.checkpoint import last_step
    from train.jobs import read_job

    monkeypatch.setenv("PIPER_WS_MODEL_CACHE", str(tmp_path / "models"))
    out = tmp_path / "results"
    study = _study(workspace, out, "--rows", "lora_sp,lora_sp-no_z", "--steps", "30")  # validates at 25, 30
    study.check()
    train_fixtures().make_dataset(workspace.datasets_dir / study.dataset)
    # as if the sweep ended far lower at 1e-3 than any real run can reach: 1e-3 is picked, and unstable
    study.sweep["lora_sp"] = {1e-4: 100.0, 1e-3: 1e-6, 3e-3: 50.0}
    study.picked["lora_sp"] = 1e-3

    assert study.train_stage("lora_sp", Lane("cpu")) == 0
    unstable = workspace.runs_dir / "study-lora_sp"
    assert (
        read_job(unstable).state == "unstable" and last_step(unstable) == 25
    )  # stopped at its first validation
    assert json.loads((unstable / "config.json").read_text())["max_val_loss"] == pytest.approx(1.1e-6)
    assert study.row_rate("lora_sp") == 1e-4  # the best lower rate, not 3e-3, which the sweep liked more
    again = workspace.runs_dir / study.run_name("lora_sp")
    assert again.name == "study-lora_sp-lr1e-04" and read_job(again).state == "completed"
    assert last_step(again) == 30 and json.loads((again / "config.json").read_text())["lr"] == 1e-4
    # the reading goes straight to the rate its strategy's row was stable at
    assert study.run_name("lora_sp-no_z") == "study-lora_sp-no_z-lr1e-04"
    study.write_sweep()
    assert "- `lora_sp` at 0.001: " in (out / "sweep.md").read_text()
    assert "trained again at 0.0001" in (out / "sweep.md").read_text()


def test_a_reading_gone_nan_trains_again_at_the_lower_rate_and_its_row_does_not(workspace, tmp_path):
    """Run 24's lora_sp-no_z: its loss went NaN (written as null) under no ceiling a NaN
    could pass. The reading steps down a rate; lora_sp's own row, stable, stays."""
    out = tmp_path / "results"
    study = _study(workspace, out, "--rows", "lora_sp,lora_sp-no_z", "--steps", "30")
    study.sweep["lora_sp"] = {3e-4: 0.2245, 1e-3: 0.2094, 3e-3: 0.2053}
    study.picked["lora_sp"] = 3e-3
    run = workspace.runs_dir / "study-lora_sp-no_z"
    run.mkdir(parents=True)
    rows = [("val", 10, 0.21), ("train", 27, None), ("val", 30, None)]
    (run / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"kind": k, "step": s, "val/mean" if k == "val" else "loss": v}) + "\n"
            for k, s, v in rows
        )
    )
    assert study.row_rate("lora_sp") == 3e-3 and study.run_name("lora_sp") == "study-lora_sp"
    assert study.row_rate("lora_sp-no_z") == 1e-3
    assert study.run_name("lora_sp-no_z") == "study-lora_sp-no_z-lr1e-03"
    study.write_sweep()
    assert "- `lora_sp-no_z` at 0.003: inf at step 27" in (out / "sweep.md").read_text()


def test_a_run_that_ended_itself_at_the_lowest_rate_is_not_continued(workspace, tmp_path, capsys):
    """With no lower rate left a run gone NaN cannot step down; continued, it would go NaN
    again from its last save, so the study stops on it and says what to do."""
    from app.commands.study_lanes import Lane
    from train.jobs import JobRecord

    study = _study(workspace, tmp_path / "results", "--rows", "lora_sp", "--steps", "30")
    study.sweep["lora_sp"] = {3e-4: 0.2245, 1e-3: 0.2094, 3e-3: 0.2053}
    study.picked["lora_sp"] = 3e-4  # the lowest: no ceiling, no lower rate
    run = workspace.runs_dir / "study-lora_sp"
    run.mkdir(parents=True)
    record = JobRecord("study-lora_sp", str(run), state="unstable", step=12, total_steps=30)
    (run / "job.json").write_text(json.dumps(dataclasses.asdict(record)))
    before = (run / "job.json").read_text()
    assert study.train("lora_sp", run.name, 30, 3e-4, Lane("cpu")) == 1
    assert "leave its row out (--rows)" in capsys.readouterr().err
    assert (run / "job.json").read_text() == before and not (run / "checkpoints").exists()  # nothing started


@pytest.mark.timeout(600)
def test_a_stopped_study_cancels_the_training_it_started_and_no_other(workspace, tmp_path, monkeypatch):
    """Ctrl-C (or an error) while rows train on lanes: the study's own jobs stop, saving where
    they were; a job the study did not start trains on."""
    from tests.app import train_fixtures
    from train.checkpoint import last_step
    from train.jobs import cancel_job, read_job, start_job
    from train.metrics import progress

    train_fixtures().make_dataset(workspace.datasets_dir / "tiny")
    config = get_preset(
        "smolvla-lora_sp", dataset="tiny", steps=500, batch_size=2, adapter={"r": 8}, log_every=1,
        val_every=1000, checkpoint_every=1000, backbone_cache=str(tmp_path / "models"),
    )  # fmt: skip
    study = _study(workspace, tmp_path / "results", "--parallel", "2")
    study.check()
    monkeypatch.setattr(study, "inputs_stage", lambda: 0)
    runs = workspace.runs_dir
    start_job(config.with_overrides(run_name="other"), runs, workspace.datasets_dir, device="cpu:1")

    def run_row(row, lane):  # the full row's training is under way when the operator presses Ctrl-C
        if row == "full":
            study.started_runs.add("study-full")
            start_job(
                config.with_overrides(run_name="study-full"), runs, workspace.datasets_dir, device=lane.device
            )
            while progress(runs / "study-full")["step"] < 1:
                assert read_job(runs / "study-full").active
                time.sleep(0.5)
            raise KeyboardInterrupt
        return 0

    monkeypatch.setattr(study, "run_row", run_row)
    try:
        with pytest.raises(KeyboardInterrupt):
            study.run()
        stopped = read_job(runs / "study-full")
        assert stopped.state == "canceled" and last_step(runs / "study-full") == stopped.step >= 1
        assert read_job(runs / "other").active
    finally:
        cancel_job(runs / "other", wait_s=300)


@pytest.mark.timeout(900)
def test_with_two_lanes_the_target_is_recorded_while_the_backbone_is_built(workspace, tmp_path, monkeypatch):
    """A machine that lost its disk rebuilds both inputs side by side: the target's recorder
    is a child process, still running when this one starts pretraining on the first lane."""
    from collect.recording.plan import is_dataset
    from train.backbones import read_card

    monkeypatch.setenv("PIPER_WS_MODEL_CACHE", str(tmp_path / "models"))
    study = _study(workspace, tmp_path / "results", "--backbone", "tiny-smolvla-pretrained",
                   "--pretrain-steps", "2", "--pretrain-episodes-per-task", "1", "--parallel", "2")  # fmt: skip
    study.check()
    assert study.backbone_to_build() == "tiny"
    recording_when_pretraining_began = []
    backbone_stage = study.backbone_stage

    def backbone_stage_seen(size, lane):
        recording_when_pretraining_began.append(study.recorder is not None and study.recorder.poll() is None)
        return backbone_stage(size, lane)

    monkeypatch.setattr(study, "backbone_stage", backbone_stage_seen)
    assert study.inputs_stage() == 0
    assert recording_when_pretraining_began == [True]
    card = read_card("tiny-smolvla-pretrained")
    assert card["steps"] == 2 and card["corpus"]["episodes"] == 4  # the study's recipe: 1 per source task
    config = json.loads((workspace.runs_dir / "pretrain-tiny" / "config.json").read_text())
    assert config["threads"] == study.lanes[0].threads == 1  # its lane's share of the 2 cores
    target = workspace.datasets_dir / "study-target"
    assert (
        is_dataset(target) and json.loads((target / "meta" / "info.json").read_text())["total_episodes"] == 8
    )
    assert study.backbone_to_build() is None  # built: the next start goes straight to the rows


def test_a_reading_that_names_its_rate_is_its_strategys_row_at_that_rate(workspace, tmp_path, monkeypatch):
    """The control reading `lora_sp-lr1e-03`: the lora_sp preset at 1e-3 while the sweep picked
    3e-3, judged against the sweep's 1e-3 run, trained as the run lora_sp's own row would use at
    1e-3; the rate goes in as --lr alone, so a step down is not undone by an override."""
    from app.commands import study as study_module
    from app.commands.study_lanes import Lane
    from evaluate.store import ResultsStore

    out = tmp_path / "results"
    study = _study(workspace, out, "--rows", "lora_sp,lora_sp-lr1e-03", "--steps", "30")
    # before the sweep its name is its own: not lora_sp's run, whose trials it would take
    assert study.run_name("lora_sp-lr1e-03") == "study-lora_sp-lr1e-03"
    with ResultsStore(workspace.results_db) as store:  # a scoring stopped before its first trial
        store.create_campaign("study-lora_sp-lr1e-03", "sim", {})
    study.write_tables()
    assert not study.ledger_path("lora_sp-lr1e-03").exists()  # no row: a new start would adopt it
    study.sweep["lora_sp"] = {3e-4: 0.2245, 1e-3: 0.2094, 3e-3: 0.2053}
    study.picked["lora_sp"] = 3e-3
    assert study.row_rate("lora_sp") == 3e-3 and study.run_name("lora_sp") == "study-lora_sp"
    assert study.row_rate("lora_sp-lr1e-03") == 1e-3
    assert study.run_name("lora_sp-lr1e-03") == study.run_at("lora_sp", 1e-3) == "study-lora_sp-lr1e-03"
    assert study.ceiling("lora_sp-lr1e-03", 1e-3) == pytest.approx(0.2094 * 1.1)
    calls = []
    monkeypatch.setattr(study_module.Study, "_cli", lambda self, *argv: calls.append(argv) or 0)
    study.train_stage("lora_sp-lr1e-03", Lane("cpu"))
    argv = list(calls[0])
    assert (
        argv[argv.index("--run") + 1] == "study-lora_sp-lr1e-03" and argv[argv.index("--lr") + 1] == "0.001"
    )
    assert not [a for a in argv if a.startswith("lr=")]
    assert f"max_val_loss={json.dumps(study.ceiling('lora_sp-lr1e-03', 1e-3))}" in argv

    # unstable at 1e-3 (a validation over its ceiling): it steps down like any row, and so does
    # lora_sp's own row at 1e-3 (one run), while lora_sp at its pick stays
    run = workspace.runs_dir / "study-lora_sp-lr1e-03"
    (run / "metrics.jsonl").parent.mkdir(parents=True, exist_ok=True)
    (run / "metrics.jsonl").write_text(json.dumps({"kind": "val", "step": 25, "val/mean": 0.5}) + "\n")
    assert study.row_rate("lora_sp-lr1e-03") == 3e-4
    assert study.run_name("lora_sp-lr1e-03") == "study-lora_sp-lr3e-04"
    assert study.run_name("lora_sp") == "study-lora_sp"


def test_a_reading_with_its_own_rate_and_a_change_runs_under_its_own_name_at_that_rate(
    workspace, tmp_path, monkeypatch
):
    """`lora_sp-score_sigmoid` starts at READINGS_LR whatever the sweep picked: named by the
    rate where that is not the pick (its run at the pick is another run), its change passed
    as an override and its rate as --lr."""
    from app.commands import study as study_module
    from app.commands.study_lanes import Lane
    from evaluate.study import LORA_SP_VARIANTS, READINGS_LR

    assert LORA_SP_VARIANTS["lora_sp-score_sigmoid"]["lr"] == READINGS_LR == 1e-3
    study = _study(workspace, tmp_path / "results", "--rows", "lora_sp,lora_sp-score_sigmoid")
    study.sweep["lora_sp"] = {3e-4: 0.2245, 1e-3: 0.2094, 3e-3: 0.2053}
    study.picked["lora_sp"] = 3e-3
    assert study.row_rate("lora_sp-score_sigmoid") == 1e-3
    assert study.run_name("lora_sp-score_sigmoid") == "study-lora_sp-score_sigmoid-lr1e-03"
    calls = []
    monkeypatch.setattr(study_module.Study, "_cli", lambda self, *argv: calls.append(argv) or 0)
    study.train_stage("lora_sp-score_sigmoid", Lane("cpu"))
    argv = list(calls[0])
    assert argv[argv.index("--lr") + 1] == "0.001" and not [a for a in argv if a.startswith("lr=")]
    assert 'adapter={"score_fn": "sigmoid"}' in argv

    study.picked["lora_sp"] = 1e-3  # where the sweep picks the reading's rate, it goes by its own name
    assert study.run_name("lora_sp-score_sigmoid") == "study-lora_sp-score_sigmoid"
