"""Backbones: where a policy's starting weights come from.

A backbone is always a *local pretrained policy directory* (lerobot's `save_pretrained`
layout: `config.json`, `model.safetensors`, processor JSON files). Two kinds:

- a Hugging Face hub id (`lerobot/smolvla_base`, `lerobot/pi0`, a lab's own): downloaded
  once into the Hugging Face cache when online (the policy, plus the config and tokenizer
  files of the VLM it names), read from that cache offline afterwards;
- a downloaded snapshot of `lerobot/smolvla_base` or `lerobot/pi0`, given by its path;
- `tiny-smolvla` / `tiny-pi0`: built offline from scratch (random weights, a tokenizer
  trained with `tokenizers`) the first time they are asked for, then cached under
  `<cache_dir>/<name>/`, so every run and the evaluator start from the same weights.
  They are for tests: far too small for results.
- `scratch-mini-smolvla`: SmolVLA's architecture at a size a 2-core CPU trains (about
  14 M parameters, 128 px images), random weights, built the same way; what in-house
  pretraining starts from, and the "no pretraining" baseline.
- `mini-smolvla`: `scratch-mini-smolvla` after `piper-ws pretrain` (full training on the
  simulated source corpus), exported to `<cache_dir>/mini-smolvla/` with `card.json`.
- `scratch-small-smolvla` / `small-smolvla`: the same at a size for one GPU (about 83 M
  parameters, 256 px images: `piper-ws pretrain --size small --device cuda`).

pi0 hard-codes Gemma 2B / 300M sizes, a 27-layer SigLIP and a PaliGemma tokenizer name;
the tiny pi0 shrinks those inside `tiny_pi0_sizes()`, which must be active whenever the
tiny pi0 is built or loaded (`loading_context` does that from the directory's marker).

The scratch models (sizes, tokenizer, builders) are `train.scratch_models`. Nothing here
imports torch or lerobot at module import time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .scratch_models import BUILDERS, SMOLVLM2_500M, default_features, tiny_pi0_sizes, write_smolvlm

# built from scratch on first use
TINY_NAMES = ("tiny-smolvla", "tiny-pi0", "scratch-mini-smolvla", "scratch-small-smolvla")
# made by `piper-ws pretrain` from the scratch model named; the tiny one is for tests
PRETRAINED_NAMES = {
    "mini-smolvla": "scratch-mini-smolvla",
    "small-smolvla": "scratch-small-smolvla",
    "tiny-smolvla-pretrained": "tiny-smolvla",
}
CARD_FILE = "card.json"  # written into a pretrained backbone dir: corpus, steps, seed, loss, parameters
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # owner/name, when no such local directory exists
# Besides the policy, lerobot loads these by hub id: only their config/tokenizer files are needed.
PI0_TOKENIZER = "google/paligemma-3b-pt-224"  # gated on the hub: accept its licence, then `hf auth login`
COMPANION_FILES = ["*.json", "*.txt", "*.model", "*.jinja", "tokenizer*"]
TINY_MARKER = "tiny_backbone.json"  # written into tiny backbone dirs: {"name": ..., "version": ...}
TINY_VERSION = 2  # 2: scratch-mini-smolvla acts in 30-step chunks


class BackboneError(ValueError):
    """A backbone name or path that cannot be used; the message says what to do."""


class NotDownloaded(BackboneError):
    """A hub backbone that is not cached yet on a machine that can download it."""


@dataclass(frozen=True)
class Backbone:
    name: str  # "tiny-smolvla", "tiny-pi0", or the directory given by the user
    policy_type: str  # "smolvla" | "pi0"
    path: Path  # the local pretrained policy directory
    tiny: bool


def default_cache_dir() -> Path:
    env = os.environ.get("PIPER_WS_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "piper-ws" / "backbones"


def resolve_backbone(spec: str, cache_dir: str | Path | None = None, *, download: bool = True) -> Backbone:
    """Turn a backbone name, hub id or directory into a ready local pretrained policy directory.

    Tiny backbones are built on first use, hub ids downloaded on first use (with
    `download=False`, an uncached hub id on a machine that could download it raises
    NotDownloaded). A wrong name or path raises BackboneError naming what was expected.
    """
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if spec in TINY_NAMES:
        path = cache / spec
        if not _tiny_is_current(path, spec):
            _build_tiny_once(spec, path)
        return Backbone(spec, "pi0" if spec == "tiny-pi0" else "smolvla", path, True)
    if spec in PRETRAINED_NAMES:
        path = cache / spec
        if not (path / CARD_FILE).is_file():
            raise BackboneError(
                f"backbone {spec!r} is made in house: run `piper-ws pretrain` first (resumable: the same "
                f"command continues where it stopped), or start from {PRETRAINED_NAMES[spec]!r}"
            )
        return Backbone(spec, "smolvla", path, False)
    path = Path(spec).expanduser()
    if not path.exists() and HUB_ID.match(spec):
        return _check_policy_dir(hub_snapshot(spec, download=download), spec)
    if not path.is_dir():
        raise BackboneError(
            f"backbone {spec!r}: no such directory. Expected a local pretrained policy directory "
            f"(a downloaded lerobot/smolvla_base or lerobot/pi0 snapshot holding config.json and "
            f"model.safetensors) or one of {', '.join(TINY_NAMES)}"
        )
    return _check_policy_dir(path, spec)


def hub_snapshot(repo_id: str, *, download: bool = True) -> Path:
    """The hub policy `repo_id` in the Hugging Face cache: downloaded on first use when online
    (huggingface_hub prints its progress bars), read from the cache when offline; the VLM /
    tokenizer repo the policy names comes with it. `download=False` only looks in the cache."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    offline = constants.HF_HUB_OFFLINE  # HF_HUB_OFFLINE as huggingface_hub itself reads it

    def fetch(repo: str, patterns: list[str] | None = None) -> Path:
        try:
            return Path(
                snapshot_download(repo, allow_patterns=patterns, local_files_only=offline or not download)
            )
        except GatedRepoError:
            raise BackboneError(
                f"{repo} is gated on the Hugging Face hub: accept its licence on huggingface.co, "
                f"run `hf auth login`, then start again"
            ) from None
        except RepositoryNotFoundError:
            raise BackboneError(
                f"backbone {repo_id!r}: no model {repo!r} on the Hugging Face hub; check the name "
                f"(e.g. lerobot/smolvla_base) or pass a local directory"
            ) from None
        except LocalEntryNotFoundError:
            if not offline and not download:
                raise NotDownloaded(f"{repo} is not in the Hugging Face cache yet") from None
            how = "this machine is offline (HF_HUB_OFFLINE=1)" if offline else "the hub could not be reached"
            raise BackboneError(
                f"backbone {repo_id!r} is not in the Hugging Face cache and {how}: download it once with "
                f"`hf download {repo}` where there is internet (and copy ~/.cache/huggingface here), "
                f"or pass a local directory"
            ) from None

    path = fetch(repo_id)
    companion = _companion_repo(path)
    if companion:
        fetch(companion, COMPANION_FILES)
    return path


