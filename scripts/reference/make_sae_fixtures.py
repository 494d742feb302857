#!/usr/bin/env python3
"""Generate tiny SAELens-format SAE / transcoder folders + float64 reference outputs.

Run from the repository root with Debian's Python (it has python3-torch):

    /usr/bin/python3 scripts/reference/make_sae_fixtures.py

Writes, under test/fixtures/sae/:
    standard-legacy/  pre-6.0 layout: everything at the top level of cfg.json (hook_name,
                      hook_layer, model_name, ...), no "architecture" key, activation_fn_str
                      "relu", normalize_activations false, an all-ones scaling_factor tensor
                      (older SAELens versions stored one), apply_b_dec_to_input true, F32.
    jumprelu/         SAELens 6 layout (model/hook info under "metadata"), per-latent
                      thresholds, weights stored as BF16, plus sparsity.safetensors.
    topk/             SAELens 6 layout, k = 4, apply_b_dec_to_input false and
                      rescale_acts_by_decoder_norm true with decoder rows of non-unit norm, F32.
    gated/            SAELens 6 layout, b_gate / r_mag / b_mag, F32.
    transcoder/       SAELens 6 "skip_transcoder": d_in 16 -> d_out 12, W_skip stored
                      [d_out, d_in], hook_name_out in metadata, weights stored as F16.
Each folder has cfg.json, sae_weights.safetensors and reference.json.

Nothing here uses Sonde, sae_lens or the safetensors package: the files are written by
hand (struct + json) and each forward pass is written out below as plain float64 torch,
following SAELens's inference semantics. Weights are drawn in float64, rounded to their
storage dtype, and the reference is computed from the rounded values cast back to
float64, so file and reference agree exactly. Inputs are float32-representable and are
stored exactly. Seeds are fixed: two runs give byte-identical files.
"""

import json
import os

import torch

from reference_io import DT, STORAGE, r9, read_safetensors, write_json, write_safetensors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "test", "fixtures", "sae")

D_IN, D_SAE, D_OUT, N_ROWS, K = 16, 32, 12, 6, 4
MARGIN = 1e-3  # no pre-activation within this of a decision boundary (threshold, 0, top-k cut)



# ----------------------------------------------------------------------------
# safetensors (hand-written)
# ----------------------------------------------------------------------------


def rounded(params, dtype):
    """Round every parameter to the storage dtype, then keep it as float64 for the reference."""
    return {k: v.to(STORAGE[dtype]).to(DT) for k, v in params.items()}


# ----------------------------------------------------------------------------
# Forward passes (SAELens inference semantics, float64)
# ----------------------------------------------------------------------------


def sae_input(p, x, apply_b_dec):
    return x - p["b_dec"] if apply_b_dec else x


def fwd_standard(p, x, apply_b_dec):
    pre = sae_input(p, x, apply_b_dec) @ p["W_enc"] + p["b_enc"]
    acts = torch.relu(pre)
    return pre, acts, acts @ p["W_dec"] + p["b_dec"]


def fwd_jumprelu(p, x, apply_b_dec):
    pre = sae_input(p, x, apply_b_dec) @ p["W_enc"] + p["b_enc"]
    acts = torch.relu(pre) * (pre > p["threshold"]).to(DT)
    return pre, acts, acts @ p["W_dec"] + p["b_dec"]


def fwd_topk(p, x, apply_b_dec, k, rescale):
    """TopK: the k largest pre-activations per row (then ReLU). With rescale_acts_by_decoder_norm
    the pre-activation is multiplied by each decoder row's norm before the top-k, and the
    latents are divided by it again before decoding. `pre` is the value the top-k reads."""
    pre = sae_input(p, x, apply_b_dec) @ p["W_enc"] + p["b_enc"]
    norms = p["W_dec"].norm(dim=-1)
    if rescale:
        pre = pre * norms
    vals, idx = torch.topk(pre, k, dim=-1)
    acts = torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))
    dec_in = acts / norms if rescale else acts
    return pre, acts, dec_in @ p["W_dec"] + p["b_dec"]


def fwd_gated(p, x, apply_b_dec):
    s = sae_input(p, x, apply_b_dec)
    gate = s @ p["W_enc"] + p["b_gate"]
    pre = s @ (p["W_enc"] * torch.exp(p["r_mag"])) + p["b_mag"]
    acts = (gate > 0).to(DT) * torch.relu(pre)
    return pre, acts, acts @ p["W_dec"] + p["b_dec"], gate


