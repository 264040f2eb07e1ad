"""The Train page drives real training jobs (child processes) and re-attaches to them."""

import json
import shutil

import pytest

from app.gui.pages.train import TrainPage
from tests.app import train_fixtures
from train.jobs import list_jobs

JOB_TIMEOUT_MS = 400_000


@pytest.fixture(scope="module")
def recorded_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_page") / "tiny_tasks"
    return train_fixtures().make_dataset(root)


@pytest.fixture
def page_factory(qtbot, app_context, monkeypatch, tmp_path_factory):
    monkeypatch.setenv("PIPER_WS_MODEL_CACHE", str(tmp_path_factory.getbasetemp() / "page_backbones"))
    pages = []

    def make():
        page = TrainPage(app_context)
        qtbot.addWidget(page)
        pages.append(page)
        return page

    yield make
    for page in pages:
        page.shutdown()


def _state(page, run):
    page.refresh()
    return next((r.state for r in page.records if r.run_name == run), None)


def test_default_form_is_the_lora_sp_preset_on_the_chosen_dataset(page_factory, workspace):
    (workspace.datasets_dir / "demo" / "meta").mkdir(parents=True)
    (workspace.datasets_dir / "demo" / "meta" / "info.json").write_text("{}")
    page = page_factory()
    assert page.dataset_combo.currentText() == "demo"
    assert page.finetune_button.text() == "Fine-tune"
    assert not page.advanced_box.isVisibleTo(page)
    config = page.config_from_form()
    assert (config.preset, config.strategy, config.dataset, config.tasks) == (
        "smolvla-lora_sp",
        "lora_sp",
        "demo",
        None,
    )
    page.preset_combo.setCurrentText("smolvla-lora128")
    page.rank_spin.setValue(16)
    page.tasks_edit.setText("open the pot; press the button")
    config = page.config_from_form()
    assert config.strategy == "lora" and config.adapter["r"] == 16
    assert config.tasks == ["open the pot", "press the button"]
    assert config.processes == 1
    page.processes_spin.setValue(2)  # the batch is split between the processes
    assert page.config_from_form().processes == 2
    page.batch_spin.setValue(3)
    with pytest.raises(ValueError, match="divide batch_size"):  # shown as "Cannot start: ..."
        page.config_from_form()


@pytest.mark.slow
def test_fine_tune_then_cancel_and_a_later_window_sees_it(qtbot, page_factory, workspace, recorded_dataset):
    shutil.copytree(recorded_dataset, workspace.datasets_dir / "tiny_tasks")
    page = page_factory()
    page.refresh_datasets()
    page.dataset_combo.setCurrentText("tiny_tasks")
    page.steps_spin.setValue(500)
    page.batch_spin.setValue(2)
    page.rank_spin.setValue(8)
    page.run_edit.setText("gui-run")
    page.finetune_button.click()  # returns at once: the job starts off the GUI thread
    qtbot.waitUntil(lambda: _state(page, "gui-run") == "running", timeout=JOB_TIMEOUT_MS)
    # live curves come from metrics.jsonl
    qtbot.waitUntil(lambda: (page.refresh(), "loss" in page.loss_plot.data)[1], timeout=JOB_TIMEOUT_MS)
    assert page.cancel_button.isEnabled() and not page.resume_button.isEnabled()
    assert page.progress.value() > 0 and "ETA" in page.status_label.text()
    assert {"vision", "language", "action"} <= set(page.rank_plot.data)
    page.cancel_button.click()
    qtbot.waitUntil(lambda: _state(page, "gui-run") == "canceled", timeout=JOB_TIMEOUT_MS)

    later = page_factory()  # a window opened after the job ended
    assert later.selected_run == "gui-run"
    row = [later.runs_table.item(0, c).text() for c in range(later.runs_table.columnCount())]
    assert row[:3] == ["gui-run", "canceled", "lora_sp"] and float(row[4]) > 0
    assert later.resume_button.isEnabled() and not later.cancel_button.isEnabled()
    assert "canceled" in later.log_view.toPlainText()

    later.where.combo.setCurrentIndex(later.where.combo.findData("cpu"))
    later.resume_button.click()  # continues where the Where row says: this machine's CPU
    qtbot.waitUntil(lambda: _state(later, "gui-run") == "running", timeout=JOB_TIMEOUT_MS)
    resumed = next(r for r in later.records if r.run_name == "gui-run")
    assert resumed.device == "cpu" and resumed.step >= int(row[3].split("/")[0])
    later.cancel_button.click()
    qtbot.waitUntil(lambda: _state(later, "gui-run") == "canceled", timeout=JOB_TIMEOUT_MS)


