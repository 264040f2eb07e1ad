"""`piper-ws eval`: run a scored evaluation campaign headless.

    piper-ws eval --run smolvla-sp --backend sim --tasks all --trials 15
    piper-ws eval --run a --run b --tasks open_pot,press_button --eta 0.8 --perturbation lighting
    piper-ws eval --run smolvla-sp --backend piper --tasks open_pot       # you score each trial
    piper-ws eval --run memo --seeds-from-dataset press10                 # on the recorded scenes

Sim trials are seeded and scored by the task predicate. On the real arm the terminal asks
you to reset the scene before each trial and to score it after. Every trial is committed
to results.sqlite at once; running the same command again resumes the campaign.
"""

from __future__ import annotations

import argparse
import sys

from app.commands import parse_image_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run", action="append", required=True, metavar="NAME", help="run under runs/ (repeatable)"
    )
    parser.add_argument("--backend", choices=("sim", "piper"), default="sim")
    parser.add_argument("--tasks", default="all", help="'all' or comma-separated task keys")
    parser.add_argument(
        "--trials",
        type=int,
        help="trials per task and run (default: 15, as the paper; "
        "with --seeds-from-dataset at most the episodes recorded per task)",
    )
    parser.add_argument("--campaign", help="campaign name (default: from runs, backend and settings)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the sim scenes")
    parser.add_argument(
        "--seeds-from-dataset",
        metavar="NAME",
        help="sim: evaluate on the scenes of this recorded dataset's episodes (memorisation check)",
    )
    parser.add_argument("--perturbation", default="none", help="sim: none, all, or e.g. lighting+camera")
    parser.add_argument(
        "--eta", type=float, help="LoRA-SP energy threshold at inference (default: as trained)"
    )
    parser.add_argument("--checkpoint", default="last", help="checkpoint of each run (default: last)")
    parser.add_argument("--max-duration", type=float, default=30.0, metavar="S", help="seconds per trial")
    parser.add_argument("--fps", type=int, default=30, help="control rate")
    parser.add_argument(
        "--image-size", metavar="HxW", help="sim camera frames (default: the size the runs were trained on)"
    )
    parser.add_argument(
        "--save-episodes", action="store_true", help="keep each trial as an evaluation episode"
    )
    parser.add_argument("--format", choices=("md", "csv"), default="md", help="table printed at the end")


def default_campaign_name(args: argparse.Namespace, trials: int) -> str:
    name = f"{'+'.join(args.run)}-{args.backend}-{trials}x"
    if args.seeds_from_dataset:
        name += f"-on-{args.seeds_from_dataset}"
    if args.eta is not None:
        name += f"-eta{args.eta:g}"
    if args.perturbation not in ("none", ""):
        name += f"-{args.perturbation}"
    return name


def parse_tasks(text: str) -> tuple[str, ...]:
    from collect.sim.tasks import TASK_KEYS, make_task

    if text.strip() == "all":
        return TASK_KEYS
    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    for task in tasks:
        make_task(task)  # KeyError naming the known tasks
    return tasks


def run(args: argparse.Namespace) -> int:
    from collect.workspace import Workspace
    from evaluate.campaign import CampaignSpec
    from evaluate.rollout import RolloutError
    from evaluate.store import ResultsStore

    workspace = Workspace.open(args.workspace)
    try:
        tasks, trials, scene_seeds = _scenes(args, workspace)
        spec = CampaignSpec(
            name=args.campaign or default_campaign_name(args, trials),
            runs=tuple(args.run),
            tasks=tasks,
            trials=trials,
            scene_seeds=scene_seeds,
            backend=args.backend,
            seed=args.seed,
            perturbation=args.perturbation,
            checkpoint=args.checkpoint,
            eta=args.eta,
            max_duration_s=args.max_duration,
            save_episodes=args.save_episodes,
        )
        missing = [r for r in spec.runs if not (workspace.runs_dir / r).is_dir()]
        if missing:
            from evaluate.runs import list_runs

            known = ", ".join(list_runs(workspace.runs_dir)) or "none (train one with `piper-ws train`)"
            raise RolloutError(
                f"no run named {', '.join(missing)} under {workspace.runs_dir}; known runs: {known}"
            )
        _check_checkpoints(workspace.runs_dir, spec.runs, spec.checkpoint)  # before a campaign is written
        image_size = _image_size(args, workspace, spec)
        with ResultsStore(workspace.results_db) as store:
            campaign = _open_campaign(store, spec, workspace)
            print(f"campaign {spec.name!r}: {campaign.summary()} so far", file=sys.stderr)
            if campaign.pause_requested:  # running the command again is the operator's explicit resume
                print("the campaign was paused (or e-stopped); resuming it now", file=sys.stderr)
            executor = _make_executor(spec, workspace, args.fps, image_size)
            try:
                if spec.auto_scored:
                    _run_sim(campaign, executor)
                else:
                    _run_with_operator(campaign, executor, spec)
            finally:
                executor.close()
                if station := getattr(executor, "station", None):
                    station.disconnect()  # the real arm this command opened
            _print_table(store, spec.name, args.format)
    except (ValueError, KeyError, OSError, RuntimeError) as exc:  # incl. store, campaign, rollout, CAN errors
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopped; every scored trial is saved. Run the same command to resume.", file=sys.stderr)
        return 130
    return 0


