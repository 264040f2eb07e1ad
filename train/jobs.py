"""Training as a background job: a child process in its own process group, a record on disk.

    record = start_job(config, runs_dir, datasets_dir)      # returns at once
    read_job(run_dir).state                                 # starting|running|completed|canceled|unstable|failed
    cancel_job(run_dir)                                     # checkpoint, stop, state canceled
    start_job(None, runs_dir, run_name=..., resume=True)    # continue from the last checkpoint

States: queued -> starting -> running -> completed | canceled | unstable | failed (unstable:
stopped at a validation loss above the run's `max_val_loss`).

`runs/<run>/job.json` holds the state, pid and process group, so a window opened later
re-attaches to a running job and shows finished ones. A job whose process vanished
without writing a final state reads as `failed`. The child's stdout/stderr (including a
crash's traceback) go to `runs/<run>/train.log`; progress is in `metrics.jsonl`.

One job per device: the child holds an exclusive lock on `runs/.locks/<device>.lock`
while it trains. A job started while the device is busy is `queued`: its child process
waits (light: no torch yet) until it is the oldest queued job on that device and the lock
is free, then trains. Cancelling a queued job ends it `canceled` without training.
This module must not import torch (the GUI imports it).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .checkpoint import has_checkpoint
from .config import TrainConfig
from .layout import JOB_FILE, LOG_FILE, METRICS_NAME, RUN_CONFIG
from .slurm import SlurmSpec
from .stop import clear_cancel, install_stop_check, request_cancel
from .threads import bound_omp_spinning

FINAL_STATES = ("completed", "canceled", "unstable", "failed")
ACTIVE_STATES = ("queued", "starting", "running")
WAITING_STATES = ("queued", "starting")  # not training yet: in line for the device lock
QUEUE_POLL_S = 0.5


class JobError(RuntimeError):
    """A job that cannot be started or found; the message says why and what to do."""


@dataclass
class JobRecord:
    run_name: str
    run_dir: str
    state: str = "starting"
    device: str = "cpu"
    pid: int | None = None
    pgid: int | None = None
    proc_start: str | None = None  # /proc/<pid>/stat start time: tells a reused pid apart
    strategy: str = ""
    preset: str = ""
    backbone: str = ""
    dataset: str = ""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    step: int = 0
    total_steps: int = 0
    trainable_percent: float | None = None
    final_loss: float | None = None
    final_val: dict = field(default_factory=dict)
    error: str = ""
    resumes: int = 0
    processes: int = 1  # training processes (several: a launcher and its workers in the group)
    slurm_job: str = ""  # the Slurm job id when submitted with --slurm (then pid is the node's)
    queued_at: float = field(default_factory=time.time)  # the queue's order (a resume queues anew)
    queued_behind: str = ""  # the run that held the device when this one was queued

    @property
    def path(self) -> Path:
        return Path(self.run_dir)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def status(self) -> str:
        """The state as shown to the operator: a queued job names the run it waits for."""
        if self.state == "queued" and self.slurm_job:
            return f"queued (Slurm job {self.slurm_job})"
        if self.state == "queued" and self.queued_behind:
            return f"queued behind {self.queued_behind}"
        return self.state


def _write_record(record: JobRecord) -> None:
    path = Path(record.run_dir) / JOB_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2))
    tmp.replace(path)  # atomic: readers never see half a record


def _proc_start(pid: int) -> str | None:
    """The process's start time from /proc, or None if it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # exited, not yet reaped by its parent
        return None
    return fields[19]


def _alive(record: JobRecord) -> bool:
    if record.pid is None:
        return False
    return _proc_start(record.pid) is not None and _proc_start(record.pid) == record.proc_start


def read_job(run_dir: str | Path) -> JobRecord:
    """The job record, with a dead-but-'running' process reported as failed."""
    _reap_children()
    path = Path(run_dir) / JOB_FILE
    if not path.is_file():
        raise JobError(f"{run_dir} has no {JOB_FILE}: not a training run (start one with piper-ws train)")
    data = json.loads(path.read_text())
    record = JobRecord(**{k: v for k, v in data.items() if k in JobRecord.__dataclass_fields__})
    if record.slurm_job:
        return _with_slurm_state(record, path)
    if record.active and record.pid is not None and not _alive(record):
        # Re-read: the child may have written its final state between our two reads.
        data = json.loads(path.read_text())
        record = JobRecord(**{k: v for k, v in data.items() if k in JobRecord.__dataclass_fields__})
        if record.active and not _alive(record):
            record.state = "failed"
            record.error = (
                record.error or "the training process died without a final state (killed?); see train.log"
            )
    return record


