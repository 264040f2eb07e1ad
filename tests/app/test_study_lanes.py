"""A study's rows on lanes: at most one row per lane, rows in order as lanes free up, a row
after the row whose learning rate it reuses, no new row after a failure."""

import os
import queue
import threading

import pytest

from app.commands.study_lanes import Lane, make_lanes, run_in_lanes
from train.jobs import gpu_count

LANES = [Lane("cpu:0", 1), Lane("cpu:1", 1)]


class Rows:
    """Rows that run until the test finishes them, with the code the test gives."""

    def __init__(self, rows, after=None):
        self.rows, self.after = rows, after or {}
        self.started: queue.Queue = queue.Queue()
        self.finish = {row: queue.Queue() for row in rows}
        self.done: list[str] = []

    def run_row(self, row, lane):
        self.started.put((row, lane.device))
        outcome = self.finish[row].get(timeout=30)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def start(self, lanes=LANES):
        result = {}

        def study():
            try:
                result["code"] = run_in_lanes(
                    self.rows, lanes, self.run_row, self.after.get, self.done.append
                )
            except BaseException as error:  # noqa: BLE001
                result["error"] = error

        thread = threading.Thread(target=study, daemon=True)
        thread.start()
        return thread, result

    def next_started(self):
        return self.started.get(timeout=30)

    def nothing_started(self):
        try:
            extra = self.started.get(timeout=0.3)
        except queue.Empty:
            return True
        raise AssertionError(f"{extra} started")


def test_rows_start_in_order_as_lanes_free_up_and_a_reading_waits_for_its_strategy():
    rows = Rows(["lora_sp", "lora128", "lora_sp-no_z", "lora8"], after={"lora_sp-no_z": "lora_sp"})
    thread, result = rows.start()
    assert {rows.next_started(), rows.next_started()} == {("lora_sp", "cpu:0"), ("lora128", "cpu:1")}
    assert rows.nothing_started()  # both lanes busy
    rows.finish["lora128"].put(0)
    # the reading needs lora_sp's learning rate: the next row in order goes first
    assert rows.next_started() == ("lora8", "cpu:1")
    assert rows.nothing_started()
    rows.finish["lora_sp"].put(0)
    assert rows.next_started() == ("lora_sp-no_z", "cpu:0")
    rows.finish["lora_sp-no_z"].put(0)
    rows.finish["lora8"].put(0)
    thread.join(30)
    assert result == {"code": 0}
    assert rows.done[:2] == ["lora128", "lora_sp"]  # the tables are written after each row
    assert sorted(rows.done[2:]) == ["lora8", "lora_sp-no_z"]


def test_one_lane_runs_the_rows_one_by_one_in_order():
    rows = Rows(["full", "full_scratch", "lora_sp"], after={"full_scratch": "full"})
    thread, result = rows.start(lanes=[Lane(None)])
    for row in rows.rows:
        assert rows.next_started() == (row, None)
        assert rows.nothing_started()
        rows.finish[row].put(0)
    thread.join(30)
    assert result == {"code": 0} and rows.done == rows.rows


def test_a_failed_row_starts_no_new_row_and_the_running_one_ends_first():
    rows = Rows(["a", "b", "c"])
    thread, result = rows.start()
    rows.next_started(), rows.next_started()
    rows.finish["b"].put(1)
    assert rows.nothing_started()  # c does not start
    assert thread.is_alive()  # a still runs: the study waits for it
    rows.finish["a"].put(0)
    thread.join(30)
    assert result == {"code": 1} and rows.done == ["a"]


def test_an_error_in_a_row_reaches_the_study():
    rows = Rows(["a", "b"])
    thread, result = rows.start()
    rows.next_started(), rows.next_started()
    rows.finish["a"].put(OSError("No space left on device"))
    thread.join(30)
    assert isinstance(result.get("error"), OSError)


def test_cpu_lanes_share_the_cores_and_impossible_lanes_are_refused():
    cores = len(os.sched_getaffinity(0))
    assert make_lanes(1, "cpu") == [Lane("cpu")]  # one lane: the device as given
    assert make_lanes(1, None) == [Lane(None)]
    if cores >= 2:
        assert make_lanes(2, "cpu") == [Lane("cpu:0", cores // 2), Lane("cpu:1", cores // 2)]
    with pytest.raises(ValueError, match=f"needs a core per lane; this machine gives {cores}"):
        make_lanes(cores + 1, "cpu")
    with pytest.raises(ValueError, match="at least 1"):
        make_lanes(0, "cpu")
    with pytest.raises(ValueError, match="give --device cuda, not cuda:1"):
        make_lanes(2, "cuda:1")
    if gpu_count() < 2:
        with pytest.raises(ValueError, match=f"needs 2 GPUs; this machine has {gpu_count()}"):
            make_lanes(2, "cuda")


def test_slurm_lanes_are_places_in_the_clusters_queue_not_this_machines_cores():
    from train.slurm import SlurmSpec

    spec = SlurmSpec(partition="gpu", gpus=1)
    many = len(os.sched_getaffinity(0)) + 2  # more rows at once than this machine has cores
    lanes = make_lanes(many, None, spec)
    assert len(set(lanes)) == many and all(lane.slurm == spec and lane.device is None for lane in lanes)
    assert str(lanes[1]) == "Slurm (2)"
