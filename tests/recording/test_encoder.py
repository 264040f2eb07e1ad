"""The h264 encoder choice: the GPU's when PyAV opens it, libx264 otherwise, with the reasons."""

import av

from collect.recording.encoder import HARDWARE_H264, choose_h264, probe_encoder


def test_the_first_hardware_encoder_that_opens_wins_else_libx264_says_why():
    opens = {"h264_vaapi"}

    def probe(codec):
        return None if codec in opens else f"{codec} does not open (no device)"

    choice = choose_h264(probe)
    assert (choice.codec, choice.hardware, choice.vcodec) == ("h264_vaapi", True, "h264_vaapi")
    assert choice.summary == "video encoder h264_vaapi (GPU)"
    assert choice.label == "video encoder: h264_vaapi (GPU)"
    opens.add("h264_nvenc")
    assert choose_h264(probe).codec == "h264_nvenc"  # NVENC first
    opens.clear()
    fallback = choose_h264(probe)
    assert (fallback.codec, fallback.hardware, fallback.vcodec, fallback.preset) == (
        "libx264",
        False,
        "h264",
        "veryfast",
    )
    assert "\n" not in fallback.summary and all(c in fallback.summary for c in HARDWARE_H264)


def test_the_real_probe_opens_libx264_and_refuses_what_cannot_run_here():
    assert probe_encoder("libx264") is None  # encodes a frame for real
    assert probe_encoder("no_such_h264") == "no_such_h264 is not in this PyAV build"
    if "h264_nvenc" in av.codecs_available:  # PyAV wheels list it on every machine
        problem = probe_encoder("h264_nvenc")
        if problem is not None:  # a machine without an NVIDIA GPU: listed, but it does not open
            assert problem.startswith("h264_nvenc does not open")
    choice = choose_h264()
    assert choice.hardware == (choice.codec != "libx264")
    assert choice.hardware or choice.reasons  # the fallback names why


def test_lerobot_accepts_the_settings_of_each_encoder_this_pyav_lists():
    from lerobot.configs.video import RGBEncoderConfig

    from collect.recording.encoder import EncoderChoice

    for codec in ("libx264", *HARDWARE_H264):
        if codec not in av.codecs_available:
            continue
        choice = EncoderChoice(codec, hardware=codec != "libx264")
        options = RGBEncoderConfig(vcodec=choice.vcodec, preset=choice.preset).get_codec_options()
        assert options["g"] == 2  # random access for training, whatever the encoder
