#!/usr/bin/env python3
"""PyTorch side of Sonde's training benchmark: a small GPT-2-style model trained on the CPU.

    /usr/bin/python3 bench/torch_train_bench.py --tokens FILE --threads 1 --warmup 10 --steps 30

Same model, data and update rule as bench/train.ts: GPT-2 layout (learned positions, pre-LayerNorm,
gelu_new MLP, untied unembedding with bias), N(0, 0.8/sqrt(d_model)) init of every matrix (Sonde's
organisms' init), LayerNorm 1/0, biases 0; mean next-token cross-entropy over random windows of a
Sonde token file (uint16 or int32, see src/train/dataset.ts) or random tokens; torch.optim.AdamW
(defaults of this torch version) with clip_grad_norm_ before each step.

Prints one JSON line on stdout:
    {"threads":..., "tokens_per_s":..., "median_step_ms":..., "step_ms":[...], "loss_first":...,
     "loss_last":..., "share": {"data":..., "forward_backward":..., "clip":..., "optimizer":...}}
tokens_per_s = timed steps x batch x ctx / their total wall time (warm-up steps excluded).
Diagnostics go to stderr. Thread handling as bench/torch_bench.py: OMP/MKL threads = --threads,
OpenBLAS on --blas-threads (default all cores), OMP_WAIT_POLICY=PASSIVE unless set.
"""

import argparse
import array
import json
import os
import statistics
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", help="Sonde token file (with FILE.json); random tokens when omitted")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d-mlp", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--n-ctx", type=int, default=128, help="learned positions")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--steps", type=int, default=30, help="timed steps")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op (OpenMP) threads")
    ap.add_argument("--blas-threads", type=int, default=os.cpu_count() or 1,
                    help="OpenBLAS's own pthreads (default: all cores)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


ARGS = parse_args()
# Must be fixed before torch (OpenBLAS, libgomp) is loaded; see bench/torch_bench.py for why PASSIVE.
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
os.environ["MKL_NUM_THREADS"] = str(ARGS.threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.blas_threads)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class Block(nn.Module):
    def __init__(self, D, H, Dm):
        super().__init__()
        self.H = H
        self.ln1 = nn.LayerNorm(D, eps=1e-5)
        self.c_attn = nn.Linear(D, 3 * D)  # Q, K, V fused (Sonde keeps three [D, D] matrices)
        self.c_proj = nn.Linear(D, D)
        self.ln2 = nn.LayerNorm(D, eps=1e-5)
        self.fc = nn.Linear(D, Dm)
        self.proj = nn.Linear(Dm, D)

    def forward(self, x, mask):
        b, T, D = x.shape
        H = self.H
        dh = D // H
        q, k, v = self.c_attn(self.ln1(x)).view(b, T, 3, H, dh).permute(2, 0, 3, 1, 4)  # each [b, H, T, dh]
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / dh**0.5)
        pattern = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        z = torch.matmul(pattern, v).transpose(1, 2).reshape(b, T, D)
        x = x + self.c_proj(z)
        return x + self.proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))  # gelu_new


class GPT(nn.Module):
    def __init__(self, a):
        super().__init__()
        D, V = a.d_model, a.vocab
        self.wte = nn.Embedding(V, D)
        self.wpe = nn.Embedding(a.n_ctx, D)
        self.blocks = nn.ModuleList(Block(D, a.heads, a.d_mlp) for _ in range(a.layers))
        self.ln_f = nn.LayerNorm(D, eps=1e-5)
        self.unembed = nn.Linear(D, V)  # untied, with bias (Sonde's W_U, b_U)
        std = 0.8 / D**0.5
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    p.normal_(0.0, std)
                elif "ln" in name and name.endswith("weight"):
                    p.fill_(1.0)
                else:
                    p.zero_()

    def forward(self, tokens):
        b, T = tokens.shape
        x = self.wte(tokens) + self.wpe(torch.arange(T)).unsqueeze(0)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        for blk in self.blocks:
            x = blk(x, mask)
        return self.unembed(self.ln_f(x))


def load_tokens(path):
    with open(path + ".json") as f:
        meta = json.load(f)
    arr = array.array("H" if meta["dtype"] == "uint16" else "i")
    with open(path, "rb") as f:
        arr.frombytes(f.read())
    if len(arr) != meta["count"]:
        sys.exit(f"token file {path}: {len(arr)} tokens, metadata says {meta['count']}")
    return torch.tensor(arr, dtype=torch.int64)


def main():
    a = ARGS
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = GPT(a)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.999), weight_decay=a.weight_decay)
    data = load_tokens(a.tokens) if a.tokens else None
    if data is not None:
        cut = int(len(data) * 0.95)  # Sonde's train split
        data = data[:cut]
    g = torch.Generator().manual_seed(a.seed + 1)

    def batch():
        if data is None:
            return torch.randint(0, a.vocab, (a.batch, a.ctx), generator=g)
        starts = torch.randint(0, len(data) - a.ctx + 1, (a.batch,), generator=g)
        return torch.stack([data[s : s + a.ctx] for s in starts.tolist()])

    print(
        f"# torch {torch.__version__}, threads={torch.get_num_threads()}, params={n_params}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, OPENBLAS_NUM_THREADS={a.blas_threads}",
        file=sys.stderr,
    )
    total = a.warmup + a.steps
    step_ms, parts, losses = [], {"data": 0.0, "forward_backward": 0.0, "clip": 0.0, "optimizer": 0.0}, []
    for i in range(total):
        t0 = time.perf_counter()
        tokens = batch()
        t1 = time.perf_counter()
        logits = model(tokens)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, a.vocab), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        losses.append(loss.item())
        if i >= a.warmup:
            step_ms.append((t4 - t0) * 1000.0)
            for k, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[k] += dt * 1000.0
    timed = sum(step_ms)
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": a.threads,
                "blas_threads": a.blas_threads,
                "params": n_params,
                "tokens_per_s": round(a.steps * a.batch * a.ctx / (timed / 1000.0), 1),
                "median_step_ms": round(statistics.median(step_ms), 3),
                "step_ms": [round(t, 3) for t in step_ms],
                "loss_first": round(losses[0], 4),
                "loss_last": round(losses[-1], 4),
                "share": {k: round(v / timed, 4) for k, v in parts.items()},
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
