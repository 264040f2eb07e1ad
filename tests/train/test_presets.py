"""Presets and TrainConfig: named, frozen, overridable, helpful errors. No torch needed."""

import dataclasses

import pytest

from train.config import TrainConfig
from train.presets import DEFAULT_PRESET, PRESETS, SIM_STATE_NOISE, get_preset, preset_names


def test_default_preset_is_lora_sp_on_smolvla_with_the_papers_knobs():
    cfg = get_preset(DEFAULT_PRESET)
    assert cfg.strategy == "lora_sp" and cfg.targets == "smolvla"
    assert cfg.adapter == {"r": 128, "eta": 0.9}
    assert cfg.tasks is None  # multi-task: every task of the dataset


def test_each_required_preset_exists_with_its_strategy():
    expected = {
        "smolvla-lora_sp": "lora_sp",
        "smolvla-lora128": "lora",
        "smolvla-adalora": "adalora",
        "smolvla-lora_moe": "lora_moe",
        "smolvla-full": "full",
        "pi0-lora_sp": "lora_sp",
        "smolvla-vla_gse": "vla_gse",
        "pi0-vla_gse": "vla_gse",
        "mini-vla_gse": "vla_gse",
        "mini-capvector": "full",
        "smolvla-capvector_lora": "lora",
    }
    for name, strategy in expected.items():
        assert get_preset(name).strategy == strategy
        assert get_preset(name).preset == name
    assert get_preset("pi0-lora_sp").backbone == "tiny-pi0"


def test_the_simulation_family_trains_with_state_noise_and_the_others_without():
    # measured in simulation only (study-cpu.md, Run 5); a real arm's presets stay clean
    for name in preset_names():
        expected = SIM_STATE_NOISE if name.startswith(("mini-", "small-")) else 0.0
        assert get_preset(name).state_noise == expected, name
    assert get_preset("mini-full", state_noise=0.0).state_noise == 0.0  # `--set state_noise=0` turns it off


def test_overrides_make_a_new_config_and_never_change_the_preset():
    cfg = get_preset("smolvla-lora_sp", steps=7, adapter={"r": 16}, policy={"chunk_size": 5})
    assert cfg.steps == 7
    assert cfg.adapter == {"r": 16, "eta": 0.9}  # merged, not replaced
    assert cfg.policy["chunk_size"] == 5 and cfg.policy["train_expert_only"] is False
    again = get_preset("smolvla-lora_sp")
    assert again.steps != 7 and again.adapter["r"] == 128 and "chunk_size" not in again.policy
    cfg.adapter["r"] = 1  # even mutating a returned dict must not reach the preset
    assert PRESETS["smolvla-lora_sp"].adapter["r"] == 128
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 3


def test_unknown_preset_lists_the_closest_names():
    with pytest.raises(KeyError, match="smolvla-lora_sp") as err:
        get_preset("smolvla-lorasp")
    assert "closest" in str(err.value)
    assert "pi0-lora_sp" in str(err.value)  # the full list follows


def test_bad_values_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="lora_sp"):
        get_preset(DEFAULT_PRESET, strategy="lora-sp")
    with pytest.raises(ValueError, match="steps"):
        get_preset(DEFAULT_PRESET, steps=0)
    with pytest.raises(ValueError, match="resume_every_s"):
        get_preset(DEFAULT_PRESET, resume_every_s=-1)
    with pytest.raises(ValueError, match="unknown training config keys"):
        get_preset(DEFAULT_PRESET, stepz=10)


def test_config_round_trips_through_json(tmp_path):
    cfg = get_preset("smolvla-adalora", dataset="d", tasks=["open the pot"], seed=3)
    cfg.save(tmp_path / "config.json")
    assert TrainConfig.load(tmp_path / "config.json") == cfg
    assert set(preset_names()) == set(PRESETS)


def test_vla_gse_presets_build_valid_adapter_configs_with_the_papers_experts():
    from train.adapters import VlaGseConfig

    paper = VlaGseConfig(**get_preset("smolvla-vla_gse").adapter)
    assert (paper.r, paper.num_experts, paper.num_specialists, paper.top_k) == (16, 8, 7, 2)
    assert paper.lambda_balance == 0.01
    mini = VlaGseConfig(**get_preset("mini-vla_gse").adapter)  # expert rank 2 -> 1 on the 256-wide model
    assert (mini.r, mini.expert_rank, mini.num_experts) == (8, 1, 8)
    assert get_preset("mini-vla_gse").backbone == "mini-smolvla"


def test_capvector_presets_train_with_the_orthogonality_term():
    assert get_preset("mini-capvector").orth_weight > 0 and get_preset("smolvla-capvector").orth_weight > 0
    assert get_preset("mini-full").orth_weight == 0 and get_preset("mini-full").aux_objective is None
