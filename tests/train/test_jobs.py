"""Background jobs: a real child process per run, its record on disk, the per-device queue,
cancel/crash/kill states."""

import os
import shutil
import time
from pathlib import Path

import pytest

from train.jobs import JobError, cancel_job, job_env, kill_job, list_jobs, read_job, start_job, wait_job
from train.metrics import progress, read_metrics
from train.presets import get_preset
from train.threads import OMP_SPIN_COUNT

JOB_TIMEOUT = 400  # seconds; the machine may be loaded


def job_config(backbone_cache, run_name, **overrides):
    fields = dict(
        dataset="tiny_tasks", run_name=run_name, batch_size=2, log_every=1, val_every=1000, val_batches=1,
        checkpoint_every=1000, warmup_steps=0, adapter={"r": 8}, backbone_cache=str(backbone_cache), device="cpu",
    )  # fmt: skip
    fields.update(overrides)
    return get_preset("smolvla-lora_sp", **fields)


def wait_for_step(run_dir, step, timeout=JOB_TIMEOUT):
    deadline = time.monotonic() + timeout
    while progress(run_dir)["step"] < step:
        assert read_job(run_dir).active, open(os.path.join(run_dir, "train.log")).read()[-3000:]
        assert time.monotonic() < deadline, "job made no progress"
        time.sleep(0.5)


def environ_of(pid: int, timeout: float = 30) -> list[bytes]:
    """A process's environment as the kernel holds it. Popen returns once exec has begun, and
    /proc reads empty until the new program's stack is set up, so wait for it."""
    deadline = time.monotonic() + timeout
    while not (raw := Path(f"/proc/{pid}/environ").read_bytes()):
        assert time.monotonic() < deadline, f"process {pid} shows no environment"
        time.sleep(0.05)
    return raw.split(b"\0")


@pytest.mark.slow
def test_cancel_checkpoints_and_stops_then_resume_finishes(
    backbone_cache, train_workspace, runs, monkeypatch
):
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    data = train_workspace / "datasets"
    record = start_job(job_config(backbone_cache, "a", steps=500), runs, data)
    assert record.active and record.pid
    # its OpenMP threads sleep soon when they wait (train.threads), so it keeps its pace beside another job
    assert f"GOMP_SPINCOUNT={OMP_SPIN_COUNT}".encode() in environ_of(record.pid)
    # The device is busy: later jobs wait in line, in order, without training.
    queued = [start_job(job_config(backbone_cache, name, steps=1), runs, data) for name in ("b", "c")]
    assert [(r.state, r.queued_behind) for r in queued] == [("queued", "a"), ("queued", "b")]
    assert queued[1].status == "queued behind b"
    wait_for_step(runs / "a", 1)
    # A second reader (a window opened now) re-attaches to the running job and sees the queue.
    assert [(r.run_name, r.state) for r in list_jobs(runs)] == [
        ("c", "queued"),
        ("b", "queued"),
        ("a", "running"),
    ]
    canceled = cancel_job(runs / "b", wait_s=JOB_TIMEOUT)  # leaves the queue without having trained
    assert canceled.state == "canceled" and canceled.step == 0 and not (runs / "b" / "checkpoints").exists()
    assert read_job(runs / "c").state == "queued"  # still waiting: a holds the device
    record = cancel_job(runs / "a", wait_s=JOB_TIMEOUT)
    assert record.state == "canceled", open(runs / "a" / "train.log").read()[-3000:]
    assert 1 <= record.step < 500
    last = (runs / "a" / "checkpoints" / "last").read_text()
    assert int(last) == record.step  # the checkpoint is where it stopped
    assert read_metrics(runs / "a", kind="event")[-1]["event"] == "canceled"

    after = wait_job(runs / "c", JOB_TIMEOUT)  # the device freed: the next in line trained
    assert after.state == "completed" and after.step == 1, open(runs / "c" / "train.log").read()[-3000:]
    assert after.started > record.finished

    resumed = start_job(None, runs, data, run_name="a", resume=True, overrides={"steps": record.step + 1})
    final = wait_job(runs / "a", JOB_TIMEOUT)
    assert final.state == "completed", open(runs / "a" / "train.log").read()[-3000:]
    assert final.step == record.step + 1 and final.resumes == resumed.resumes == 1
    steps = [r["step"] for r in read_metrics(runs / "a", kind="train")]
    assert steps == sorted(set(steps))  # the resumed run continued, it did not start over


@pytest.mark.slow
def test_jobs_on_two_cpu_lanes_train_at_once_each_on_its_threads(backbone_cache, train_workspace, runs):
    data = train_workspace / "datasets"
    lanes = {"a": "cpu:0", "b": "cpu:1", "c": "cpu:0"}
    records = [
        start_job(job_config(backbone_cache, name, steps=2, device=lane, threads=1), runs, data)
        for name, lane in lanes.items()
    ]
    assert [(r.state == "queued", r.queued_behind) for r in records] == [
        (False, ""),
        (False, ""),
        (True, "a"),
    ]
    a, b, c = (wait_job(runs / name, JOB_TIMEOUT) for name in lanes)
    assert [r.state for r in (a, b, c)] == ["completed"] * 3, open(runs / "b" / "train.log").read()[-3000:]
    assert max(a.started, b.started) < min(a.finished, b.finished)  # the two lanes overlapped
    assert c.started >= a.finished  # the same lane: in line
    assert "device cpu, 1 threads" in (runs / "b" / "train.log").read_text()


def test_a_job_keeps_the_spin_count_its_starter_set():
    env = job_env({"GOMP_SPINCOUNT": "0", "PYTHONPATH": "/x"}, "/repo")
    assert env["GOMP_SPINCOUNT"] == "0"
    assert env["PYTHONPATH"] == os.pathsep.join(("/repo", "/x"))
    assert job_env({}, "/repo")["GOMP_SPINCOUNT"] == OMP_SPIN_COUNT


