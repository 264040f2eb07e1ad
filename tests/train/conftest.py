"""Shared, session-scoped fixtures for the training tests: one small dataset and the tiny
backbones, built once (building them is the slow part)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import make_dataset  # noqa: E402


@pytest.fixture(scope="session")
def backbone_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("backbones")


@pytest.fixture(scope="session")
def train_workspace(tmp_path_factory):
    """A workspace root whose datasets/ holds `tiny_tasks` (2 tasks x 3 episodes)."""
    root = tmp_path_factory.mktemp("train_ws")
    make_dataset(root / "datasets" / "tiny_tasks")
    return root


@pytest.fixture
def runs(tmp_path):
    """A runs directory whose jobs are killed when the test ends, passed or failed."""
    runs = tmp_path / "runs"
    yield runs
    from train.jobs import kill_job, list_jobs

    for record in list_jobs(runs):
        if record.active:
            kill_job(record.run_dir)
