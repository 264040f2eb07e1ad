"""`piper-ws doctor`: what this machine offers the workstation, and how to fix what is missing.

Sections: CAN interfaces (state, bitrate), cameras (index, device path, resolution), the
MuJoCo GL backend that renders, CUDA GPUs, the video decoder (torchcodec's FFmpeg
libraries or pyav), the h264 encoder recording uses (the GPU's or libx264), free disk in
the workspace. Missing CAN ports,
cameras or GPUs are warnings (the simulated PiPER and CPU training still work); no GL
backend or too little disk is a failure (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from collect.workspace import MIN_FREE_GB as MIN_FREE_DISK_GB

GPU_PROBE_TIMEOUT_S = 120.0
OK, WARN, FAIL = "ok", "warn", "fail"

_GPU_PROBE = """
import json, torch
gpus = []
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        gpus.append({"index": i, "name": p.name, "memory_gb": round(p.total_memory / 2**30, 1)})
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "gpus": gpus}))
"""


@dataclass
class Section:
    name: str
    status: str = OK
    items: list[dict] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)

    def warn(self, fix: str, status: str = WARN) -> None:
        self.fixes.append(fix)
        if self.status != FAIL:
            self.status = status


def check_can() -> Section:
    from collect.can_ports import list_can_ports

    section = Section("can")
    ports = list_can_ports()
    section.items = [port.to_dict() for port in ports]
    if not ports:
        section.warn(
            "no CAN interface: plug in the PiPER's USB-CAN adapter (it appears as can0); "
            "without one the workstation runs the simulated PiPER"
        )
    for port in ports:
        if port.fix():
            section.warn(f"{port.name}: {port.fix()}")
    return section


def check_cameras() -> Section:
    section = Section("cameras")
    try:
        from collect.cameras import find_cameras
    except ImportError:
        section.warn("camera discovery (collect.cameras) is not installed in this build")
        return section
    try:
        cameras = find_cameras()
    except Exception as exc:
        section.warn(f"camera discovery failed: {exc}")
        return section
    section.items = cameras
    if not cameras:
        section.warn(
            "no camera found: plug in the side and wrist USB cameras (check `ls /dev/v4l/by-id`; "
            "your user needs the `video` group: `sudo usermod -aG video $USER`); "
            "the simulated PiPER renders its own cameras"
        )
    elif len(cameras) < 2:
        section.warn("only one camera found: the PiPER set-up uses two (side and wrist)")
    return section


def check_gl() -> Section:
    from collect.sim import gl

    section = Section("mujoco_gl")
    working = None
    for backend in gl.CANDIDATES:
        result = gl.probe_backend(backend)
        section.items.append({"backend": result.backend, "ok": result.ok, "detail": result.detail})
        if result.ok and working is None:
            working = backend
    if working is None:
        section.warn(gl.APT_HINT, status=FAIL)
    else:
        section.items.insert(0, {"chosen": working})
    return section


def check_gpu() -> Section:
    section = Section("gpu")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _GPU_PROBE], capture_output=True, text=True, timeout=GPU_PROBE_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        section.warn(f"torch did not answer within {GPU_PROBE_TIMEOUT_S:.0f} s")
        return section
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        section.warn(f"torch failed to load ({last}): reinstall with `make run` (it recreates .venv)")
        return section
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    section.items = [{"torch": info["torch"], "cuda": info["cuda"]}, *info["gpus"]]
    if not info["gpus"]:
        section.warn(
            "no CUDA GPU: training runs on the CPU (slow, fine for smoke runs); on a GPU machine "
            "install the NVIDIA driver and check `nvidia-smi`"
        )
    return section


def check_video() -> Section:
    """Which decoder reads dataset videos: torchcodec needs FFmpeg 4-8's shared libraries."""
    import importlib.util

    from train.video_backend import TORCHCODEC_FFMPEG, torchcodec_ffmpeg

    section = Section("video")
    major = torchcodec_ffmpeg() if importlib.util.find_spec("torchcodec") else None
    section.items = [{"decoder": f"torchcodec (FFmpeg {major})" if major else "pyav"}]
    section.items += [
        {"ffmpeg": m, "library": lib, "present": m == major} for m, lib in TORCHCODEC_FFMPEG.items()
    ]
    if major is None:
        section.warn(
            "torchcodec cannot load: none of the FFmpeg 4-8 libraries it needs "
            f"({', '.join(TORCHCODEC_FFMPEG.values())}) is installed; datasets decode with pyav "
            "(works, slower). For torchcodec: `sudo apt install ffmpeg` (FFmpeg 4-8)"
        )
    return section


def check_encoder() -> Section:
    """The h264 encoder the recorder will use; libx264 is fine, the GPU's spares the CPU."""
    from collect.recording.encoder import choose_h264

    choice = choose_h264()
    section = Section("encoder")
    section.items = [{"chosen": choice.codec, "on": "GPU" if choice.hardware else "CPU"}]
    section.items += [{"passed_over": reason} for reason in choice.reasons]
    return section


def check_disk(workspace_root) -> Section:
    section = Section("disk")
    usage = shutil.disk_usage(workspace_root)
    free_gb = usage.free / 2**30
    section.items = [
        {"path": str(workspace_root), "free_gb": round(free_gb, 1), "total_gb": round(usage.total / 2**30, 1)}
    ]
    if free_gb < MIN_FREE_DISK_GB:
        section.warn(
            f"only {free_gb:.1f} GB free in {workspace_root}: free space or move the workspace "
            f"(`--workspace DIR` or PIPER_WS_HOME) to a disk with >= {MIN_FREE_DISK_GB:.0f} GB",
            status=FAIL,
        )
    return section


CHECKS = ("can", "cameras", "mujoco_gl", "gpu", "video", "encoder", "disk")


def collect_report(workspace_root, skip: tuple[str, ...] = ()) -> list[Section]:
    runners = {
        "can": check_can,
        "cameras": check_cameras,
        "mujoco_gl": check_gl,
        "gpu": check_gpu,
        "video": check_video,
        "encoder": check_encoder,
        "disk": lambda: check_disk(workspace_root),
    }
    sections = []
    for name in CHECKS:
        if name in skip:
            continue
        try:
            sections.append(runners[name]())
        except Exception as exc:  # one broken check must not hide the others
            section = Section(name)
            section.warn(f"the check itself failed: {exc}", status=FAIL)
            sections.append(section)
    return sections


def _describe(item: dict) -> str:
    return "  ".join(f"{key}={value}" for key, value in item.items() if value not in (None, "", []))


def format_report(sections: list[Section]) -> str:
    marks = {OK: "[ ok ]", WARN: "[warn]", FAIL: "[FAIL]"}
    lines = []
    for section in sections:
        lines.append(f"{marks[section.status]} {section.name}")
        lines.extend(f"         {_describe(item)}" for item in section.items)
        if not section.items:
            lines.append("         (none found)")
        lines.extend(f"    fix: {fix}" for fix in section.fixes)
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=CHECKS,
        metavar="CHECK",
        help=f"leave a check out (repeatable): {', '.join(CHECKS)}",
    )


def run(args: argparse.Namespace) -> int:
    from collect.workspace import Workspace

    workspace = Workspace.open(args.workspace)
    sections = collect_report(workspace.root, skip=tuple(args.skip))
    if args.json:
        print(
            json.dumps(
                {s.name: {"status": s.status, "items": s.items, "fixes": s.fixes} for s in sections}, indent=2
            )
        )
    else:
        print(format_report(sections))
    return 1 if any(s.status == FAIL for s in sections) else 0
