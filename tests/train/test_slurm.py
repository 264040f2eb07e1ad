"""`piper-ws train --slurm` against a real single-node Slurm cluster started here
(tests/slurm_cluster.py): the job is submitted, followed through queued -> running ->
completed like a local one, and cancelled through scancel."""

import time

import pytest
from test_jobs import job_config, wait_for_step

from train.jobs import cancel_job, kill_job, list_jobs, read_job, start_job, wait_job
from train.metrics import read_metrics
from train.slurm import SBATCH_FILE, SlurmSpec, slurm_state


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_slurm_job_is_followed_like_a_local_one_and_cancelled_through_scancel(
    slurm_cluster, backbone_cache, train_workspace, runs
):
    data = train_workspace / "datasets"
    submitted = time.time()
    record = start_job(job_config(backbone_cache, "s", steps=3), runs, data, slurm=SlurmSpec(time="00:10"))
    assert record.slurm_job and record.state in ("queued", "running")
    script = (runs / "s" / SBATCH_FILE).read_text()
    assert "#SBATCH --time=00:10:00" in script and "-m train.jobs" in script and "--slurm" in script
    final = wait_job(runs / "s", 600)
    assert final.state == "completed" and final.step == 3, (runs / "s" / "train.log").read_text()[-3000:]
    assert [m["step"] for m in read_metrics(runs / "s", kind="train")][-1] == 3
    print(f"\n--slurm to running: {final.started - submitted:.1f} s")  # a figure for the notes (-s)

    # A long job: cancelled while it trains, it checkpoints and ends `canceled`.
    long = start_job(job_config(backbone_cache, "long", steps=5000), runs, data, slurm=SlurmSpec())
    wait_for_step(runs / "long", 1)
    assert slurm_state(long.slurm_job) == "RUNNING"
    assert [r.status for r in list_jobs(runs) if r.run_name == "long"] == ["running"]
    stopped = cancel_job(runs / "long", wait_s=300)
    assert stopped.state == "canceled", (runs / "long" / "train.log").read_text()[-3000:]
    assert int((runs / "long" / "checkpoints" / "last").read_text()) == stopped.step

    # Killed outright by Slurm: no final state from the job, Slurm's says it ended.
    killed = start_job(None, runs, data, run_name="long", resume=True, slurm=SlurmSpec())
    wait_for_step(runs / "long", stopped.step + 1)
    kill_job(runs / "long")
    deadline = time.monotonic() + 120
    while read_job(runs / "long").active:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert read_job(runs / "long").state in ("failed", "canceled") and killed.slurm_job != long.slurm_job
