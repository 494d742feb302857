#!/usr/bin/env python3
"""PyTorch side of Sonde's CPU benchmark: a GPT-2-small-shaped model with random weights.

    /usr/bin/python3 bench/torch_bench.py --seq 128 --threads 1 --reps 5 --work forward|cache|backward|all

Needs Debian's python3-torch (linked against libblas.so.3 -> libopenblas0-pthread). Prints one
JSON line per work item on stdout:
    {"work":..., "seq":..., "threads":..., "median_ms":..., "min_ms":..., "times_ms":[...]}
Diagnostics (torch version, which BLAS library is mapped) go to stderr. OMP_NUM_THREADS,
MKL_NUM_THREADS are set to --threads and OPENBLAS_NUM_THREADS to --blas-threads before torch is imported, and
OMP_WAIT_POLICY defaults to PASSIVE (see below); OPENBLAS_CORETYPE is left as found.

Work items (the TypeScript side does the same):
  forward  - logits for the tokens, under torch.no_grad().
  cache    - no_grad forward that keeps every activation a TransformerLens run_with_cache holds
             (hook_embed, hook_pos_embed, per layer resid_pre, ln1 normalized, q/k/v [b,pos,head,d_head],
             attn_scores, pattern [b,head,q,k], z, attn_out, resid_mid, ln2 normalized, mlp pre/post,
             mlp_out, resid_post, and ln_final normalized) in a dict.
  backward - weights do not require grad; the layer-0 resid_pre (embed + pos_embed) is a leaf with
             requires_grad; every resid_pre/resid_mid/resid_post calls retain_grad(); loss = mean
             cross-entropy of logits[:-1] vs tokens[1:]; loss.backward(). Timed including the forward.
One untimed warm-up run precedes the timed repetitions.
"""

import argparse
import json
import os
import statistics
import sys
import time

WORKS = ("forward", "cache", "backward")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op (OpenMP) threads")
    ap.add_argument("--blas-threads", type=int, default=os.cpu_count() or 1,
                    help="OpenBLAS's own pthreads (default: all cores)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--work", choices=WORKS + ("all",), default="all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the GPU comparison, scripts/gpu-bench.sh)")
    return ap.parse_args()


ARGS = parse_args()
# Thread counts must be fixed before torch (and with it OpenBLAS / libgomp) is loaded.
# OPENBLAS_CORETYPE and other OPENBLAS_* settings already in the environment are left alone.
# OpenBLAS runs matmuls on its own pthreads, independent of torch's intra-op threads: with one
# intra-op thread OpenBLAS still uses every core (the fastest setting measured on 2 cores).
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
os.environ["MKL_NUM_THREADS"] = str(ARGS.threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.blas_threads)
# Debian's torch runs its elementwise ops on libgomp threads while matmuls run on OpenBLAS's own
# pthreads. With libgomp's default (spinning) wait policy the idle OpenMP workers busy-wait and steal
# the cores OpenBLAS needs: at --threads 2 on a 2-core box that made the forward ~3x slower than
# --threads 1 (and very noisy). Passive waiting avoids that; an explicit OMP_WAIT_POLICY is respected.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

CFG = dict(n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257, n_ctx=1024, eps=1e-5)


def blas_libraries():
    """Shared objects mapped into this process whose name mentions blas/lapack."""
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


def make_weights(seed):
    g = torch.Generator().manual_seed(seed)
    c = CFG
    D, Dm, V = c["d_model"], c["d_mlp"], c["d_vocab"]

    def mat(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float32) * 0.02

    w = {"wte": mat(V, D), "wpe": mat(c["n_ctx"], D), "blocks": []}
    for _ in range(c["n_layers"]):
        w["blocks"].append(
            {
                "ln1_w": torch.ones(D),
                "ln1_b": torch.zeros(D),
                "c_attn_w": mat(D, 3 * D),  # Conv1D layout [in, out]
                "c_attn_b": torch.zeros(3 * D),
                "c_proj_w": mat(D, D),
                "c_proj_b": torch.zeros(D),
                "ln2_w": torch.ones(D),
                "ln2_b": torch.zeros(D),
                "fc_w": mat(D, Dm),
                "fc_b": torch.zeros(Dm),
                "proj_w": mat(Dm, D),
                "proj_b": torch.zeros(D),
            }
        )
    w["lnf_w"] = torch.ones(D)
    w["lnf_b"] = torch.zeros(D)
    return w


