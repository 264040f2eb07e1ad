"""USB cameras for the real arm: lerobot's `OpenCVCamera`, chosen by stable device path.

Device indices (`/dev/video0`, `/dev/video2`, ...) change with plug order; the links in
`/dev/v4l/by-id/` (camera model + serial) and `/dev/v4l/by-path/` (USB port) do not.
The workspace stores those paths for the `side` and `wrist` roles.

    cams = make_cameras({"side": "/dev/v4l/by-id/usb-...-video-index0", "wrist": "2"}, 640, 480, 30)
    connect_camera("side", cams["side"])   # CameraUnavailable naming the role and the fix
    find_cameras()   # [{"index": 0, "device": "/dev/video0", "stable_path": ..., "width": 640, ...}]
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DEV = Path("/dev")
STABLE_DIRS = (Path("/dev/v4l/by-id"), Path("/dev/v4l/by-path"))


class CameraNotFound(FileNotFoundError):
    """A configured camera that is not there; the message says what to do."""


class CameraUnavailable(ConnectionError):
    """A camera that is there but does not open or deliver frames; the message says what to do."""


def connect_camera(role: str, camera) -> None:
    """`camera.connect()`, with an error that names the role and the fix instead of lerobot's."""
    try:
        camera.connect()
    except (ConnectionError, OSError, RuntimeError, TimeoutError) as exc:
        raise CameraUnavailable(
            f"the {role} camera ({camera}) did not open: {exc}. Check that it is plugged in and not used by "
            "another program, or pick another camera on the Station page (`piper-ws doctor` lists them)."
        ) from exc


def parse_source(spec: str | int) -> int | Path:
    """'2' or 2 -> index 2; anything else is a device path that must exist."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return int(spec)
    path = Path(str(spec)).expanduser()
    if not path.exists():
        raise CameraNotFound(
            f"camera {spec!r} does not exist: plug the camera in, or pick another one on the Station page "
            "(`piper-ws doctor` lists the cameras found)"
        )
    return path


def make_cameras(specs: dict[str, str], width: int, height: int, fps: int) -> dict[str, Any]:
    """lerobot OpenCVCameras for `{role: index or device path}` (not yet connected)."""
    from lerobot.cameras.opencv import OpenCVCamera, OpenCVCameraConfig

    if not specs:
        raise CameraNotFound(
            "no cameras are assigned: assign the side and wrist cameras on the Station page "
            "(or in workspace.json), or use the simulated arm (--backend sim)"
        )
    cameras = {}
    for role, spec in specs.items():
        source = parse_source(spec)
        config = OpenCVCameraConfig(index_or_path=source, fps=fps, width=width, height=height)
        cameras[role] = OpenCVCamera(config)
    return cameras


def stable_paths(stable_dirs: tuple[Path, ...] = STABLE_DIRS) -> dict[Path, Path]:
    """Resolved device -> its first stable link (by-id preferred over by-path)."""
    links: dict[Path, Path] = {}
    for folder in stable_dirs:
        if not folder.is_dir():
            continue
        for link in sorted(folder.iterdir()):
            links.setdefault(link.resolve(), link)
    return links


def find_cameras(
    dev: Path = DEV, probe: bool = True, stable_dirs: tuple[Path, ...] = STABLE_DIRS
) -> list[dict[str, Any]]:
    """Video capture devices with their stable path and (if `probe`) the default resolution."""
    links = stable_paths(stable_dirs)
    found = []
    for device in sorted(dev.glob("video*"), key=_index_of):
        index = _index_of(device)
        entry: dict[str, Any] = {
            "index": index,
            "device": str(device),
            "stable_path": str(links[device.resolve()]) if device.resolve() in links else None,
        }
        if probe:
            width, height = _probe_resolution(device)
            if width is None:
                continue  # a metadata node (UVC cameras expose two), not a capture device
            entry.update(width=width, height=height)
        found.append(entry)
    return found


def _index_of(device: Path) -> int:
    match = re.search(r"(\d+)$", device.name)
    return int(match.group(1)) if match else -1


def _probe_resolution(device: Path) -> tuple[int | None, int | None]:
    import cv2

    capture = cv2.VideoCapture(str(device))
    try:
        if not capture.isOpened():
            return None, None
        return int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        capture.release()


def grab_one_frame(device: str):
    """One RGB frame from a USB camera given by index or device path (runs on a pool thread)."""
    import cv2

    source = parse_source(device)  # a missing path: a clear CameraNotFound
    capture = cv2.VideoCapture(source if isinstance(source, int) else str(source))
    try:
        ok, frame = capture.read() if capture.isOpened() else (False, None)
    finally:
        capture.release()
    if not ok or frame is None:
        raise RuntimeError(
            f"no frame from {device}: check that it is plugged in (`ls /dev/v4l/by-id`) "
            "and not open in another program"
        )
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
