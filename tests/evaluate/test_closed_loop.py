"""The closed loop, end to end: a policy trained by `piper-ws train` on five episodes recorded
by `piper-ws record` presses the button when `piper-ws eval --backend sim` rolls it out on
those episodes' own scenes. A mismatch anywhere between recording, training and rollout
(camera keys, normalisation, action timing, chunk execution, state units, start state)
breaks it. The recipe lives in benchmarks/memorisation.py, which prints the same tally."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "memorisation.py"


def _memorisation():
    spec = importlib.util.spec_from_file_location("memorisation", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.timeout(2400)  # 5 min on an idle 2-core EPYC (3000 steps: 9 on the older host)
def test_a_policy_trained_on_five_recorded_episodes_replays_at_least_four(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPER_WS_MODEL_CACHE", str(tmp_path / "models"))  # tiny-smolvla built from seed 0
    memorisation = _memorisation()
    recipe = memorisation.Recipe()
    trials, _ = memorisation.run_memorisation(tmp_path / "ws", recipe)
    assert [t.seed for t in trials] == list(range(recipe.episodes))  # the recorded scenes, each once
    outcomes = {t.seed: t.outcome for t in trials}
    assert sum(o == "success" for o in outcomes.values()) >= 4, outcomes
