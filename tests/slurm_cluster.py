"""A single-node Slurm cluster started here for the tests that submit to one (Debian's
slurm-wlm and munge; installed where this user may, else those tests skip and say why).
Loaded by tests/conftest.py as a plugin: the `slurm_cluster` fixture."""

import os
import shutil
import socket
import subprocess
import time

import pytest

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
