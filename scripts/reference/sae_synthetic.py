#!/usr/bin/env python3
"""Synthetic superposition data with known features, and a reference SAE trainer (PyTorch, CPU).

    /usr/bin/python3 scripts/reference/sae_synthetic.py stats [--seed 0] [--correlated]
    /usr/bin/python3 scripts/reference/sae_synthetic.py train [--arch topk] [--k 32] [--seed 0] ...

After Sharkey, Braun & Millidge (2022), "Taking features out of superposition with sparse
autoencoders". The TypeScript generator follows this spec distributionally (same distributions and
constants, not the same random numbers).

DATA SPEC
---------
Constants: n_features F = 512, d = 256, mean_active = 5, decay = 0.99.

Ground-truth features: a matrix G [F, d] of independent N(0, 1) entries (torch.randn with a
generator seeded by `seed`), each row divided by its L2 norm. Row i is feature f_i (unit norm).

Firing probabilities: p_i = c * decay^i for i = 0 .. F-1, with c = mean_active / sum_i decay^i, so
the expected number of active features per row is exactly mean_active. For the defaults
c = 5 / ((1 - 0.99^512) / 0.01) = 0.050294, p_0 = 0.0503, p_511 = 2.96e-4. It is an error if
p_0 > 1.

A row (independent features, the default): for each i independently, active_i ~ Bernoulli(p_i);
magnitude m_i ~ Uniform(0, 1), independent of everything; a_i = active_i * m_i;
x = sum_i a_i f_i  (x in R^d). No bias, no noise. E||x||^2 = sum_i p_i / 3 + cross terms ~ 5/3.

Correlated variant (--correlated): the active set comes from a Gaussian copula. A random
correlation matrix Sigma [F, F] is built from a factor matrix L [F, R] (R = corr_rank = 16) of
independent N(0, 1) entries (seeded by seed + 1):
    C = L L^T / R + I,   Sigma_ij = C_ij / sqrt(C_ii C_jj)
(positive definite; off-diagonal correlations are about N(0, 1/R)/2, std ~ 0.12). Per row draw
z ~ N(0, Sigma) (sampled as z_i = (L_i . u / sqrt(R) + v_i) / sqrt(C_ii) with u ~ N(0, I_R),
v ~ N(0, I_F)); feature i is active iff Phi(z_i) < p_i, i.e. z_i < Phi^-1(p_i), so each feature's
marginal firing probability is still p_i. Magnitudes stay independent Uniform(0, 1).

Rows are generated fresh in batches from a generator seeded by `data_seed` (training rows) or
`data_seed + 1_000_003` (evaluation rows).

METRIC
------
MMCS (mean max cosine similarity) = (1/F) sum_i max_j cos(f_i, W_dec[j]) where W_dec [d_sae, d] holds
the learned decoder rows (each normalised for the cosine). Also reported: the same mean over the 128
rarest features (i >= 384), and how many features have max cosine >= 0.9.

TRAINER
-------
`Recipe` holds every hyperparameter; its defaults are the DEFAULT RECIPE (chosen by the sweep in
scratch/sae-recipe.md; MMCS 0.975-0.977 over 3 seeds at d_sae = 512):
  arch standard (ReLU), d_sae 512 (1x the 512 true features), batch 1024, 976 steps (999,424 fresh rows).
  Inputs multiplied by s = sqrt(d_in) / mean ||x|| (mean over 32,768 rows drawn before training).
  Init: decoder rows random directions (N(0,1) rows normalised) scaled to norm 0.1; W_enc = W_dec^T;
  b_enc = 0; b_dec = mean of 32,768 normalised rows.
  Forward: pre = (s x - b_dec) W_enc + b_enc; z = ReLU(pre); x_hat = z W_dec + b_dec.
  Loss: mean_rows sum_d (x_hat - s x)^2 + lambda_t * mean_rows sum_j z_j ||W_dec[j]||, with
  lambda = 0.5 warmed up linearly: lambda_t = 0.5 * min(1, (t + 1) / floor(0.05 * n_steps)).
  Decoder unconstrained (no renormalisation). Gradient clipped to global norm 1 (all parameters).
  Adam (torch defaults: betas 0.9/0.999, eps 1e-8, no weight decay), lr 1e-2 with no warm-up and a
  linear decay to 0 over the last 20% of steps: lr_t = 1e-2 * (n - t) / (n - floor(0.8 n)) for
  t >= floor(0.8 n). No dead-latent revival (none is needed; 0 dead latents).
`train_step` is one step (forward, loss, backward, decoder-gradient projection where the decoder is
unit norm, clipping, Adam, decoder renormalisation where unit norm). bench/torch_sae_bench.py times
exactly `train_step`. The other architectures (topk, batchtopk, jumprelu) are the sweep's candidates.
"""

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

