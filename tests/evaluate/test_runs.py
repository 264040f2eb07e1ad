import json

from evaluate.runs import describe_run, list_runs
from train.layout import ADAPTER_CONFIG, CHECKPOINTS, METRICS_NAME, PRETRAINED, RUN_CONFIG


def test_describe_run_reads_config_and_last_metrics(tmp_path):
    run = tmp_path / "runs" / "sp"
    run.mkdir(parents=True)
    # the trainer's files, by the trainer's own names (train/config.py, train/metrics.py)
    (run / RUN_CONFIG).write_text(json.dumps({"strategy": "lora_sp", "steps": 2}))
    (run / METRICS_NAME).write_text(
        json.dumps({"kind": "event", "step": 0, "event": "started", "trainable_percent": 17.1})
        + "\n"
        + json.dumps({"kind": "train", "step": 1, "active_rank/mean": 90.0})
        + "\n"
        + json.dumps({"step": 2, "active_rank/mean": 60.0})
        + "\n"
        + '{"step": 3, "active_ra'  # a half-written line while training
    )
    info = describe_run(run, "c", eta=0.8)
    assert (info.strategy, info.trainable_pct, info.active_rank, info.eta) == ("lora_sp", 17.1, 60.0, 0.8)
    assert list_runs(tmp_path / "runs") == ["sp"]


def test_describe_run_without_files_leaves_fields_empty(tmp_path):
    info = describe_run(tmp_path, "c")
    assert (info.strategy, info.trainable_pct, info.active_rank) == ("", None, None)


def test_without_a_run_config_the_strategy_comes_from_the_evaluated_checkpoint(tmp_path):
    """A run whose config is gone: the adapter config of the checkpoint asked for names the strategy."""
    for step, strategy in (("000100", "lora"), ("000200", "lora_sp")):
        pretrained = tmp_path / CHECKPOINTS / step / PRETRAINED
        pretrained.mkdir(parents=True)
        (pretrained / ADAPTER_CONFIG).write_text(json.dumps({"config": {"strategy": strategy}}))
    (tmp_path / CHECKPOINTS / "last").write_text("000200")
    assert describe_run(tmp_path, "c").strategy == "lora_sp"
    assert describe_run(tmp_path, "c", checkpoint="100").strategy == "lora"
    assert describe_run(tmp_path, "c", checkpoint="999").strategy == ""  # no such checkpoint: empty, no guess


def test_a_run_is_named_as_the_study_names_its_row_and_two_ranks_never_share_a_name(tmp_path):
    """A run that trains what its preset trains takes the preset's name without the family
    (the study's row name); a changed rank, or no preset, names the strategy with its rank."""
    from train.presets import get_preset

    def strategy_of(config):
        (tmp_path / RUN_CONFIG).write_text(json.dumps(config.to_dict()))
        return describe_run(tmp_path, "c").strategy

    assert strategy_of(get_preset("mini-lora8", lr=3e-3, steps=99)) == "lora8"  # a rate is not a strategy
    assert strategy_of(get_preset("mini-lora128")) == "lora128"
    assert strategy_of(get_preset("mini-capvector")) == "capvector"  # full fine-tuning, kept orthogonal
    assert strategy_of(get_preset("mini-full")) == "full"
    assert strategy_of(get_preset("mini-lora8", adapter={"r": 16, "lora_alpha": 16})) == "lora r=16"
    assert strategy_of(get_preset("mini-lora8", preset="")) == "lora r=2"  # built by hand: its own rank
    assert strategy_of(get_preset("mini-full", orth_weight=1.0)) == "full"
    assert strategy_of(get_preset("mini-adalora", adapter={"init_r": 8})) == "adalora r=8"
