"""`piper-ws`: with no command it opens the workstation window; otherwise it runs one
headless command. Each command lives in `app/commands/<name>.py` with two functions,
`add_arguments(parser)` and `run(args) -> int`, and keeps heavy imports inside `run`
so that `piper-ws --help` and the window start fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

# name -> (module, one-line help). Add a command by adding a line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("app.commands.doctor", "check CAN ports, cameras, MuJoCo GL, GPUs and disk"),
    "spectrum": (
        "app.commands.spectrum",
        "rank needed per module/group by a fine-tune (energy of W_tuned - W_base)",
    ),
    "eval": ("app.commands.eval", "run a scored evaluation campaign (sim: auto-scored; real arm: you score)"),
    "results": (
        "app.commands.results",
        "print the success table (per task, with Wilson intervals) as Markdown or CSV",
    ),
    "record": (
        "app.commands.record",
        "record demonstrations into a LeRobotDataset (sim: the virtual operator records the plan)",
    ),
    "train": (
        "app.commands.train",
        "fine-tune SmolVLA/pi0 (LoRA-SP by default) in a background job; --resume, --list, --cancel",
    ),
    "pretrain": (
        "app.commands.pretrain",
        "make the in-house backbone mini-smolvla in sim: source corpus, full training, export (resumable)",
    ),
    "study": (
        "app.commands.study",
        "the paper's comparison in sim: every strategy from the in-house backbone, swept, trained, scored (resumable)",
    ),
    "capvector": (
        "app.commands.capvector",
        "build a capability-vector backbone: SFT and SFT + future-state runs, their difference added",
    ),
    "demo": (
        "app.commands.demo",
        "the whole loop headless on the sim: record, fine-tune a tiny SmolVLA, evaluate, table",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="piper-ws", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workspace", metavar="DIR", help="workspace root (default: $PIPER_WS_HOME or the checkout)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module_name).add_arguments(command_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from train.threads import bound_omp_spinning
    from train.video_backend import quiet

    bound_omp_spinning(os.environ)  # before torch loads: this process's threads, and its children's

    quiet()  # one line instead of lerobot's torchcodec traceback; no libx264 statistics
    if args.command is None:
        from app.gui.launch import launch_gui

        return launch_gui(args)
    _take_back_ctrl_c()
    module_name = COMMANDS[args.command][0]
    return int(importlib.import_module(module_name).run(args) or 0)


def _take_back_ctrl_c() -> None:
    """Ctrl-C (SIGINT) stops a command with what it has saved: `record` its kept episodes,
    `study` and `train` their checkpoints. A script's shell starts a background job with
    SIGINT ignored, and children inherit that: a study started with `nohup ... &` could not
    stop the recorder it runs beside pretraining, nor could `kill -INT` stop it."""
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    ):
        signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":
    sys.exit(main())
