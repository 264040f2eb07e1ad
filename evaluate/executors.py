"""The one place that builds what runs a campaign's trials, for the window and the CLI.

    agents = policy_agents(spec, runs_dir)           # run name -> a PolicyAgent loaded on first use
    executor = build_executor(spec, agents, datasets_dir, station=None, image_size=(240, 320))
    ...
    executor.close()                                 # env and evaluation episodes closed

Sim campaigns run on the gym envs (`GymSimExecutor`, lockstep and seeded); real-arm
campaigns on an open station the caller owns (`StationExecutor`; closing the executor
never disconnects the arm). With `spec.save_episodes` each trial also goes to
`datasets/eval_<campaign>/`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from evaluate.campaign import CampaignSpec


def policy_agents(spec: CampaignSpec, runs_dir: str | Path) -> dict[str, Callable[[], Any]]:
    """Run name -> a factory of its PolicyAgent (loaded on the executor's thread, on first use)."""
    from evaluate.rollout import PolicyAgent

    runs_dir = Path(runs_dir)
    return {
        run: (lambda run=run: PolicyAgent.from_run(runs_dir / run, spec.checkpoint, spec.eta))
        for run in spec.runs
    }


def build_executor(
    spec: CampaignSpec,
    agents: dict[str, Any],
    datasets_dir: str | Path,
    *,
    station: Any = None,
    fps: int = 30,
    image_size: tuple[int, int] = (480, 640),
    on_tick: Callable | None = None,
    on_close: Callable[[], None] | None = None,
):
    """A `TrialExecutor` for `spec`: the sim envs, or the real arm on `station` (already open).
    `on_close` runs when a real-arm executor is closed (the window re-enables its previews)."""
    from evaluate.rollout import GymSimExecutor, StationExecutor

    if spec.backend == "piper" and station is None:
        raise RuntimeError("open the station on the Station page first: the real arm runs the trials")
    if station is not None:
        image_size = tuple(station.config.image_size)
    sink = None
    if spec.save_episodes:
        from evaluate.episodes import EvalEpisodeWriter

        sink = EvalEpisodeWriter(datasets_dir, f"eval_{spec.name}", fps=fps, image_size=image_size)
    if spec.backend == "sim":
        return GymSimExecutor(
            agents, image_size=image_size, fps=fps, max_duration_s=spec.max_duration_s,
            perturbation=spec.perturbation, on_tick=on_tick, episode_sink=sink,
        )  # fmt: skip
    from collect.sim.tasks import INSTRUCTIONS

    return StationExecutor(
        station, agents, INSTRUCTIONS, fps=fps, max_duration_s=spec.max_duration_s, on_tick=on_tick,
        episode_sink=sink, on_close=on_close,
    )  # fmt: skip
