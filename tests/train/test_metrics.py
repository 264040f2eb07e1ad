"""metrics.jsonl readers: a GUI poll reads the newest record from the file's tail only."""

from train.metrics import MetricsWriter, last_record


def test_the_newest_record_of_a_kind_is_read_from_the_tail_whatever_the_cut(tmp_path):
    assert last_record(tmp_path, "train") is None  # no run yet
    writer = MetricsWriter(tmp_path)
    for step in range(0, 300, 5):
        writer.write("train", step, loss=0.5, eta_s=100.0)
    writer.write("val", 295, **{"val/mean": 0.2})
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "train", "step": 30')  # being written
    assert last_record(tmp_path, "train")["step"] == 295
    assert last_record(tmp_path, "val")["val/mean"] == 0.2
    assert last_record(tmp_path, "event") is None
    for tail in range(40, 400, 7):  # a tail that cuts a line anywhere: that line is skipped
        record = last_record(tmp_path, "train", tail_bytes=tail)
        assert record is None or record["step"] == 295
    assert last_record(tmp_path, "train", tail_bytes=400)["step"] == 295
