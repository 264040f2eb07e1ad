"""The study's bookkeeping: the learning-rate pick, what a run's metrics say, and the table
files in the layout the issue fixes (`paper_table.csv`)."""

import csv
import io
import json
import math

import pytest

from evaluate.stats import wilson
from evaluate.study import (
    CSV_HEADER,
    LORA_SP_VARIANTS,
    PAPER_TASKS,
    STRATEGIES,
    StudyRow,
    TrainingFigures,
    first_unstable_loss,
    lower_rate,
    lr_grid,
    paper_table_csv,
    paper_table_markdown,
    pick_lr,
    success_chart,
    training_figures,
    val_loss_ceiling,
)


def test_the_lowest_validation_loss_wins_and_a_diverged_rate_never_does():
    assert pick_lr({1e-4: 0.30, 3e-4: 0.21, 1e-3: 0.25}) == 3e-4
    assert pick_lr({1e-4: 0.30, 3e-4: float("nan"), 1e-3: None}) == 1e-4
    with pytest.raises(ValueError, match="no learning rate"):
        pick_lr({1e-4: None, 3e-4: float("nan")})


def test_an_unstable_rate_steps_down_to_the_best_lower_rate_of_the_sweep(tmp_path):
    sweep = {3e-4: 0.2245, 1e-3: 0.2094, 3e-3: 0.2053}  # the big study's LoRA-SP sweep
    assert val_loss_ceiling(sweep[3e-3]) == pytest.approx(0.22583)
    assert val_loss_ceiling(None) is None and val_loss_ceiling(float("nan")) is None
    assert lower_rate(sweep, 3e-3) == 1e-3 and lower_rate(sweep, 1e-3) == 3e-4
    assert lower_rate(sweep, 3e-4) is None  # nothing lower: the row stays where it is
    # a lower rate is never a diverged one, and a higher one is never a step down
    assert lower_rate({1e-4: 0.3, 3e-4: float("nan"), 1e-3: 0.25, 3e-3: 0.1}, 1e-3) == 1e-4
    (tmp_path / "metrics.jsonl").write_text(
        "\n".join(
            json.dumps({"kind": kind, "step": step, "val/mean": loss})
            for kind, step, loss in [("val", 10, 0.2), ("train", 15, 9.0), ("val", 20, 0.3), ("val", 30, 0.4)]
        )
    )
    assert first_unstable_loss(tmp_path, 0.25) == (20, 0.3)  # training losses are not judged
    assert first_unstable_loss(tmp_path, 0.5) is None
    # but a loss gone NaN is (written as null): Run 24's lora_sp-no_z trained on as NaN for 2,500 steps
    with (tmp_path / "metrics.jsonl").open("a") as metrics:
        metrics.write("\n" + json.dumps({"kind": "val", "step": 40, "val/mean": None}))
    assert first_unstable_loss(tmp_path, 0.5) == (40, math.inf)
    with (tmp_path / "metrics.jsonl").open("a") as metrics:  # the training loss sees it first
        metrics.write("\n" + json.dumps({"kind": "train", "step": 35, "loss": None}))
    assert first_unstable_loss(tmp_path, 0.5) == (35, math.inf)


def test_adapters_sweep_about_ten_times_full_fine_tuning_rates():
    assert max(lr_grid("lora_sp")) / max(lr_grid("full")) == pytest.approx(10)
    # by the strategy a run trains: the scratch and capvector rows train "full"
    assert lr_grid("vla_gse") == lr_grid("lora") != lr_grid("full")


def test_training_figures_come_from_the_runs_metrics(tmp_path):
    rows = [
        {"kind": "event", "step": 0, "event": "started", "trainable": 25, "total": 200},
        {"kind": "train", "step": 5, "steps_per_s": 2.0, "peak_memory_mb": 900.0, "loss": 1.0},
        {"kind": "train", "step": 10, "steps_per_s": 4.0, "peak_memory_mb": 950.0, "loss": 0.5},
        {"kind": "train", "step": 15, "steps_per_s": 3.0, "peak_memory_mb": 940.0, "loss": 0.4,
         "active_rank/vision": 12.0, "active_rank/expert": 20.0, "active_rank/vision/p90": 30.0,
         "active_rank/mean": 14.0},
        {"kind": "val", "step": 15, "val/mean": 0.7},
    ]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"kind": "tr')
    figures = training_figures(tmp_path)
    assert figures.steps_per_s == 3.0  # the median window, not the last or the first
    assert figures.peak_memory_mb == 950.0
    assert figures.trainable_pct == pytest.approx(12.5)
    assert figures.active_rank == {"vision": 12.0, "expert": 20.0}  # groups only
    assert figures.mean_active_rank == pytest.approx(14.0)  # the run's mean over modules
    assert TrainingFigures(active_rank=figures.active_rank).mean_active_rank == pytest.approx(16.0)
    assert (figures.final_loss, figures.final_val_loss) == (0.4, 0.7)