import torch

N_FEATURES = 512
D = 256
MEAN_ACTIVE = 5.0
DECAY = 0.99
CORR_RANK = 16
EVAL_SEED_OFFSET = 1_000_003


# ----------------------------------------------------------------------------------------- data


def feature_probs(n_features=N_FEATURES, mean_active=MEAN_ACTIVE, decay=DECAY):
    """p_i = c * decay^i, with sum_i p_i = mean_active. float64 tensor [F]."""
    powers = decay ** torch.arange(n_features, dtype=torch.float64)
    p = powers * (mean_active / powers.sum())
    if p[0] > 1:
        raise ValueError(f"p_0 = {float(p[0]):.4f} > 1: mean_active too large for this decay and F")
    return p


def make_features(seed, n_features=N_FEATURES, d=D):
    """Ground-truth unit feature directions [F, d] (float32)."""
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(n_features, d, generator=g, dtype=torch.float32)
    return f / f.norm(dim=1, keepdim=True)


class SyntheticData:
    """Stream of rows x = sum_i a_i f_i (see the module docstring)."""

    def __init__(self, seed=0, n_features=N_FEATURES, d=D, mean_active=MEAN_ACTIVE, decay=DECAY,
                 correlated=False, corr_rank=CORR_RANK):
        self.features = make_features(seed, n_features, d)
        self.p = feature_probs(n_features, mean_active, decay)
        self.p32 = self.p.float()
        self.correlated = correlated
        if correlated:
            g = torch.Generator().manual_seed(seed + 1)
            self.L = torch.randn(n_features, corr_rank, generator=g, dtype=torch.float64)
            self.R = corr_rank
            c_diag = (self.L**2).sum(1) / corr_rank + 1.0
            self.inv_sd = (1.0 / c_diag.sqrt()).float()
            self.L32 = (self.L / math.sqrt(corr_rank)).float()
            self.z_thresh = torch.special.ndtri(self.p).float()  # Phi^-1(p_i)

    def correlation_matrix(self):
        c = self.L @ self.L.T / self.R + torch.eye(self.L.shape[0], dtype=torch.float64)
        s = c.diagonal().rsqrt()
        return c * s[:, None] * s[None, :]

    def activations(self, n, gen):
        """[n, F] coefficients a (float32)."""
        F_ = self.features.shape[0]
        if self.correlated:
            u = torch.randn(n, self.R, generator=gen)
            v = torch.randn(n, F_, generator=gen)
            z = (u @ self.L32.T + v) * self.inv_sd
            active = z < self.z_thresh
        else:
            active = torch.rand(n, F_, generator=gen) < self.p32
        mags = torch.rand(n, F_, generator=gen)
        return mags * active

    def rows(self, n, gen, return_acts=False):
        a = self.activations(n, gen)
        x = a @ self.features
        return (x, a) if return_acts else x


def mmcs(features, W_dec):
    """Per-feature max cosine similarity with any decoder row; returns (mmcs, per_feature [F])."""
    f = features / features.norm(dim=1, keepdim=True)
    w = W_dec / W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
    best = (f @ w.T).max(dim=1).values
    return float(best.mean()), best


# -------------------------------------------------------------------------------------- recipe


