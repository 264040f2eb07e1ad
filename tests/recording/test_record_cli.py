"""`piper-ws record`: bad input is a clear error with exit status 2, before any arm is touched."""

from app.cli import main
from collect.recording.writer import EpisodeRecord, EpisodeWriter

from ._frames import synthetic_episode


def test_unknown_task_and_bad_size_are_refused(workspace, capsys):
    assert main(["--workspace", str(workspace.root), "record", "--dataset", "x", "--tasks", "open_pott"]) == 2
    assert "unknown task(s) ['open_pott']" in capsys.readouterr().err
    assert main(["--workspace", str(workspace.root), "record", "--dataset", "x", "--image-size", "big"]) == 2
    assert "HxW" in capsys.readouterr().err


def test_resume_with_other_settings_names_the_mismatch(workspace, make_plan, capsys):
    plan = make_plan("cli_mm", tasks=["open_pot"])
    writer = EpisodeWriter.open(plan, workspace.datasets_dir)
    synthetic_episode(writer, 4, 0.0, plan.instruction("open_pot"))
    writer.keep(EpisodeRecord(task="open_pot", instruction=plan.instruction("open_pot")))
    writer.close()
    argv = ["--workspace", str(workspace.root), "record", "--backend", "sim", "--dataset", "cli_mm",
            "--tasks", "open_pot", "--image-size", "120x160"]
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(argv + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume dataset 'cli_mm'" in err and "(96, 128, 3)" in err and "(120, 160, 3)" in err