def fwd_skip_transcoder(p, x):
    """Transcoder: no b_dec subtraction; output = acts @ W_dec + b_dec + x @ W_skip^T."""
    pre = x @ p["W_enc"] + p["b_enc"]
    acts = torch.relu(pre)
    return pre, acts, acts @ p["W_dec"] + p["b_dec"] + x @ p["W_skip"].T


# ----------------------------------------------------------------------------
# Parameters and inputs
# ----------------------------------------------------------------------------


def gen(seed):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def randn(g, *shape, std=1.0):
    return torch.randn(*shape, generator=g, dtype=DT) * std


def base_params(g, d_out=D_IN, dec_norm=None):
    W_dec = randn(g, D_SAE, d_out)
    W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True) * (dec_norm if dec_norm is not None else 1.0)
    return {
        "W_enc": randn(g, D_IN, D_SAE, std=0.35),
        "b_enc": randn(g, D_SAE, std=0.3),
        "W_dec": W_dec,
        "b_dec": randn(g, d_out, std=0.2),
    }


def inputs(g):
    return randn(g, N_ROWS, D_IN).to(torch.float32).to(DT)


def margin_to(x, level):
    return float((x - level).abs().min())


# ----------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------


def reference_json(description, x, pre, acts, recons, extra=None):
    ref = {
        "description": description,
        "input": x.tolist(),  # exact float32 values
        "pre": r9(pre),
        "acts": r9(acts),
        "recons": r9(recons),
    }
    if extra:
        ref.update(extra)
    return ref


def write_fixture(name, cfg, tensors, dtype, ref, sparsity=None):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "cfg.json"), cfg)
    write_safetensors(os.path.join(d, "sae_weights.safetensors"), tensors, dtype)
    if sparsity is not None:
        write_safetensors(os.path.join(d, "sparsity.safetensors"), [("sparsity", sparsity)], "F32")
    write_json(os.path.join(d, "reference.json"), ref)
    back = read_safetensors(os.path.join(d, "sae_weights.safetensors"))
    for k, t in tensors:
        assert torch.equal(back[k], t), (name, k)  # stored exactly what the reference used
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    assert size < 100_000, (name, size)
    return size


def first_good_seed(base, make):
    """Deterministic retry: the first seed >= base whose draw passes make()'s margin checks."""
    for seed in range(base, base + 200):
        out = make(seed)
        if out is not None:
            return out
    raise AssertionError("no seed gave well-separated pre-activations")


def standard_legacy():
    def make(seed):
        g = gen(seed)
        p = rounded(base_params(g), "F32")
        x = inputs(g)
        pre, acts, recons = fwd_standard(p, x, True)
        if margin_to(pre, 0) < MARGIN or not (0.2 < float((acts > 0).to(DT).mean()) < 0.8):
            return None
        return p, x, pre, acts, recons

    p, x, pre, acts, recons = first_good_seed(100, make)
    # b_dec matters: the same weights without subtracting it give different latents
    assert float((fwd_standard(p, x, False)[1] - acts).abs().max()) > 1e-2
    cfg = {
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "device": "cuda",
        "model_name": "tiny-stories-1M",
        "hook_name": "blocks.1.hook_resid_pre",
        "hook_layer": 1,
        "hook_head_index": None,
        "activation_fn_str": "relu",
        "activation_fn_kwargs": {},
        "apply_b_dec_to_input": True,
        "finetuning_scaling_factor": False,
        "sae_lens_training_version": "3.13.0",
        "prepend_bos": True,
        "dataset_path": "roneneldan/TinyStories",
        "dataset_trust_remote_code": True,
        "context_size": 128,
        "normalize_activations": False,
        "neuronpedia_id": None,
        "model_from_pretrained_kwargs": {},
        "seqpos_slice": [None],
    }
    ones = torch.ones(D_SAE, dtype=DT)
    tensors = [("W_enc", p["W_enc"]), ("b_enc", p["b_enc"]), ("W_dec", p["W_dec"]), ("b_dec", p["b_dec"]),
               ("scaling_factor", ones)]
    ref = reference_json(
        "Pre-6.0 SAELens standard SAE (ReLU, apply_b_dec_to_input). pre = (x - b_dec) @ W_enc + b_enc, "
        "acts = relu(pre), recons = acts @ W_dec + b_dec. The all-ones scaling_factor is a no-op. "
        "Outputs: 9 significant digits, float64 from the stored F32 weights.",
        x, pre, acts, recons,
    )
    return write_fixture("standard-legacy", cfg, tensors, "F32", ref)


