from app.cli import main


def test_eval_names_missing_runs_and_known_ones(workspace, capsys):
    (workspace.runs_dir / "smolvla-sp").mkdir(parents=True)
    assert main(["--workspace", str(workspace.root), "eval", "--run", "nope", "--trials", "1"]) == 1
    err = capsys.readouterr().err
    assert "no run named nope" in err and "smolvla-sp" in err


def test_eval_rejects_unknown_task_and_bad_settings(workspace, capsys):
    (workspace.runs_dir / "r").mkdir(parents=True)
    assert main(["--workspace", str(workspace.root), "eval", "--run", "r", "--tasks", "open_pt"]) == 1
    assert "open_pot" in capsys.readouterr().err  # the close match is suggested
    assert main(["--workspace", str(workspace.root), "eval", "--run", "r", "--eta", "2"]) == 1
    assert "eta must be in (0, 1]" in capsys.readouterr().err
    assert main(["--workspace", str(workspace.root), "eval", "--run", "r", "--perturbation", "fog"]) == 1
    assert "unknown perturbation" in capsys.readouterr().err


def test_terminal_scoring_on_the_real_arm(tmp_path, monkeypatch):
    import threading

    from app.commands.eval import _run_with_operator
    from evaluate.campaign import Campaign, CampaignSpec, RolloutResult
    from evaluate.store import ResultsStore

    class Arm:
        station = None

        def reset(self, slot):
            pass

        def run(self, slot, stop: threading.Event):
            return RolloutResult(2.0)

    answers = iter(["", "x", "s", "lid off", "", "a", "", "f", "", "q"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    store = ResultsStore(tmp_path / "r.sqlite")
    spec = CampaignSpec(name="real", runs=("r",), tasks=("open_pot",), trials=3, backend="piper")
    campaign = Campaign.create(store, spec)
    _run_with_operator(campaign, Arm(), spec)
    rows = store.trials("real", include_aborted=True)
    assert [(r.trial_index, r.outcome, r.note) for r in rows] == [
        (0, "success", "lid off"),
        (1, "aborted", "aborted by the operator"),
        (1, "failure", ""),
        (2, "aborted", "campaign stopped before the rollout"),
    ]
    assert campaign.progress() == (2, 3)


def test_eval_of_a_run_without_checkpoint_is_a_clear_error(workspace, capsys):
    (workspace.runs_dir / "empty").mkdir(parents=True)
    argv = [
        "--workspace",
        str(workspace.root),
        "eval",
        "--run",
        "empty",
        "--tasks",
        "press_button",
        "--trials",
        "1",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: run 'empty' cannot be evaluated:") and "no checkpoint" in err
    assert err.count("\n") == 1
    assert not workspace.results_db.exists()  # refused before any campaign was written


def _dataset_with_seeds(datasets_dir):
    """A dataset written by the real EpisodeWriter: sim episodes with scene seeds, as `record` keeps them."""
    import numpy as np

    from collect.recording.plan import RecordingPlan
    from collect.recording.writer import EpisodeRecord, EpisodeWriter

    plan = RecordingPlan("seeded", tasks=["open_pot", "press_button"], image_size=(48, 64))
    writer = EpisodeWriter.open(plan, datasets_dir)
    for task, seed in (
        ("press_button", 1000),
        ("open_pot", 7),
        ("press_button", 1001),
        ("press_button", 1102),
    ):
        for i in range(3):
            state = np.full(7, 0.01 * i, np.float32)
            writer.add_frame(
                state,
                state,
                {c: np.zeros((48, 64, 3), np.uint8) for c in plan.cameras},
                plan.instruction(task),
            )
        writer.keep(EpisodeRecord(task=task, instruction=plan.instruction(task), backend="sim", seed=seed))
    writer.close()


def test_seeds_from_dataset_evaluates_on_the_recorded_scenes(workspace, capsys):
    import argparse

    from app.commands.eval import _scenes, add_arguments
    from evaluate.campaign import CampaignSpec

    _dataset_with_seeds(workspace.datasets_dir)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    tasks, trials, seeds = _scenes(
        parser.parse_args(["--run", "r", "--seeds-from-dataset", "seeded"]), workspace
    )
    assert tasks == ("press_button", "open_pot") and trials == 1  # open_pot has one episode
    assert seeds == {"press_button": (1000, 1001, 1102), "open_pot": (7,)}
    args = parser.parse_args(["--run", "r", "--seeds-from-dataset", "seeded", "--tasks", "press_button"])
    tasks, trials, seeds = _scenes(args, workspace)
    spec = CampaignSpec(name="memo", runs=("r",), tasks=tasks, trials=trials, scene_seeds=seeds)
    assert [slot.seed for slot in spec.slots()] == [1000, 1001, 1102]
    assert CampaignSpec.from_dict(spec.to_dict()) == spec  # a resumed campaign keeps its scenes

    (workspace.runs_dir / "r").mkdir(parents=True)
    ws = ["--workspace", str(workspace.root), "eval", "--run", "r"]
    assert main([*ws, "--seeds-from-dataset", "seeded", "--tasks", "press_button", "--trials", "5"]) == 1
    assert "only 3 scene seeds given for 'press_button'" in capsys.readouterr().err
    assert main([*ws, "--seeds-from-dataset", "nosuch"]) == 1
    assert "not a recorded dataset" in capsys.readouterr().err
    assert main([*ws, "--seeds-from-dataset", "seeded", "--tasks", "pick_grape"]) == 1
    assert "has no episodes of pick_grape" in capsys.readouterr().err
    assert main([*ws, "--seeds-from-dataset", "seeded", "--backend", "piper"]) == 1
    assert "--backend sim" in capsys.readouterr().err
