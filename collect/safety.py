"""The last gate before the bus: every arm command passes through a `SafetyFilter`.

It turns any 7-vector (6 joints in rad, gripper opening in m) into one that is safe to
send: a value that is not a real number (a string, None, a bool) is refused, a NaN or
infinite entry holds that motor where it was, every entry is clamped to
`MOTOR_LIMITS`, and no motor moves more than `max_step_rad` (joints) or `max_step_m`
(gripper) from the previous command in one tick. Far targets are therefore reached over
several ticks, never in one jump.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

from collect.limits import MOTOR_KEYS, MOTOR_LIMITS

DEFAULT_MAX_STEP_RAD = 0.1  # per tick: 3 rad/s at 30 Hz, below the PiPER's joint speed limits
DEFAULT_MAX_STEP_M = 0.01  # gripper, per tick


@dataclass
class SafetyFilter:
    max_step_rad: float = DEFAULT_MAX_STEP_RAD
    max_step_m: float = DEFAULT_MAX_STEP_M

    def __post_init__(self) -> None:
        for name in ("max_step_rad", "max_step_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, not {value!r}")
        self._last: list[float] | None = None

    def reset(self, current: Sequence[float]) -> None:
        """Start stepping from the arm's measured position (on enable, after e-stop)."""
        if len(current) != len(MOTOR_LIMITS) or not all(math.isfinite(v) for v in current):
            raise ValueError(f"reset needs {len(MOTOR_LIMITS)} finite values, got {list(current)!r}")
        self._last = [_clamp(v, lo, hi) for v, (lo, hi) in zip(current, MOTOR_LIMITS, strict=True)]

    @property
    def last(self) -> tuple[float, ...] | None:
        return tuple(self._last) if self._last is not None else None

    def filter(self, target: Sequence[float]) -> tuple[float, ...]:
        """The safe command for `target`; `reset()` must have been called once before."""
        if self._last is None:
            raise RuntimeError("SafetyFilter.reset(current_position) must be called before filter()")
        if len(target) != len(MOTOR_LIMITS):
            raise ValueError(
                f"an action has {len(MOTOR_LIMITS)} values ({', '.join(MOTOR_KEYS)}), got {len(target)}"
            )
        safe = []
        for i, (value, previous, (lo, hi)) in enumerate(zip(target, self._last, MOTOR_LIMITS, strict=True)):
            value = _number(MOTOR_KEYS[i], value)
            if not math.isfinite(value):
                value = previous
            step = self.max_step_m if i == len(MOTOR_LIMITS) - 1 else self.max_step_rad
            value = _clamp(value, previous - step, previous + step)
            safe.append(_clamp(value, lo, hi))
        self._last = safe
        return tuple(safe)


def action_to_vector(action: dict[str, float]) -> list[float]:
    """A lerobot action dict to the 7-vector in MOTOR_KEYS order (missing keys are NaN: hold).

    An unknown key (a typo such as "J1") is an error, not a silent hold."""
    unknown = sorted(str(k) for k in action if k not in MOTOR_KEYS)
    if unknown:
        raise ValueError(f"unknown action key(s) {unknown}: an action uses {', '.join(MOTOR_KEYS)}")
    return [_number(key, action[key]) if key in action else math.nan for key in MOTOR_KEYS]


def _clamp(value: float, lo: float, hi: float) -> float:
    return lo if value < lo else hi if value > hi else value


def _number(key: str, value) -> float:
    """`value` as a float; strings, None and bools are refused rather than coerced ("1e9", True)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise ValueError(
        f"action {key}={value!r} is not a number: send floats (rad, gripper m); NaN holds the motor"
    )
