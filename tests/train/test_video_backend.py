"""A process that records and reads lerobot datasets prints one decoder line, no torchcodec
traceback and no libx264 statistics (real lerobot, PyAV and FFmpeg in a child process)."""

import os
import subprocess
import sys
from pathlib import Path

from train.video_backend import NOTICE, TORCHCODEC_FFMPEG, torchcodec_ffmpeg

SCRIPT = """
import logging, sys, tempfile
from pathlib import Path
sys.path.insert(0, {fixtures!r})
logging.basicConfig(level=logging.INFO)
if {quiet}:
    from train.video_backend import quiet
    quiet()
from train_fixtures import make_dataset
from lerobot.datasets import LeRobotDataset
root = Path(tempfile.mkdtemp()) / "d"
make_dataset(root)
for _ in range(2):
    LeRobotDataset("local/d", root=root)[0]
"""


def run(quiet: bool) -> str:
    script = SCRIPT.format(fixtures=str(Path(__file__).parent), quiet=quiet)
    # a fresh child: quiet() in this test process (any CLI test calls it) sets the environment
    env = {k: v for k, v in os.environ.items() if k != "HF_DATASETS_DISABLE_PROGRESS_BARS"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parents[2], env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_one_decoder_line_and_no_ffmpeg_statistics():
    out = run(quiet=True)
    assert "Traceback" not in out and "libx264 @" not in out
    assert "Map:" not in out  # the datasets library's progress bar, drawn on every reopen
    assert "Cannot enable progress bars" not in out  # its warning when lerobot turns the bar back on
    assert out.count(NOTICE) == (1 if torchcodec_ffmpeg() is None else 0)


def test_without_it_the_noise_is_there():
    """The check above means something: lerobot alone prints the statistics (and here the traceback)."""
    out = run(quiet=False)
    assert "libx264 @" in out and "Map:" in out
    if torchcodec_ffmpeg() is None:
        assert out.count("Traceback") >= 2  # once per dataset opened


def test_doctor_names_the_decoder_and_the_libraries():
    from app.commands import doctor

    section = doctor.check_video()
    assert {item["library"] for item in section.items[1:]} == set(TORCHCODEC_FFMPEG.values())
    if torchcodec_ffmpeg() is None:
        assert section.items[0] == {"decoder": "pyav"} and section.status == doctor.WARN
        assert "libavutil.so.60" in section.fixes[0] and "apt install ffmpeg" in section.fixes[0]