def v6_metadata(hook_name, **extra):
    meta = {
        "sae_lens_version": "6.18.0",
        "sae_lens_training_version": "6.18.0",
        "model_name": "tiny-stories-1M",
        "hook_name": hook_name,
        "hook_head_index": None,
        "context_size": 128,
        "prepend_bos": True,
        "seqpos_slice": [None],
        "model_from_pretrained_kwargs": {},
        "dataset_path": "roneneldan/TinyStories",
    }
    meta.update(extra)
    return meta


def v6_cfg(architecture, meta, dtype="float32", apply_b_dec=True, **extra):
    cfg = {
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": dtype,
        "device": "cpu",
        "apply_b_dec_to_input": apply_b_dec,
        "normalize_activations": "none",
        "reshape_activations": "none",
    }
    cfg.update(extra)
    cfg["metadata"] = meta
    cfg["architecture"] = architecture
    return cfg


def jumprelu():
    def make(seed):
        g = gen(seed)
        p = base_params(g)
        p["threshold"] = torch.rand(D_SAE, generator=g, dtype=DT) * 0.5 + 0.05
        p = rounded(p, "BF16")
        x = inputs(g)
        pre, acts, recons = fwd_jumprelu(p, x, True)
        below = ((pre > 0) & (pre <= p["threshold"])).sum()
        if margin_to(pre, 0) < MARGIN or margin_to(pre, p["threshold"]) < MARGIN or below < 10:
            return None
        if int((acts > 0).sum()) < 20:
            return None
        return p, x, pre, acts, recons

    p, x, pre, acts, recons = first_good_seed(200, make)
    # the threshold matters: plain ReLU gives different latents
    assert float((torch.relu(pre) - acts).abs().max()) > 1e-2
    meta = v6_metadata("blocks.2.hook_resid_post", neuronpedia_id="tiny-stories-1M/2-res-jumprelu")
    cfg = v6_cfg("jumprelu", meta, dtype="bfloat16", apply_b_dec=True)
    tensors = [(k, p[k]) for k in ["W_dec", "W_enc", "b_dec", "b_enc", "threshold"]]
    g = gen(299)
    density = torch.rand(D_SAE, generator=g, dtype=DT) * 0.5 + 1e-4
    sparsity = torch.log10(density + 1e-10).to(torch.float32).to(DT)
    ref = reference_json(
        "SAELens 6 JumpReLU SAE, weights stored as BF16. pre = (x - b_dec) @ W_enc + b_enc, "
        "acts = relu(pre) * (pre > threshold), recons = acts @ W_dec + b_dec. Outputs: 9 significant "
        "digits, float64 from the BF16-rounded weights. `sparsity` is sparsity.safetensors (log10 "
        "feature density), exact float32 values.",
        x, pre, acts, recons, {"sparsity": sparsity.tolist()},
    )
    return write_fixture("jumprelu", cfg, tensors, "BF16", ref, sparsity=sparsity)


def topk():
    def make(seed):
        g = gen(seed)
        p = base_params(g)
        p["W_dec"] = p["W_dec"] * (torch.rand(D_SAE, 1, generator=g, dtype=DT) * 1.5 + 0.25)
        p = rounded(p, "F32")
        x = inputs(g)
        pre, acts, recons = fwd_topk(p, x, False, K, True)
        srt = pre.sort(dim=-1, descending=True).values
        if float((srt[:, K - 1] - srt[:, K]).min()) < MARGIN or margin_to(pre, 0) < MARGIN:
            return None
        return p, x, pre, acts, recons

    p, x, pre, acts, recons = first_good_seed(300, make)
    assert int((acts != 0).sum(dim=-1).max()) <= K
    # the rescale matters: top-k of the unscaled pre-activation picks other latents
    assert float((fwd_topk(p, x, False, K, False)[1] - acts).abs().max()) > 1e-2
    # and it folds exactly into the weights (what a loader may do)
    n = p["W_dec"].norm(dim=-1)
    folded = {"W_enc": p["W_enc"] * n, "b_enc": p["b_enc"] * n, "W_dec": p["W_dec"] / n[:, None], "b_dec": p["b_dec"]}
    fp, fa, fr = fwd_topk(folded, x, False, K, False)
    assert float((fa - acts).abs().max()) < 1e-12 and float((fr - recons).abs().max()) < 1e-12
    meta = v6_metadata("blocks.3.hook_mlp_out")
    cfg = v6_cfg("topk", meta, apply_b_dec=False, k=K, rescale_acts_by_decoder_norm=True)
    tensors = [(k, p[k]) for k in ["W_dec", "W_enc", "b_dec", "b_enc"]]
    ref = reference_json(
        "SAELens 6 TopK SAE (k=4, apply_b_dec_to_input false, rescale_acts_by_decoder_norm true, "
        "decoder rows of norm 0.25..1.75). pre = (x @ W_enc + b_enc) * |W_dec row| (the value the "
        "top-k reads), acts = relu of the 4 largest pre per row, recons = (acts / |W_dec row|) @ W_dec "
        "+ b_dec. Outputs: 9 significant digits, float64 from the stored F32 weights.",
        x, pre, acts, recons,
    )
    return write_fixture("topk", cfg, tensors, "F32", ref)


