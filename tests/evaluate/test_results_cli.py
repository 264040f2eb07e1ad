import csv
import io

from app.cli import main
from evaluate.store import ResultsStore, RunInfo, TrialRecord


def _seed_db(workspace):
    with ResultsStore(workspace.results_db) as store:
        store.create_campaign("c", "sim", {})
        store.register_run(RunInfo("c", "sp", strategy="lora_sp", trainable_pct=9.2, active_rank=76))
        for i in range(5):
            store.add_trial(
                TrialRecord("c", "sp", "press_button", i, "success" if i < 4 else "failure", "predicate")
            )


def test_results_markdown_and_csv(workspace, capsys, tmp_path):
    _seed_db(workspace)
    assert main(["--workspace", str(workspace.root), "results"]) == 0
    out = capsys.readouterr().out
    assert "| sp (c) | lora_sp | 9.2 | 76 | 80.0 [37.6, 96.4] |" in out
    target = tmp_path / "t.csv"
    assert main(["--workspace", str(workspace.root), "results", "--format", "csv", "-o", str(target)]) == 0
    (row,) = csv.DictReader(io.StringIO(target.read_text()))
    assert (row["press_button_successes"], row["press_button_trials"]) == ("4", "5")
    assert main(["--workspace", str(workspace.root), "results", "--trials", "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 6


def test_results_errors_say_what_to_do(workspace, capsys):
    assert main(["--workspace", str(workspace.root), "results"]) == 1
    assert "piper-ws eval" in capsys.readouterr().err
    _seed_db(workspace)
    assert main(["--workspace", str(workspace.root), "results", "--campaign", "nope"]) == 1
    assert "known: c" in capsys.readouterr().err
