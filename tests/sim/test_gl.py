"""GL backend choice: a working backend is found; a missing one is a clear error, never a hang."""

import os
import subprocess
import sys

import pytest

from collect.sim import gl


def test_egl_probe_renders():
    result = gl.probe_backend("egl")
    assert result.ok, result.detail


def test_no_working_backend_names_the_packages(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(gl, "_chosen", None)
    monkeypatch.delitem(sys.modules, "mujoco", raising=False)  # as if mujoco were not imported yet
    with pytest.raises(gl.GLUnavailableError) as err:
        gl.ensure_gl_backend(candidates=("nonexistent",))
    message = str(err.value)
    assert "nonexistent" in message and "libegl1" in message and "libosmesa6" in message


def test_explicit_bad_backend_fails_fast_in_a_fresh_process():
    env = dict(os.environ, MUJOCO_GL="nonexistent")
    code = "from collect.sim.world import PiperWorld; PiperWorld()"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "GLUnavailableError" in proc.stderr and "apt-get install" in proc.stderr


def test_explicit_backend_is_respected(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert gl.ensure_gl_backend() == "osmesa"


def test_automatic_choice_sets_mujoco_gl(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(gl, "_chosen", None)
    monkeypatch.delitem(sys.modules, "mujoco", raising=False)
    assert gl.ensure_gl_backend(candidates=("nonexistent", "egl")) == "egl"
    assert os.environ["MUJOCO_GL"] == "egl"
