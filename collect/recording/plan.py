"""What one recording day should produce: `RecordingPlan`.

A plan is saved beside the dataset (`<dataset>/piper/plan.json`) so that reopening the
dataset continues the same plan; the dataset itself is the truth for what was recorded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from collect.limits import CAMERA_NAMES
from collect.sim.tasks import INSTRUCTIONS, SOURCE_INSTRUCTIONS, TASK_KEYS

DEFAULT_TASKS = TASK_KEYS
CAMERAS = CAMERA_NAMES

REPO_PREFIX = "local/"  # repo_id of a workspace dataset: local/<name> (never pushed)
SIDECAR_DIR = "piper"  # <dataset>/piper/: our own files, ignored by lerobot
INFO_FILE = Path("meta") / "info.json"  # what makes a folder a LeRobot dataset
RETRY_SEED_STRIDE = 100  # sim: a discarded episode's retry moves this far through the scene seeds


def is_dataset(path: str | Path) -> bool:
    """True when `path` holds a LeRobot dataset (its meta/info.json)."""
    return (Path(path) / INFO_FILE).is_file()


# Task key -> instruction, the language label stored with every frame (plain data: this
# import does not load MuJoCo).
TASK_INSTRUCTIONS = {**INSTRUCTIONS, **SOURCE_INSTRUCTIONS}  # source tasks: the pretraining corpus


def task_instructions() -> dict[str, str]:
    return dict(TASK_INSTRUCTIONS)


def check_image_size(size: tuple[int, int]) -> None:
    """Refuse sizes the h264 encoder cannot take (it needs positive, even sides)."""
    height, width = size
    if height < 2 or width < 2 or height % 2 or width % 2:
        raise ValueError(
            f"image size {height}x{width}: height and width must be positive and even (h264), e.g. 480x640"
        )


@dataclass
class RecordingPlan:
    dataset: str  # folder name under the workspace's datasets/
    tasks: list[str] = field(default_factory=lambda: list(DEFAULT_TASKS))
    episodes_per_task: int = 120
    fps: int = 30
    max_episode_s: float = 30.0  # an episode stops by itself after this
    reset_s: float = 5.0  # countdown between keep/discard and the next start
    cameras: tuple[str, ...] = CAMERAS
    image_size: tuple[int, int] = (480, 640)  # (height, width)
    backend: str = "sim"  # "sim" | "piper"
    operator: str = ""  # who records (the virtual operator in sim Auto mode)
    seed: int = 0  # sim: the first scene seed (`scene_seed`)

    def __post_init__(self) -> None:
        self.tasks = list(self.tasks)
        self.cameras = tuple(self.cameras)
        self.image_size = tuple(int(v) for v in self.image_size)
        if not self.dataset or "/" in self.dataset or self.dataset.startswith("."):
            raise ValueError(f"dataset name {self.dataset!r}: use a plain folder name such as 'pots_2026'")
        if not self.tasks:
            raise ValueError("a recording plan needs at least one task")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"task listed twice in {self.tasks}")
        known = task_instructions()
        unknown = [t for t in self.tasks if t not in known]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; known tasks: {', '.join(known)}")
        if self.episodes_per_task < 1 or self.fps < 1 or self.max_episode_s <= 0 or self.reset_s < 0:
            raise ValueError(
                "episodes per task, fps and max episode length must be positive, reset time >= 0"
            )
        if self.backend not in ("sim", "piper"):
            raise ValueError(f"unknown backend {self.backend!r}: use 'sim' or 'piper'")
        check_image_size(self.image_size)

    @property
    def repo_id(self) -> str:
        return REPO_PREFIX + self.dataset

    @property
    def max_frames(self) -> int:
        return max(1, round(self.max_episode_s * self.fps))

    @property
    def total_episodes(self) -> int:
        return self.episodes_per_task * len(self.tasks)

    def instruction(self, task: str) -> str:
        return task_instructions()[task]

    def scene_seed(
        self, task: str, kept: int, retries: int, taken: set[int] | frozenset = frozenset()
    ) -> int:
        """Sim: the scene of a task's next episode. seed + 1000 x the task's index + the
        episodes kept so far, 100 further on for each discarded try, and never a seed in
        `taken` (the task's kept episodes): a retry of episode 5 that was kept took 105, so
        episode 105 moves on to 205 instead of recording the same scene twice."""
        seed = self.seed + 1000 * self.tasks.index(task) + kept + RETRY_SEED_STRIDE * retries
        while seed in taken:
            seed += RETRY_SEED_STRIDE
        return seed

    def task_of_instruction(self, instruction: str) -> str | None:
        return next((k for k, v in task_instructions().items() if v == instruction), None)

    def root(self, datasets_dir: str | Path) -> Path:
        return Path(datasets_dir) / self.dataset

    # -- persistence ------------------------------------------------------------------------
    def save(self, dataset_root: Path) -> None:
        path = Path(dataset_root) / SIDECAR_DIR / "plan.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, dataset_root: Path) -> RecordingPlan | None:
        path = Path(dataset_root) / SIDECAR_DIR / "plan.json"
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in raw.items() if k in known})
