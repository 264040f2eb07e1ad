"""`piper-ws record`: record a plan headless and print progress.

    piper-ws record --backend sim --dataset pots --tasks open_pot,press_button --episodes 120
    piper-ws record --backend sim --dataset pots --resume          # continue where it stopped

On the sim backend the virtual operator drives the leader arm and every finished episode
is kept (its success flag comes from the task's predicate). On the real arm the operator
moves the leader; each episode runs until Enter is pressed (or the maximum length), then
the terminal asks to keep or discard it.
"""

from __future__ import annotations

import argparse
import sys
import time

from app.commands import parse_image_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", required=True, help="dataset name (a folder under the workspace's datasets/)"
    )
    parser.add_argument(
        "--backend",
        choices=("sim", "piper"),
        default=None,
        help="sim (no arm) or piper (the real arm); default: the workspace's set-up",
    )
    parser.add_argument(
        "--tasks", default="all", help="'all' or comma-separated task keys (e.g. open_pot,press_button)"
    )
    parser.add_argument("--episodes", type=int, default=120, help="episodes per task (default 120)")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--max-episode-s", type=float, default=30.0, metavar="S", help="episode length limit")
    parser.add_argument(
        "--reset-s",
        type=float,
        default=None,
        metavar="S",
        help="pause between episodes (default: 0 in sim, 5 s on the real arm)",
    )
    parser.add_argument("--image-size", default="480x640", metavar="HxW", help="camera image size")
    parser.add_argument("--operator", default=None, help="operator name stored with every episode")
    parser.add_argument("--seed", type=int, default=0, help="sim: first scene seed")
    parser.add_argument(
        "--resume", action="store_true", help="continue an existing dataset (settings must match)"
    )


def build_plan(args: argparse.Namespace, hardware):
    from collect.recording.plan import DEFAULT_TASKS, RecordingPlan

    height, width = parse_image_size(args.image_size)
    backend = args.backend or hardware.backend
    tasks = (
        list(DEFAULT_TASKS)
        if args.tasks == "all"
        else [t.strip() for t in args.tasks.split(",") if t.strip()]
    )
    reset_s = args.reset_s if args.reset_s is not None else (0.0 if backend == "sim" else 5.0)
    operator = (
        args.operator
        if args.operator is not None
        else (hardware.operator or ("virtual operator" if backend == "sim" else ""))
    )
    return RecordingPlan(
        dataset=args.dataset,
        tasks=tasks,
        episodes_per_task=args.episodes,
        fps=args.fps,
        max_episode_s=args.max_episode_s,
        reset_s=reset_s,
        image_size=(height, width),
        backend=backend,
        operator=operator,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    from collect.recording.writer import DatasetBusy, ensure_not_recording
    from collect.workspace import Workspace

    workspace = Workspace.open(args.workspace)
    try:
        hardware = workspace.load_hardware()
        plan = build_plan(args, hardware)
        if args.resume and (workspace.datasets_dir / plan.dataset).is_dir():
            from train.data import check_dataset_files  # names a damaged file instead of lerobot's traceback

            ensure_not_recording(workspace.datasets_dir / plan.dataset)  # first: a busy file is no damage
            check_dataset_files(workspace.datasets_dir / plan.dataset)
    except (ValueError, DatasetBusy) as exc:
        print(f"piper-ws record: {exc}", file=sys.stderr)
        return 2
    from collect.recording.session import RecordingSession, SessionState, default_station_factory
    from collect.recording.writer import DatasetMismatch

    def factory(plan_, task):
        return default_station_factory(plan_, task, hardware)

    started = time.monotonic()
    session = RecordingSession(
        plan,
        workspace.datasets_dir,
        resume=args.resume,
        auto=plan.backend == "sim",
        station_factory=factory,
        on_event=_printer(plan, started),
    )
    try:
        session.open()
    except (DatasetMismatch, FileExistsError, ConnectionError, RuntimeError, ValueError) as exc:
        print(f"piper-ws record: {exc}", file=sys.stderr)
        return 2
    interrupted = False
    try:
        done = _counts_line(plan, session.counts)
        print(f"dataset {plan.dataset} in {workspace.datasets_dir}: {done}", file=sys.stderr, flush=True)
        if session.state == SessionState.READY:
            if plan.backend == "sim":
                session.start().result()
            else:
                _record_by_terminal(session)
        while session.state not in (SessionState.FINISHED, SessionState.FAILED, SessionState.CLOSED):
            time.sleep(0.2)
    except KeyboardInterrupt:
        interrupted = True
        print(
            "\ninterrupted: the episode in progress is discarded, kept ones are safe; --resume continues",
            file=sys.stderr,
        )
    finally:
        failed = session.state == SessionState.FAILED
        message = session.snapshot().message
        session.close()
    if failed:
        print(f"piper-ws record: {message}", file=sys.stderr)
        return 1
    print(
        f"{'stopped' if interrupted else 'done'} in {(time.monotonic() - started) / 60:.1f} min: "
        f"{_counts_line(plan, session.counts)}",
        file=sys.stderr,
    )
    return 130 if interrupted else 0  # not 0: `pretrain` and `study` must not go on with part of the data


def _counts_line(plan, counts: dict[str, int]) -> str:
    return ", ".join(f"{task} {counts.get(task, 0)}/{plan.episodes_per_task}" for task in plan.tasks)


def _printer(plan, started: float):
    def on_event(event: str, info: dict) -> None:
        if event == "kept":
            flag = {True: "success", False: "failure", None: "unscored"}[info["success"]]
            print(
                f"[{(time.monotonic() - started):6.0f} s] kept {info['task']} {info['count']}/"
                f"{plan.episodes_per_task} (episode {info['episode_index']}, {info['frames']} frames, {flag}, "
                f"saved in {info['keep_s']:.2f} s)",
                file=sys.stderr,
                flush=True,
            )
        elif event in ("failed", "estop", "save_failed"):
            print(f"{event}: {info}", file=sys.stderr, flush=True)

    return on_event


def _record_by_terminal(session) -> None:
    """Real arm: Enter starts/stops an episode; then k(eep) / d(iscard) / q(uit)."""
    from collect.recording.session import SessionState

    while session.state not in (SessionState.FINISHED, SessionState.FAILED):
        if session.state == SessionState.RESETTING:
            time.sleep(0.2)
            continue
        if input(f"[{session.task}] Enter to start (q to quit): ").strip().lower() == "q":
            return
        try:
            session.start().result()
        except RuntimeError as exc:  # e-stop held, or the encoder still catching up: say so, ask again
            print(f"cannot start: {exc}", file=sys.stderr, flush=True)
            continue
        input("recording... Enter to stop: ")
        if session.state == SessionState.RECORDING:
            session.stop().result()
        answer = input("keep (k, or s for success / f for failure), discard (d)? ").strip().lower()
        if answer.startswith("d"):
            session.discard().result()
        else:
            session.keep(success={"s": True, "f": False}.get(answer[:1])).result()
