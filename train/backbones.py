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

Nothing here imports torch or lerobot at module import time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

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

# Tiny sizes. The image side is the vision input; datasets of any size are resized to it.
TINY_IMAGE = 64
TINY_PI0_IMAGE = 28
TINY_CHUNK = 10  # tests: short chunks keep the suite fast
# 1 s at 30 fps: a chunk spans the pauses in demonstrations (an operator holding still over
# the button before pressing). With 10-step chunks a policy fitted to such demonstrations
# stalls where they paused: memorisation of 5 press_button episodes went from 0/5 to 4/5.
MINI_CHUNK = 30
MINI_IMAGE = 128  # 8x8 patches of 16 px, 16 visual tokens per camera after the pixel shuffle
# 16x16 patches, 64 visual tokens per camera: at 96x128 the grape is 1-2 pixels across
# (docs/results/big/learnability.md), at 192x256 four times that many
SMALL_IMAGE = 256

STATE_DIM = 7
ACTION_DIM = 7
CAMERAS = ("side", "wrist")


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


# ---------------------------------------------------------------- tiny builders


def _default_features():
    from lerobot.configs.types import FeatureType, PolicyFeature

    inputs = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))}
    for cam in CAMERAS:
        inputs[f"observation.images.{cam}"] = PolicyFeature(type=FeatureType.VISUAL, shape=(3, 480, 640))
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,))}
    return inputs, outputs


