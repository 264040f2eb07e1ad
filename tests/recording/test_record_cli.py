"""`piper-ws record`: bad input is a clear error with exit status 2, before any arm is touched."""

import os

from app.cli import main
from collect.recording.writer import EpisodeRecord, EpisodeWriter

from ._frames import synthetic_episode


def test_unknown_task_and_bad_size_are_refused(workspace, capsys):
    assert main(["--workspace", str(workspace.root), "record", "--dataset", "x", "--tasks", "open_pott"]) == 2
    assert "unknown task(s) ['open_pott']" in capsys.readouterr().err
    assert main(["--workspace", str(workspace.root), "record", "--dataset", "x", "--image-size", "big"]) == 2
    assert "HxW" in capsys.readouterr().err


def record(workspace, *args: str) -> int:
    return main(["--workspace", str(workspace.root), "record", "--backend", "sim", *args])


def one_episode_dataset(workspace, make_plan, name: str):
    plan = make_plan(name, tasks=["open_pot"])
    writer = EpisodeWriter.open(plan, workspace.datasets_dir)
    synthetic_episode(writer, 4, 0.0, plan.instruction("open_pot"))
    writer.keep(EpisodeRecord(task="open_pot", instruction=plan.instruction("open_pot")))
    writer.close()
    return workspace.datasets_dir / name


def test_odd_or_empty_image_sizes_are_refused_before_anything_is_created(workspace, capsys):
    for size in ("97x129", "0x0", "480x-640"):
        assert record(workspace, "--dataset", "odd", "--image-size", size) == 2
        err = capsys.readouterr().err
        assert "must be positive and even (h264)" in err and err.count("\n") == 1, err
    assert not (workspace.datasets_dir / "odd").exists()


def test_resume_of_a_damaged_dataset_names_the_file(workspace, make_plan, capsys):
    info = one_episode_dataset(workspace, make_plan, "hurt") / "meta" / "info.json"
    info.write_text(info.read_text()[:200])  # cut short, as by a full disk
    assert (
        record(workspace, "--dataset", "hurt", "--tasks", "open_pot", "--image-size", "96x128", "--resume")
        == 2
    )
    last = capsys.readouterr().err.splitlines()[-1]  # above it: the writer's progress making the dataset
    assert last.startswith(f"piper-ws record: {info} is damaged (") and "restore it from a backup" in last


def test_resume_with_other_settings_names_the_mismatch(workspace, make_plan, capsys):
    one_episode_dataset(workspace, make_plan, "cli_mm")
    argv = ["--workspace", str(workspace.root), "record", "--backend", "sim", "--dataset", "cli_mm"]
    argv += ["--tasks", "open_pot", "--image-size", "120x160"]
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(argv + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume dataset 'cli_mm'" in err and "(96, 128, 3)" in err and "(120, 160, 3)" in err


def test_resume_while_another_process_records_is_refused_before_its_files_are_read(
    workspace, make_plan, capsys
):
    from collect.recording.writer import lock_dataset

    root = one_episode_dataset(workspace, make_plan, "live")
    info = root / "meta" / "info.json"
    info.write_text(info.read_text()[:200])  # as a file in the middle of the other process's save
    held = lock_dataset(root)  # the other recording (flock: another open file, even in this process)
    capsys.readouterr()  # what making the dataset printed
    try:
        argv = ["--dataset", "live", "--tasks", "open_pot", "--image-size", "96x128", "--resume"]
        assert record(workspace, *argv) == 2
    finally:
        os.close(held)
    err = capsys.readouterr().err
    assert "'live' is open for recording elsewhere" in err and "damaged" not in err
    assert err.count("\n") == 1


def test_an_interrupted_recording_keeps_its_episodes_and_does_not_exit_0(workspace):
    """Ctrl-C ends `record` with 130, not 0: `pretrain` and `study` read 0 as a complete dataset
    and would go on to train on part of it. Also when started with SIGINT ignored, as a script's
    background job is (and a study's recorder, so started, must still stop on its SIGINT)."""
    import json
    import signal
    import subprocess
    import sys

    ignoring_sigint = ["sh", "-c", 'trap "" INT; exec "$@"', "sh"]
    argv = [*ignoring_sigint, sys.executable, "-m", "app.cli", "--workspace", str(workspace.root), "record", "--backend", "sim",
            "--dataset", "cut", "--tasks", "press_button", "--episodes", "5", "--image-size", "48x64"]  # fmt: skip
    child = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        for line in child.stderr:
            if "kept press_button 1/5" in line:
                break
        child.send_signal(signal.SIGINT)
        err = child.stderr.read()
        assert child.wait(timeout=120) == 130
    finally:
        child.kill()
    assert "interrupted" in err and "stopped in" in err and "done in" not in err
    info = json.loads((workspace.datasets_dir / "cut" / "meta" / "info.json").read_text())
    assert 1 <= info["total_episodes"] < 5  # the kept episodes stay; --resume records the rest