@dataclass
class Recipe:
    arch: str = "standard"             # standard | topk | batchtopk | jumprelu
    d_in: int = D
    d_sae: int = 512
    k: int = 32                        # topk: latents per row; batchtopk: mean per row (k * batch per batch)
    batch: int = 1024
    total_rows: int = 1_000_000
    lr: float = 1e-2                   # tuned for ~1M training rows (~1000 steps)
    betas: tuple = (0.9, 0.999)
    adam_eps: float = 1e-8
    lr_warmup_frac: float = 0.0        # linear lr warm-up over this fraction of steps
    lr_decay_frac: float = 0.2         # linear decay to 0 over the last fraction of steps
    normalize: bool = True             # expected_average_only_in: scale so mean ||x|| = sqrt(d_in)
    norm_rows: int = 32768             # rows used to estimate the scaling factor
    b_dec_init: str = "mean"           # mean | zeros (of the normalised inputs)
    apply_b_dec_to_input: bool = True  # encode (x - b_dec)
    dec_init_norm: Optional[float] = None  # None: 1.0 if unit_norm_decoder else 0.1
    unit_norm_decoder: Optional[bool] = None  # None: True for topk/batchtopk/jumprelu, False for standard
    # standard (ReLU + L1 weighted by decoder row norms, Anthropic April 2024 update)
    l1_coef: float = 0.5
    l1_warmup_frac: float = 0.05
    clip_grad: Optional[float] = None  # None: 1.0 for standard, off otherwise
    # topk / batchtopk aux-k loss for dead latents
    aux_coef: float = 1.0 / 32
    k_aux: Optional[int] = None        # None: d_in // 2
    dead_rows: int = 65536             # dead = did not fire in the last dead_rows training rows
    # jumprelu
    l0_coef: float = 1.0
    l0_warmup_frac: float = 0.05
    bandwidth: float = 0.001
    init_threshold: float = 0.001
    # batchtopk inference threshold (EMA of the smallest kept activation per batch)
    threshold_ema: float = 0.99

    def resolved(self):
        r = dataclasses.replace(self)
        if r.unit_norm_decoder is None:
            r.unit_norm_decoder = r.arch != "standard"
        if r.dec_init_norm is None:
            r.dec_init_norm = 1.0 if r.unit_norm_decoder else 0.1
        if r.clip_grad is None:
            r.clip_grad = 1.0 if r.arch == "standard" else 0.0
        if r.k_aux is None:
            r.k_aux = r.d_in // 2
        return r

    @property
    def n_steps(self):
        return max(1, self.total_rows // self.batch)


# ---------------------------------------------------------------------------------------- model


def _rect(u):
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class JumpReLUFn(torch.autograd.Function):
    """z = pre * H(pre - theta). d/dpre passes where active; d/dtheta = -(theta/eps) K((pre-theta)/eps)."""

    @staticmethod
    def forward(ctx, pre, theta, bw):
        ctx.save_for_backward(pre, theta)
        ctx.bw = bw
        return pre * (pre > theta)

    @staticmethod
    def backward(ctx, g):
        pre, theta = ctx.saved_tensors
        bw = ctx.bw
        g_pre = g * (pre > theta)
        g_theta = (-(theta / bw) * _rect((pre - theta) / bw) * g).sum(0)
        return g_pre, g_theta, None


class StepFn(torch.autograd.Function):
    """H(pre - theta); no gradient to pre; d/dtheta = -(1/eps) K((pre-theta)/eps)."""

    @staticmethod
    def forward(ctx, pre, theta, bw):
        ctx.save_for_backward(pre, theta)
        ctx.bw = bw
        return (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, g):
        pre, theta = ctx.saved_tensors
        bw = ctx.bw
        g_theta = (-(1.0 / bw) * _rect((pre - theta) / bw) * g).sum(0)
        return torch.zeros_like(pre), g_theta, None


class SAE(torch.nn.Module):
    def __init__(self, r: Recipe, gen: torch.Generator):
        super().__init__()
        self.r = r
        d, m = r.d_in, r.d_sae
        # Decoder rows: random directions (N(0,1) rows normalised) scaled to dec_init_norm; W_enc = W_dec^T.
        w = torch.randn(m, d, generator=gen)
        w = w / w.norm(dim=1, keepdim=True) * r.dec_init_norm
        self.W_dec = torch.nn.Parameter(w)
        self.W_enc = torch.nn.Parameter(w.T.clone())
        self.b_enc = torch.nn.Parameter(torch.zeros(m))
        self.b_dec = torch.nn.Parameter(torch.zeros(d))
        if r.arch == "jumprelu":
            self.log_threshold = torch.nn.Parameter(torch.full((m,), math.log(r.init_threshold)))
        self.register_buffer("bt_threshold", torch.tensor(-1.0))  # batchtopk inference threshold

    def pre(self, x):
        xin = x - self.b_dec if self.r.apply_b_dec_to_input else x
        return xin @ self.W_enc + self.b_enc

    def encode(self, pre, training=True):
        """Latent activations z [B, m] from pre-activations."""
        r = self.r
        if r.arch == "standard":
            return torch.relu(pre)
        if r.arch == "topk":
            v, i = pre.topk(r.k, dim=1, sorted=False)
            return torch.zeros_like(pre).scatter_(1, i, torch.relu(v))
        if r.arch == "batchtopk":
            if training or self.bt_threshold < 0:
                act = torch.relu(pre)
                flat = act.reshape(-1)
                v, i = flat.topk(r.k * pre.shape[0], sorted=False)
                return torch.zeros_like(flat).scatter_(0, i, v).reshape(pre.shape)
            return pre * (pre > self.bt_threshold)
        if r.arch == "jumprelu":
            theta = self.log_threshold.exp()
            return JumpReLUFn.apply(pre, theta, r.bandwidth)
        raise ValueError(r.arch)

    def decode(self, z):
        return z @ self.W_dec + self.b_dec


# ------------------------------------------------------------------------------------- training


class TrainState:
    def __init__(self, sae: SAE, r: Recipe):
        self.r = r
        self.opt = torch.optim.Adam(sae.parameters(), lr=r.lr, betas=r.betas, eps=r.adam_eps)
        self.rows_since_fired = torch.zeros(r.d_sae, dtype=torch.int64)
        self.step = 0
        self.n_steps = r.n_steps

    def lr_at(self, step):
        r, n = self.r, self.n_steps
        f = 1.0
        wu = int(r.lr_warmup_frac * n)
        if wu > 0 and step < wu:
            f = (step + 1) / wu
        dstart = int((1.0 - r.lr_decay_frac) * n)
        if r.lr_decay_frac > 0 and step >= dstart:
            f *= (n - step) / (n - dstart)
        return r.lr * f

    def coef_at(self, step, coef, warmup_frac):
        wu = int(warmup_frac * self.n_steps)
        return coef * min(1.0, (step + 1) / wu) if wu > 0 else coef


def train_step(sae: SAE, st: TrainState, x: torch.Tensor):
    """One training step on a batch x [B, d_in] of (already normalised) rows. Returns a dict of floats
    (as tensors; call .item() only when logging)."""
    r = st.r
    B = x.shape[0]
    pre = sae.pre(x)
    z = sae.encode(pre, training=True)
    x_hat = sae.decode(z)
    err = x_hat - x
    mse = err.pow(2).sum(1).mean()  # sum over d_in, mean over rows
    loss = mse
    out = {"mse": mse}
    fired = (z > 0).any(0)

    if r.arch == "standard":
        l1 = (z * sae.W_dec.norm(dim=1)).sum(1).mean()
        loss = loss + st.coef_at(st.step, r.l1_coef, r.l1_warmup_frac) * l1
        out["l1"] = l1
    elif r.arch in ("topk", "batchtopk"):
        dead = st.rows_since_fired >= r.dead_rows
        n_dead = int(dead.sum())
        if n_dead > 0 and r.aux_coef > 0:
            k_aux = min(r.k_aux, n_dead)
            scale = min(n_dead / r.k_aux, 1.0)
            masked = pre.masked_fill(~dead, float("-inf"))
            v, i = masked.topk(k_aux, dim=1, sorted=False)
            z_aux = torch.zeros_like(pre).scatter_(1, i, torch.relu(v))
            resid = (x - x_hat).detach()
            aux = (z_aux @ sae.W_dec - resid).pow(2).sum(1).mean()
            loss = loss + r.aux_coef * scale * aux
            out["aux"] = aux
        if r.arch == "batchtopk":  # inference threshold: EMA of the smallest kept activation
            with torch.no_grad():
                pos = z[z > 0]
                if pos.numel():
                    mn = pos.min()
                    t = sae.bt_threshold
                    sae.bt_threshold.copy_(mn if t < 0 else r.threshold_ema * t + (1 - r.threshold_ema) * mn)
    elif r.arch == "jumprelu":
        theta = sae.log_threshold.exp()
        l0 = StepFn.apply(pre, theta, r.bandwidth).sum(1).mean()
        loss = loss + st.coef_at(st.step, r.l0_coef, r.l0_warmup_frac) * l0
        out["l0"] = l0

    st.opt.zero_grad(set_to_none=True)
    loss.backward()
    if r.unit_norm_decoder:
        with torch.no_grad():  # remove the gradient component parallel to each (unit) decoder row
            W, g = sae.W_dec, sae.W_dec.grad
            g -= (g * W).sum(1, keepdim=True) * W
    if r.clip_grad and r.clip_grad > 0:
        torch.nn.utils.clip_grad_norm_(sae.parameters(), r.clip_grad)
    for pg in st.opt.param_groups:
        pg["lr"] = st.lr_at(st.step)
    st.opt.step()
    if r.unit_norm_decoder:
        with torch.no_grad():
            sae.W_dec /= sae.W_dec.norm(dim=1, keepdim=True)
    with torch.no_grad():
        st.rows_since_fired += B
        st.rows_since_fired[fired] = 0
    st.step += 1
    out["loss"] = loss
    return out


def scaling_factor(data, r: Recipe, gen):
    x = data.rows(r.norm_rows, gen)
    return math.sqrt(r.d_in) / float(x.norm(dim=1).mean())


def init_sae(r: Recipe, data, seed):
    """SAE + TrainState + scaling factor, everything seeded by `seed`."""
    r = r.resolved()
    gen_init = torch.Generator().manual_seed(seed + 17)
    gen_norm = torch.Generator().manual_seed(seed + 29)
    sae = SAE(r, gen_init)
    s = scaling_factor(data, r, gen_norm) if r.normalize else 1.0
    if r.b_dec_init == "mean":
        with torch.no_grad():
            sae.b_dec.copy_((data.rows(r.norm_rows, gen_norm) * s).mean(0))
    return sae, TrainState(sae, r), s


@torch.no_grad()
def evaluate(sae: SAE, data, s, seed, n_rows=65536, batch=4096):
    gen = torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET)
    m = sae.r.d_sae
    counts = torch.zeros(m)
    sse = tot = l0 = 0.0
    xs_sum = torch.zeros(sae.r.d_in, dtype=torch.float64)
    xs_sq = 0.0
    for _ in range(n_rows // batch):
        x = data.rows(batch, gen) * s
        z = sae.encode(sae.pre(x), training=False)
        x_hat = sae.decode(z)
        sse += float((x_hat - x).pow(2).sum())
        xs_sum += x.sum(0).double()
        xs_sq += float(x.double().pow(2).sum())
        counts += (z > 0).sum(0)
        l0 += float((z > 0).sum())
    n = (n_rows // batch) * batch
    var = xs_sq - float((xs_sum**2).sum()) / n
    mm, best = mmcs(data.features, sae.W_dec.detach())
    F_ = best.shape[0]
    return {
        "mmcs": round(mm, 4),
        "mmcs_rare128": round(float(best[F_ - 128:].mean()), 4),
        "n_feat_ge_0.9": int((best >= 0.9).sum()),
        "dead_frac": round(float((counts == 0).float().mean()), 4),
        "l0": round(l0 / n, 3),
        "ev": round(1.0 - sse / var, 4),
    }


def train(r: Recipe, seed=0, correlated=False, log_every=0):
    data = SyntheticData(seed=seed, correlated=correlated)
    sae, st, s = init_sae(r, data, seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for step in range(st.n_steps):
        x = data.rows(st.r.batch, gen) * s
        out = train_step(sae, st, x)
        if log_every and (step % log_every == 0 or step == st.n_steps - 1):
            mm, _ = mmcs(data.features, sae.W_dec.detach())
            dead = int((st.rows_since_fired >= st.r.dead_rows).sum())
            print(f"# step {step} " + " ".join(f"{k}={float(v):.4g}" for k, v in out.items())
                  + f" mmcs={mm:.4f} dead={dead}", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0
    res = evaluate(sae, data, s, seed)
    res.update(wall_s=round(wall, 1), steps=st.n_steps, rows=st.n_steps * st.r.batch, scale=round(s, 4))
    return sae, res


# ------------------------------------------------------------------------------------------ CLI


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_stats = sub.add_parser("stats", help="print the data constants and empirical statistics")
    p_stats.add_argument("--seed", type=int, default=0)
    p_stats.add_argument("--correlated", action="store_true")
    p_stats.add_argument("--rows", type=int, default=100_000)
    p_train = sub.add_parser("train", help="train an SAE with a recipe, print JSON results")
    p_train.add_argument("--seed", type=int, default=0)
    p_train.add_argument("--correlated", action="store_true")
    p_train.add_argument("--threads", type=int, default=1)
    p_train.add_argument("--log-every", type=int, default=0)
    for f in dataclasses.fields(Recipe):
        if f.name == "betas":
            continue
        name = "--" + f.name.replace("_", "-")
        kind = {"unit_norm_decoder": bool, "dec_init_norm": float, "clip_grad": float, "k_aux": int}.get(
            f.name, type(f.default))
        if kind is bool:
            p_train.add_argument(name, type=lambda v: v.lower() in ("1", "true", "yes"), default=f.default)
        else:
            p_train.add_argument(name, type=kind, default=f.default)
    a = ap.parse_args(argv)

    if a.cmd == "stats":
        torch.set_num_threads(1)
        data = SyntheticData(seed=a.seed, correlated=a.correlated)
        gen = torch.Generator().manual_seed(a.seed)
        x, acts = data.rows(a.rows, gen, return_acts=True)
        active = acts > 0
        info = {
            "c": round(float(data.p[0]), 6), "p_0": round(float(data.p[0]), 6),
            "p_511": float(f"{float(data.p[-1]):.4g}"), "expected_l0": float(data.p.sum()),
            "empirical_l0": round(float(active.sum(1).float().mean()), 4),
            "empirical_p0": round(float(active[:, 0].float().mean()), 5),
            "empirical_p511": float(f"{float(active[:, -1].float().mean()):.4g}"),
            "mean_norm": round(float(x.norm(dim=1).mean()), 4),
            "mean_sq_norm": round(float(x.pow(2).sum(1).mean()), 4),
            "frac_rows_empty": round(float((active.sum(1) == 0).float().mean()), 5),
        }
        if a.correlated:
            sig = data.correlation_matrix()
            off = sig[~torch.eye(sig.shape[0], dtype=torch.bool)]
            info["corr_offdiag_std"] = round(float(off.std()), 4)
            emp = torch.corrcoef(active[:, :64].T.float())
            info["active_corr_offdiag_std_first64"] = round(
                float(emp[~torch.eye(64, dtype=torch.bool)].std()), 4)
        print(json.dumps(info))
        return

    torch.set_num_threads(a.threads)
    kw = {f.name: getattr(a, f.name) for f in dataclasses.fields(Recipe) if f.name != "betas"}
    r = Recipe(**kw)
    _, res = train(r, seed=a.seed, correlated=a.correlated, log_every=a.log_every)
    rr = r.resolved()
    cfg = {"arch": rr.arch, "d_sae": rr.d_sae, "k": rr.k if rr.arch in ("topk", "batchtopk") else None,
           "batch": rr.batch, "lr": rr.lr, "seed": a.seed, "correlated": a.correlated}
    for extra in ("l1_coef",) if rr.arch == "standard" else ("l0_coef",) if rr.arch == "jumprelu" else ():
        cfg[extra] = getattr(rr, extra)
    print(json.dumps({**cfg, **res}), flush=True)


if __name__ == "__main__":
    main()
