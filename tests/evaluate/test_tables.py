import csv
import io

from evaluate.store import ResultsStore, RunInfo, TrialRecord
from evaluate.tables import comparison_from_store, tally


def _fill(store, campaign, run, outcomes_by_task, strategy=""):
    for task, outcomes in outcomes_by_task.items():
        for i, ok in enumerate(outcomes):
            store.add_trial(
                TrialRecord(
                    campaign, run, task, i, "success" if ok else "failure", "predicate", strategy=strategy
                )
            )


def test_comparison_table_in_paper_layout(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.create_campaign("c", "sim", {})
    store.register_run(RunInfo("c", "sp", strategy="lora_sp", trainable_pct=17.1, active_rank=60.0))
    store.register_run(RunInfo("c", "lora128", strategy="lora", trainable_pct=20.5, active_rank=128.0))
    # pick_grape given first: the table must still use the paper's column order.
    _fill(store, "c", "sp", {"pick_grape": [1] * 14 + [0], "open_pot": [1] * 13 + [0] * 2})
    _fill(store, "c", "lora128", {"pick_grape": [1] * 13 + [0] * 2, "open_pot": [1] * 6 + [0] * 9})
    table = comparison_from_store(store)
    assert table.tasks == ["open_pot", "pick_grape"]
    sp, lora = table.rows
    assert (sp.per_task["open_pot"].successes, sp.per_task["open_pot"].trials) == (13, 15)
    assert round(100 * sp.average, 2) == round(100 * (13 / 15 + 14 / 15) / 2, 2)
    assert (sp.overall.successes, sp.overall.trials) == (27, 30)
    md = table.to_markdown()
    header = md.splitlines()[0]
    assert header.index("Open") < header.index("Pick-Place") < header.index("Avg.")
    assert "| sp (c) | lora_sp | 17.1 | 60 | 86.7 [62.1, 96.3] | 93.3 [70.2, 98.8] | 90.0 |" in md
    rows = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert rows[1]["run"] == "lora128" and rows[1]["open_pot_successes"] == "6"
    assert float(rows[1]["open_pot_low"]) < 0.4 < float(rows[1]["open_pot_high"])
    # sortable: LoRA is worse on average
    assert [r.run for r in table.sort_by("average", descending=False).rows] == ["lora128", "sp"]


def test_superseded_and_aborted_rows_do_not_count(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.create_campaign("c", "sim", {})
    store.add_trial(TrialRecord("c", "r", "press_button", 0, "failure", "predicate"))
    store.add_trial(TrialRecord("c", "r", "press_button", 0, "success", "override"))
    store.add_trial(TrialRecord("c", "r", "press_button", 1, "aborted", "operator"))
    rates = tally(store.trials("c", include_superseded=True, include_aborted=True))
    assert (rates[("r", "press_button")].successes, rates[("r", "press_button")].trials) == (1, 1)


def test_empty_store_gives_empty_table(tmp_path):
    table = comparison_from_store(ResultsStore(tmp_path / "r.sqlite"))
    assert table.rows == [] and table.to_csv().count("\n") == 1
    assert "Run" in table.to_markdown()
