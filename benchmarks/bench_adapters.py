"""Adapter cost: LoRA-SP r=128 against peft LoRA r=128 and the frozen base.

1. Training step (forward + backward) time and peak memory on a stack of linear layers
   shaped like SmolVLA's language model (d=960, k/v 320, MLP 2560), at SmolVLA's token
   counts (2 cameras x 64 image tokens + ~48 language + state, plus 50 action tokens).
2. The same on a tiny SmolVLA (train.backbones), when that builder is available.
3. Inference latency (eval, no grad): LoRA-SP dense vs gathered at the measured active
   rank, against LoRA r=128, per batch size.

Each variant runs in its own process so that peak memory (CUDA max allocated, or CPU
peak RSS above the post-import baseline) is its own. Goals: a LoRA-SP training step within
1.15x LoRA's time and 1.05x its memory; LoRA-SP inference no slower than LoRA at active
rank <= 64.

    .venv/bin/python benchmarks/bench_adapters.py                 # CPU, small
    python benchmarks/bench_adapters.py --device cuda --layers 16 --batch 32 --compiled --skip smolvla
    python benchmarks/bench_adapters.py --device cuda --layers 8 --batch 8 --shape pi0 --compiled --skip smolvla
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (d_model, k/v width, MLP width, tokens per sample) of the language model each policy adapts
SHAPES = {
    "smolvla": (960, 320, 2560, 2 * 64 + 48 + 1 + 50),  # SmolVLM2-500M; 2 cameras x 64 tokens
    "pi0": (2048, 256, 16384, 3 * 256 + 48 + 50),  # PaliGemma's Gemma 2B; 3 cameras x 256 tokens
}
D_MODEL, D_KV, D_MLP, TOKENS_PER_SAMPLE = SHAPES["smolvla"]


def use_shape(name: str) -> None:
    global D_MODEL, D_KV, D_MLP, TOKENS_PER_SAMPLE
    D_MODEL, D_KV, D_MLP, TOKENS_PER_SAMPLE = SHAPES[name]


PAPER_ACTIVE_RANK = 60  # SmolVLA's LoRA-SP active rank in the paper's Table I


def build_stack(layers: int, device: str):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = nn.Linear(D_MODEL, D_MODEL, bias=False)
            self.k_proj = nn.Linear(D_MODEL, D_KV, bias=False)
            self.v_proj = nn.Linear(D_MODEL, D_KV, bias=False)
            self.o_proj = nn.Linear(D_MODEL, D_MODEL, bias=False)
            self.gate_proj = nn.Linear(D_MODEL, D_MLP, bias=False)
            self.up_proj = nn.Linear(D_MODEL, D_MLP, bias=False)
            self.down_proj = nn.Linear(D_MLP, D_MODEL, bias=False)

        def forward(self, x):
            # attention's matmuls without the softmax: every projection is on the path
            kv = torch.cat([self.k_proj(x), self.v_proj(x)], dim=-1).mean(dim=-1, keepdim=True)
            x = x + self.o_proj(self.q_proj(x) * torch.sigmoid(kv))
            return x + self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))

    torch.manual_seed(0)
    model = nn.Sequential(*[Block() for _ in range(layers)]).to(device)
    model.requires_grad_(False)
    return model


def adapter_config(variant: str):
    from train.adapters import LoraConfig, LoraSPConfig

    if variant == "lora":
        return LoraConfig(r=128, lora_alpha=128)
    if variant.startswith("lora_sp"):
        return LoraSPConfig(r=128, eta=0.9, compile=variant.endswith("compiled"))
    raise ValueError(variant)


def bias_router_to_rank(handle, active_rank: int) -> None:
    """Emulate a trained router: a decaying score profile whose energy rule keeps about
    `active_rank` of 128 vectors (the router's input term stays, so k varies per token)."""
    import torch

    for layer in handle.modules.values():
        last = layer.router.net[-1]
        with torch.no_grad():
            last.weight.mul_(0.05)
            decay = torch.linspace(0, 1, layer.max_rank, device=last.bias.device)
            last.bias.copy_(4.0 - (4.0 + 6.0 * (PAPER_ACTIVE_RANK / active_rank)) * decay**2)
            torch.nn.init.normal_(layer.lora_B, std=1e-3)


def use_reference_path(handle, variant: str) -> None:
    """`lora_sp_reference`: the kept reference implementation, to show what the fused one gains."""
    if variant == "lora_sp_reference":
        for layer in handle.modules.values():
            layer.implementation = "reference"


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def cpu_memory_baseline_kb() -> int:
    """Where a CPU variant's memory starts, for `peak_memory_mb`: on Linux the process's
    high-water mark is reset first (/proc/self/clear_refs), so the peak is the variant's own.
    Without the reset, torch's imports peak above a small variant's whole run (its figure
    came out 0 MB)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _proc_status_kb("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _proc_status_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def peak_memory_mb(device: str, baseline_kb: int) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        peak_kb = _proc_status_kb("VmHWM")
    except OSError:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak_kb - baseline_kb) / 1024


def autocast(device: str):
    import torch

    if device == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


class TrainVariant:
    """One model + adapter strategy and a fwd+bwd step on a fixed batch."""

    def __init__(self, variant: str, args, batch: int):
        import torch

        self.name, self.device = variant, args.device
        self.model = build_stack(args.layers, args.device)
        self.handle = None
        if variant != "frozen":
            from train.adapters import apply_adapters

            self.handle = apply_adapters(self.model, adapter_config(variant), "re:_proj$")
            use_reference_path(self.handle, variant)
        self.params = self.handle.trainable_parameters() if self.handle else []
        self.x = torch.randn(batch, TOKENS_PER_SAMPLE, D_MODEL, device=args.device)
        self.x.requires_grad_(True)  # so that the frozen base also runs a full backward

    def step(self) -> float:
        sync(self.device)
        start = time.perf_counter()
        with autocast(self.device):
            loss = self.model(self.x).float().square().mean()
            if self.handle:
                loss = loss + self.handle.aux_losses()["total"]
        loss.backward()
        sync(self.device)
        elapsed = time.perf_counter() - start
        self.x.grad = None
        for p in self.params:
            p.grad = None
        return elapsed


class InferVariant:
    def __init__(self, variant: str, args, batch: int):
        import torch

        from train.adapters import apply_adapters

        self.name, self.device = variant, args.device
        self.model = build_stack(args.layers, args.device)
        self.handle = apply_adapters(self.model, adapter_config(variant), "re:_proj$")
        if variant.startswith("lora_sp"):
            bias_router_to_rank(self.handle, PAPER_ACTIVE_RANK)
            path = variant.rsplit("_", 1)[-1]
            self.handle.set_inference_path(path if path in ("gathered", "auto") else "dense")
        if variant.endswith("compiled"):
            self.handle.set_inference_path("dense")
        self.model.eval()
        self.x = torch.randn(batch, TOKENS_PER_SAMPLE, D_MODEL, device=args.device)

    def step(self) -> float:
        import torch

        sync(self.device)
        start = time.perf_counter()
        with torch.no_grad(), autocast(self.device):
            self.model(self.x)
        sync(self.device)
        return time.perf_counter() - start


class Interleaved:
    """Step times of rounds in which every variant runs once, back to back, so that load
    from other processes and the machine's drift in speed fall on all of them alike."""

    def __init__(self, variants: list, warmup: int, iters: int) -> None:
        for _ in range(warmup):
            for v in variants:
                v.step()
        self.times: dict[str, list[float]] = {v.name: [] for v in variants}
        for _ in range(iters):
            for v in variants:
                self.times[v.name].append(v.step())

    def ms(self, name: str) -> float:
        """Median ms per step."""
        return 1000 * statistics.median(self.times[name])

    def ratio(self, name: str, reference: str) -> float:
        """Median over rounds of name's time / reference's time in the same round: a paired
        ratio, steadier than a ratio of medians when the machine's speed moves between rounds."""
        return statistics.median(a / b for a, b in zip(self.times[name], self.times[reference], strict=True))


def child_memory(args) -> dict:
    """Peak memory of a few training steps of one variant, alone in this process."""
    import torch

    baseline_kb = cpu_memory_baseline_kb()
    variant = TrainVariant(args.variant, args, args.batch)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(2):
        variant.step()
    out = {"peak_mb": peak_memory_mb(args.device, baseline_kb)}
    if variant.handle is not None:
        out["trainable"] = variant.handle.parameter_counts().trainable
        if args.variant.startswith("lora_sp"):
            out["active_rank"] = variant.handle.active_rank().overall
    return out


def run_child(variant: str, args) -> dict | None:
    """The child's figures, or None (its error printed) so that one failing variant, say a
    compiled one on a new GPU, does not cost the others' figures."""
    cmd = [sys.executable, __file__, "--child", "--variant", variant, "--device", args.device]
    cmd += ["--layers", str(args.layers), "--batch", str(args.batch), "--shape", args.shape]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if result.returncode != 0:
        print(f"memory/{variant} failed, left out:\n{result.stderr[-3000:]}", flush=True)
        return None
    row = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"  measured alone: {variant} peak {row['peak_mb']:.0f} MB", flush=True)  # progress
    return row


