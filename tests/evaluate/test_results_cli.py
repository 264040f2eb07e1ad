import csv
import io
import shutil

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


def test_a_studys_rows_print_from_its_ledger_and_a_wrong_name_says_what_to_do(workspace, capsys, tmp_path):
    from tests.evaluate._ledger import write_row

    argv = ["--workspace", str(workspace.root), "results", "--study", "big"]
    assert main(argv) == 1  # no results.sqlite and no study: the message names the fix
    assert "no study 'big'" in capsys.readouterr().err
    out = tmp_path / "big"
    write_row(out, "full", (7, 1, 11, 1), 100.0)
    write_row(out, "lora128", (7, 0, 9, 0), 17.3, 32.0)
    workspace.record_study("big", out)
    assert main(argv[:-2]) == 1  # the trials' table has nothing yet: the study is named instead
    assert "--study NAME (big)" in capsys.readouterr().err
    assert main([*argv, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["run"], r["press_button_successes"], r["press_button_trials"]) for r in rows] == [
        ("big-full", "11", "15"),
        ("big-lora128", "9", "15"),
    ]
    assert main([*argv, "--trials"]) == 1 and "--campaign <run> --trials" in capsys.readouterr().err
    shutil.rmtree(out)  # the folder moved away: refused with the way back
    assert main(argv) == 1 and "--out DIR" in capsys.readouterr().err
