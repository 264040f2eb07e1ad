"""`piper-ws train --slurm` against a real single-node Slurm cluster started here (Debian's
slurm-wlm and munge; installed by the fixture where this user may, else the tests skip
and say why): the job is submitted, followed through queued -> running -> completed like a
local one, and cancelled through scancel."""

import os
import shutil
import socket
import subprocess
import time

import pytest
from test_jobs import job_config, wait_for_step

from train.jobs import cancel_job, kill_job, list_jobs, read_job, start_job, wait_job
from train.metrics import read_metrics
from train.slurm import SBATCH_FILE, SlurmSpec, slurm_state

MUNGE_SOCKET = "/run/munge/munge.socket.2"
TOOLS = ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "munged")


def _installed() -> str | None:
    """None when Slurm and munge are here (installing them if this user may), else why not."""
    if all(shutil.which(t) for t in TOOLS):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "slurm-wlm and munge are not installed, and installing them needs root and apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"]
    done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:  # a stale package index: refresh it once
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=900)
        done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    return None if done.returncode == 0 else f"apt-get install slurm-wlm munge failed: {done.stderr[-300:]}"


def _munge_answers() -> bool:
    """True when a munged listens on its socket (a killed one leaves the socket file behind)."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(MUNGE_SOCKET)
            return True
        except OSError:
            return False


def _start_munge() -> None:
    if _munge_answers():
        return
    os.makedirs("/run/munge", exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    if not os.path.exists("/etc/munge/munge.key"):
        subprocess.run(["mungekey", "--create"], check=True, capture_output=True)
    subprocess.run(["munged", "--force"], check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """slurmctld + slurmd for this host on free ports, their state under a temp dir; SLURM_CONF
    points every Slurm command (and the jobs) at it."""
    reason = _installed()
    if reason:
        pytest.skip(reason)
    _start_munge()
    root = tmp_path_factory.mktemp("slurm")
    host = socket.gethostname().split(".")[0]
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    conf = root / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                f"ClusterName=piperwstest\nSlurmctldHost={host}\nSlurmUser=root\nSlurmdUser=root",
                f"SlurmctldPort={_free_port()}\nSlurmdPort={_free_port()}\nAuthType=auth/munge",
                f"StateSaveLocation={root}/state\nSlurmdSpoolDir={root}/spool",
                f"SlurmctldPidFile={root}/ctld.pid\nSlurmdPidFile={root}/d.pid",
                f"SlurmctldLogFile={root}/ctld.log\nSlurmdLogFile={root}/d.log",
                "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nMpiDefault=none",
                "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nReturnToService=2",
                "JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none",
                f"NodeName={host} CPUs={os.cpu_count()} State=UNKNOWN",
                f"PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
            ]
        )
    )
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    subprocess.run(["slurmctld", "-f", str(conf)], check=True)
    subprocess.run(["slurmd", "-f", str(conf)], check=True)
    deadline = time.monotonic() + 60
    while (
        subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout.strip() != "idle"
    ):
        assert time.monotonic() < deadline, (root / "ctld.log").read_text()[-2000:]
        time.sleep(0.5)
    yield conf
    subprocess.run(["scontrol", "shutdown"], capture_output=True)
    time.sleep(2)
    # slurmd can outlive the shutdown, waiting on the step of a job killed at its end
    subprocess.run(["pkill", "-9", "-f", f"slurm(ctl)?d -f {conf}"], capture_output=True)
    subprocess.run(
        ["pkill", "-9", "slurmstepd"], capture_output=True
    )  # this cluster's only: nothing else runs Slurm here
    if previous is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = previous


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
