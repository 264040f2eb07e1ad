"""Backbones: clear errors for bad paths; tiny SmolVLA / pi0 built offline, cached, loadable."""

import json
import os
import shutil

import pytest
import torch

from train.backbones import BackboneError, load_base_policy, load_processors, resolve_backbone


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache for this test (the tests run with HF_HUB_OFFLINE=1)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def _put_in_hub_cache(cache, repo_id, files_dir, revision="0" * 40):
    """Lay `files_dir` out as huggingface_hub's cache does after `hf download repo_id`."""
    import shutil

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(files_dir, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return repo / "snapshots" / revision


def test_hub_id_offline_and_not_cached_names_the_download_command(hub_cache):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(
        BackboneError, match=r"not in the Hugging Face cache.*offline.*`hf download lerobot/smolvla_base`"
    ):
        resolve_backbone("lerobot/smolvla_base")


def test_hub_id_is_read_from_the_cache_offline_with_the_vlm_it_names(hub_cache, backbone_cache, tmp_path):
    tiny = resolve_backbone("tiny-smolvla", backbone_cache).path
    policy_files = tmp_path / "policy"
    shutil.copytree(tiny, policy_files, ignore=shutil.ignore_patterns("vlm"))
    config = json.loads((policy_files / "config.json").read_text())
    config["vlm_model_name"] = "lab/tiny-vlm"  # as smolvla_base names HuggingFaceTB/SmolVLM2-500M-...
    (policy_files / "config.json").write_text(json.dumps(config))
    snapshot = _put_in_hub_cache(hub_cache, "lab/tiny-smolvla", policy_files)

    with pytest.raises(BackboneError, match=r"'lab/tiny-smolvla' is not in .*`hf download lab/tiny-vlm`"):
        resolve_backbone("lab/tiny-smolvla")  # the policy is cached, the VLM config it loads is not

    _put_in_hub_cache(hub_cache, "lab/tiny-vlm", tiny / "vlm")
    backbone = resolve_backbone("lab/tiny-smolvla")
    assert backbone.path == snapshot and backbone.policy_type == "smolvla"
    policy = load_base_policy(backbone)  # lerobot finds lab/tiny-vlm in the cache, offline
    assert policy.model.vlm_with_expert.vlm.config.text_config.hidden_size == 64
    pre, _ = load_processors(backbone, policy.config)
    assert (
        pre({"task": "open the pot", "observation.state": torch.zeros(7)})[
            "observation.language.tokens"
        ].numel()
        > 1
    )


def test_a_local_directory_wins_over_a_hub_id_of_the_same_name(hub_cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lab" / "snap").mkdir(parents=True)
    with pytest.raises(BackboneError, match="lacks config.json"):
        resolve_backbone("lab/snap")


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


def test_building_a_tiny_backbone_leaves_the_callers_random_state_alone(tmp_path):
    # A run that builds the backbone must draw the same numbers as one that finds it cached.
    from train.backbones import build_tiny_backbone

    torch.manual_seed(7)
    before = torch.get_rng_state()
    build_tiny_backbone("tiny-smolvla", tmp_path / "tiny-smolvla")
    assert torch.equal(torch.get_rng_state(), before)


_RESOLVE_AT = """
import sys, time
import train.backbones as backbones

builds, build = [], backbones.build_tiny_backbone
backbones.build_tiny_backbone = lambda *args: builds.append(args) or build(*args)
while time.time() < float(sys.argv[2]):  # both processes ask at the same instant
    time.sleep(0.01)
backbone = backbones.resolve_backbone("tiny-smolvla", sys.argv[1])
backbones.load_base_policy(backbone)
print(len(builds))
"""


def test_processes_that_need_a_tiny_backbone_at_once_build_it_once_and_both_load_it(tmp_path):
    """A study's rows starting together: a second build replaced the directory while the first
    process loaded it (one of them failed with half a backbone)."""
    import subprocess
    import sys
    import time

    from train.backbones import _tiny_is_current

    start = time.time() + 15  # after both have imported torch and lerobot
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-c", _RESOLVE_AT, str(tmp_path), str(start)]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outputs = [child.communicate(timeout=300)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert sorted(int(out.split()[-1]) for out in outputs) == [0, 1]
    assert _tiny_is_current(tmp_path / "tiny-smolvla", "tiny-smolvla")


@pytest.mark.slow
@pytest.mark.parametrize(("size", "frames"), [("mini", (96, 128)), ("small", (192, 256))])
def test_an_in_house_size_trains_on_its_recordings_with_r128_a_realistic_share(size, frames, backbone_cache):
    """Issue 10's sizing rule: the family's r=128 preset (its rank scaled with the width) is
    5-20% of the model, as r=128 is 9.1% of SmolVLA in the paper; and the scratch model learns
    from frames of the size its family records (pretrain.SIZES)."""
    from train.adapters import apply_adapters
    from train.loop import adapter_config
    from train.presets import get_preset

    backbone = resolve_backbone(f"scratch-{size}-smolvla", backbone_cache)
    config = get_preset(f"{size}-lora128")
    policy = load_base_policy(backbone, **config.policy).train()
    handle = apply_adapters(policy, adapter_config(config), config.targets)
    assert 5 <= handle.parameter_counts().percent <= 20
    pre, _ = load_processors(backbone, policy.config)
    chunk = policy.config.chunk_size
    batch = pre(
        {
            "observation.state": torch.randn(1, 7),
            "action": torch.randn(1, chunk, 7),
            "action_is_pad": torch.zeros(1, chunk, dtype=torch.bool),
            "observation.images.side": torch.rand(1, 3, *frames),
            "observation.images.wrist": torch.rand(1, 3, *frames),
            "task": ["press the button"],
        }
    )
    # below the preset's 1e-3, which the runs reach after a warmup: on random weights the
    # second step of small-smolvla at the full rate overshoots (1.96 -> 6.4, then 2.2, 1.8, ...)
    optimizer = torch.optim.AdamW(handle.trainable_parameters(), lr=3e-4)
    losses = []
    for _ in range(6):
        torch.manual_seed(0)  # the same noise and time each step: the loss on this batch must fall
        loss = policy.forward(dict(batch))[0]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses
