"""The one place that builds what runs a campaign's trials, for the window and the CLI.

    agents = policy_agents(spec, runs_dir)           # run name -> a PolicyAgent loaded on first use
    size = trained_image_size(runs_dir, spec.runs, spec.checkpoint)  # sim: render what they saw
    executor = build_executor(spec, agents, datasets_dir, station=None, image_size=size)
    ...
    executor.close()                                 # env and evaluation episodes closed

Sim campaigns run on the gym envs (`GymSimExecutor`, lockstep and seeded); real-arm
campaigns on an open station the caller owns (`StationExecutor`; closing the executor
never disconnects the arm). With `spec.save_episodes` each trial also goes to
`datasets/eval_<campaign>/`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
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


def trained_image_size(
    runs_dir: str | Path, runs: Iterable[str], checkpoint: str = "last"
) -> tuple[int, int]:
    """The camera frames (height, width) the runs' policies were trained on, from each
    checkpoint's config. Sim trials render at this size: a policy trained on 96x128 renders
    and shown 480x640 ones shrunk by its preprocessor would see other pixels (sharper
    edges, other aliasing) than it learned from. Runs trained at different sizes cannot
    share one sim campaign's frames."""
    from train.checkpoint import checkpoint_dir
    from train.layout import PRETRAINED

    sizes: dict[str, set[tuple[int, int]]] = {}
    for run in runs:
        config = checkpoint_dir(Path(runs_dir) / run, checkpoint) / PRETRAINED / "config.json"
        try:
            features = json.loads(config.read_text())["input_features"]
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"run {run!r}: cannot read its input features from {config} ({exc})") from None
        sizes[run] = {
            (int(f["shape"][-2]), int(f["shape"][-1])) for f in features.values() if f.get("type") == "VISUAL"
        }
    found = set().union(*sizes.values())
    if len(found) > 1:
        listing = ", ".join(
            f"{run} {'/'.join(f'{h}x{w}' for h, w in sorted(s)) or 'without cameras'}"
            for run, s in sizes.items()
        )
        raise ValueError(
            f"the runs' cameras were trained at different sizes ({listing}): evaluate them in separate campaigns"
        )
    if not found:
        raise ValueError(f"runs {', '.join(sizes)} take no camera input: nothing to render for them")
    return found.pop()


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
