"""The paper's four tasks in simulation. `make_task("pick_grape")` -> a fresh `SimTask`.

| key            | instruction                                   |
|----------------|-----------------------------------------------|
| `open_pot`     | open the pot                                  |
| `pour_block`   | pour the block into the basket                |
| `press_button` | press the button                              |
| `pick_grape`   | pick up the grape and place it in the basket  |
"""

from __future__ import annotations

import difflib

from collect.sim.tasks.base import ExpertStyle, Move, SimTask
from collect.sim.tasks.open_pot import OpenPot
from collect.sim.tasks.pick_grape import PickGrape
from collect.sim.tasks.pour_block import PourBlock
from collect.sim.tasks.press_button import PressButton

TASKS: dict[str, type[SimTask]] = {cls.key: cls for cls in (OpenPot, PourBlock, PressButton, PickGrape)}
TASK_KEYS: tuple[str, ...] = tuple(TASKS)
INSTRUCTIONS: dict[str, str] = {key: cls.instruction for key, cls in TASKS.items()}


def make_task(key: str) -> SimTask:
    """A new task object (tasks keep per-episode state, so each env/operator owns one)."""
    if key not in TASKS:
        close = difflib.get_close_matches(key, TASK_KEYS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown sim task {key!r}.{hint} Known tasks: {', '.join(TASK_KEYS)}")
    return TASKS[key]()


__all__ = ["TASKS", "TASK_KEYS", "INSTRUCTIONS", "ExpertStyle", "Move", "SimTask", "make_task"]
