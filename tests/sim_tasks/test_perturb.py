"""Perturbation presets: parsing, visible change in the images, expert still succeeds."""

import numpy as np
import pytest

from collect.sim.env import PiperSimEnv
from collect.sim.operator import run_expert_episode
from collect.sim.perturb import PRESET_NAMES, parse_perturbations

from .conftest import SMALL


def test_parse_combines_names_and_rejects_typos():
    assert parse_perturbations("").any is False
    assert parse_perturbations(None).name == ""
    both = parse_perturbations("lighting+camera")
    assert both.lighting and both.camera and not both.color and both.name == "lighting+camera"
    assert parse_perturbations("all").name == "+".join(PRESET_NAMES)
    assert parse_perturbations("colour,size").name == "color+size"
    with pytest.raises(ValueError, match="Did you mean lighting"):
        parse_perturbations("lightning")


def _first_frames(perturbations, seed=2):
    env = PiperSimEnv("pick_grape", image_size=SMALL, perturbations=perturbations)
    obs, _ = env.reset(seed=seed)
    state = env.agent_pos()
    env.close()
    return obs["pixels"], state


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_each_preset_changes_the_rendered_images(preset):
    nominal, nominal_state = _first_frames("")
    perturbed, state = _first_frames(preset)
    changed = (np.abs(nominal["side"].astype(int) - perturbed["side"].astype(int)).max(axis=-1) > 25).sum()
    assert changed >= 5, f"{preset} left the side view unchanged ({changed} pixels differ)"
    np.testing.assert_allclose(state, nominal_state, atol=1e-6)  # the arm starts the same


def test_off_by_default_and_nominal_scene_restored_each_reset():
    env = PiperSimEnv("press_button", image_size=SMALL, perturbations="lighting+camera")
    env.reset(seed=1)
    lit = env.world.model.light_diffuse.copy()
    env.reset(seed=1)
    np.testing.assert_array_equal(env.world.model.light_diffuse, lit)  # not drifting
    env.close()
    assert not PiperSimEnv("press_button", obs_type="agent_pos", image_size=SMALL).perturbations.any


@pytest.mark.parametrize("key", ["pick_grape", "pour_block"])
def test_expert_still_succeeds_under_all_perturbations(key):
    env = PiperSimEnv(key, obs_type="agent_pos", image_size=SMALL, perturbations="all")
    results = [run_expert_episode(env, seed).success for seed in (21, 22)]
    env.close()
    assert all(results)
