"""Training speed: our loop against `lerobot-train` with its own peft LoRA, in one run.

Same tiny SmolVLA (the cached `tiny-smolvla` backbone), same dataset, same batch size,
same LoRA targets (lerobot's SmolVLA default: the action expert's q/v projections and the
action heads) and rank, the same dataloader workers on both sides (none on a CPU, 4 on a
GPU: `--workers`). Ours reads its samples from
the frame cache (train/frame_cache.py; built first, its time printed apart), lerobot's
decodes them per sample. Steps/s is measured after
the first logging window (warm-up) from each trainer's own step log: our metrics.jsonl
step times, lerobot's log-line timestamps. Prints a ratio (ours / lerobot; goal >= 1.2).

    .venv/bin/python benchmarks/bench_train.py [--steps 300] [--batch 4] [--dataset DIR]
    python benchmarks/bench_train.py --device cuda --steps 600 --no-cpu-time   # the same on a GPU

lerobot-train's log stamps whole seconds, so its rate needs 10 s of logged steps or more
(else it prints why and gives nan).

With no --dataset it writes a small synthetic LeRobot v3 dataset (2 tasks x 3 episodes).

Study mode (`--study-policy`): what one training step of `piper-ws study` costs per
strategy on this machine: the in-house `mini-smolvla` (built by `piper-ws pretrain`) with
each `mini-*` preset's ranks and scope, batch 8, 96x128 images, the loop's fused AdamW;
the strategies' steps interleaved in one process, so the ratios hold on a shared CPU; and
one AdamW step on each strategy's parameters, fused against torch's per-tensor loop.

    .venv/bin/python benchmarks/bench_train.py --study-policy --steps 12   # PIPER_WS_MODEL_CACHE as pretrain's

GPU mode (`--gpu`): a SmolVLA-sized architecture with random weights (the real
SmolVLM2-500M shapes, 16 VLM layers), steps/s and peak memory per strategy (full,
LoRA r=128, LoRA-SP r=128) at batch 32 on synthetic batches, and the latency of one action
chunk at batch 1 (LoRA-SP on its dense and auto inference paths). `benchmarks/gpu_suite.sh`
runs every GPU figure in one command.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import resource
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
    strategy: str,
    adapter: dict,
    dataset: Path,
    steps: int,
    batch: int,
    log_every: int,
    cache: str,
    out: Path,
    device: str = "cpu",
    workers: int = 0,
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
        device=device,
        num_workers=workers,
    )
    run_training(cfg, out / f"ours-{strategy}")
    windows = read_metrics(out / f"ours-{strategy}", kind="train")[1:]  # drop the warm-up window
    seconds = sum(log_every / w["steps_per_s"] for w in windows)
    return len(windows) * log_every / seconds


def lerobot(
    dataset: Path,
    policy_dir: Path,
    steps: int,
    batch: int,
    log_every: int,
    r: int,
    out: Path,
    device: str = "cpu",
    workers: int = 0,
) -> float:
    exe = Path(sys.executable).parent / "lerobot-train"
    command = [
        str(exe),
        f"--dataset.repo_id=local/{dataset.name}",
        f"--dataset.root={dataset}",
        f"--policy.path={policy_dir}",
        "--policy.push_to_hub=false",
        f"--policy.device={device}",
        "--wandb.enable=false",
        f"--output_dir={out / 'lerobot'}",
        f"--steps={steps}",
        f"--batch_size={batch}",
        f"--log_freq={log_every}",
        "--save_checkpoint=false",
        f"--num_workers={workers}",
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
    if t1 - t0 < 10:  # its log stamps whole seconds: a shorter span is not a rate
        print(
            f"lerobot-train logged steps {s0}-{s1} within {t1 - t0:.0f} s, too short to time at its "
            "1 s resolution: give more --steps",
            file=sys.stderr,
        )
        return math.nan
    return (s1 - s0) / (t1 - t0)


def build_frame_cache(dataset: Path) -> float:
    """Seconds to build our loop's frame cache of `dataset` (0 when it is already there)."""
    from lerobot.datasets import LeRobotDatasetMetadata, lerobot_dataset

    from train.config import TrainConfig
    from train.frame_cache import FrameCache

    t = time.perf_counter()
    meta = LeRobotDatasetMetadata(f"local/{dataset.name}", root=dataset)
    backend = lerobot_dataset.get_safe_default_video_backend()  # the one the loop's datasets use
    FrameCache.open_or_build(dataset, meta, backend, max_gb=TrainConfig.frame_cache_gb)
    return time.perf_counter() - t