def _with_slurm_state(record: JobRecord, path: Path) -> JobRecord:
    """A Slurm job's record: what its job process wrote, unless Slurm says the job ended
    before the process could write a final state (cancelled while pending, killed, timed out)."""
    from .slurm import ENDED, slurm_state

    if not record.active:
        return record
    state = slurm_state(record.slurm_job)
    if state is not None and state not in ENDED:
        return record
    data = json.loads(path.read_text())  # the job process may have just written its final state
    record = JobRecord(**{k: v for k, v in data.items() if k in JobRecord.__dataclass_fields__})
    if record.active:
        record.state = "canceled" if state == "CANCELLED" else "failed"
        if record.state == "failed":
            record.error = (
                record.error or f"Slurm job {record.slurm_job} ended {state or 'out of sight'}; see train.log"
            )
    return record


def list_jobs(runs_dir: str | Path) -> list[JobRecord]:
    """Every run under `runs_dir`, newest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    records = []
    for job_file in runs_dir.glob(f"*/{JOB_FILE}"):
        try:
            records.append(read_job(job_file.parent))
        except (JobError, json.JSONDecodeError, TypeError):
            continue  # a damaged record must not hide the other runs
    return sorted(records, key=lambda r: r.created, reverse=True)


def default_device() -> str:
    """The device key a job locks, found without importing torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible == "" or visible == "-1":
        return "cpu"
    return "cuda:0" if Path("/dev/nvidia0").exists() else "cpu"


def _lock_path(runs_dir: Path, device: str) -> Path:
    locks = runs_dir / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    return locks / f"{device.replace(':', '')}.lock"


def _device_busy(runs_dir: Path, device: str) -> JobRecord | None:
    """The last job in line on `device` (running, starting or queued), if any."""
    for record in list_jobs(runs_dir):  # newest first
        if record.active and record.device == device:
            return record
    return None


def job_env(base: dict[str, str], repo_root: str) -> dict[str, str]:
    """The environment a training job's process starts with: `base` plus unbuffered output,
    the repository on the path and bounded OpenMP spinning (`train.threads`)."""
    env = dict(base, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH", "")) if p)
    bound_omp_spinning(env)
    return env


_CHILDREN: dict[int, subprocess.Popen] = {}


def _reap_children() -> None:
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            del _CHILDREN[pid]


def start_job(
    config: TrainConfig | None,
    runs_dir: str | Path,
    datasets_dir: str | Path | None = None,
    run_name: str | None = None,
    resume: bool = False,
    device: str | None = None,
    overrides: dict | None = None,
    slurm: SlurmSpec | None = None,
) -> JobRecord:
    """Start training in a child process; returns its record at once. With `slurm`, the
    same job process is submitted to the Slurm cluster instead (train.slurm).

    New run: give `config` (its run_name names the directory). Resume: `resume=True` with
    `run_name` (config read from the run; `overrides` e.g. {"steps": 2000} extend it).
    """
    runs_dir = Path(runs_dir)
    if resume:
        if not run_name:
            raise JobError("resume needs the run name")
        run_dir = runs_dir / run_name
        previous = read_job(run_dir)
        if previous.active:
            raise JobError(
                f"run {run_name!r} is still {previous.state} (pid {previous.pid}); cancel it first"
            )
        if not has_checkpoint(run_dir):
            raise JobError(
                f"run {run_name!r} has no checkpoint to resume from; start it again under the same name "
                f"(piper-ws train --dataset {previous.dataset or 'NAME'} --run {run_name})"
            )
        config = TrainConfig.load(run_dir / RUN_CONFIG)
    else:
        if config is None:
            raise JobError("a new job needs a TrainConfig")
        run_name = run_name or config.run_name or time.strftime("run-%Y%m%d-%H%M%S")
        run_dir = runs_dir / run_name
        _check_name_free(run_dir)
    if overrides:
        config = config.with_overrides(**overrides)
    config = config.with_overrides(run_name=run_name)
    if slurm is not None:
        from .slurm import SlurmError, check_available

        try:
            check_available()
        except SlurmError as exc:
            raise JobError(str(exc)) from None
        device = "cuda" if slurm.gpus else "cpu"  # what the allocation gives, not what this machine has
        config = config.with_overrides(processes=slurm.gpus or config.processes, device=device)
    device = device or (config.device if config.device not in ("auto", "cuda") else default_device())
    if config.processes > 1 and device.startswith("cuda"):
        device = "cuda"  # one GPU per process, from cuda:0 up
    preflight(config, datasets_dir, device, local=slurm is None)
    busy = None if slurm is not None else _device_busy(runs_dir, device)  # Slurm keeps its own queue
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:  # a restarted run that never checkpointed starts with empty metrics
        (run_dir / METRICS_NAME).unlink(missing_ok=True)
    config.save(run_dir / RUN_CONFIG)
    clear_cancel(run_dir)
    record = JobRecord(
        run_name=run_name,
        run_dir=str(run_dir.resolve()),
        device=device,
        strategy=config.strategy,
        preset=config.preset,
        backbone=config.backbone,
        dataset=config.dataset,
        total_steps=config.steps,
        processes=config.processes,
    )
    if busy is not None:
        record.state, record.queued_behind = "queued", busy.run_name
    if resume:
        record.created = previous.created
        record.resumes = previous.resumes + 1
        record.trainable_percent = previous.trainable_percent
        record.step = previous.step
    command = [sys.executable, "-m", "train.jobs", str(run_dir.resolve()), "--device", device]
    if datasets_dir is not None:
        command += ["--datasets-dir", str(Path(datasets_dir).resolve())]
    if resume:
        command.append("--resume")
    repo_root = str(Path(__file__).resolve().parent.parent)
    if slurm is not None:
        return _submit_to_slurm(
            record, slurm, [*command, "--slurm"], Path(repo_root), previous if resume else None
        )
    _write_record(record)
    env = job_env(os.environ, repo_root)
    with (run_dir / LOG_FILE).open("a") as log_file:
        proc = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: survives the window, cancellable as a group
            env=env,
            cwd=repo_root,
        )
    _CHILDREN[proc.pid] = proc
    record.pid, record.pgid = proc.pid, proc.pid
    record.proc_start = _proc_start(proc.pid)
    # The child may already have written "running"; only fill in the pid if it has not.
    current = json.loads((run_dir / JOB_FILE).read_text())
    if current.get("pid") is None:
        _write_record(record)
    return read_job(run_dir)


