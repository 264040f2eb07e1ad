"""Which h264 encoder writes the episode videos: the GPU's when PyAV can open it, else libx264.

    choice = choose_h264()          # cached per process; a probe opens each candidate once
    choice.vcodec                   # lerobot's vcodec name for RGBEncoderConfig
    choice.summary                  # one line for `doctor`, the log and the Record page's tooltip

A hardware encoder counts only if PyAV lists it *and* opens it with the frames the
recorder feeds it (yuv420p from system memory) and encodes a frame: PyAV wheels list
h264_nvenc on every machine, and h264_vaapi needs frames uploaded to the GPU, which
lerobot's streaming encoder does not do. `choose_h264(probe)` takes the probe as an
argument so the choice itself is tested on any machine.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

HARDWARE_H264 = ("h264_nvenc", "h264_vaapi")  # in order of preference
SOFTWARE_H264 = "libx264"
# lerobot's vcodec for each encoder, and the fastest preset that keeps the quality usable
# (x264 "veryfast" keeps up with two 480x640 streams on a busy 2-core PC).
LEROBOT_VCODEC = {"h264_nvenc": "h264_nvenc", "h264_vaapi": "h264_vaapi", SOFTWARE_H264: "h264"}
PRESET = {"h264_nvenc": None, "h264_vaapi": None, SOFTWARE_H264: "veryfast"}  # NVENC: its default (p4)


@dataclass(frozen=True)
class EncoderChoice:
    codec: str  # the FFmpeg encoder name
    hardware: bool
    reasons: tuple[str, ...] = ()  # why each preferred encoder was passed over

    @property
    def vcodec(self) -> str:
        return LEROBOT_VCODEC[self.codec]

    @property
    def preset(self) -> str | None:
        return PRESET[self.codec]

    @property
    def label(self) -> str:
        """A few words for a narrow column; `summary` says why."""
        return f"video encoder: {self.codec} ({'GPU' if self.hardware else 'CPU'})"

    @property
    def summary(self) -> str:
        if self.hardware:
            return f"video encoder {self.codec} (GPU)"
        why = "; ".join(self.reasons) or "none tried"
        return f"video encoder libx264 (CPU): no GPU h264 encoder opens here ({why})"


def probe_encoder(codec: str) -> str | None:
    """None when PyAV opens `codec` for yuv420p frames and encodes one; else why not, briefly."""
    import av

    if codec not in av.codecs_available:
        return f"{codec} is not in this PyAV build"
    try:
        context = av.CodecContext.create(codec, "w")
        context.width, context.height = 256, 256  # NVENC refuses very small frames
        context.pix_fmt = "yuv420p"
        context.time_base = Fraction(1, 30)
        context.framerate = Fraction(30, 1)
        context.open()
        frame = av.VideoFrame(256, 256, "yuv420p")
        frame.pts = 0
        context.encode(frame)
        context.encode(None)  # flush: some encoders fail only here
    except Exception as exc:  # av.error.* and ValueError: this encoder cannot run here
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"{codec} does not open ({first[:80]})"
    return None


def choose_h264(probe: Callable[[str], str | None] | None = None) -> EncoderChoice:
    """The first hardware encoder that `probe` accepts, else libx264 with the reasons."""
    if probe is None:
        return _choose_here()
    reasons = []
    for codec in HARDWARE_H264:
        problem = probe(codec)
        if problem is None:
            return EncoderChoice(codec, hardware=True)
        reasons.append(problem)
    return EncoderChoice(SOFTWARE_H264, hardware=False, reasons=tuple(reasons))


@functools.cache
def _choose_here() -> EncoderChoice:
    return choose_h264(probe_encoder)