def child_cpu_seconds(command: list[str]) -> tuple[float, str]:
    """(CPU seconds, output) of one trainer run in its own process. CPU time, not wall time:
    the machine is shared, and other jobs stretch wall time but not the work done."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{command[:3]} failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, proc.stdout + proc.stderr


def cpu_steps_per_s(make_command, steps: int) -> float:
    """Steps per CPU second from two runs (steps and 2 x steps): the difference cancels start-up
    (imports, model build, dataset open), as the step log's first window does for wall time."""
    short, _ = child_cpu_seconds(make_command(steps))
    long, _ = child_cpu_seconds(make_command(2 * steps))
    return steps / max(long - short, 1e-9)


def cpu_comparison(args) -> None:
    from train.backbones import resolve_backbone

    out = Path(tempfile.mkdtemp(prefix="bench_train-"))
    dataset = Path(args.dataset) if args.dataset else make_dataset(out / "datasets" / "bench_tasks")
    cache = str(out / "backbones") if args.fresh_backbone else None
    policy_dir = resolve_backbone("tiny-smolvla", cache).path
    device, workers = args.device or "cpu", args.workers
    if workers is None:
        workers = 0 if device == "cpu" else 4  # ours' default by device (train.data.loader_workers)
    print(
        f"tiny-smolvla at {policy_dir}; dataset {dataset}; batch {args.batch}; {args.steps} steps; r {args.r}; "
        f"trainable scope on both sides: lerobot's SmolVLA default (action expert q/v + action heads), "
        f"VLM and vision frozen; device {device}, {workers} dataloader workers on both sides"
    )
    load = os.getloadavg()
    t = time.perf_counter()
    built = build_frame_cache(dataset)
    print(f"frame cache (our loop's decoded frames, once per dataset, not in the rates below): {built:.1f} s")
    where = dict(device=device, workers=workers)
    lora = {"r": args.r, "lora_alpha": args.r}
    ours_lora = ours("lora", lora, dataset, args.steps, args.batch, args.log_every, cache, out, **where)
    ours_sp = ours(
        "lora_sp", {"r": args.r}, dataset, args.steps, args.batch, args.log_every, cache, out, **where
    )
    theirs = lerobot(dataset, policy_dir, args.steps, args.batch, args.log_every, args.r, out, **where)
    print("wall clock, from each trainer's step log (first window dropped):")
    print(f"  ours    LoRA r={args.r}:    {ours_lora:.3f} steps/s")
    print(f"  ours    LoRA-SP r={args.r}: {ours_sp:.3f} steps/s")
    print(f"  lerobot LoRA r={args.r}:    {theirs:.3f} steps/s (lerobot-train --peft)")
    print(
        f"  ratio ours/lerobot (LoRA): {ours_lora / theirs:.2f}   (LoRA-SP/lerobot LoRA: {ours_sp / theirs:.2f})"
    )
    if not args.no_cpu_time and device == "cpu":
        me = [sys.executable, __file__]
        common = ["--dataset", str(dataset), "--batch", str(args.batch), "--r", str(args.r)]
        common += ["--log-every", str(args.log_every)] + (["--fresh-backbone"] if args.fresh_backbone else [])

        def ours_cmd(strategy):
            return lambda steps: [*me, "--child", f"ours-{strategy}", "--steps", str(steps), *common]

        def lerobot_cmd(steps):
            return [*me, "--child", "lerobot", "--steps", str(steps), *common]

        rates = {
            "ours LoRA": cpu_steps_per_s(ours_cmd("lora"), args.steps),
            "lerobot LoRA": cpu_steps_per_s(lerobot_cmd, args.steps),
            "ours LoRA-SP": cpu_steps_per_s(ours_cmd("lora_sp"), args.steps),
        }
        print("CPU time (runs of N and 2N steps in their own processes, the difference):")
        for name, rate in rates.items():
            print(f"  {name:13} {rate:.3f} steps per CPU second")
        print(
            f"  ratio ours/lerobot (LoRA): {rates['ours LoRA'] / rates['lerobot LoRA']:.2f} (goal >= 1.2)   "
            f"(LoRA-SP/lerobot LoRA: {rates['ours LoRA-SP'] / rates['lerobot LoRA']:.2f})"
        )
    print(
        f"load average before: {load[0]:.1f}, after: {os.getloadavg()[0]:.1f} (shared machine); "
        f"total {time.perf_counter() - t:.0f} s"
    )