def report_training(args) -> None:
    tokens = args.batch * TOKENS_PER_SAMPLE
    print(
        f"\n## training step (fwd+bwd), {args.layers} blocks d={D_MODEL}/{D_MLP}, batch {args.batch} x "
        f"{TOKENS_PER_SAMPLE} tokens = {tokens}, {args.device}"
    )
    names = ("frozen", "lora", "lora_sp", "lora_sp_reference") + (
        ("lora_sp_compiled",) if args.compiled else ()
    )
    rows = {v: row for v in names if (row := run_child(v, args)) is not None}
    if not {"lora", "lora_sp"} <= rows.keys():
        raise SystemExit("no LoRA-SP / LoRA training figures: a reference variant failed (above)")
    timed = Interleaved([TrainVariant(v, args, args.batch) for v in rows], args.warmup, args.iters)
    print(f"{'variant':<17} {'ms/step':>9} {'peak MB':>9} {'trainable':>11} {'active k':>9}")
    for variant, row in rows.items():
        print(
            f"{variant:<17} {timed.ms(variant):>9.1f} {row['peak_mb']:>9.0f} {row.get('trainable', 0):>11,} "
            f"{row.get('active_rank', float('nan')):>9.1f}"
        )
    mem_ratio = rows["lora_sp"]["peak_mb"] / rows["lora"]["peak_mb"]
    print(
        f"LoRA-SP / LoRA: time {timed.ratio('lora_sp', 'lora'):.2f}x (goal <= 1.15), "
        f"memory {mem_ratio:.2f}x (goal <= 1.05)"
    )
    if "lora_sp_reference" in rows:
        print(
            f"LoRA-SP reference path / LoRA: time {timed.ratio('lora_sp_reference', 'lora'):.2f}x, "
            f"memory {rows['lora_sp_reference']['peak_mb'] / rows['lora']['peak_mb']:.2f}x"
        )
    if "lora_sp_compiled" in rows:
        mem_ratio = rows["lora_sp_compiled"]["peak_mb"] / rows["lora"]["peak_mb"]
        print(
            f"LoRA-SP compiled / LoRA: time {timed.ratio('lora_sp_compiled', 'lora'):.2f}x, "
            f"memory {mem_ratio:.2f}x"
        )
    if "frozen" in rows:
        print(
            f"LoRA / frozen: time {timed.ratio('lora', 'frozen'):.2f}x, "
            f"memory {rows['lora']['peak_mb'] / rows['frozen']['peak_mb']:.2f}x"
        )


