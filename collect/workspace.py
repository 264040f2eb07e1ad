"""The workspace: where datasets, training runs, results and the hardware set-up live, and
where each study run on it writes its tables.

Default root is the checkout (the folder holding `datasets/`); `PIPER_WS_HOME` or an
explicit path moves it. Everything under it except `datasets/README.md` is git-ignored.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

ENV_VAR = "PIPER_WS_HOME"
CONFIG_NAME = "workspace.json"
MIN_FREE_GB = 10.0  # a few hours of dual-camera h264 episodes plus checkpoints


class LowDisk(RuntimeError):
    """Too little free space to start a long stage; the message says what to do."""


def default_root() -> Path:
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").exists():
        return checkout
    return Path.cwd()


@dataclass
class HardwareConfig:
    """Which physical things play which role; saved by the Station page, read by every command."""

    backend: str = "sim"  # "sim" | "piper"
    follower_port: str = "can0"
    leader_port: str | None = None  # None: single bus (leader-follower linkage on follower_port)
    cameras: dict[str, str] = field(default_factory=dict)  # role ("side"/"wrist") -> device path or index
    operator: str = ""


@dataclass
class Workspace:
    root: Path

    @classmethod
    def open(cls, root: str | Path | None = None) -> Workspace:
        ws = cls(Path(root).expanduser().resolve() if root else default_root().resolve())
        ws.root.mkdir(parents=True, exist_ok=True)
        ws.datasets_dir.mkdir(exist_ok=True)
        return ws

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def results_db(self) -> Path:
        return self.root / "results.sqlite"

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    def free_gb(self) -> float:
        return shutil.disk_usage(self.root).free / 2**30

    def require_free_space(self, what: str) -> None:
        """Refuse `what` before it starts (a recording, a training run) when the workspace's
        disk has less than MIN_FREE_GB free: stopped between stages, a long command loses
        nothing; stopped by a full disk mid-write, it loses the stage."""
        free = self.free_gb()
        if free < MIN_FREE_GB:
            raise LowDisk(
                f"only {free:.1f} GB free in {self.root}, {what} wants >= {MIN_FREE_GB:.0f} GB: free space or "
                "move the workspace (--workspace DIR or PIPER_WS_HOME), then run the same command again"
            )

    def load_hardware(self) -> HardwareConfig:
        known = HardwareConfig.__dataclass_fields__
        return HardwareConfig(
            **{k: v for k, v in self._read_config().get("hardware", {}).items() if k in known}
        )

    def save_hardware(self, hardware: HardwareConfig) -> None:
        self._update_config("hardware", asdict(hardware))

    def studies(self) -> dict[str, Path]:
        """Study name -> the folder `piper-ws study` writes its tables and ledger to (`--out`),
        for the Results page: the folder holds every scored row, those adopted from another
        machine included, which results.sqlite does not."""
        return {name: Path(out) for name, out in self._read_config().get("studies", {}).items()}

    def record_study(self, name: str, out: Path) -> None:
        studies = {n: str(p) for n, p in self.studies().items()}
        if studies.get(name) != str(out.resolve()):
            self._update_config("studies", {**studies, name: str(out.resolve())})

    def _read_config(self) -> dict:
        if not self.config_path.exists():
            return {}
        try:
            return json.loads(self.config_path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{self.config_path} is not valid JSON ({exc}); fix or delete it to start from defaults"
            ) from exc

    def _update_config(self, key: str, value) -> None:
        raw = self._read_config()
        raw[key] = value
        tmp = self.config_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(raw, indent=2))
        tmp.replace(self.config_path)  # atomic: a crash never leaves half a file