def _submit_to_slurm(record: JobRecord, spec: SlurmSpec, command: list[str], workdir: Path, previous):
    """Write the sbatch script and submit it; the record waits as `queued` with the job id.
    A refused submission leaves the run as it was (a new run's directory is removed)."""
    import shutil

    from .slurm import SlurmError, submit, write_sbatch

    run_dir = Path(record.run_dir)
    record.state = "queued"
    _write_record(record)
    try:
        record.slurm_job = submit(write_sbatch(run_dir, spec, command, workdir))
    except (SlurmError, OSError, subprocess.TimeoutExpired) as exc:
        if previous is None:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            _write_record(previous)
        raise JobError(str(exc)) from None
    current = json.loads((run_dir / JOB_FILE).read_text())  # the job may already run and have written
    if not current.get("slurm_job"):
        _write_record(record)
    return read_job(run_dir)


def _check_name_free(run_dir: Path) -> None:
    """A new run may reuse the name of one that never saved a checkpoint (failed or never started)."""
    if not (run_dir / JOB_FILE).exists():
        return
    previous = read_job(run_dir)
    if previous.active:
        raise JobError(
            f"run {run_dir.name!r} is still {previous.state} (pid {previous.pid}); cancel it first"
        )
    if has_checkpoint(run_dir):
        raise JobError(
            f"run {run_dir.name!r} already exists in {run_dir.parent} with a checkpoint: "
            "pick another name or resume it (--resume)"
        )


def gpu_count() -> int:
    """GPUs this process may use, from the device nodes and CUDA_VISIBLE_DEVICES (no torch)."""
    present = len([p for p in Path("/dev").glob("nvidia[0-9]*") if p.name[6:].isdigit()])
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return present
    return min(present, len([v for v in visible.split(",") if v.strip() and v.strip() != "-1"]))


def check_device(device: str) -> None:
    """cpu:N is CPU lane N (any N): one job at a time per lane, as per GPU."""
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if re.fullmatch(r"cpu(?::\d+)?", device):
        return
    if match is None:
        raise JobError(f"device {device!r} unknown: use cpu, cpu:N (a CPU lane), cuda or cuda:N")
    count = gpu_count()
    if int(match.group(1) or 0) >= count:
        have = f"GPUs cuda:0..cuda:{count - 1}" if count else "no GPU"
        raise JobError(f"device {device}: this machine has {have}; pick one of those or --device cpu")


