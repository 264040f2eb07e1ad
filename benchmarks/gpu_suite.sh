#!/usr/bin/env bash
# Issue 12's GPU figures in one command, on a CUDA machine with the project's Python
# packages (its .venv, or any Python with torch, peft, transformers and lerobot):
#
#   bash benchmarks/gpu_suite.sh [OUT_DIR]          # about 11 minutes on an H200
#
# Each benchmark runs under its own time limit and writes OUT_DIR/<name>.log as it goes, so
# that one that fails or runs long leaves the others' figures. Most important first; the
# compiled variants last, since compiling a dozen layer shapes takes minutes (on an H200,
# 2026-12-04, the compiled row did not finish inside the first suite's 170 s).
# DEVICE=cpu with SMALL=1 runs the same steps at toy sizes: a check of the script itself.
set -u
out=${1:-gpu-figures}
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

step() { # name, time limit (s), benchmark and its arguments
  local name=$1 limit=$2
  shift 2
  echo "== $name ($(date -u +%T), limit ${limit}s): $*"
  timeout "$limit" "$py" "$@" 2>&1 | grep -v "^WARNING:root:Vision embedding\|Device 'None'" | tee "$out/$name.log"
  echo "== $name rc=${PIPESTATUS[0]}"
}

if [ "${SMALL:-0}" = 1 ]; then
  shapes=(tiny-smolvla) pi0_shapes=(tiny-pi0) layers=2 pi0_layers=1 batch=2 pi0_batch=1 iters=3 steps=2 loop_steps=40
else
  shapes=(smolvla) pi0_shapes=(pi0) layers=16 pi0_layers=8 batch=32 pi0_batch=8 iters=20 steps=20 loop_steps=600
fi
{ nvidia-smi 2>&1 | head -15; "$py" -c "import torch; print('torch', torch.__version__)"; } > "$out/machine.txt"

# SmolVLA-sized policy, random weights, bf16, batch 32: full / LoRA / LoRA-SP at one
# trainable scope; steps/s, peak memory, action-chunk latency at batch 1 (about 150 s)
step train_smolvla 180 benchmarks/bench_train.py --gpu --device "$device" --shapes "${shapes[@]}" \
  --batch "$batch" --steps "$steps" --strategies full lora128 lora_sp128
# the layer stacks at SmolVLA's width: training time and memory, inference latency
step adapters_smolvla 120 benchmarks/bench_adapters.py --device "$device" --shape smolvla \
  --layers "$layers" --batch "$batch" --iters "$iters" --skip smolvla
# our training loop against lerobot-train --peft, tiny SmolVLA, the same LoRA, 4 dataloader
# workers on both sides: steps/s and the ratio (goal >= 1.2)
step loop_vs_lerobot 200 benchmarks/bench_train.py --device "$device" --steps "$loop_steps" --no-cpu-time
# LoRA-SP with compile=True on the SmolVLA-sized policy
step train_smolvla_compiled 150 benchmarks/bench_train.py --gpu --device "$device" \
  --shapes "${shapes[@]}" --batch "$batch" --steps "$steps" --compiled --strategies lora_sp128_compiled
# the layer stacks at pi0's width
step adapters_pi0 90 benchmarks/bench_adapters.py --device "$device" --shape pi0 \
  --layers "$pi0_layers" --batch "$pi0_batch" --iters "$iters" --skip smolvla
# not in the 9 minutes, each its own call: the stacks compiled, the pi0-sized policy
if [ "${MORE:-0}" = 1 ]; then
  step adapters_compiled 300 benchmarks/bench_adapters.py --device "$device" --shape smolvla \
    --layers "$layers" --batch "$batch" --iters "$iters" --skip smolvla --compiled
  step train_pi0 300 benchmarks/bench_train.py --gpu --device "$device" --shapes "${pi0_shapes[@]}" \
    --batch "$pi0_batch" --steps "$((steps / 2))"
fi