def child_run(args) -> None:
    """One trainer run (for CPU timing in its own process)."""
    from train.backbones import resolve_backbone

    out = Path(tempfile.mkdtemp(prefix="bench_train-child-"))
    cache = str(Path(args.dataset).parent.parent / "backbones") if args.fresh_backbone else None
    if args.child == "lerobot":
        policy_dir = resolve_backbone("tiny-smolvla", cache).path
        lerobot(Path(args.dataset), policy_dir, args.steps, args.batch, args.log_every, args.r, out)
        return
    strategy = args.child.removeprefix("ours-")
    adapter = {"r": args.r, "lora_alpha": args.r} if strategy == "lora" else {"r": args.r}
    ours(strategy, adapter, Path(args.dataset), args.steps, args.batch, args.log_every, cache, out)


# lerobot's SmolVLA default scope (action expert + action heads), used for every strategy
# so that "full" trains exactly the layers the adapters wrap: a fair comparison.
SCOPES = {"expert": "action", "all": "vision,language,action"}


def build_policy(shape: str, device: str):
    """A policy with `shape`'s real layer sizes and random weights (nothing downloaded):
    smolvla (SmolVLM2-500M + expert), pi0 (PaliGemma 2B + Gemma 300M expert), or the tiny
    backbones (tiny-smolvla, tiny-pi0) that check this code path on a CPU."""
    import torch

    torch.manual_seed(0)
    if shape == "smolvla":
        from train.backbones import smolvla_sized_policy

        return smolvla_sized_policy().to(device), "smolvla"
    if shape == "pi0":
        from lerobot.policies.pi0.configuration_pi0 import PI0Config
        from lerobot.policies.pi0.modeling_pi0 import PI0Policy

        from train.scratch_models import default_features

        inputs, outputs = default_features()
        config = PI0Config(input_features=inputs, output_features=outputs, device=device, push_to_hub=False)
        return PI0Policy(config), "pi0"
    from train.backbones import load_base_policy, resolve_backbone

    policy = load_base_policy(resolve_backbone(shape), train_expert_only=False, freeze_vision_encoder=False)
    return policy.to(device), shape.removeprefix("tiny-")


def strategies(compiled: bool) -> dict:
    from train.adapters import FullFinetuneConfig, LoraConfig, LoraSPConfig

    out = {
        "full": FullFinetuneConfig(scope="targets"),
        "lora128": LoraConfig(r=128, lora_alpha=128),
        "lora_sp128": LoraSPConfig(r=128),
    }
    if compiled:
        out["lora_sp128_compiled"] = LoraSPConfig(r=128, compile=True)
    return out


def gpu_strategies(args) -> None:
    """Steps/s and peak memory per strategy at one trainable scope, per shape; ratios to LoRA."""
    import torch

    device = args.device
    where = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (code-path check, not a GPU figure)"
    print(f"{where}; batch {args.batch}; bf16 autocast; {args.steps} timed steps; scope {args.scope}")
    for shape in args.shapes:
        rows = {}
        for name, adapter_config in strategies(args.compiled).items():
            if args.strategies and name not in args.strategies:
                continue
            for whole in (False, True) if args.compile_model else (False,):
                label = name + (" +compile(model)" if whole else "")
                try:
                    rows[label] = time_strategy(shape, adapter_config, args, whole)
                except Exception as error:  # noqa: BLE001 -- compiling can fail on a new machine
                    if not (whole or "compiled" in label):
                        raise
                    print(f"{shape:13} {label:32} failed, left out: {error!r}"[:3000], flush=True)
                    continue
                rate, peak, counts, scope, latency = rows[label]
                print(
                    f"{shape:13} {label:32} {rate:7.2f} steps/s  peak {peak:6.2f} GiB  trainable "
                    f"{counts.trainable / 1e6:7.2f}M = {counts.percent:5.2f}% of {counts.total / 1e6:.0f}M  "
                    "chunk "
                    + ", ".join(f"{path} {ms:.1f} ms" for path, ms in latency.items())
                    + f"  [{scope}]",
                    flush=True,
                )
                if device == "cuda":
                    torch.cuda.empty_cache()
        lora = rows.get("lora128")
        for label, (rate, peak, _, _, latency) in rows.items():
            if label.startswith("lora_sp") and lora:
                print(
                    f"{shape:13} {label} / lora128: time {lora[0] / rate:.2f}x (goal <= 1.15), "
                    f"peak memory {peak / lora[1]:.2f}x (goal <= 1.05), action-chunk latency "
                    + ", ".join(f"{path} {ms / lora[4]['dense']:.2f}x" for path, ms in latency.items())
                    + " (goal <= 1.0)"
                )
        print(f"{shape:13} one control period at 30 Hz: 33.3 ms (chunk latency: batch 1, after training)")