@pytest.mark.slow
def test_a_dataset_the_trainer_cannot_use_is_refused_before_a_run_is_written(qtbot, page_factory, workspace):
    broken = workspace.datasets_dir / "broken" / "meta"
    broken.mkdir(parents=True)
    (broken / "info.json").write_text(json.dumps({"codebase_version": "v3.0"}))  # no features, no data
    page = page_factory()
    page.dataset_combo.setCurrentText("broken")
    page.run_edit.setText("crash-run")
    page.finetune_button.click()
    qtbot.waitUntil(lambda: "start failed" in page.status_label.text(), timeout=JOB_TIMEOUT_MS)
    assert "lacks ['observation.state', 'action', 'observation.images.*']" in page.status_label.text()
    assert page.finetune_button.isEnabled()
    assert not (workspace.runs_dir / "crash-run").exists() and list_jobs(workspace.runs_dir) == []


def test_where_offers_this_machines_devices_and_not_a_cluster_it_cannot_reach(
    page_factory, monkeypatch, tmp_path
):
    from train.jobs import gpu_count

    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    where = page_factory().where
    places = [where.combo.itemData(i) for i in range(where.combo.count())]
    assert places == [None, "cpu", *(f"cuda:{k}" for k in range(gpu_count()))]
    assert "no Slurm here (sbatch" in where.combo.toolTip()
    where.combo.setCurrentIndex(1)
    assert where.target() == ("cpu", None)


@pytest.mark.slow
def test_fine_tune_on_a_slurm_cluster_is_followed_like_a_local_run(
    qtbot, slurm_cluster, page_factory, workspace, recorded_dataset
):
    """Where = the cluster (tests/slurm_cluster.py): the job is submitted with the form's
    limits, and the page follows it to the end; a time Slurm would refuse starts nothing."""
    from train.jobs import read_job
    from train.slurm import SBATCH_FILE, SlurmSpec

    shutil.copytree(recorded_dataset, workspace.datasets_dir / "tiny_tasks")
    page = page_factory()
    page.dataset_combo.setCurrentText("tiny_tasks")
    page.preset_combo.setCurrentText("smolvla-lora128")
    page.steps_spin.setValue(3)
    page.batch_spin.setValue(2)
    page.rank_spin.setValue(4)
    page.advanced_button.click()
    where = page.where
    assert not where.slurm_fields.isVisibleTo(page)  # its fields show once the cluster is chosen
    where.combo.setCurrentIndex(where.combo.findData("Slurm cluster"))
    assert where.slurm_fields.isVisibleTo(page)
    where.time_edit.setText("10 min")
    page.run_edit.setText("too-long")
    page.finetune_button.click()
    assert "Cannot start: time limit '10 min': give hours and minutes, HH:MM" in page.status_label.text()
    assert not (workspace.runs_dir / "too-long").exists()

    where.time_edit.setText("00:10")
    assert where.target() == (None, SlurmSpec(time="00:10"))
    page.run_edit.setText("on-slurm")
    page.finetune_button.click()
    qtbot.waitUntil(lambda: _state(page, "on-slurm") == "completed", timeout=JOB_TIMEOUT_MS)
    assert read_job(workspace.runs_dir / "on-slurm").slurm_job
    assert "#SBATCH --time=00:10:00" in (workspace.runs_dir / "on-slurm" / SBATCH_FILE).read_text()
    assert page.progress.value() == 1000


def test_cli_lists_presets_and_refuses_bad_input(workspace, capsys):
    from app.cli import main

    assert main(["--workspace", str(workspace.root), "train", "--presets"]) == 0
    assert "smolvla-lora_sp" in capsys.readouterr().out
    assert main(["--workspace", str(workspace.root), "train", "--list"]) == 0
    assert "no runs" in capsys.readouterr().out
    assert (
        main(["--workspace", str(workspace.root), "train", "--dataset", "x", "--preset", "smolvla-lorsp"])
        == 2
    )
    assert "closest: smolvla-lora_sp" in capsys.readouterr().err
    assert main(["--workspace", str(workspace.root), "train", "--resume"]) == 2


def test_the_runs_table_shows_a_training_runs_step_as_it_goes_and_each_runs_whole_name(
    page_factory, workspace
):
    """A run's record holds the step it last stopped at; while it trains, the Step column
    follows its metrics. A study's runs share their names' start: the full name is a tooltip."""
    from dataclasses import asdict

    from train.jobs import JobRecord
    from train.metrics import MetricsWriter

    names = {"running": "big-lora_sp-eta0.99-no_z-lr1e-03", "canceled": "big-lora_sp-score_relu-lr1e-03"}
    for i, (state, name) in enumerate(names.items()):
        run_dir = workspace.runs_dir / name
        run_dir.mkdir(parents=True)
        record = JobRecord(name, str(run_dir), state=state, step=1021, total_steps=20000, created=i)
        (run_dir / "job.json").write_text(json.dumps(asdict(record)))
        writer = MetricsWriter(run_dir)
        for step in range(1000, 1500, 5):
            writer.write("train", step, loss=0.1, total_steps=20000)
            writer.write("val", step, **{"val/mean": 0.2})
        with (run_dir / "metrics.jsonl").open("a") as f:
            f.write('{"kind": "train", "step": 15')  # the line being written
    page = page_factory()
    steps = {page.runs_table.item(r, 0).toolTip(): page.runs_table.item(r, 3).text() for r in range(2)}
    assert steps == {names["running"]: "1495/20000", names["canceled"]: "1021/20000"}
