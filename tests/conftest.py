"""Suite-wide settings: headless Qt and MuJoCo, no hub access, a throwaway workspace."""

import os

# Before anything imports Qt, mujoco or huggingface_hub.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from train.threads import bound_omp_spinning  # noqa: E402

bound_omp_spinning(os.environ)  # before torch loads: the suite keeps its pace on a shared machine

import pytest  # noqa: E402

pytest_plugins = ("tests.slurm_cluster",)  # the `slurm_cluster` fixture


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A fresh workspace root; PIPER_WS_HOME points at it for code that reads the default."""
    from collect.workspace import Workspace

    monkeypatch.setenv("PIPER_WS_HOME", str(tmp_path / "ws"))
    return Workspace.open(tmp_path / "ws")
