"""Evaluation speed figures: per-trial commit latency of the results store, the control
rate of sim rollouts with a real lerobot policy against the env alone (same process), and
a sim trial of the tiny SmolVLA with LoRA-SP r=128 (and LoRA r=128) at the evaluation image
size: wall and CPU seconds per simulated second (goal: <= 2 on 2 cores). CPU time is
printed because the machine is shared: other jobs stretch wall time, not the work done.

    MUJOCO_GL=egl .venv/bin/python benchmarks/bench_eval.py [--trial-seconds 2] [--threads 1 2]

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


def adapted_tiny_smolvla_agent(adapter: str, path: str = "dense") -> PolicyAgent:
    """The cached tiny SmolVLA with LoRA-SP or LoRA r=128 on every group, B drawn so that the
    adapters contribute (a trained adapter's cost, not an identity's)."""
    import torch

    from train.adapters import LoraConfig, LoraSPConfig, apply_adapters
    from train.backbones import load_base_policy, load_processors, resolve_backbone

    backbone = resolve_backbone("tiny-smolvla")
    policy = load_base_policy(backbone, train_expert_only=False, freeze_vision_encoder=False)
    config = LoraSPConfig(r=128) if adapter == "lora_sp" else LoraConfig(r=128, lora_alpha=128)
    handle = apply_adapters(policy, config, "smolvla")
    for name, param in policy.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.01)
    if adapter == "lora_sp":
        handle.set_inference_path(path)
    pre, post = load_processors(backbone, policy.config, device="cpu")
    return PolicyAgent(policy, pre, post, name=adapter)


def trial_cost(agent, seconds: float, image_size=(480, 640), frames_every_tick=False) -> tuple[float, float]:
    """(wall s, CPU s) per simulated second of one press_button trial. `frames_every_tick`: render
    the cameras on every tick, as with a live view (the reference), not only when the policy looks."""
    on_tick = (lambda info: None) if frames_every_tick else None
    with GymSimExecutor(
        {"a": agent}, image_size=image_size, max_duration_s=seconds, on_tick=on_tick
    ) as executor:
        slot = TrialSlot("a", "press_button", 0, 1)
        executor.reset(slot)
        wall, cpu = time.perf_counter(), time.process_time()
        result = executor.run(slot, threading.Event())
        simulated = result.steps / executor.fps
        return (time.perf_counter() - wall) / simulated, (time.process_time() - cpu) / simulated


def bench_adapted_trials(seconds: float, threads: list[int]) -> None:
    import torch

    agents = {
        "lora r=128": adapted_tiny_smolvla_agent("lora"),
        "lora_sp r=128 dense": adapted_tiny_smolvla_agent("lora_sp"),
        "lora_sp r=128 auto": adapted_tiny_smolvla_agent("lora_sp", "auto"),
    }
    print(f"tiny SmolVLA sim trial, 480x640 cameras, {seconds} s simulated (goal: wall / simulated <= 2)")
    for n in threads:
        torch.set_num_threads(n)
        for name, agent in agents.items():
            wall, cpu = trial_cost(agent, seconds)
            print(f"  torch threads {n}  {name:20} wall/simulated {wall:5.2f}   CPU/simulated {cpu:5.2f}")
        ref_wall, ref_cpu = trial_cost(agents["lora_sp r=128 auto"], seconds, frames_every_tick=True)
        print(
            f"  torch threads {n}  {'  rendering every tick':20} wall/simulated {ref_wall:5.2f}   CPU/simulated "
            f"{ref_cpu:5.2f}   (lora_sp auto, as with a live view: the reference)"
        )


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trial-seconds", type=float, default=2.0)
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op threads to try"
    )
    parser.add_argument("--only-trials", action="store_true", help="skip the store and tiny-ACT figures")
    args = parser.parse_args()
    print("load:", os.getloadavg(), "(the machine may be shared)")
    bench_adapted_trials(args.trial_seconds, args.threads)
    if args.only_trials:
        print("load:", os.getloadavg())
        return
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