def _companion_repo(policy_dir: Path) -> str | None:
    """The hub repo a policy loads its VLM config / tokenizer from at construction, if any."""
    try:
        config = json.loads((policy_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None  # _check_policy_dir says what is wrong
    name = config.get("vlm_model_name") if config.get("type") == "smolvla" else None
    if config.get("type") == "pi0":
        name = PI0_TOKENIZER
    if not name or Path(name).expanduser().exists() or not HUB_ID.match(name):
        return None
    return name


def _check_policy_dir(path: Path, spec: str) -> Backbone:
    config_file = path / "config.json"
    weights = path / "model.safetensors"
    missing = [p.name for p in (config_file, weights) if not p.exists()]
    if missing:
        raise BackboneError(
            f"backbone directory {path} lacks {', '.join(missing)}: expected a lerobot pretrained "
            f"policy snapshot (lerobot/smolvla_base or lerobot/pi0) with config.json and model.safetensors"
        )
    try:
        policy_type = json.loads(config_file.read_text()).get("type")
    except json.JSONDecodeError as exc:
        raise BackboneError(f"{config_file} is not valid JSON ({exc}); re-download the snapshot") from exc
    if policy_type not in ("smolvla", "pi0"):
        raise BackboneError(
            f"{config_file} says type {policy_type!r}; PiPER Workstation fine-tunes 'smolvla' or 'pi0' policies"
        )
    marker = _read_marker(path)
    return Backbone(marker["name"] if marker else spec, policy_type, path, bool(marker))


def _read_marker(path: Path) -> dict | None:
    marker = path / TINY_MARKER
    if not marker.exists():
        return None
    return json.loads(marker.read_text())


def _tiny_is_current(path: Path, name: str) -> bool:
    marker = _read_marker(path)
    return bool(marker) and marker.get("name") == name and marker.get("version") == TINY_VERSION


# ---------------------------------------------------------------- loading


@contextlib.contextmanager
def loading_context(policy_dir: str | Path):
    """Everything needed to build or load the policy stored at `policy_dir` (tiny pi0 sizes)."""
    marker = _read_marker(Path(policy_dir))
    if marker and marker.get("name") == "tiny-pi0":
        with tiny_pi0_sizes():
            yield
    else:
        yield


def load_policy_config(policy_dir: str | Path):
    from lerobot.configs.policies import PreTrainedConfig

    return PreTrainedConfig.from_pretrained(str(policy_dir))


def load_base_policy(backbone: Backbone, input_features=None, output_features=None, **config_overrides):
    """The backbone's policy with its pretrained weights, optionally re-featured for a dataset."""
    from lerobot.policies.factory import get_policy_class

    cfg = load_policy_config(backbone.path)
    if input_features is not None:
        cfg.input_features = dict(input_features)
    if output_features is not None:
        cfg.output_features = dict(output_features)
    for key, value in config_overrides.items():
        setattr(cfg, key, value)
    cfg.device = "cpu"  # accelerate moves the model; loading on CPU keeps this independent of GPUs
    policy_cls = get_policy_class(cfg.type)
    with loading_context(backbone.path):
        policy = policy_cls.from_pretrained(str(backbone.path), config=cfg)
    policy.config.pretrained_path = backbone.path
    return policy


def load_processors(backbone: Backbone, policy_config, dataset_stats=None, device: str = "cpu"):
    """Pre/post-processors from the backbone directory, renormalised with the dataset's stats."""
    from lerobot.policies.factory import make_pre_post_processors

    features = {**policy_config.input_features, **policy_config.output_features}
    pre_over = {
        "device_processor": {"device": device},
        "normalizer_processor": {"features": features, "norm_map": policy_config.normalization_mapping},
    }
    post_over = {
        "unnormalizer_processor": {
            "features": policy_config.output_features,
            "norm_map": policy_config.normalization_mapping,
        }
    }
    if dataset_stats is not None:
        pre_over["normalizer_processor"]["stats"] = dataset_stats
        post_over["unnormalizer_processor"]["stats"] = dataset_stats
    return make_pre_post_processors(
        policy_config,
        pretrained_path=str(backbone.path),
        preprocessor_overrides=pre_over,
        postprocessor_overrides=post_over,
    )


def smolvla_sized_policy(cache_dir: str | Path | None = None, chunk_size: int = 50):
    """A SmolVLA with SmolVLA's real shapes (SmolVLM2-500M, 16 VLM layers, expert 0.75x) and
    random weights, for speed and memory figures without downloading anything."""
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    vlm_dir = Path(cache_dir or default_cache_dir()) / "smolvla-sized-vlm"
    if not (vlm_dir / "config.json").exists():
        write_smolvlm(vlm_dir, SMOLVLM2_500M)
    inputs, outputs = default_features()
    config = SmolVLAConfig(
        vlm_model_name=str(vlm_dir),
        load_vlm_weights=False,
        num_vlm_layers=16,
        chunk_size=chunk_size,
        n_action_steps=chunk_size,
        push_to_hub=False,
        train_expert_only=False,
        freeze_vision_encoder=False,
        input_features=inputs,
        output_features=outputs,
    )
    return SmolVLAPolicy(config)


def build_tiny_backbone(name: str, path: str | Path, seed: int = 0) -> Path:
    """Build a tiny backbone from scratch into `path` (atomically: a half-built dir is never used)."""
    import shutil

    import torch

    if name not in BUILDERS:
        raise BackboneError(f"unknown tiny backbone {name!r}; choose one of {', '.join(TINY_NAMES)}")
    path = Path(path)
    work = path.with_name(path.name + f".building-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with torch.random.fork_rng():  # the caller's RNG is untouched: a run that builds draws as one that loads
        torch.manual_seed(seed)
        policy, pre, post = BUILDERS[name](work)
    policy.save_pretrained(work)
    pre.save_pretrained(work)
    post.save_pretrained(work)
    (work / TINY_MARKER).write_text(json.dumps({"name": name, "version": TINY_VERSION, "seed": seed}))
    _repoint(work, path)
    shutil.rmtree(path, ignore_errors=True)
    work.rename(path)
    return path


def _build_tiny_once(name: str, path: Path) -> None:
    """Build a tiny backbone unless another process has meanwhile. Processes that need it at once
    (a study's rows starting together) wait for one build: a second build would replace the
    directory while the first process loads from it."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _tiny_is_current(path, name):
            build_tiny_backbone(name, path)


def _repoint(work: Path, final: Path, old: Path | None = None) -> None:
    """The saved JSON names the tokenizer/VLM dirs by the build path (or `old`); point them at `final`."""
    old = old or work
    for json_file in work.glob("*.json"):
        text = json_file.read_text()
        if str(old) in text:
            json_file.write_text(text.replace(str(old), str(final)))


def export_pretrained(
    weights_dir: str | Path, name: str, card: dict, cache_dir: str | Path | None = None
) -> Path:
    """Install a full-training checkpoint (`.../pretrained_model`) as backbone `name`, with the
    VLM files its config names and `card.json`; atomically, so a half-exported dir is never used."""
    import shutil

    if name not in PRETRAINED_NAMES:
        raise BackboneError(
            f"{name!r} is not an in-house backbone name; those are {', '.join(PRETRAINED_NAMES)}"
        )
    weights_dir = Path(weights_dir)
    final = (Path(cache_dir) if cache_dir else default_cache_dir()) / name
    work = final.with_name(final.name + f".exporting-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(weights_dir, work)
    (work / TINY_MARKER).unlink(missing_ok=True)  # the copied scratch marker: this one is not rebuilt
    vlm = Path(json.loads((work / "config.json").read_text())["vlm_model_name"])
    shutil.copytree(vlm, work / "vlm")
    _repoint(work, final / "vlm", old=vlm)
    (work / CARD_FILE).write_text(json.dumps(card, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return final


def read_card(name: str, cache_dir: str | Path | None = None) -> dict | None:
    """The card of in-house backbone `name`, or None when it has not been made yet."""
    path = (Path(cache_dir) if cache_dir else default_cache_dir()) / name / CARD_FILE
    return json.loads(path.read_text()) if path.is_file() else None
