"""The offline backbones' models, built from scratch with random weights: SmolVLA at the
tiny (tests), mini (a 2-core CPU) and small (one GPU) sizes, the tiny pi0, and the byte-level
tokenizer they share, trained on the lab's task vocabulary. Each builder writes what its
policy needs (VLM config, tokenizer) into a work directory and returns (policy,
preprocessor, postprocessor); `train.backbones` builds, caches and loads them by name.

Nothing here imports torch or lerobot at module import time.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

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


def default_features():
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


def write_smolvlm(vlm_dir: Path, sizes: dict) -> None:
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
    write_smolvlm(vlm_dir, sizes)
    inputs, outputs = default_features()
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
    inputs, outputs = default_features()
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


# name -> builder(work_dir) -> (policy, preprocessor, postprocessor)
BUILDERS = {
    "tiny-smolvla": _tiny_smolvla,
    "tiny-pi0": _tiny_pi0,
    "scratch-mini-smolvla": _scratch_mini_smolvla,
    "scratch-small-smolvla": _scratch_small_smolvla,
}
