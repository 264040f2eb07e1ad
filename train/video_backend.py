"""Which video decoder lerobot uses, decided once per process, and quiet FFmpeg logs.

lerobot tries to import torchcodec on every dataset it opens; where torchcodec cannot load
its FFmpeg libraries it logs a ~100-line traceback each time, then uses PyAV. FFmpeg's own
default logger also prints libx264's statistics after every encoded episode. `quiet()`
turns the first fallback into one notice line (later ones are dropped, and lerobot is told
"pyav" from then on, so it stops retrying) and raises FFmpeg's log level to errors; the
datasets library's progress bars are off.

No torch, no lerobot import here: the GUI calls `quiet()` at start-up.
"""

from __future__ import annotations

import ctypes
import logging
import os
import warnings

# torchcodec's FFmpeg majors and the libavutil soname each needs (torchcodec tries 8 down to 4)
TORCHCODEC_FFMPEG = {8: "libavutil.so.60", 7: "libavutil.so.59", 6: "libavutil.so.58", 5: "libavutil.so.57",
                     4: "libavutil.so.56"}  # fmt: skip
LEROBOT_LOGGER = "lerobot.utils.import_utils"
_FALLBACK_TEXT = "'torchcodec' is installed but cannot be loaded"
NOTICE = "video decoding: pyav (torchcodec cannot load its FFmpeg libraries; `piper-ws doctor` says which)"

_state = {"installed": False, "chosen": None}


def torchcodec_ffmpeg() -> int | None:
    """The FFmpeg major torchcodec would load here, or None when none of its libraries is present."""
    for major, library in TORCHCODEC_FFMPEG.items():
        try:
            ctypes.CDLL(library)
        except OSError:
            continue
        return major
    return None


def chosen_backend() -> str | None:
    """ "pyav" once lerobot fell back in this process, else None (not decided yet, or torchcodec)."""
    return _state["chosen"]


class _FallbackFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _FALLBACK_TEXT not in str(record.msg):
            return True
        if _state["chosen"] == "pyav":
            return False  # said once per process
        _state["chosen"] = "pyav"
        _pin_lerobot_to_pyav()
        record.msg, record.args, record.levelno, record.levelname = NOTICE, (), logging.INFO, "INFO"
        return True


def _pin_lerobot_to_pyav() -> None:
    """lerobot re-tries torchcodec on every dataset; from now on its default is pyav."""
    import sys

    def pyav() -> str:
        return "pyav"

    for name in (
        "lerobot.utils.import_utils",
        "lerobot.datasets.lerobot_dataset",
        "lerobot.datasets.video_utils",
    ):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "get_safe_default_video_backend"):
            module.get_safe_default_video_backend = pyav


def quiet() -> None:
    """Once per process: one notice instead of torchcodec's traceback; FFmpeg prints errors only."""
    if _state["installed"]:
        return
    _state["installed"] = True
    # Hugging Face datasets draws a progress bar each time lerobot reopens a dataset (every kept episode)
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    # ... and lerobot's SuppressProgressBars turns them back on after each load, which the
    # variable refuses with a warning per kept episode: say nothing instead.
    warnings.filterwarnings("ignore", message="Cannot enable progress bars", category=UserWarning)
    logging.getLogger(LEROBOT_LOGGER).addFilter(_FallbackFilter())
    try:
        import av.logging
    except ImportError:
        return
    # lerobot restores FFmpeg's default log callback after each video; its level stays ours.
    av.logging.set_libav_level(av.logging.ERROR)
