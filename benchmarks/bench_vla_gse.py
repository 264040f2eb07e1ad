"""VLA-GSE against LoRA at equal trainable parameters: training step (forward + backward)
time and peak memory on bench_adapters' SmolVLA-shaped stack of linear layers.

VLA-GSE is the paper's r=16 over 8 experts (one generalist, top-2 of 7); LoRA gets the rank
whose count matches it. Step times are medians of interleaved steps in one process (a
shared machine loads both alike); peak memory comes from one child process per variant.

    .venv/bin/python benchmarks/bench_vla_gse.py [--layers 2 --batch 2 --device cpu]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_adapters import (  # noqa: E402
    TOKENS_PER_SAMPLE,
    Interleaved,
    autocast,
    build_stack,
    cpu_memory_baseline_kb,
    peak_memory_mb,
    sync,
)

TARGETS = "re:_proj$"
VARIANTS = ("lora", "vla_gse", "vla_gse_fold")  # fold: W reduced once, no frozen-expert pass


def gse_config(offset: str = "subtract"):
    from train.adapters import VlaGseConfig

    return VlaGseConfig(r=16, num_experts=8, init_offset=offset)


def equal_lora_rank(model) -> int:
    """The LoRA rank whose trainable count is closest to VLA-GSE's on `model`."""
    from torch import nn

    cfg, gse, per_rank = gse_config(), 0, 0
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and name.endswith("_proj"):
            gse += cfg.trainable_per_layer(module.in_features, module.out_features)
            per_rank += module.in_features + module.out_features
    return round(gse / per_rank)


class Variant:
    def __init__(self, name: str, args):
        import time

        import torch

        from train.adapters import LoraConfig, apply_adapters

        self.name, self.device, self.time = name, args.device, time.perf_counter
        self.model = build_stack(args.layers, args.device)
        rank = equal_lora_rank(self.model)
        gse = {"vla_gse": "subtract", "vla_gse_fold": "fold"}
        config = gse_config(gse[name]) if name in gse else LoraConfig(r=rank, lora_alpha=rank)
        self.handle = apply_adapters(self.model, config, TARGETS)
        self.params = self.handle.trainable_parameters()
        self.x = torch.randn(args.batch, TOKENS_PER_SAMPLE, 960, device=args.device)

    def step(self) -> float:
        sync(self.device)
        start = self.time()
        with autocast(self.device):
            loss = self.model(self.x).float().square().mean() + self.handle.aux_losses()["total"]
        loss.backward()
        sync(self.device)
        for p in self.params:
            p.grad = None
        return self.time() - start


def child(args) -> None:
    import torch  # noqa: F401  (imports are not the variant's memory)

    import train.adapters  # noqa: F401

    baseline_kb = cpu_memory_baseline_kb()
    variant = Variant(args.child, args)
    if args.device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
    for _ in range(2):
        variant.step()
    counts = variant.handle.parameter_counts()
    print(json.dumps({"peak_mb": peak_memory_mb(args.device, baseline_kb), "trainable": counts.trainable}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    base = [
        sys.executable,
        __file__,
        "--device",
        args.device,
        "--layers",
        str(args.layers),
        "--batch",
        str(args.batch),
    ]
    memory = {
        v: json.loads(subprocess.run([*base, "--child", v], capture_output=True, text=True).stdout)
        for v in VARIANTS
    }  # first, while this process is small: a child starts from its parent's peak RSS
    variants = [Variant(name, args) for name in VARIANTS]
    timed = Interleaved(variants, warmup=2, iters=args.iters)
    print(f"device {args.device}, {args.layers} layers, batch {args.batch} x {TOKENS_PER_SAMPLE} tokens")
    print(f"{'variant':12} {'trainable':>10} {'step ms':>9} {'peak MB':>9}")
    for v in variants:
        m = memory[v.name]
        print(f"{v.name:12} {m['trainable']:>10,} {timed.ms(v.name):>9.1f} {m['peak_mb']:>9.1f}")
    for name in VARIANTS[1:]:
        print(
            f"{name} / lora: time x{timed.ratio(name, 'lora'):.2f}, "
            f"memory x{memory[name]['peak_mb'] / memory['lora']['peak_mb']:.2f}"
        )


if __name__ == "__main__":
    main()
