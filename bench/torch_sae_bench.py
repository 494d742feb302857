#!/usr/bin/env python3
"""PyTorch side of Sonde's SAE training benchmark: one SAE trained on the CPU on synthetic rows.

    /usr/bin/python3 bench/torch_sae_bench.py --arch standard --d-in 256 --d-sae 512 --batch 1024 --steps 30
    /usr/bin/python3 bench/torch_sae_bench.py --arch topk --k 32 --threads 1

The training step is scripts/reference/sae_synthetic.py's `train_step` with its `Recipe` defaults
(the default recipe of scratch/sae-recipe.md): inputs scaled so the mean norm is sqrt(d_in)
(expected_average_only_in), forward, loss (MSE summed over d_in and averaged over rows, plus the
L1 term weighted by decoder row norms for standard, the aux-k loss for topk/batchtopk when latents
are dead, the L0 term with its straight-through threshold gradient for jumprelu), backward,
decoder-gradient projection and renormalisation where the decoder is unit norm (topk, batchtopk,
jumprelu), gradient clipping (standard: global norm 1), Adam with the scheduled lr.

Rows come from the synthetic generator (Sharkey et al. features; F = max(512, 2 d_in) features in
d_in dimensions) and are generated and normalised BEFORE timing: a pool of min(steps + warmup, 64)
batches is cycled. Dead-latent tracking runs as in training; in a short run no latent reaches the
dead window, so the aux-k loss is skipped (as it is early in real training) unless --dead-rows 0,
which counts every latent as dead and times the aux loss on every step (its worst case).

Prints one JSON line on stdout:
    {"arch":..., "d_in":..., "d_sae":..., "batch":..., "steps":..., "rows_per_s":..., "threads":...,
     "k":..., "median_step_ms":..., "tried": [{"threads":..., "rows_per_s":...}, ...]}
rows_per_s = timed steps x batch / their total wall time (warm-up steps excluded). Without
--threads it runs once with 1 and once with 2 threads (each in a fresh process, since thread
counts must be fixed before torch loads) and reports the faster. --threads T sets OMP_NUM_THREADS,
MKL_NUM_THREADS and torch.set_num_threads to T, and OPENBLAS_NUM_THREADS to --blas-threads
(default T); OMP_WAIT_POLICY defaults to PASSIVE (see bench/torch_bench.py). Diagnostics go to
stderr, including a warning when the BLAS that torch mapped is the slow reference libblas
(Debian's libblas3) rather than OpenBLAS.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ARCHS = ("standard", "topk", "batchtopk", "jumprelu")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=ARCHS, default="standard")
    ap.add_argument("--d-in", type=int, default=256)
    ap.add_argument("--d-sae", type=int, default=512)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--k", type=int, default=32, help="topk / batchtopk k")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--steps", type=int, default=30, help="timed steps")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch/OpenMP threads (default: try 1 and 2, report the faster)")
    ap.add_argument("--blas-threads", type=int, default=None, help="OpenBLAS threads (default: --threads)")
    ap.add_argument("--dead-rows", type=int, default=None,
                    help="override the recipe's dead window (0: every latent dead, aux-k every step)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


ARGS = parse_args()


def run_children(a):
    """No --threads: one fresh process per thread count; print the best."""
    tried = []
    for t in (1, 2):
        cmd = [sys.executable, os.path.abspath(__file__), "--threads", str(t)]
        for name in ("arch", "d_in", "d_sae", "batch", "k", "warmup", "steps", "blas_threads", "dead_rows", "seed"):
            v = getattr(a, name)
            if v is not None:
                cmd += ["--" + name.replace("_", "-"), str(v)]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True, text=True).stdout
        tried.append(json.loads(out.strip().splitlines()[-1]))
    best = max(tried, key=lambda r: r["rows_per_s"])
    best = dict(best, tried=[{"threads": r["threads"], "rows_per_s": r["rows_per_s"]} for r in tried])
    print(json.dumps(best), flush=True)


if ARGS.threads is None:
    run_children(ARGS)
    sys.exit(0)

BLAS_THREADS = ARGS.blas_threads if ARGS.blas_threads is not None else ARGS.threads
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
os.environ["MKL_NUM_THREADS"] = str(ARGS.threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(BLAS_THREADS)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "reference"))
import sae_synthetic as S  # noqa: E402


def blas_libraries():
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and ("blas" in parts[5] or "lapack" in parts[5]):
                    libs.add(os.path.realpath(parts[5]))
    except OSError:
        pass
    return sorted(libs)


def main():
    a = ARGS
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    total = a.warmup + a.steps
    r = S.Recipe(arch=a.arch, d_in=a.d_in, d_sae=a.d_sae, batch=a.batch, k=a.k, total_rows=total * a.batch)
    if a.dead_rows is not None:
        r.dead_rows = a.dead_rows
    data = S.SyntheticData(seed=a.seed, n_features=max(512, 2 * a.d_in), d=a.d_in)
    sae, st, scale = S.init_sae(r, data, a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    pool = [data.rows(a.batch, gen) * scale for _ in range(min(total, 64))]

    libs = blas_libraries()
    print(f"# torch {torch.__version__}, threads={torch.get_num_threads()}, OPENBLAS_NUM_THREADS={BLAS_THREADS}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, blas={libs}", file=sys.stderr)
    if not any("openblas" in p for p in libs):
        print("# WARNING: torch is not using OpenBLAS (reference libblas is ~20x slower); install "
              "libopenblas0-pthread or point LD_LIBRARY_PATH at its openblas-pthread directory", file=sys.stderr)

    step_ms, losses = [], []
    for i in range(total):
        x = pool[i % len(pool)]
        t0 = time.perf_counter()
        out = S.train_step(sae, st, x)
        dt = (time.perf_counter() - t0) * 1000.0
        losses.append(float(out["loss"]))  # outside the timed region
        if i >= a.warmup:
            step_ms.append(dt)
    timed = sum(step_ms) / 1000.0
    print(json.dumps({
        "arch": a.arch, "d_in": a.d_in, "d_sae": a.d_sae, "batch": a.batch, "steps": a.steps,
        "rows_per_s": round(a.steps * a.batch / timed, 1), "threads": a.threads,
        "blas_threads": BLAS_THREADS, "k": a.k if a.arch in ("topk", "batchtopk") else None,
        "median_step_ms": round(statistics.median(step_ms), 3),
        "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4), "torch": torch.__version__,
    }), flush=True)


if __name__ == "__main__":
    main()
