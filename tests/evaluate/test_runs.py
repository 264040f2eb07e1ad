import json

from evaluate.runs import describe_run, list_runs


def test_describe_run_reads_config_and_last_metrics(tmp_path):
    run = tmp_path / "runs" / "sp"
    run.mkdir(parents=True)
    # the trainer's files (train/config.py, train/metrics.py)
    (run / "config.json").write_text(json.dumps({"strategy": "lora_sp", "steps": 2}))
    (run / "metrics.jsonl").write_text(
        json.dumps({"kind": "event", "step": 0, "event": "started", "trainable_percent": 17.1}) + "\n"
        + json.dumps({"kind": "train", "step": 1, "active_rank/mean": 90.0}) + "\n"
        + json.dumps({"step": 2, "active_rank/mean": 60.0}) + "\n"
        + '{"step": 3, "active_ra'  # a half-written line while training
    )
    info = describe_run(run, "c", eta=0.8)
    assert (info.strategy, info.trainable_pct, info.active_rank, info.eta) == ("lora_sp", 17.1, 60.0, 0.8)
    assert list_runs(tmp_path / "runs") == ["sp"]


def test_describe_run_without_files_leaves_fields_empty(tmp_path):
    info = describe_run(tmp_path, "c")
    assert (info.strategy, info.trainable_pct, info.active_rank) == ("", None, None)