def _train_tokenizer(
    bos: str, eos: str, pad: str, unk: str, extra_specials: dict[str, str], vocab_size=512, extra_text=()
):
    """A byte-level BPE tokenizer trained offline on the lab's task vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(dict.fromkeys([unk, bos, eos, pad, *extra_specials.values()]))
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    corpus = [
        "open the pot",
        "pour the block into the basket",
        "press the button",
        "pick up the grape and place it in the basket",
        "move the arm, close the gripper, open the gripper",
        "User: what should the robot do? Assistant:",
        *extra_text,
    ]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus * 20, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token=unk,
        extra_special_tokens=extra_specials,
    )


# SmolVLM sizes: the tiny test model, and SmolVLM2-500M's shapes (SmolVLA's VLM) for benchmarks.
TINY_SMOLVLM = dict(
    text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, max_position_embeddings=512),
    vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
    image=TINY_IMAGE, scale_factor=2, vocab_size=None, chunk=TINY_CHUNK,
)  # fmt: skip
MINI_SMOLVLM = dict(
    text=dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=8, num_attention_heads=4,
              num_key_value_heads=2, head_dim=64, max_position_embeddings=512),
    vision=dict(hidden_size=192, intermediate_size=768, num_hidden_layers=4, num_attention_heads=3),
    image=MINI_IMAGE, scale_factor=2, vocab_size=None, chunk=MINI_CHUNK,
    # the source corpus's instructions join the tokenizer's training text
    vocabulary=("lift the green cube", "put the green cube on the plate", "touch the orange ball",
                "push the blue switch down"),
)  # fmt: skip
# The in-house model for one GPU: SmolVLA's architecture at about a sixth of its size.
SMALL_SMOLVLM = dict(
    text=dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=12, num_attention_heads=9,
              num_key_value_heads=3, head_dim=64, max_position_embeddings=1024),
    vision=dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=6),
    image=SMALL_IMAGE, scale_factor=2, vocab_size=None, chunk=MINI_CHUNK,
    vocabulary=MINI_SMOLVLM["vocabulary"],
)  # fmt: skip
SMOLVLM2_500M = dict(
    text=dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
              num_key_value_heads=5, head_dim=64, max_position_embeddings=8192),
    vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
    image=512, scale_factor=4, vocab_size=49280,
)  # fmt: skip


def _write_smolvlm(vlm_dir: Path, sizes: dict) -> None:
    """A SmolVLM config + processor (no weights: SmolVLA builds the VLM from the config)."""
    from transformers import LlamaConfig, SmolVLMConfig, SmolVLMProcessor
    from transformers.models.smolvlm.configuration_smolvlm import SmolVLMVisionConfig
    from transformers.models.smolvlm.image_processing_smolvlm import SmolVLMImageProcessor
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    tokenizer = _train_tokenizer(
        extra_text=sizes.get("vocabulary", ()),
        bos="<|im_start|>",
        eos="<end_of_utterance>",
        pad="<|im_end|>",
        unk="<|endoftext|>",
        extra_specials={
            "fake_image_token": "<fake_token_around_image>",
            "image_token": "<image>",
            "global_image_token": "<global-img>",
            "end_of_utterance_token": "<end_of_utterance>",
        },
    )
    patch, image, scale = 16, sizes["image"], sizes["scale_factor"]
    text = LlamaConfig(
        vocab_size=max(len(tokenizer), sizes["vocab_size"] or 0),
        pad_token_id=tokenizer.pad_token_id,
        **sizes["text"],
    )
    vision = SmolVLMVisionConfig(image_size=image, patch_size=patch, **sizes["vision"])
    config = SmolVLMConfig(
        text_config=text,
        vision_config=vision,
        scale_factor=scale,
        image_token_id=tokenizer.image_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config.save_pretrained(vlm_dir)
    size = {"longest_edge": image}
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(size=size, max_image_size=size, do_image_splitting=False),
        video_processor=SmolVLMVideoProcessor(size=size, max_image_size=size),
        tokenizer=tokenizer,
        image_seq_len=((image // patch) ** 2) // scale**2,  # patches after the pixel shuffle
    )
    processor.save_pretrained(vlm_dir)


def smolvla_sized_policy(cache_dir: str | Path | None = None, chunk_size: int = 50):
    """A SmolVLA with SmolVLA's real shapes (SmolVLM2-500M, 16 VLM layers, expert 0.75x) and
    random weights, for speed and memory figures without downloading anything."""
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    vlm_dir = Path(cache_dir or default_cache_dir()) / "smolvla-sized-vlm"
    if not (vlm_dir / "config.json").exists():
        _write_smolvlm(vlm_dir, SMOLVLM2_500M)
    inputs, outputs = _default_features()
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


def _tiny_smolvla(work: Path):
    return _scratch_smolvla(work, TINY_SMOLVLM)


def _scratch_mini_smolvla(work: Path):
    return _scratch_smolvla(work, MINI_SMOLVLM)


def _scratch_small_smolvla(work: Path):
    return _scratch_smolvla(work, SMALL_SMOLVLM)


def _scratch_smolvla(work: Path, sizes: dict):
    """A SmolVLA with random weights at `sizes` (its VLM's layers all used, expert 0.75x wide)."""
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    vlm_dir = work / "vlm"
    _write_smolvlm(vlm_dir, sizes)
    inputs, outputs = _default_features()
    image = sizes["image"]
    config = SmolVLAConfig(
        vlm_model_name=str(vlm_dir),
        load_vlm_weights=False,
        num_vlm_layers=sizes["text"]["num_hidden_layers"],
        num_expert_layers=-1,  # equal to the VLM's: other values break cross-attention shapes
        self_attn_every_n_layers=2,
        expert_width_multiplier=0.75,
        resize_imgs_with_padding=(image, image),
        chunk_size=sizes["chunk"],
        n_action_steps=sizes["chunk"],
        tokenizer_max_length=24,
        device="cpu",
        push_to_hub=False,
        input_features=inputs,
        output_features=outputs,
    )
    policy = SmolVLAPolicy(config)
    pre, post = make_pre_post_processors(config, dataset_stats=None)
    return policy, pre, post


class _TinyPaliGemmaConfigs(dict):
    """Stands in for transformers' CONFIG_MAPPING inside modeling_pi0: a tiny SigLIP for 'paligemma'."""

    def __init__(self, real):
        super().__init__()
        self._real = real

    def __getitem__(self, key):
        if key != "paligemma":
            return self._real[key]
        from transformers import PaliGemmaConfig

        def tiny_paligemma():
            vision = dict(
                model_type="siglip_vision_model",
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=1,
                num_attention_heads=2,
                patch_size=14,
                image_size=TINY_PI0_IMAGE,
                vision_use_head=False,
            )
            return PaliGemmaConfig(vision_config=vision)

        return tiny_paligemma


@contextlib.contextmanager
def tiny_pi0_sizes():
    """Shrink pi0's hard-coded sizes (Gemma widths, SigLIP depth, projector) while active."""
    import torch
    from lerobot.policies.pi0 import modeling_pi0 as pi0

    tiny = {
        "gemma_2b": pi0.GemmaConfig(width=64, depth=2, mlp_dim=128, num_heads=8, num_kv_heads=1, head_dim=8),
        "gemma_300m": pi0.GemmaConfig(width=32, depth=2, mlp_dim=64, num_heads=8, num_kv_heads=1, head_dim=8),
    }
    saved = (pi0.get_gemma_config, pi0.CONFIG_MAPPING, pi0.PaliGemmaWithExpertModel.__init__)
    real_init = saved[2]

    def init_with_tiny_projector(self, vlm_config, *args, **kwargs):
        real_init(self, vlm_config, *args, **kwargs)
        # The projector width is fixed at 2048 (gemma_2b); rebuild it for the tiny width.
        vision_width = self.paligemma.config.vision_config.hidden_size
        self.paligemma.model.multi_modal_projector.linear = torch.nn.Linear(vision_width, vlm_config.width)

    pi0.get_gemma_config = tiny.__getitem__
    pi0.CONFIG_MAPPING = _TinyPaliGemmaConfigs(saved[1])
    pi0.PaliGemmaWithExpertModel.__init__ = init_with_tiny_projector
    try:
        yield
    finally:
        pi0.get_gemma_config, pi0.CONFIG_MAPPING, pi0.PaliGemmaWithExpertModel.__init__ = saved


def _tiny_pi0(work: Path):
    from lerobot.policies.pi0 import processor_pi0
    from lerobot.policies.pi0.configuration_pi0 import PI0Config
    from lerobot.policies.pi0.modeling_pi0 import PI0Policy
    from lerobot.processor import TokenizerProcessorStep

    tokenizer_dir = work / "tokenizer"
    tokenizer = _train_tokenizer(bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>", extra_specials={})
    tokenizer.save_pretrained(tokenizer_dir)
    (tokenizer_dir / "config.json").write_text("{}")  # transformers 5 AutoTokenizer reads it too
    inputs, outputs = _default_features()
    config = PI0Config(
        image_resolution=(TINY_PI0_IMAGE, TINY_PI0_IMAGE),
        chunk_size=TINY_CHUNK,
        n_action_steps=TINY_CHUNK,
        tokenizer_max_length=16,
        device="cpu",
        dtype="float32",
        push_to_hub=False,
        input_features=inputs,
        output_features=outputs,
    )
    with tiny_pi0_sizes():
        policy = PI0Policy(config)

    def local_tokenizer_step(**kwargs):
        kwargs["tokenizer_name"] = str(tokenizer_dir)  # saved into the processor JSON: loads offline
        return TokenizerProcessorStep(**kwargs)

    hard_coded = processor_pi0.TokenizerProcessorStep
    processor_pi0.TokenizerProcessorStep = local_tokenizer_step
    try:
        pre, post = processor_pi0.make_pi0_pre_post_processors(config, dataset_stats=None)
    finally:
        processor_pi0.TokenizerProcessorStep = hard_coded
    return policy, pre, post


def build_tiny_backbone(name: str, path: str | Path, seed: int = 0) -> Path:
    """Build a tiny backbone from scratch into `path` (atomically: a half-built dir is never used)."""
    import shutil

    import torch

    builders = {
        "tiny-smolvla": _tiny_smolvla,
        "tiny-pi0": _tiny_pi0,
        "scratch-mini-smolvla": _scratch_mini_smolvla,
        "scratch-small-smolvla": _scratch_small_smolvla,
    }
    if name not in builders:
        raise BackboneError(f"unknown tiny backbone {name!r}; choose one of {', '.join(TINY_NAMES)}")
    path = Path(path)
    work = path.with_name(path.name + f".building-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with torch.random.fork_rng():  # the caller's RNG is untouched: a run that builds draws as one that loads
        torch.manual_seed(seed)
        policy, pre, post = builders[name](work)
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
