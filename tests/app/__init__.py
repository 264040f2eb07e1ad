"""Tests of the window and the CLI."""

import importlib.util
from pathlib import Path


def train_fixtures():
    """tests/train/train_fixtures.py (not a package): its small recorder-shaped dataset."""
    path = Path(__file__).parents[1] / "train" / "train_fixtures.py"
    spec = importlib.util.spec_from_file_location("train_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