def preflight(config: TrainConfig, datasets_dir: str | Path | None, device: str, local: bool = True) -> None:
    """What the job would otherwise find wrong ~20 s later in the background, checked before
    anything is written: device, dataset files and features, backbone, adapter knobs."""
    from types import SimpleNamespace

    from .backbones import TINY_NAMES, NotDownloaded, resolve_backbone
    from .data import check_dataset_files, check_features, resolve_dataset_path
    from .loop import adapter_config

    if local:  # a Slurm job's devices are the allocation's, not this machine's
        check_device(device)
    if local and device == "cuda" and config.processes > gpu_count():
        raise JobError(f"{config.processes} processes need as many GPUs; this machine has {gpu_count()}")
    if config.accelerate_config and not Path(config.accelerate_config).is_file():
        raise JobError(
            f"accelerate config {config.accelerate_config}: no such file (make one with `accelerate config`)"
        )
    root = resolve_dataset_path(config.dataset, datasets_dir)
    info = check_dataset_files(root)
    check_features(SimpleNamespace(root=root, features=info.get("features", {})))
    if config.backbone not in TINY_NAMES:  # tiny ones are built on first use, by the job
        try:
            resolve_backbone(config.backbone, config.backbone_cache, download=False)
        except NotDownloaded:  # the job downloads it first, its progress in the job's log
            _check_hub_id_exists(config.backbone)
    try:
        adapter_config(config)  # imports peft and torch: the GUI calls start_job off its thread
    except (TypeError, ValueError) as exc:
        raise JobError(f"adapter knobs {config.adapter} for {config.strategy}: {exc}") from None


def _check_hub_id_exists(repo_id: str) -> None:
    """A mistyped hub id is refused here rather than by the job (unreachable hub: the job says)."""
    from huggingface_hub import repo_exists

    from .backbones import BackboneError

    try:
        exists = repo_exists(repo_id)
    except Exception:  # no network, proxy, rate limit: the download itself will report it
        return
    if not exists:
        raise BackboneError(f"backbone {repo_id!r}: no such model on the Hugging Face hub; check the name")


def cancel_job(run_dir: str | Path, wait_s: float = 0.0) -> JobRecord:
    """Ask the job to checkpoint and stop (it ends `canceled`); optionally wait for it."""
    record = read_job(run_dir)
    if not record.active:
        return record
    request_cancel(run_dir)
    if record.slurm_job:
        from . import slurm

        slurm.cancel(record.slurm_job, running=record.state != "queued")
        return wait_job(run_dir, wait_s) if wait_s > 0 else read_job(run_dir)
    # Several processes stop together at the next step on seeing the file; a signal would also
    # reach the launcher, which gives its workers only seconds before killing them.
    if record.pgid is not None and _alive(record) and (record.processes == 1 or record.state == "queued"):
        try:
            os.killpg(record.pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if wait_s > 0:
        return wait_job(run_dir, wait_s)
    return read_job(run_dir)


def kill_job(run_dir: str | Path) -> JobRecord:
    """Last resort: SIGKILL the whole process group (no checkpoint; state reads failed)."""
    record = read_job(run_dir)
    if record.active and record.slurm_job:
        subprocess.run(
            ["scancel", "--signal=KILL", "--full", record.slurm_job], capture_output=True, timeout=20
        )
    elif record.active and record.pgid is not None and _alive(record):
        os.killpg(record.pgid, signal.SIGKILL)
    return read_job(run_dir)


def wait_job(run_dir: str | Path, timeout_s: float, poll_s: float = 0.2) -> JobRecord:
    deadline = time.monotonic() + timeout_s
    record = read_job(run_dir)
    while record.active and time.monotonic() < deadline:
        time.sleep(poll_s)
        record = read_job(run_dir)
    return record


# ---------------------------------------------------------------- the child process


def _child_main(argv: list[str]) -> int:
    import argparse
    import logging
    import traceback

    parser = argparse.ArgumentParser(prog="python -m train.jobs")
    parser.add_argument("run_dir")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--datasets-dir")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--slurm", action="store_true", help="started by sbatch: the allocation is the device"
    )
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout
    )
    from .video_backend import quiet

    quiet()  # train.log gets one line about the decoder, not torchcodec's ~100-line traceback

    record = read_job(run_dir)
    record.pid = record.pgid = os.getpid()
    if args.slurm:  # the submitting side may not have written the id yet
        record.slurm_job = os.environ.get("SLURM_JOB_ID", record.slurm_job)
    record.proc_start = _proc_start(os.getpid())
    should_stop = install_stop_check(run_dir)
    if record.state == "queued" and not args.slurm:
        _write_record(record)  # the pid: a queued job is cancellable and listed as alive
        print(
            f"== run {record.run_name} queued behind {record.queued_behind} on {args.device} ==", flush=True
        )
    # Under Slurm the allocation is this job's alone; here the device lock is held while training.
    device_lock = None if args.slurm else _wait_for_device(record, args.device, should_stop)
    if device_lock is None and not args.slurm:
        record.state, record.finished = "canceled", time.time()
        _write_record(record)
        print(f"== run {record.run_name} canceled while queued ==", flush=True)
        return 0
    record.state, record.started = "running", time.time()
    _write_record(record)
    print(
        f"== {'resuming' if args.resume else 'starting'} run {record.run_name} (pid {os.getpid()}) ==",
        flush=True,
    )
    try:
        from .loop import run_training

        config = TrainConfig.load(run_dir / RUN_CONFIG)
        if args.device.startswith("cuda:"):
            os.environ.setdefault("CUDA_VISIBLE_DEVICES", args.device.split(":")[1])
        from .slurm import node_count

        if config.processes > 1 or config.accelerate_config or node_count() > 1:
            result = _run_processes(config, run_dir, args.datasets_dir, args.resume)
        else:
            result = run_training(
                config,
                run_dir,
                datasets_dir=args.datasets_dir,
                resume=args.resume,
                should_stop=should_stop,
            )
        record.state = result.state if result.state in ("canceled", "unstable") else "completed"
        record.step = result.step
        record.final_loss = result.final_loss
        record.final_val = result.final_val
        record.trainable_percent = result.trainable_percent
        code = 0
    except BaseException as exc:  # noqa: BLE001 - every way of dying must end in a state
        traceback.print_exc()
        sys.stdout.flush()
        record.state = "failed"
        record.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        code = 1
    record.finished = time.time()
    _update_step_from_metrics(record)
    _write_record(record)
    print(f"== run {record.run_name} {record.state} at step {record.step} ==", flush=True)
    return code


