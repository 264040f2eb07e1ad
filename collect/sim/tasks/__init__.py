"""The paper's four tasks in simulation. `make_task("pick_grape")` -> a fresh `SimTask`.

| key            | instruction                                   |
|----------------|-----------------------------------------------|
| `open_pot`     | open the pot                                  |
| `pour_block`   | pour the block into the basket                |
| `press_button` | press the button                              |
| `pick_grape`   | pick up the grape and place it in the basket  |

The in-house backbone is pretrained on other tasks, never evaluated (`source.py`):
`SOURCE_TASK_KEYS` / `SOURCE_INSTRUCTIONS`; `make_task` builds either kind.

`TASK_KEYS` and `INSTRUCTIONS` are plain data: importing them does not load MuJoCo (the
GUI reads them at start-up). The task classes load on first use (`TASKS`, `make_task`).
"""

from __future__ import annotations

import difflib
import importlib

# key -> (module, class); the instruction is repeated in the class (a test keeps them equal)
_CLASSES: dict[str, tuple[str, str]] = {
    "open_pot": ("collect.sim.tasks.open_pot", "OpenPot"),
    "pour_block": ("collect.sim.tasks.pour_block", "PourBlock"),
    "press_button": ("collect.sim.tasks.press_button", "PressButton"),
    "pick_grape": ("collect.sim.tasks.pick_grape", "PickGrape"),
    "lift_cube": ("collect.sim.tasks.source", "LiftCube"),
    "cube_on_plate": ("collect.sim.tasks.source", "CubeOnPlate"),
    "touch_ball": ("collect.sim.tasks.source", "TouchBall"),
    "push_switch": ("collect.sim.tasks.source", "PushSwitch"),
}
INSTRUCTIONS: dict[str, str] = {
    "open_pot": "open the pot",
    "pour_block": "pour the block into the basket",
    "press_button": "press the button",
    "pick_grape": "pick up the grape and place it in the basket",
}
SOURCE_INSTRUCTIONS: dict[str, str] = {
    "lift_cube": "lift the green cube",
    "cube_on_plate": "put the green cube on the plate",
    "touch_ball": "touch the orange ball",
    "push_switch": "push the blue switch down",
}
TASK_KEYS: tuple[str, ...] = tuple(INSTRUCTIONS)  # the four evaluated tasks
SOURCE_TASK_KEYS: tuple[str, ...] = tuple(SOURCE_INSTRUCTIONS)


def task_class(key: str):
    """The `SimTask` subclass of `key` (imports MuJoCo)."""
    if key not in _CLASSES:
        close = difflib.get_close_matches(key, TASK_KEYS + SOURCE_TASK_KEYS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(
            f"unknown sim task {key!r}.{hint} Known tasks: {', '.join(TASK_KEYS)} "
            f"(pretraining sources: {', '.join(SOURCE_TASK_KEYS)})"
        )
    module, name = _CLASSES[key]
    return getattr(importlib.import_module(module), name)


def make_task(key: str):
    """A new task object (tasks keep per-episode state, so each env/operator owns one)."""
    return task_class(key)()


def __getattr__(name: str):
    if name == "TASKS":
        return {key: task_class(key) for key in TASK_KEYS}
    if name in ("ExpertStyle", "Move", "SimTask"):
        return getattr(importlib.import_module("collect.sim.tasks.base"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "TASKS",
    "TASK_KEYS",
    "INSTRUCTIONS",
    "SOURCE_TASK_KEYS",
    "SOURCE_INSTRUCTIONS",
    "ExpertStyle",
    "Move",
    "SimTask",
    "make_task",
    "task_class",
]
