#!/usr/bin/env python3
"""PyTorch reference trace for Sonde's optimizers (src/train/optimizers.ts).

Run from the repository root with Debian's Python (it has python3-torch 1.13):

    /usr/bin/python3 scripts/reference/optim_trace.py

Writes test/fixtures/optim/trace.json (deterministic: two runs give identical files).

Contents
--------
- ``params``: three small parameter tensors (shapes [3, 4], [5], [2, 2, 2]), seeded, rounded to
  float32 (stored exactly, so the TS side loads the very same float32 values).
- ``grads``: 5 gradient sets (one per step), float32-rounded, stored exactly.
- ``cases``: torch.optim.SGD / Adam / AdamW runs with lr 0.01 over those 5 steps. Each case records
  ``params`` after every step (``after[step][param]`` flat lists). Torch runs in float64 from the
  float32-rounded inputs; Sonde keeps params and state in float32, so the comparison is to ~1e-6.
  A case with ``schedule`` changes the lr between steps with a LambdaLR (warm-up then cosine); Sonde
  replays it by setting ``opt.lr = schedule(opt.steps)`` before each step.
  A case with ``skip`` passes ``grad = None`` for param ``skip[1]`` at step ``skip[0]``: torch then
  leaves that param (and its state, including its per-param step count) untouched.
- ``clip``: torch.nn.utils.clip_grad_norm_ on gradient set 0 for a max_norm below and above the
  norm: the returned total norm and the scaled gradients.
- ``schedules``: learning rates from torch.optim.lr_scheduler, i.e. the lr in effect for optimizer
  step s = 0, 1, ... (value of get_last_lr() after s scheduler.step() calls):
    * linearWarmup: LambdaLR(lambda s: min(1, (s + 1) / warmup))  == Sonde schedules.linearWarmup
    * cosine: LambdaLR(warm-up (s + 1) / warmup, then min_lr + (lr - min_lr) * 0.5 * (1 + cos(pi *
      progress)), progress = min(1, (s - warmup) / max(1, total - warmup)))  == schedules.cosine
      (note: HF transformers' get_cosine_schedule_with_warmup warms up as s / warmup, starting at 0,
      and does not clamp progress; Sonde's warm-up starts at lr / warmup, like linearWarmup)
    * cosineAnnealing: CosineAnnealingLR(T_max=total, eta_min=min_lr), run past T_max. For
      s <= T_max it equals Sonde's schedules.cosine(lr, total, 0, min_lr)(s) (same closed form,
      eta_min + (lr - eta_min) * (1 + cos(pi * s / T_max)) / 2; torch evaluates it recursively, so
      only to ~1e-15). Past T_max torch keeps following the cosine back up (period 2 * T_max), while
      Sonde clamps progress to 1 and stays at min_lr.
"""

import json
import math
import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "test", "fixtures", "optim", "trace.json")

DT = torch.float64
SHAPES = [[3, 4], [5], [2, 2, 2]]
STEPS = 5
LR = 0.01


def f32(t):
    """Round to float32, keep as float64."""
    return t.to(torch.float32).to(DT)


def exact(t):
    """Flat list of floats; for float32-representable values repr() round-trips exactly."""
    return [float(x) for x in t.reshape(-1).tolist()]


def r12(t):
    return [float("%.12g" % x) for x in t.reshape(-1).tolist()]


gen = torch.Generator().manual_seed(1234)
PARAMS = [f32(torch.randn(s, generator=gen, dtype=DT)) for s in SHAPES]
# Gradient scale varies per step, so the Adam second moment sees different magnitudes.
SCALES = [1.0, 0.5, 2.0, 0.1, 1.0]
GRADS = [[f32(torch.randn(s, generator=gen, dtype=DT) * sc) for s in SHAPES] for sc in SCALES]


def cosine_lambda(lr, total, warmup, min_lr):
    r = min_lr / lr

    def f(s):
        if warmup > 0 and s < warmup:
            return (s + 1) / warmup
        progress = min(1.0, (s - warmup) / max(1, total - warmup))
        return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def run_case(name, make_opt, sonde, schedule=None, skip=None):
    ps = [p.clone().requires_grad_(True) for p in PARAMS]
    opt = make_opt(ps)
    sched = None
    if schedule is not None:
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, cosine_lambda(LR, schedule["total"], schedule["warmup"], schedule["minLr"])
        )
    after, lrs = [], []
    for s in range(STEPS):
        for i, p in enumerate(ps):
            p.grad = None if skip == [s, i] else GRADS[s][i].clone()
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
        after.append([r12(p.detach()) for p in ps])
    case = {"name": name, "sonde": sonde, "after": after}
    if schedule is not None:
        case["schedule"] = schedule
        case["lrs"] = lrs
    if skip is not None:
        case["skip"] = skip
    return case