def _run_processes(config: TrainConfig, run_dir: Path, datasets_dir: str | None, resume: bool):
    """Launch the run's worker processes (train.worker) and wait for them; their rank 0's result."""
    import socket
    from types import SimpleNamespace

    from .worker import RESULT_FILE, launch_command, read_result

    with socket.socket() as probe:  # a free port for the processes' rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (run_dir / RESULT_FILE).unlink(missing_ok=True)
    command = launch_command(config, run_dir, datasets_dir, resume, port)
    print(f"== {config.processes} processes: {' '.join(command)} ==", flush=True)
    code = subprocess.call(command, cwd=Path(__file__).resolve().parent.parent)
    result = read_result(run_dir)
    if code != 0 or result is None:
        raise RuntimeError(f"the training processes exited with code {code} (their tracebacks are above)")
    return SimpleNamespace(**result)


def _wait_for_device(record: JobRecord, device: str, should_stop) -> object | None:
    """Hold until this job is first in line on `device` and its lock is free; return the held
    lock's file (kept open while training), or None if the job was canceled while waiting."""
    import fcntl

    runs_dir = Path(record.run_dir).parent
    lock_file = _lock_path(runs_dir, device).open("w")
    while not should_stop():
        waiting = [r for r in list_jobs(runs_dir) if r.device == device and r.state in WAITING_STATES]
        first = min(waiting, key=lambda r: (r.queued_at, r.run_name), default=None)
        if first is None or first.run_name == record.run_name:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return lock_file
            except BlockingIOError:
                pass  # the job before this one is still finishing
        time.sleep(QUEUE_POLL_S)
    lock_file.close()
    return None


def live_step(record: JobRecord) -> int:
    """The step a run has reached: its record's, written when it stops, or while it trains,
    its newest metrics line's."""
    from .metrics import last_record

    if not record.active:
        return record.step
    last = last_record(record.run_dir, "train")
    return max(record.step, last["step"]) if last else record.step


def _update_step_from_metrics(record: JobRecord) -> None:
    from .metrics import read_metrics

    train = read_metrics(record.run_dir, kind="train")
    if train:
        record.step = max(record.step, train[-1]["step"])
        if record.final_loss is None:
            record.final_loss = train[-1].get("loss")
    for event in read_metrics(record.run_dir, kind="event"):
        if event.get("trainable_percent") is not None:
            record.trainable_percent = event["trainable_percent"]


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