def time_strategy(shape: str, adapter_config, args, compile_model: bool):
    import torch

    from train.adapters import apply_adapters

    device = args.device
    policy, preset = build_policy(shape, device)
    handle = apply_adapters(policy, adapter_config, f"{preset}:{SCOPES[args.scope]}")
    groups: dict[str, int] = {}
    for group in handle.groups.values():
        groups[group] = groups.get(group, 0) + 1
    scope = ", ".join(f"{g} {n} layers" for g, n in sorted(groups.items()))
    policy.train()
    vocab = max(m.num_embeddings for m in policy.modules() if isinstance(m, torch.nn.Embedding))
    batch = synthetic_batch(policy.config, args.batch, device, vocab)
    optimizer = torch.optim.AdamW(handle.trainable_parameters(), lr=1e-4)
    forward = torch.compile(policy.forward) if compile_model else policy.forward
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    autocast = bf16_autocast(device)

    def step():
        with autocast:
            loss, _ = forward(dict(batch))
            loss = loss + handle.aux_losses()["total"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):  # warm-up: kernels, allocator, compilation
        step()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    rate = args.steps / (time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    counts = handle.parameter_counts()
    paths = ("dense", "auto") if handle.strategy == "lora_sp" else ("dense",)
    return rate, peak, counts, scope, {path: chunk_latency_ms(policy, handle, args, path) for path in paths}


STUDY_ROWS = ("full", "lora128", "lora_sp")  # the presets `mini-<row>`


def study_policy_steps(args) -> None:
    """ms per training step of the study's policy, per strategy, interleaved rounds (median)."""
    import statistics

    import torch

    from train.adapters import apply_adapters
    from train.backbones import BackboneError, load_base_policy, resolve_backbone
    from train.loop import adapter_config
    from train.presets import get_preset

    try:
        backbone = resolve_backbone("mini-smolvla", download=False)
    except BackboneError as error:
        sys.exit(f"{error} (build it with `piper-ws pretrain`, or set PIPER_WS_MODEL_CACHE)")
    steps, optimizer_ms = {}, {}
    for row in STUDY_ROWS:
        config = get_preset(f"mini-{row}")
        torch.manual_seed(0)
        policy = load_base_policy(backbone, **config.policy)
        handle = apply_adapters(policy, adapter_config(config), config.targets)
        policy.train()
        vocab = max(m.num_embeddings for m in policy.modules() if isinstance(m, torch.nn.Embedding))
        batch = synthetic_batch(policy.config, args.batch, "cpu", vocab, image_size=(96, 128))
        optimizer = torch.optim.AdamW(handle.trainable_parameters(), lr=config.lr, fused=True)

        def step(policy=policy, handle=handle, batch=batch, optimizer=optimizer):
            loss, _ = policy.forward(dict(batch))
            (loss + handle.aux_losses()["total"]).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        step()  # lazily built state out of the timing
        steps[row] = (step, handle.parameter_counts(), [])
        optimizer_ms[row] = adamw_step_ms(handle.trainable_parameters())
    for _ in range(args.steps):
        for step, _, times in steps.values():
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    lora = statistics.median(steps["lora128"][2])
    print(f"mini-smolvla, the study's presets, batch {args.batch}, CPU, {torch.get_num_threads()} threads:")
    for row, (_, counts, times) in steps.items():
        ms = 1000 * statistics.median(times)
        print(
            f"  {row:8} {ms:7.1f} ms/step  {ms / 1000 / lora:5.2f}x lora128   trainable "
            f"{counts.trainable / 1e6:5.2f} M ({counts.percent:.1f}%)   AdamW step: fused "
            f"{optimizer_ms[row]['fused']:.1f} ms, per-tensor loop {optimizer_ms[row]['loop']:.1f} ms"
        )


def adamw_step_ms(params, rounds: int = 7) -> dict[str, float]:
    """Median ms of one AdamW step over `params` (random gradients), fused (as the loop trains)
    and torch's per-tensor loop (its CPU default), alternated round by round."""
    import statistics

    import torch

    copies = {how: [torch.nn.Parameter(p.detach().clone()) for p in params] for how in ("fused", "loop")}
    optimizers = {}
    for how, copy in copies.items():
        for p in copy:
            p.grad = torch.randn_like(p)
        optimizers[how] = torch.optim.AdamW(copy, lr=1e-4, fused=how == "fused", foreach=False)
        optimizers[how].step()  # state built out of the timing
    times = {how: [] for how in optimizers}
    for _ in range(rounds):
        for how, optimizer in optimizers.items():
            start = time.perf_counter()
            optimizer.step()
            times[how].append(1000 * (time.perf_counter() - start))
    return {how: statistics.median(t) for how, t in times.items()}


def bf16_autocast(device: str):
    """bf16 autocast on a GPU (as lab training and inference run there); none on the CPU."""
    import torch

    return torch.autocast(device, dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()


def chunk_latency_ms(policy, handle, args, path: str, iters: int = 10) -> float:
    """Median wall time of one action chunk at batch 1, as in a rollout: eval mode, no grad,
    LoRA-SP on the inference `path` (dense, gathered or auto)."""
    import statistics

    import torch

    handle.set_inference_path(path)
    policy.eval()
    vocab = max(m.num_embeddings for m in policy.modules() if isinstance(m, torch.nn.Embedding))
    batch = synthetic_batch(policy.config, 1, args.device, vocab)
    batch.pop("action")
    autocast = bf16_autocast(args.device)
    times = []
    for _ in range(3 + iters):  # the first three warm up
        if args.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad(), autocast:
            policy.predict_action_chunk(dict(batch))
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[3:])


def synthetic_batch(config, batch: int, device: str, vocab: int = 1000, image_size=(480, 640)) -> dict:
    """What the preprocessor hands the policy: normalised state/action, images in [0,1], tokens."""
    import torch

    out = {
        "observation.state": torch.randn(batch, 7, device=device),
        "action": torch.randn(batch, config.chunk_size, 7, device=device),
        "observation.language.tokens": torch.randint(
            0, min(vocab, 1000), (batch, config.tokenizer_max_length), device=device
        ),
        "observation.language.attention_mask": torch.ones(
            batch, config.tokenizer_max_length, dtype=torch.bool, device=device
        ),
    }
    for cam in ("side", "wrist"):
        out[f"observation.images.{cam}"] = torch.rand(batch, 3, *image_size, device=device)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, help="default 300 (comparison: 10 s of lerobot's log), else 30")
    parser.add_argument("--batch", type=int, help="default 4 (CPU comparison), 32 (--gpu)")
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--dataset", help="a LeRobot v3 dataset dir (default: a synthetic one)")
    parser.add_argument("--fresh-backbone", action="store_true", help="build tiny-smolvla in a temp cache")
    parser.add_argument("--gpu", action="store_true", help="SmolVLA-sized strategies on a GPU (batch 32)")
    parser.add_argument("--no-cpu-time", action="store_true", help="wall-clock comparison only")
    parser.add_argument(
        "--device",
        help="the comparison's device (default cpu); --gpu's (default cuda; cpu checks the code path)",
    )
    parser.add_argument("--workers", type=int, help="comparison: dataloader workers on both sides (0 / 4)")
    parser.add_argument(
        "--shapes",
        nargs="+",
        default=["smolvla", "pi0"],
        choices=["smolvla", "pi0", "tiny-smolvla", "tiny-pi0"],
    )
    parser.add_argument(
        "--scope", default="expert", choices=sorted(SCOPES), help="--gpu: the targeted groups"
    )
    parser.add_argument("--compiled", action="store_true", help="--gpu: also LoRA-SP with compile=True")
    parser.add_argument(
        "--compile-model", action="store_true", help="--gpu: also every strategy under torch.compile"
    )
    parser.add_argument(
        "--strategies", nargs="+", help="--gpu: only these (full, lora128, lora_sp128, lora_sp128_compiled)"
    )
    parser.add_argument(
        "--study-policy", action="store_true", help="ms per step of the study's policy per strategy (CPU)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.steps is None:
        args.steps = 30 if args.gpu or args.study_policy or args.child else 300
    if args.batch is None:
        args.batch = 32 if args.gpu else 8 if args.study_policy else 4
    if args.child:
        child_run(args)
    elif args.study_policy:
        study_policy_steps(args)
    elif args.gpu:
        args.device = args.device or "cuda"
        gpu_strategies(args)
    else:
        cpu_comparison(args)


if __name__ == "__main__":
    main()
