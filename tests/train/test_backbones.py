"""Backbones: clear errors for bad paths; tiny SmolVLA / pi0 built offline, cached, loadable."""

import json

import pytest
import torch

from train.backbones import BackboneError, load_base_policy, load_processors, resolve_backbone


def test_hub_name_says_to_download_it_first(tmp_path):
    with pytest.raises(BackboneError, match="download the snapshot"):
        resolve_backbone("lerobot/smolvla_base", tmp_path)


def test_missing_directory_names_what_was_expected(tmp_path):
    with pytest.raises(BackboneError, match="no such directory.*smolvla_base.*model.safetensors"):
        resolve_backbone(str(tmp_path / "nope"), tmp_path)


def test_directory_without_weights_is_refused(tmp_path):
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / "config.json").write_text(json.dumps({"type": "smolvla"}))
    with pytest.raises(BackboneError, match="lacks model.safetensors"):
        resolve_backbone(str(tmp_path / "snap"), tmp_path)


def test_wrong_policy_type_is_refused(tmp_path):
    snap = tmp_path / "act"
    snap.mkdir()
    (snap / "config.json").write_text(json.dumps({"type": "act"}))
    (snap / "model.safetensors").write_bytes(b"")
    with pytest.raises(BackboneError, match="'act'.*smolvla.*pi0"):
        resolve_backbone(str(snap), tmp_path)


def test_tiny_smolvla_is_built_once_and_loads_as_a_lerobot_policy(backbone_cache):
    backbone = resolve_backbone("tiny-smolvla", backbone_cache)
    weights = backbone.path / "model.safetensors"
    built_at = weights.stat().st_mtime_ns
    assert resolve_backbone("tiny-smolvla", backbone_cache).path == backbone.path
    assert weights.stat().st_mtime_ns == built_at  # cached, not rebuilt
    # The directory is a plain pretrained-policy dir: it also resolves given by path.
    assert resolve_backbone(str(backbone.path)).tiny
    policy = load_base_policy(backbone)
    assert type(policy).__name__ == "SmolVLAPolicy"
    assert 100_000 < sum(p.numel() for p in policy.parameters()) < 2_000_000
    pre, post = load_processors(backbone, policy.config)
    tokens = pre({"task": "open the pot", "observation.state": torch.zeros(7)})["observation.language.tokens"]
    vocab = policy.model.vlm_with_expert.vlm.config.text_config.vocab_size
    assert tokens.numel() > 1 and int(tokens.max()) < vocab  # the offline tokenizer speaks the model's vocab


def test_tiny_pi0_builds_offline_and_reloads_with_its_tiny_sizes(backbone_cache):
    backbone = resolve_backbone("tiny-pi0", backbone_cache)
    assert backbone.policy_type == "pi0"
    policy = load_base_policy(backbone)
    assert type(policy).__name__ == "PI0Policy"
    expert = policy.model.paligemma_with_expert.gemma_expert.config
    assert expert.hidden_size == 32  # not the hard-coded 1024 of gemma_300m
    pre, _ = load_processors(backbone, policy.config)
    steps = json.loads((backbone.path / "policy_preprocessor.json").read_text())["steps"]
    tokenizer = [s for s in steps if "tokenizer" in s.get("registry_name", "")][0]
    assert tokenizer["config"]["tokenizer_name"].startswith(str(backbone.path))  # local, not the hub name
