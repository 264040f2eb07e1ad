"""What hardware this machine has, for the Station page's set-up form (runs on a pool thread).

Import-light: each probe imports what it needs when it runs.
"""

from __future__ import annotations


def discover_hardware() -> dict:
    """CAN ports and cameras on this machine (runs on a pool thread)."""
    from collect.can_ports import list_can_ports

    notes: list[str] = []
    ports = list_can_ports()
    try:
        from collect.cameras import find_cameras

        cameras = find_cameras()
    except ImportError:
        cameras = []
        notes.append("camera discovery is not available in this build")
    try:
        from collect.sim.tasks import TASK_KEYS
    except Exception as exc:  # MuJoCo missing: the set-up still works, without sim scenes
        tasks: list[str] = []
        notes.append(f"sim scenes unavailable: {exc}")
    else:
        tasks = list(TASK_KEYS)
    return {"ports": ports, "cameras": cameras, "tasks": tasks, "notes": notes}