@pytest.mark.slow
def test_crash_ends_failed_with_the_traceback_in_the_log(backbone_cache, train_workspace, tmp_path):
    broken = tmp_path / "datasets" / "broken"
    shutil.copytree(train_workspace / "datasets" / "tiny_tasks", broken)
    for video in broken.rglob("*.mp4"):
        video.write_bytes(b"not a video")  # decoding the first batch fails mid-run
    runs = tmp_path / "runs"
    start_job(job_config(backbone_cache, "crash", steps=3, dataset="broken"), runs, tmp_path / "datasets")
    record = wait_job(runs / "crash", JOB_TIMEOUT)
    assert record.state == "failed"
    assert record.error
    log = (runs / "crash" / "train.log").read_text()
    assert "Traceback (most recent call last)" in log and "failed" in log
    # the device is free again
    assert not any(r.active for r in list_jobs(runs))


def test_a_killed_job_reads_failed_and_frees_the_device(backbone_cache, train_workspace, tmp_path):
    runs = tmp_path / "runs"
    start_job(job_config(backbone_cache, "k", steps=3), runs, train_workspace / "datasets")
    record = kill_job(runs / "k")
    deadline = time.monotonic() + 10
    while record.active and time.monotonic() < deadline:
        time.sleep(0.1)
        record = read_job(runs / "k")
    assert record.state == "failed" and "died" in record.error


def test_a_run_without_checkpoint_restarts_under_its_name_one_with_a_checkpoint_does_not(
    backbone_cache, train_workspace, tmp_path
):
    runs, data = tmp_path / "runs", train_workspace / "datasets"
    start_job(job_config(backbone_cache, "k", steps=3), runs, data)
    kill_job(runs / "k")
    assert wait_job(runs / "k", 10).state == "failed"
    with pytest.raises(JobError, match="no checkpoint.*start it again under the same name.*--run k"):
        start_job(None, runs, data, run_name="k", resume=True)
    restarted = start_job(job_config(backbone_cache, "k", steps=3), runs, data)  # the name is not stuck
    assert restarted.active and restarted.resumes == 0
    kill_job(runs / "k")
    wait_job(runs / "k", 10)
    (runs / "k" / "checkpoints").mkdir()
    (runs / "k" / "checkpoints" / "last").write_text("000001")
    with pytest.raises(JobError, match="already exists .* with a checkpoint.*--resume"):
        start_job(job_config(backbone_cache, "k", steps=3), runs, data)
    with pytest.raises(JobError, match="not a training run"):
        read_job(tmp_path)


def _damage(datasets, name, relative, text):
    copy = datasets / name
    shutil.copytree(datasets / "tiny_tasks", copy)
    target = next(copy.glob(relative))
    target.write_text(text)
    return target


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dataset": "nope"}, "no LeRobot dataset 'nope'.*datasets there: .*tiny_tasks"),
        (
            {"backbone": "lerobot/smolvla_base"},
            "not in the Hugging Face cache.*hf download lerobot/smolvla_base",
        ),
        ({"backbone": "/no/such/dir"}, "no such directory"),
        ({"adapter": {"r": -1}}, "adapter knobs .*r and router_hidden must be >= 1"),
        ({"adapter": {"rank": 8}}, "adapter knobs .*unexpected keyword argument 'rank'"),
        ({"device": "cuda:7"}, "device cuda:7: this machine has .*--device cpu"),
        ({"device": "tpu"}, r"device 'tpu' unknown: use cpu, cpu:N \(a CPU lane\), cuda or cuda:N"),
        ({"threads": -1}, "threads must be 0"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    backbone_cache, train_workspace, tmp_path, overrides, message
):
    runs = tmp_path / "runs"
    with pytest.raises((ValueError, JobError), match=message):
        start_job(job_config(backbone_cache, "bad", steps=3, **overrides), runs, train_workspace / "datasets")
    assert not (runs / "bad").exists()


@pytest.mark.parametrize(
    ("relative", "text"),
    [("meta/info.json", '{"fps": 30,'), ("data/chunk-000/file-000.parquet", "garbage"),
     ("meta/episodes/chunk-000/file-000.parquet", "")],
)  # fmt: skip
def test_a_damaged_dataset_file_is_named_with_the_fix(
    backbone_cache, train_workspace, tmp_path, relative, text
):
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    shutil.copytree(train_workspace / "datasets" / "tiny_tasks", datasets / "tiny_tasks")
    target = _damage(datasets, "damaged", relative, text)
    with pytest.raises(ValueError, match=f"{target} is damaged .*restore it from a backup, or delete"):
        start_job(job_config(backbone_cache, "bad", dataset="damaged"), tmp_path / "runs", datasets)
    assert not (tmp_path / "runs" / "bad").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--device", "cuda:7"], "error: device cuda:7: this machine has"),
     (["--set", 'adapter={"r": -1}'], "error: adapter knobs {'r': -1, 'eta': 0.9} for lora_sp: LoraSPConfig: r ")],
)  # fmt: skip
def test_cli_refuses_in_the_foreground_with_one_line(train_workspace, tmp_path, capsys, extra, message):
    from app.cli import main

    workspace = tmp_path / "ws"
    (workspace / "datasets").mkdir(parents=True)
    (workspace / "datasets" / "tiny_tasks").symlink_to(train_workspace / "datasets" / "tiny_tasks")
    argv = ["--workspace", str(workspace), "train", "--dataset", "tiny_tasks", "--run", "g", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
    assert not (workspace / "runs" / "g").exists()