def gated():
    def make(seed):
        g = gen(seed)
        p = base_params(g)
        del p["b_enc"]
        p["b_gate"] = randn(g, D_SAE, std=0.3)
        p["r_mag"] = randn(g, D_SAE, std=0.3)
        p["b_mag"] = randn(g, D_SAE, std=0.3)
        p = rounded(p, "F32")
        x = inputs(g)
        pre, acts, recons, gate = fwd_gated(p, x, True)
        if margin_to(pre, 0) < MARGIN or margin_to(gate, 0) < MARGIN:
            return None
        open_neg = int(((gate > 0) & (pre < 0)).sum())
        shut_pos = int(((gate <= 0) & (pre > 0)).sum())
        if open_neg < 5 or shut_pos < 5 or int((acts > 0).sum()) < 20:
            return None
        return p, x, pre, acts, recons

    p, x, pre, acts, recons = first_good_seed(400, make)
    meta = v6_metadata("blocks.0.hook_resid_post")
    cfg = v6_cfg("gated", meta, apply_b_dec=True)
    tensors = [(k, p[k]) for k in ["W_dec", "W_enc", "b_dec", "b_gate", "b_mag", "r_mag"]]
    ref = reference_json(
        "SAELens 6 gated SAE. s = x - b_dec; gate = s @ W_enc + b_gate; pre = s @ (W_enc * exp(r_mag)) "
        "+ b_mag (the magnitude path); acts = (gate > 0) * relu(pre); recons = acts @ W_dec + b_dec. "
        "Outputs: 9 significant digits, float64 from the stored F32 weights.",
        x, pre, acts, recons,
    )
    return write_fixture("gated", cfg, tensors, "F32", ref)


def transcoder():
    def make(seed):
        g = gen(seed)
        p = base_params(g, d_out=D_OUT)
        p["W_skip"] = randn(g, D_OUT, D_IN, std=0.1)
        p = rounded(p, "F16")
        x = inputs(g)
        pre, acts, recons = fwd_skip_transcoder(p, x)
        if margin_to(pre, 0) < MARGIN or not (0.2 < float((acts > 0).to(DT).mean()) < 0.8):
            return None
        return p, x, pre, acts, recons

    p, x, pre, acts, recons = first_good_seed(500, make)
    # the skip connection matters
    assert float((x @ p["W_skip"].T).abs().max()) > 1e-2
    meta = v6_metadata(
        "blocks.1.ln2.hook_normalized",
        hook_name_out="blocks.1.hook_mlp_out",
        hook_head_index_out=None,
    )
    cfg = v6_cfg("skip_transcoder", meta, dtype="float16", apply_b_dec=False, d_out=D_OUT)
    tensors = [(k, p[k]) for k in ["W_dec", "W_enc", "W_skip", "b_dec", "b_enc"]]
    ref = reference_json(
        "SAELens 6 skip transcoder (d_in 16 -> d_out 12), weights stored as F16, W_skip stored "
        "[d_out, d_in]. pre = x @ W_enc + b_enc (no b_dec subtraction), acts = relu(pre), "
        "recons = acts @ W_dec + b_dec + x @ W_skip^T. Outputs: 9 significant digits, float64 from "
        "the F16-rounded weights.",
        x, pre, acts, recons,
    )
    return write_fixture("transcoder", cfg, tensors, "F16", ref)


def main():
    os.makedirs(OUT, exist_ok=True)
    sizes = {
        "standard-legacy": standard_legacy(),
        "jumprelu": jumprelu(),
        "topk": topk(),
        "gated": gated(),
        "transcoder": transcoder(),
    }
    for name, size in sizes.items():
        print(f"{name}: {size} bytes")


if __name__ == "__main__":
    main()
