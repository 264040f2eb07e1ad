import os
import subprocess
import sys

import pytest

from app.cli import COMMANDS, build_parser
from app.gui.launch import display_available


def _piper_ws(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_help_lists_every_registered_command():
    proc = _piper_ws("--help")
    assert proc.returncode == 0, proc.stderr
    for name in COMMANDS:
        assert name in proc.stdout


def test_doctor_help_shows_its_options():
    proc = _piper_ws("doctor", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--json" in proc.stdout and "--skip" in proc.stdout


def test_unknown_command_is_an_error():
    proc = _piper_ws("no-such-command")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_without_a_display_the_window_says_what_to_do_and_exits_nonzero(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PIPER_WS_HOME"] = str(tmp_path)
    proc = _piper_ws(env=env)
    assert proc.returncode == 2
    assert "QT_QPA_PLATFORM=offscreen piper-ws" in proc.stderr
    assert "piper-ws doctor" in proc.stderr


def test_display_detection():
    assert not display_available({})
    assert display_available({"DISPLAY": ":0"})
    assert display_available({"WAYLAND_DISPLAY": "wayland-0"})
    assert display_available({"QT_QPA_PLATFORM": "offscreen"})


def test_global_workspace_option_reaches_the_command():
    args = build_parser().parse_args(["--workspace", "/tmp/x", "doctor", "--json"])
    assert args.workspace == "/tmp/x" and args.json and args.command == "doctor"


def test_a_corrupt_workspace_config_is_named_with_its_fix(tmp_path):
    (tmp_path / "workspace.json").write_text("{not json")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = _piper_ws("--workspace", str(tmp_path), env=env)
    assert proc.returncode == 1
    assert "workspace.json" in proc.stderr and "fix or delete it" in proc.stderr


def test_piper_ws_opens_the_window_offscreen(tmp_path):
    env = dict(
        os.environ, QT_QPA_PLATFORM="offscreen", PIPER_WS_STARTUP_REPORT="1", PIPER_WS_HOME=str(tmp_path)
    )
    proc = _piper_ws(env=env)
    assert proc.returncode == 0, proc.stderr
    assert "window_shown_at=" in proc.stdout


def test_image_size_is_parsed_in_one_place_and_malformed_values_are_refused():
    from app.commands import parse_image_size

    assert parse_image_size("96x128") == (96, 128) and parse_image_size("480X640") == (480, 640)
    for bad in ("96by128", "96x128x3", "x128"):
        with pytest.raises(ValueError, match="give it as HxW"):
            parse_image_size(bad)