def _check_checkpoints(runs_dir, runs, checkpoint: str) -> None:
    from train.checkpoint import checkpoint_dir

    for run in runs:
        try:
            checkpoint_dir(runs_dir / run, checkpoint)
        except FileNotFoundError as exc:
            raise ValueError(
                f"run {run!r} cannot be evaluated: {exc}; let it train to a checkpoint "
                f"(piper-ws train --resume --run {run}) or pick another --checkpoint"
            ) from None


def _image_size(args, workspace, spec) -> tuple[int, int]:
    """--image-size HxW, or (sim) the size the runs' policies were trained on."""
    if args.image_size:
        return parse_image_size(args.image_size)
    if spec.backend != "sim":
        return (480, 640)  # unused: the real arm's cameras give their own frames
    from evaluate.executors import trained_image_size

    try:
        return trained_image_size(workspace.runs_dir, spec.runs, spec.checkpoint)
    except ValueError as exc:
        raise ValueError(f"{exc}, or give one size with --image-size HxW") from None


def _scenes(args, workspace) -> tuple[tuple[str, ...], int, dict[str, tuple[int, ...]]]:
    """Tasks, trials per task and explicit scene seeds (only with --seeds-from-dataset)."""
    from evaluate.campaign import DEFAULT_TRIALS

    if not args.seeds_from_dataset:
        return parse_tasks(args.tasks), args.trials or DEFAULT_TRIALS, {}
    if args.backend != "sim":
        raise ValueError("--seeds-from-dataset sets simulated scenes: use it with --backend sim")
    from collect.recording.library import scene_seeds

    seeds = scene_seeds(workspace.datasets_dir / args.seeds_from_dataset)
    tasks = tuple(seeds) if args.tasks.strip() == "all" else parse_tasks(args.tasks)
    missing = [t for t in tasks if t not in seeds]
    if missing:
        raise ValueError(
            f"{args.seeds_from_dataset} has no episodes of {', '.join(missing)}; it has {', '.join(seeds)}"
        )
    trials = args.trials or min(DEFAULT_TRIALS, *(len(seeds[t]) for t in tasks))
    return tasks, trials, {t: tuple(seeds[t]) for t in tasks}


def _open_campaign(store, spec, workspace):
    from evaluate.campaign import Campaign
    from evaluate.runs import describe_run

    runs = [describe_run(workspace.runs_dir / r, spec.name, spec.checkpoint, spec.eta) for r in spec.runs]
    return Campaign.open_or_create(store, spec, runs)


def _make_executor(spec, workspace, fps: int, image_size: tuple[int, int]):
    from evaluate.executors import build_executor, policy_agents

    agents = policy_agents(spec, workspace.runs_dir)
    if spec.backend == "sim":
        return build_executor(spec, agents, workspace.datasets_dir, fps=fps, image_size=image_size)
    from collect.station import open_station

    hardware = workspace.load_hardware()
    station = open_station(
        backend="piper",
        follower_port=hardware.follower_port,
        leader_port=hardware.leader_port,
        cameras=dict(hardware.cameras),
        fps=fps,
    )
    station.connect()
    try:
        station.enable()
        return build_executor(spec, agents, workspace.datasets_dir, station=station, fps=fps)
    except BaseException:
        station.disconnect()
        raise


def _report(record, campaign) -> None:
    seed = f" seed={record.seed}" if record.seed is not None else ""
    print(
        f"[{campaign.summary()}] {record.run} {record.task} #{record.trial_index}{seed}: "
        f"{record.outcome} ({record.duration_s or 0:.1f} s)",
        file=sys.stderr,
        flush=True,
    )


def _run_sim(campaign, executor) -> None:
    from evaluate.campaign import run_campaign

    run_campaign(campaign, executor, on_trial=lambda record: _report(record, campaign))


def _run_with_operator(campaign, executor, spec) -> None:
    """Real arm over a terminal: reset prompt, rollout, then the operator's verdict."""
    import threading

    from collect.sim.tasks import INSTRUCTIONS

    stop = threading.Event()
    if campaign.pause_requested:
        campaign.resume()
    while (slot := campaign.start_trial()) is not None:
        instruction = INSTRUCTIONS.get(slot.task, slot.task)
        answer = (
            input(
                f"\n{slot.run} / {slot.task} #{slot.trial_index}: reset the scene for '{instruction}', "
                "then Enter to run (q to stop): "
            )
            .strip()
            .lower()
        )
        if answer == "q":
            campaign.abort("campaign stopped before the rollout")
            return
        executor.reset(slot)
        campaign.mark_running()
        try:
            result = executor.run(slot, stop)
        except KeyboardInterrupt:
            executor.station.estop()
            campaign.estop()  # paused in the database: the next run of this command resumes it
            campaign.abort("Ctrl-C during the rollout (e-stop)")
            raise
        if (aborted := campaign.finish_run(result)) is not None:
            _report(aborted, campaign)
            continue
        while True:
            verdict = input("success? [s]uccess / [f]ailure / [a]bort (re-run later): ").strip().lower()
            if verdict[:1] in ("s", "f", "a"):
                break
        if verdict.startswith("a"):
            campaign.abort("aborted by the operator")
            continue
        note = input("note (optional): ").strip()
        _report(campaign.score(verdict.startswith("s"), note), campaign)


def _print_table(store, campaign: str, fmt: str) -> None:
    from evaluate.tables import comparison_from_store

    table = comparison_from_store(store, campaign)
    sys.stdout.write(table.to_markdown() if fmt == "md" else table.to_csv())
