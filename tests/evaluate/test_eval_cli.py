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
