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
        (0, "success", "lid off"), (1, "aborted", "aborted by the operator"), (1, "failure", ""),
        (2, "aborted", "campaign stopped before the rollout")]
    assert campaign.progress() == (2, 3)


def test_eval_of_a_run_without_checkpoint_is_a_clear_error(workspace, capsys):
    (workspace.runs_dir / "empty").mkdir(parents=True)
    argv = ["--workspace", str(workspace.root), "eval", "--run", "empty", "--tasks", "press_button", "--trials", "1"]
    assert main(argv) == 1
    assert "no checkpoint" in capsys.readouterr().err