SGD, Adam, AdamW = torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW
COS = {"total": 5, "warmup": 2, "minLr": 0.001}
cases = [
    run_case("sgd", lambda ps: SGD(ps, lr=LR), {"kind": "sgd", "lr": LR}),
    run_case(
        "sgd_momentum",
        lambda ps: SGD(ps, lr=LR, momentum=0.9),
        {"kind": "sgd", "lr": LR, "momentum": 0.9},
    ),
    run_case(
        "sgd_nesterov_wd",
        lambda ps: SGD(ps, lr=LR, momentum=0.9, nesterov=True, weight_decay=0.01),
        {"kind": "sgd", "lr": LR, "momentum": 0.9, "nesterov": True, "weightDecay": 0.01},
    ),
    run_case(
        "sgd_dampening",
        lambda ps: SGD(ps, lr=LR, momentum=0.9, dampening=0.1),
        {"kind": "sgd", "lr": LR, "momentum": 0.9, "dampening": 0.1},
    ),
    run_case("adam", lambda ps: Adam(ps, lr=LR), {"kind": "adam", "lr": LR}),
    run_case(
        "adam_wd",
        lambda ps: Adam(ps, lr=LR, weight_decay=0.1),
        {"kind": "adam", "lr": LR, "weightDecay": 0.1},
    ),
    run_case(
        "adamw",
        lambda ps: AdamW(ps, lr=LR, weight_decay=0.1, betas=(0.8, 0.99), eps=1e-6),
        {"kind": "adamw", "lr": LR, "weightDecay": 0.1, "betas": [0.8, 0.99], "eps": 1e-6},
    ),
    run_case(
        "adamw_default",
        lambda ps: AdamW(ps, lr=LR),
        {"kind": "adamw", "lr": LR},
    ),
    run_case(
        "adamw_cosine",
        lambda ps: AdamW(ps, lr=LR, weight_decay=0.1),
        {"kind": "adamw", "lr": LR, "weightDecay": 0.1},
        schedule=COS,
    ),
    run_case(
        "sgd_momentum_cosine",
        lambda ps: SGD(ps, lr=LR, momentum=0.9),
        {"kind": "sgd", "lr": LR, "momentum": 0.9},
        schedule=COS,
    ),
    # A parameter without a gradient for one step (torch skips it, state and step count included).
    run_case(
        "adam_skip",
        lambda ps: Adam(ps, lr=LR),
        {"kind": "adam", "lr": LR},
        skip=[1, 1],
    ),
    run_case(
        "sgd_dampening_skip_first",
        lambda ps: SGD(ps, lr=LR, momentum=0.9, dampening=0.1),
        {"kind": "sgd", "lr": LR, "momentum": 0.9, "dampening": 0.1},
        skip=[0, 0],
    ),
]

# --- clip_grad_norm_ ---------------------------------------------------------------------------
clip = []
for max_norm in [1.0, 100.0]:
    gs = [g.clone() for g in GRADS[0]]
    ps = [torch.zeros_like(g, requires_grad=True) for g in gs]
    for p, g in zip(ps, gs):
        p.grad = g
    norm = float(torch.nn.utils.clip_grad_norm_(ps, max_norm))
    clip.append({"maxNorm": max_norm, "norm": norm, "grads": [r12(p.grad) for p in ps]})
assert 1.0 < clip[0]["norm"] < 100.0  # the first clips, the second does not


# --- schedules ---------------------------------------------------------------------------------
def lambda_lrs(fn, n, lr=LR):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, fn)
    out = []
    for _ in range(n):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


def annealing_lrs(total, eta_min, n, lr=LR):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=eta_min)
    out = []
    for _ in range(n):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


WARM, TOTAL, MIN_LR = 4, 20, 0.001
schedules = {
    "lr": LR,
    "linearWarmup": {
        "warmup": WARM,
        "lrs": lambda_lrs(lambda s: min(1.0, (s + 1) / WARM), 12),
    },
    "cosine": {
        "total": TOTAL,
        "warmup": WARM,
        "minLr": MIN_LR,
        "lrs": lambda_lrs(cosine_lambda(LR, TOTAL, WARM, MIN_LR), TOTAL + 5),
    },
    "cosineAnnealing": {
        "total": TOTAL,
        "minLr": MIN_LR,
        "lrs": annealing_lrs(TOTAL, MIN_LR, 2 * TOTAL + 1),
    },
}
# Self-checks: the closed forms above agree with torch's CosineAnnealingLR up to T_max.
for s, v in enumerate(schedules["cosineAnnealing"]["lrs"][: TOTAL + 1]):
    closed = MIN_LR + (LR - MIN_LR) * 0.5 * (1 + math.cos(math.pi * s / TOTAL))
    assert abs(v - closed) < 1e-15, (s, v, closed)
assert abs(schedules["cosineAnnealing"]["lrs"][2 * TOTAL] - LR) < 1e-12  # back up after 2*T_max

trace = {
    "description": "torch %s reference for src/train/optimizers.ts; see scripts/reference/optim_trace.py"
    % torch.__version__.split("+")[0],
    "shapes": SHAPES,
    "params": [exact(p) for p in PARAMS],
    "grads": [[exact(g) for g in gs] for gs in GRADS],
    "cases": cases,
    "clip": clip,
    "schedules": schedules,
}
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump(trace, f, separators=(",", ":"))
    f.write("\n")
print("wrote %s (%d bytes)" % (os.path.relpath(OUT, ROOT), os.path.getsize(OUT)))