def _row(strategy, wins, trials=15, **figures):
    per_task = {t: wilson(w, trials) for t, w in wins.items()}
    return StudyRow(strategy, f"study-{strategy}", 1e-3, per_task, TrainingFigures(**figures))


def test_paper_table_csv_has_the_fixed_header_and_percent_values(tmp_path):
    full = _row(
        "full", {"open_pot": 3, "pour_block": 0, "press_button": 15, "pick_grape": 6}, trainable_pct=100.0
    )
    partial = _row(
        "lora_sp", {"press_button": 9}, trainable_pct=17.25, active_rank={"expert": 10.0, "vlm": 20.0}
    )
    text = paper_table_csv([full, partial])
    table = list(csv.reader(io.StringIO(text)))
    assert tuple(table[0]) == CSV_HEADER
    assert table[0] == ["strategy", "open_pot", "pour_block", "press_button", "pick_grape", "avg",
                        "trainable_pct", "active_rank"]  # fmt: skip
    assert table[1] == ["full", "20.0", "0.0", "100.0", "40.0", "40.0", "100.00", ""]
    # a row still being scored: no average until every task has trials
    assert table[2] == ["lora_sp", "", "", "60.0", "", "", "17.25", "15.0"]
    markdown = paper_table_markdown([full, partial])
    assert (
        "| full | 0.001 | 20.0 [7.0, 45.2] |" in markdown and "expert 10.0, vlm 20.0 (mean 15.0)" in markdown
    )
    success_chart([full, partial], tmp_path / "chart.png", "test")
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"


def test_strategy_names_are_the_presets():
    from train.presets import PRESETS

    assert all(f"mini-{s}" in PRESETS for s in STRATEGIES)


def test_each_lora_sp_reading_changes_only_what_it_names_in_the_lora_sp_preset():
    """Its rate aside: a reading's rate replaces the sweep's pick, not the preset's lr (the
    study tests that), and must be one the sweep measured, or it would have no ceiling."""
    from dataclasses import asdict, fields

    from evaluate.study import ADAPTER_LRS
    from train.adapters.config import LoraSPConfig
    from train.adapters.targets import parse_targets
    from train.presets import get_preset

    preset = get_preset("mini-lora_sp")
    preset_adapter = asdict(LoraSPConfig(**preset.adapter))
    for reading, overrides in LORA_SP_VARIANTS.items():
        assert overrides.get("lr", ADAPTER_LRS[0]) in ADAPTER_LRS, reading
        overrides = {k: v for k, v in overrides.items() if k != "lr"}
        if not overrides:
            continue
        config = get_preset("mini-lora_sp", **overrides)
        adapter = asdict(LoraSPConfig(**config.adapter))  # a misspelt adapter field raises
        changed = {f"adapter.{k}" for k in adapter if adapter[k] != preset_adapter[k]}
        changed |= {
            f.name
            for f in fields(config)
            if f.name != "adapter" and getattr(config, f.name) != getattr(preset, f.name)
        }
        named = {f"adapter.{k}" for k in overrides.get("adapter", {})} | (set(overrides) - {"adapter"})
        assert changed == named, reading  # a no-op override fails too
        parse_targets(config.targets)  # the targets a reading names exist
    no_vision = get_preset("mini-lora_sp", **LORA_SP_VARIANTS["lora_sp-no_vision"])
    assert set(parse_targets(no_vision.targets).groups) == {"language", "action"}


def test_each_reading_is_read_against_lora_sp_at_its_own_rate():
    """The control is lora_sp at the reading's rate with nothing else changed: the Table I row
    when its rate matches, else the reading that names only that rate; a reading whose rate
    has no control scored is left out rather than set against another rate."""
    from dataclasses import replace

    from evaluate.study import reading_controls, readings_markdown

    def row(strategy, wins, lr):
        return replace(_row(strategy, dict(zip(PAPER_TASKS, wins, strict=True))), lr=lr)

    rows = {
        "lora_sp": row("lora_sp", (0, 0, 0, 0), 3e-3),
        "lora_sp-lr1e-03": row("lora_sp-lr1e-03", (3, 0, 4, 0), 1e-3),
        "lora_sp-no_z": row("lora_sp-no_z", (7, 0, 8, 0), 1e-3),
        "lora_sp-no_vision": row("lora_sp-no_vision", (2, 0, 1, 0), 1e-3),
        "lora_sp-eta0.99": row("lora_sp-eta0.99", (9, 1, 9, 1), 3e-4),  # no control at 3e-4
    }
    assert reading_controls(rows) == {
        "lora_sp-no_vision": "lora_sp-lr1e-03",
        "lora_sp-no_z": "lora_sp-lr1e-03",
    }
    lines = readings_markdown(rows).splitlines()
    assert "| lora_sp-no_z | 0.001 | lora_sp-lr1e-03 | 15/60 | 7/60 | +13.3 | 0.10 | 0.19 |" in lines
    assert "| lora_sp-no_vision | 0.001 | lora_sp-lr1e-03 | 3/60 | 7/60 | -6.7 | 0.32 | 0.32 |" in lines
    assert not any(line.startswith("| lora_sp-eta0.99") for line in lines)
    assert (
        lines[-1]
        == "Not read yet, for want of a scored control at their rate from their build: `lora_sp-eta0.99`."
    )
    unscored = {**rows, "lora_sp-lr1e-03": replace(rows["lora_sp-lr1e-03"], per_task={})}
    assert readings_markdown(unscored) == ""  # a control with no trials yet is no yardstick

    # at the row's own rate the row is the control
    rows["lora_sp-no_z"] = replace(rows["lora_sp-no_z"], lr=3e-3)
    assert reading_controls(rows)["lora_sp-no_z"] == "lora_sp"
    assert readings_markdown({"lora_sp": rows["lora_sp"]}) == ""