# aten ops that launch no kernel on a GPU: views, allocations, no-op casts
NO_KERNEL = re.compile(
    r"aten::(t|reshape|view|_unsafe_view|slice|select|unbind|split|expand|unsqueeze|squeeze|"
    r"transpose|permute|as_strided|alias|detach|lift_fresh|to|_to_copy|empty.*|contiguous)$"
)


def report_op_counts(args) -> None:
    """Operators one adapted layer dispatches per training step (fwd+bwd), counted on meta
    tensors, which take the GPU's code path (torch selection, no NumPy) and compute nothing.
    Where a GPU step is bound by launches, each costs the host ~10-20 us per call. Counted in
    float32: under bf16 autocast each call also casts its weights (LoRA-SP 6 tensors, LoRA 2)."""
    from torch.profiler import ProfilerActivity, profile

    print("\n## operators per adapted layer, one training step (fwd+bwd), as a GPU runs them (eager)")
    counts, adapted = {}, 0
    for variant in ("frozen", "lora", "lora_sp"):
        variant_args = argparse.Namespace(**{**vars(args), "device": "meta", "layers": 1})
        model = TrainVariant(variant, variant_args, 2)
        adapted = len(model.handle.modules) if model.handle else adapted
        model.step()  # lazily built state out of the count
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model.step()
        top = [
            e.name
            for e in prof.events()
            if e.name.startswith("aten::") and not (e.cpu_parent and e.cpu_parent.name.startswith("aten::"))
        ]
        counts[variant] = sum(1 for name in top if not NO_KERNEL.match(name))
    per_layer = {v: (counts[v] - counts["frozen"]) / adapted for v in ("lora", "lora_sp")}
    print(
        f"adapter ops per layer: LoRA {per_layer['lora']:.0f}, LoRA-SP {per_layer['lora_sp']:.0f} "
        f"(the block's own, frozen: {counts['frozen']})"
    )