def gpt2(w, tokens, cache=None, grad_resid=False):
    """tokens [b, pos] -> logits [b, pos, vocab]. cache: dict to fill (TransformerLens names).
    grad_resid: make the layer-0 resid_pre a requires_grad leaf and retain_grad on every resid."""
    c = CFG
    H, dh, D, eps = c["n_heads"], c["d_head"], c["d_model"], c["eps"]
    b, T = tokens.shape
    keep = cache.__setitem__ if cache is not None else (lambda k, v: None)

    embed = w["wte"][tokens]
    pos_embed = w["wpe"][:T].unsqueeze(0)
    keep("hook_embed", embed)
    keep("hook_pos_embed", pos_embed)
    x = embed + pos_embed
    if grad_resid:
        x = x.detach().requires_grad_(True)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool, device=tokens.device), diagonal=1)
    scale = 1.0 / dh**0.5
    for i, blk in enumerate(w["blocks"]):
        p = f"blocks.{i}."
        if grad_resid and i > 0:
            x.retain_grad()  # (layer 0's resid_pre is the leaf; later ones are the previous resid_post)
        keep(p + "hook_resid_pre", x)
        h = F.layer_norm(x, (D,), blk["ln1_w"], blk["ln1_b"], eps)
        keep(p + "ln1.hook_normalized", h)
        qkv = torch.addmm(blk["c_attn_b"], h.reshape(b * T, D), blk["c_attn_w"]).reshape(b, T, 3, H, dh)
        q, k, v = qkv.unbind(2)  # each [b, pos, head, d_head]
        keep(p + "attn.hook_q", q)
        keep(p + "attn.hook_k", k)
        keep(p + "attn.hook_v", v)
        scores = torch.matmul(q.transpose(1, 2), k.permute(0, 2, 3, 1)) * scale  # [b, head, q, k]
        scores = scores.masked_fill(mask, float("-inf"))
        keep(p + "attn.hook_attn_scores", scores)
        pattern = torch.softmax(scores, dim=-1)
        keep(p + "attn.hook_pattern", pattern)
        z = torch.matmul(pattern, v.transpose(1, 2)).transpose(1, 2)  # [b, pos, head, d_head]
        keep(p + "attn.hook_z", z)
        attn_out = torch.addmm(blk["c_proj_b"], z.reshape(b * T, D), blk["c_proj_w"]).reshape(b, T, D)
        keep(p + "hook_attn_out", attn_out)
        x = x + attn_out
        if grad_resid:
            x.retain_grad()
        keep(p + "hook_resid_mid", x)
        h2 = F.layer_norm(x, (D,), blk["ln2_w"], blk["ln2_b"], eps)
        keep(p + "ln2.hook_normalized", h2)
        pre = torch.addmm(blk["fc_b"], h2.reshape(b * T, D), blk["fc_w"])
        keep(p + "mlp.hook_pre", pre.reshape(b, T, -1))
        post = F.gelu(pre, approximate="tanh")  # gelu_new
        keep(p + "mlp.hook_post", post.reshape(b, T, -1))
        mlp_out = torch.addmm(blk["proj_b"], post, blk["proj_w"]).reshape(b, T, D)
        keep(p + "hook_mlp_out", mlp_out)
        x = x + mlp_out
        if grad_resid:
            x.retain_grad()
        keep(p + "hook_resid_post", x)
    xf = F.layer_norm(x, (D,), w["lnf_w"], w["lnf_b"], eps)
    keep("ln_final.hook_normalized", xf)
    return torch.matmul(xf, w["wte"].t())  # tied unembedding


def run_forward(w, tokens):
    with torch.no_grad():
        return gpt2(w, tokens)


def run_cache(w, tokens):
    cache = {}
    with torch.no_grad():
        logits = gpt2(w, tokens, cache=cache)
    return logits, cache


def run_backward(w, tokens):
    logits = gpt2(w, tokens, grad_resid=True)
    loss = F.cross_entropy(logits[0, :-1], tokens[0, 1:])
    loss.backward()
    return loss


def main():
    a = ARGS
    torch.set_num_threads(a.threads)
    if a.seq > CFG["n_ctx"]:
        sys.exit(f"--seq must be <= {CFG['n_ctx']}")
    dev = torch.device(a.device)
    w = make_weights(a.seed)
    w = {k: ([{n: t.to(dev) for n, t in b.items()} for b in v] if k == "blocks" else v.to(dev)) for k, v in w.items()}
    tokens = torch.randint(0, CFG["d_vocab"], (1, a.seq), generator=torch.Generator().manual_seed(a.seed + 1)).to(dev)
    # A GPU runs asynchronously: wait for it before reading the clock.
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    fns = {"forward": run_forward, "cache": run_cache, "backward": run_backward}
    works = WORKS if a.work == "all" else (a.work,)

    fns["forward"](w, tokens[:, :8])  # make sure BLAS is loaded before reporting it
    print(
        f"# torch {torch.__version__}, threads={torch.get_num_threads()}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '')}, blas={blas_libraries()}",
        file=sys.stderr,
    )
    for work in works:
        fn = fns[work]
        fn(w, tokens)  # warm-up
        sync()
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            result = fn(w, tokens)
            sync()
            times.append((time.perf_counter() - t0) * 1000.0)
            del result
        print(
            json.dumps(
                {
                    "work": work,
                    "seq": a.seq,
                    "threads": a.threads,
                    "blas_threads": ARGS.blas_threads,
                    "median_ms": round(statistics.median(times), 3),
                    "min_ms": round(min(times), 3),
                    "times_ms": [round(t, 3) for t in times],
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
