"""Evaluation speed figures: per-trial commit latency of the results store, and the control
rate of sim rollouts with a real lerobot policy against the env alone (same process).

    MUJOCO_GL=egl .venv/bin/python benchmarks/bench_eval.py

Prints the machine load with the figures (the machine is shared).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collect.limits import MOTOR_KEYS  # noqa: E402
from evaluate.campaign import TrialSlot  # noqa: E402
from evaluate.rollout import GymSimExecutor, PolicyAgent  # noqa: E402
from evaluate.store import ResultsStore, TrialRecord  # noqa: E402


class HoldStill:
    def reset(self, seed=None):
        pass

    def act(self, observation, instruction):
        return {k: observation[k] for k in MOTOR_KEYS}


def bench_store(n: int = 200) -> None:
    with tempfile.TemporaryDirectory() as tmp, ResultsStore(Path(tmp) / "results.sqlite") as store:
        store.create_campaign("bench", "sim", {})
        latencies = []
        for i in range(n):
            start = time.perf_counter()
            store.add_trial(TrialRecord("bench", "r", "open_pot", i, "success", "predicate"))
            latencies.append(time.perf_counter() - start)
        latencies.sort()
        print(
            f"store: {n} trial commits (WAL, synchronous=FULL): median {1e3 * statistics.median(latencies):.2f} ms, "
            f"p95 {1e3 * latencies[int(0.95 * n)]:.2f} ms"
        )


def rollout_rate(agent, image_size, seconds: float = 2.0) -> float:
    with GymSimExecutor({"a": agent}, image_size=image_size, max_duration_s=seconds) as executor:
        slot = TrialSlot("a", "press_button", 0, 1)
        executor.reset(slot)
        start = time.perf_counter()
        result = executor.run(slot, threading.Event())
        return result.steps / (time.perf_counter() - start)


def main() -> None:
    print("load:", os.getloadavg())
    bench_store()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "evaluate"))
    from test_policy_rollout import tiny_act  # the tiny ACT the tests build offline

    for size in ((48, 64), (240, 320)):
        reference = rollout_rate(HoldStill(), size)
        policy_rate = rollout_rate(PolicyAgent(*tiny_act()), size)
        print(
            f"rollout {size[0]}x{size[1]}: env alone {reference:.1f} ticks/s, tiny ACT (chunk 5) "
            f"{policy_rate:.1f} ticks/s, ratio {policy_rate / reference:.2f} (30 Hz control needs >= 30)"
        )
    print("load:", os.getloadavg())


if __name__ == "__main__":
    main()