def report_inference(args) -> None:
    print(
        f"\n## inference latency ms (eval, no grad), {args.layers} blocks, router biased to about "
        f"k={PAPER_ACTIVE_RANK} of 128, {args.device}"
    )
    names = ["lora", "lora_sp_dense", "lora_sp_gathered", "lora_sp_auto"]
    names += ["lora_sp_compiled"] if args.compiled else []
    print(f"{'batch':>5} " + " ".join(f"{n:>17}" for n in names) + f" {'active k':>9} {'gathered/dense':>15}")
    for batch in args.infer_batches:
        variants = [InferVariant(v, args, batch) for v in names]
        if args.compiled:  # compiling can fail on a machine it never ran on: keep the rest
            try:
                variants[-1].step()
            except Exception as error:  # noqa: BLE001
                print(f"{variants[-1].name} failed, left out: {error!r}"[:3000], flush=True)
                variants.pop()
                names = names[: len(variants)]
        timed = Interleaved(variants, args.warmup, args.iters)
        k = variants[1].handle.active_rank().overall
        print(
            f"{batch:>5} "
            + " ".join(f"{timed.ms(n):>17.1f}" for n in names)
            + f" {k:>9.1f} {timed.ratio('lora_sp_gathered', 'lora_sp_dense'):>15.2f}"
        )
        best = min(timed.ratio(n, "lora") for n in names if n.startswith("lora_sp"))
        print(f"      best LoRA-SP / LoRA latency {best:.2f}x (goal <= 1.0 at active rank <= 64)")


class TinySmolVLAVariant:
    """A training step of the tiny SmolVLA (train.backbones) with one strategy."""

    def __init__(self, variant: str, backbone, device: str):
        import torch

        from train.backbones import load_base_policy, load_processors

        self.name, self.device = variant, device
        self.policy = load_base_policy(backbone, train_expert_only=False, freeze_vision_encoder=False)
        self.policy.to(device).train()
        self.handle = None
        if variant == "frozen":
            self.policy.requires_grad_(False)
            self.policy.model.action_out_proj.requires_grad_(True)  # something to backprop into
        else:
            from train.adapters import apply_adapters

            self.handle = apply_adapters(self.policy, adapter_config(variant), "smolvla")
        generator = torch.Generator().manual_seed(0)
        chunk, batch = self.policy.config.chunk_size, 8
        pre, _ = load_processors(backbone, self.policy.config, device=device)
        self.batch = pre(
            {
                "observation.state": torch.randn(batch, 7, generator=generator),
                "action": torch.randn(batch, chunk, 7, generator=generator),
                "action_is_pad": torch.zeros(batch, chunk, dtype=torch.bool),
                "observation.images.side": torch.rand(batch, 3, 64, 80, generator=generator),
                "observation.images.wrist": torch.rand(batch, 3, 64, 80, generator=generator),
                "task": ["open the pot"] * batch,
            }
        )

    def step(self) -> float:
        sync(self.device)
        start = time.perf_counter()
        loss = self.policy.forward(self.batch)[0]
        if self.handle:
            loss = loss + self.handle.aux_losses()["total"]
        loss.backward()
        sync(self.device)
        elapsed = time.perf_counter() - start
        self.policy.zero_grad(set_to_none=True)
        return elapsed


def report_tiny_smolvla(args) -> None:
    import tempfile

    from train.backbones import resolve_backbone

    cache = os.environ.get("PIPER_WS_MODEL_CACHE") or tempfile.mkdtemp(prefix="bench_backbones_")
    backbone = resolve_backbone("tiny-smolvla", cache)
    names = ("frozen", "lora", "lora_sp")
    variants = [TinySmolVLAVariant(v, backbone, args.device) for v in names]
    timed = Interleaved(variants, args.warmup, args.iters)
    print(f"\n## tiny SmolVLA training step (fwd+bwd), batch 8, adapters r=128 on all groups, {args.device}")
    print(f"{'variant':<10} {'ms/step':>9} {'trainable %':>12}")
    for v in variants:
        percent = v.handle.parameter_counts().percent if v.handle else 0.0
        print(f"{v.name:<10} {timed.ms(v.name):>9.1f} {percent:>12.1f}")
    print(f"LoRA-SP / LoRA: time {timed.ratio('lora_sp', 'lora'):.2f}x (goal <= 1.15)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--shape", default="smolvla", choices=sorted(SHAPES), help="layer widths and token count"
    )
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--infer-batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--skip", nargs="*", default=[], choices=["train", "infer", "smolvla"])
    parser.add_argument("--compiled", action="store_true", help="also LoRA-SP with compile=True")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant")
    args = parser.parse_args()
    use_shape(args.shape)
    if args.child:
        print(json.dumps(child_memory(args)))
        return
    print(f"load: {os.getloadavg()}  cpus: {os.cpu_count()}  shape: {args.shape} (the machine may be shared)")
    report_op_counts(args)
    if "train" not in args.skip:
        report_training(args)
    if "infer" not in args.skip:
        report_inference(args)
    if "smolvla" not in args.skip:
        report_tiny_smolvla(args)
    print(f"\nload after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
