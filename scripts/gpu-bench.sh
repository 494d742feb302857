#!/usr/bin/env bash
# The GPU check of issue 13, in one call, on a machine with an NVIDIA GPU, Node 20, PyTorch with CUDA and
# this repository installed (npm ci). Sonde runs on ONNX Runtime's WebGPU provider through the
# asynchronous backend (values stay in ORT's device buffers within a graph run; only what is read comes
# back), PyTorch on CUDA, in the same run:
#   bash scripts/gpu-bench.sh [python]      # writes BENCHMARKS-gpu.md and prints the reference tests
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${1:-python3}"
export SONDE_DEVICE=webgpu SONDE_BACKEND=async
"$PYTHON" -c 'import sys, torch
if not torch.cuda.is_available(): sys.exit("gpu-bench: PyTorch sees no CUDA device (run this on the GPU machine)")
print("torch", torch.__version__, torch.cuda.get_device_name(0))'
# Correctness on the device first: every architecture against its float64 reference.
npx vitest run --project async-backend test/models/reference.test.ts
npx tsx bench/main.ts --seq 128,512 --reps 5 --torch-threads 1 --torch-device cuda --python "$PYTHON" --out BENCHMARKS-gpu.md
echo "wrote BENCHMARKS-gpu.md"
