"""Training speed: our loop against `lerobot-train` with its own peft LoRA, in one run.

Same tiny SmolVLA (the cached `tiny-smolvla` backbone), same dataset, same batch size,
same LoRA targets (lerobot's SmolVLA default: the action expert's q/v projections and the
action heads) and rank, no dataloader workers on either side. Steps/s is measured after
the first logging window (warm-up) from each trainer's own step log: our metrics.jsonl
step times, lerobot's log-line timestamps. Prints a ratio (ours / lerobot; goal >= 1).

    .venv/bin/python benchmarks/bench_train.py [--steps 30] [--batch 4] [--dataset DIR]

With no --dataset it writes a small synthetic LeRobot v3 dataset (2 tasks x 3 episodes).

GPU mode (`--gpu`): a SmolVLA-sized architecture with random weights (the real
SmolVLM2-500M shapes, 16 VLM layers), steps/s and peak memory per strategy (full,
LoRA r=128, LoRA-SP r=128) at batch 32 on synthetic batches.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# lerobot's default SmolVLA PEFT targets, anchored, used by both trainers
TARGETS = (
    r"^model\.(vlm_with_expert\.lm_expert\..*\.(q|v)_proj"
    r"|(state_proj|action_in_proj|action_out_proj|action_time_mlp_in|action_time_mlp_out))$"
)


def make_dataset(root: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "train"))
    from train_fixtures import make_dataset as build

    return build(root, frames=24)


def ours(
    strategy: str, adapter: dict, dataset: Path, steps: int, batch: int, log_every: int, cache: str, out: Path
):
    from train.loop import run_training
    from train.metrics import read_metrics
    from train.presets import get_preset

    preset = {"lora": "smolvla-lora8", "lora_sp": "smolvla-lora_sp"}[strategy]
    cfg = get_preset(
        preset,
        dataset=str(dataset),
        steps=steps,
        batch_size=batch,
        adapter=adapter,
        targets="re:" + TARGETS,
        policy={"train_expert_only": True, "freeze_vision_encoder": True},  # as lerobot's base config
        log_every=log_every,
        val_every=10**9,
        checkpoint_every=10**9,
        val_episodes_per_task=0,
        backbone_cache=cache,
        device="cpu",
    )
    run_training(cfg, out / f"ours-{strategy}")
    windows = read_metrics(out / f"ours-{strategy}", kind="train")[1:]  # drop the warm-up window
    seconds = sum(log_every / w["steps_per_s"] for w in windows)
    return len(windows) * log_every / seconds


def lerobot(
    dataset: Path, policy_dir: Path, steps: int, batch: int, log_every: int, r: int, out: Path
) -> float:
    exe = Path(sys.executable).parent / "lerobot-train"
    command = [
        str(exe),
        f"--dataset.repo_id=local/{dataset.name}",
        f"--dataset.root={dataset}",
        f"--policy.path={policy_dir}",
        "--policy.push_to_hub=false",
        "--policy.device=cpu",
        "--wandb.enable=false",
        f"--output_dir={out / 'lerobot'}",
        f"--steps={steps}",
        f"--batch_size={batch}",
        f"--log_freq={log_every}",
        "--save_checkpoint=false",
        "--num_workers=0",
        f"--peft.r={r}",
        f"--peft.lora_alpha={r}",
        f"--peft.target_modules={TARGETS}",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"lerobot-train failed:\n{text[-4000:]}")
    # lines like "INFO 2026-11-23 10:00:00 ot_train.py:... step:10 smpl:40 ..."
    points = []
    for line in text.splitlines():
        m = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d).*\bstep:(\d+)", line)
        if m:
            stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
            points.append((int(m.group(2).replace("K", "000")), stamp))
    if len(points) < 2:
        raise SystemExit(f"could not read lerobot-train's step log:\n{text[-3000:]}")
    (s0, t0), (s1, t1) = points[0], points[-1]  # from the first logged window on, as for ours
    return (s1 - s0) / max(t1 - t0, 1e-9)


def cpu_comparison(args) -> None:
    from train.backbones import resolve_backbone

    out = Path(tempfile.mkdtemp(prefix="bench_train-"))
    dataset = Path(args.dataset) if args.dataset else make_dataset(out / "datasets" / "bench_tasks")
    cache = str(out / "backbones") if args.fresh_backbone else None
    policy_dir = resolve_backbone("tiny-smolvla", cache).path
    print(
        f"tiny-smolvla at {policy_dir}; dataset {dataset}; batch {args.batch}; {args.steps} steps; r {args.r}"
    )
    load = os.getloadavg()
    t = time.perf_counter()
    ours_lora = ours(
        "lora",
        {"r": args.r, "lora_alpha": args.r},
        dataset,
        args.steps,
        args.batch,
        args.log_every,
        cache,
        out,
    )
    ours_sp = ours("lora_sp", {"r": args.r}, dataset, args.steps, args.batch, args.log_every, cache, out)
    theirs = lerobot(dataset, policy_dir, args.steps, args.batch, args.log_every, args.r, out)
    print(f"ours    LoRA r={args.r}:    {ours_lora:.3f} steps/s")
    print(f"ours    LoRA-SP r={args.r}: {ours_sp:.3f} steps/s")
    print(f"lerobot LoRA r={args.r}:    {theirs:.3f} steps/s (lerobot-train --peft)")
    print(
        f"ratio ours/lerobot (LoRA): {ours_lora / theirs:.2f}   (LoRA-SP/lerobot LoRA: {ours_sp / theirs:.2f})"
    )
    print(
        f"load average before: {load[0]:.1f}, after: {os.getloadavg()[0]:.1f}; total {time.perf_counter() - t:.0f} s"
    )


def gpu_strategies(args) -> None:
    """SmolVLA-sized random-weight policy; synthetic batches; steps/s and peak memory."""
    import torch

    from train.adapters import FullFinetuneConfig, LoraConfig, LoraSPConfig

    device = "cuda"
    strategies = {
        "full": FullFinetuneConfig(),
        "lora128": LoraConfig(r=128, lora_alpha=128),
        "lora_sp128": LoraSPConfig(r=128),
    }
    print(
        f"GPU: {torch.cuda.get_device_name(0)}; batch {args.batch}; bf16 autocast; {args.steps} timed steps"
    )
    for name, adapter_config in strategies.items():
        rate, peak, counts = time_strategy(adapter_config, args.batch, args.steps, device)
        print(
            f"{name:11} {rate:6.2f} steps/s  peak {peak:5.1f} GiB  "
            f"trainable {counts.percent:5.1f}% of {counts.total / 1e6:.0f}M",
            flush=True,
        )
        torch.cuda.empty_cache()


def time_strategy(adapter_config, batch_size: int, steps: int, device: str):
    import torch

    from train.adapters import apply_adapters
    from train.backbones import smolvla_sized_policy

    torch.manual_seed(0)
    policy = smolvla_sized_policy()
    handle = apply_adapters(policy, adapter_config, "smolvla")
    policy.to(device).train()
    batch = synthetic_batch(policy.config, batch_size, device)
    optimizer = torch.optim.AdamW(handle.trainable_parameters(), lr=1e-4)
    torch.cuda.reset_peak_memory_stats()

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss, _ = policy(dict(batch))
            loss = loss + handle.aux_losses()["total"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):  # warm-up: kernels, allocator
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    rate = steps / (time.perf_counter() - start)
    return rate, torch.cuda.max_memory_allocated() / 2**30, handle.parameter_counts()


def synthetic_batch(config, batch: int, device: str) -> dict:
    """What the preprocessor hands the policy: normalised state/action, images in [0,1], tokens."""
    import torch

    out = {
        "observation.state": torch.randn(batch, 7, device=device),
        "action": torch.randn(batch, config.chunk_size, 7, device=device),
        "observation.language.tokens": torch.randint(
            0, 1000, (batch, config.tokenizer_max_length), device=device
        ),
        "observation.language.attention_mask": torch.ones(
            batch, config.tokenizer_max_length, dtype=torch.bool, device=device
        ),
    }
    for cam in ("side", "wrist"):
        out[f"observation.images.{cam}"] = torch.rand(batch, 3, 480, 640, device=device)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--dataset", help="a LeRobot v3 dataset dir (default: a synthetic one)")
    parser.add_argument("--fresh-backbone", action="store_true", help="build tiny-smolvla in a temp cache")
    parser.add_argument("--gpu", action="store_true", help="SmolVLA-sized strategies on a GPU (batch 32)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.gpu:
        gpu_strategies(args)
    else:
        cpu_comparison(args)


if __name__ == "__main__":
    main()