def test_a_reading_is_read_against_the_control_from_its_own_backbone_build():
    """Two builds of one backbone by the same recipe differ (another CPU's arithmetic): a
    reading is set against the control trained from its build, and one whose build has no
    control scored yet waits, named, rather than be set against the other build's."""
    from dataclasses import replace

    from evaluate.study import base_row, kept_name, reading_controls, readings_markdown

    def row(strategy, wins):
        return replace(_row(strategy, dict(zip(PAPER_TASKS, wins, strict=True))), lr=1e-3)

    old, new = {"name": "mini", "final_loss": 0.08561}, {"name": "mini", "final_loss": 0.0904}
    kept = kept_name("lora_sp-lr1e-03", old)
    assert kept == "lora_sp-lr1e-03@0.0856" and base_row(kept) == "lora_sp-lr1e-03"
    rows = {
        kept: row(kept, (3, 0, 4, 0)),
        "lora_sp-no_z": row("lora_sp-no_z", (7, 0, 8, 0)),
        "lora_sp-eta0.99": row("lora_sp-eta0.99", (9, 1, 6, 0)),
    }
    builds = {kept: old, "lora_sp-no_z": old, "lora_sp-eta0.99": new}
    assert reading_controls(rows, builds) == {"lora_sp-no_z": kept}
    text = readings_markdown(rows, builds)
    assert f"| lora_sp-no_z | 0.001 | {kept} | 15/60 | 7/60 | +13.3 | 0.10 | 0.10 |" in text.splitlines()
    assert text.rstrip().endswith("from their build: `lora_sp-eta0.99`.")

    rows["lora_sp-lr1e-03"] = row("lora_sp-lr1e-03", (1, 0, 2, 0))  # this build's control, scored
    builds["lora_sp-lr1e-03"] = new
    assert reading_controls(rows, builds) == {"lora_sp-no_z": kept, "lora_sp-eta0.99": "lora_sp-lr1e-03"}
    lines = readings_markdown(rows, builds).splitlines()
    assert "| lora_sp-eta0.99 | 0.001 | lora_sp-lr1e-03 | 16/60 | 3/60 | +21.7 | 0.00 | 0.00 |" in lines
    assert not any("Not read yet" in line for line in lines)


def test_a_studys_ledger_reads_as_a_comparison_in_table_i_order(tmp_path):
    from evaluate.study import ledger_stamp, study_comparison
    from tests.evaluate._ledger import write_row

    out = tmp_path / "big"
    write_row(out, "lora_sp-no_z", (1, 0, 2, 0), 17.9, 30.5)  # a reading: after Table I's rows
    write_row(out, "lora128", (7, 0, 9, 0), 17.3, 32.0)
    write_row(out, "full", (7, 1, 11, 1), 100.0)
    (out / "rows" / "lora8.json").write_text('{"settings": {"na')  # cut short: left out
    before = ledger_stamp(out)

    table = study_comparison("big", out)
    assert [row.strategy for row in table.rows] == ["full", "lora128", "lora_sp-no_z"]
    assert table.tasks == ["open_pot", "pour_block", "press_button", "pick_grape"]
    full, lora, _ = table.rows
    assert (full.campaign, full.run) == ("study big", "big-full")
    assert (full.trainable_pct, full.active_rank) == (100.0, None)
    assert full.per_task["press_button"] == wilson(11, 15) and round(100 * full.average, 1) == 33.3
    assert lora.active_rank == 32.0 and lora.overall.trials == 60
    assert "| big-lora128 (study big) | lora128 | 17.3 | 32 | 46.7 [24.8, 69.9] |" in table.to_markdown()

    write_row(out, "lora32", (5, 0, 9, 0), 5.2, 8.0)  # a row scored: the page re-reads
    assert ledger_stamp(out) != before
    assert [row.strategy for row in study_comparison("big", out).rows][:3] == ["full", "lora32", "lora128"]
    with pytest.raises(FileNotFoundError, match="--out DIR"):
        study_comparison("big", tmp_path / "moved")
