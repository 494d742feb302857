#!/usr/bin/env python3
"""Generate tiny reference checkpoints + float64 reference outputs for Sonde's tests.

Run from the repository root with Debian's Python (it has python3-torch):

    /usr/bin/python3 scripts/reference/make_fixtures.py

Writes:
    test/fixtures/gpt2-tiny/{config.json, model.safetensors, reference.json}
    test/fixtures/llama-tiny/{config.json, model-0000{1,2}-of-00002.safetensors,
                              model.safetensors.index.json, reference.json}

Everything here is an independent, plain-function float64 implementation of the
HuggingFace GPT2LMHeadModel / LlamaForCausalLM forward passes (no transformers,
no safetensors package). Weights are drawn in float64, rounded to float32 for
storage, and the reference is computed from the float32-rounded values cast back
to float64, so the stored checkpoint and the reference agree exactly.

The script is deterministic: running it twice yields byte-identical files.
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

# Checkpoints carry the __metadata__ torch's save_file writes.
PT = {"format": "pt"}
from reference_io import DT, dir_size, f32_round, next_token_loss, r9, read_safetensors, write_json, write_safetensors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "test", "fixtures")

MATRIX_STD = 0.2

# ----------------------------------------------------------------------------
# safetensors (hand-written)
# ----------------------------------------------------------------------------


def causal_attention(q, k, v):
    """q,k,v: [T, H, dh] (k/v already expanded to H heads). Returns z [T,H,dh], pattern [H,T,T]."""
    T, H, dh = q.shape
    qh, kh, vh = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [H,T,dh]
    scores = qh @ kh.transpose(-1, -2) / math.sqrt(dh)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(mask, float("-inf"))
    pattern = torch.softmax(scores, dim=-1)
    z = (pattern @ vh).transpose(0, 1)  # [T,H,dh]
    return z, pattern


def causal_attention_loops(q, k, v):
    """Second formulation of causal_attention with explicit python loops (self-check only)."""
    T, H, dh = q.shape
    z = torch.zeros(T, H, dh, dtype=DT)
    pattern = torch.zeros(H, T, T, dtype=DT)
    scale = 1.0 / math.sqrt(dh)
    for h in range(H):
        for t in range(T):
            s = [float(torch.dot(q[t, h], k[j, h])) * scale for j in range(t + 1)]
            m = max(s)
            e = [math.exp(x - m) for x in s]
            tot = sum(e)
            for j in range(t + 1):
                p = e[j] / tot
                pattern[h, t, j] = p
                z[t, h] += p * v[j, h]
    return z, pattern


# ----------------------------------------------------------------------------
# GPT-2
# ----------------------------------------------------------------------------

GPT2_CFG = {
    "activation_function": "gelu_new",
    "architectures": ["GPT2LMHeadModel"],
    "attn_pdrop": 0.1,
    "bos_token_id": 95,
    "embd_pdrop": 0.1,
    "eos_token_id": 95,
    "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05,
    "model_type": "gpt2",
    "n_ctx": 32,
    "n_embd": 32,
    "n_head": 4,
    "n_inner": None,
    "n_layer": 2,
    "n_positions": 32,
    "resid_pdrop": 0.1,
    "scale_attn_weights": True,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
    "vocab_size": 96,
}


def gpt2_params(cfg, g):
    D, V, P, L = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"], cfg["n_layer"]
    Dm = 4 * D

    def mat(*shape):
        return torch.randn(*shape, generator=g, dtype=DT) * MATRIX_STD

    def vec(n, mean=0.0):
        return mean + 0.1 * torch.randn(n, generator=g, dtype=DT)

    p = {}  # insertion order == storage order
    p["transformer.wte.weight"] = mat(V, D)
    p["transformer.wpe.weight"] = mat(P, D)
    for i in range(L):
        pre = f"transformer.h.{i}."
        p[pre + "ln_1.weight"] = vec(D, 1.0)
        p[pre + "ln_1.bias"] = vec(D)
        p[pre + "attn.c_attn.weight"] = mat(D, 3 * D)  # Conv1D: [in, out]
        p[pre + "attn.c_attn.bias"] = vec(3 * D)
        p[pre + "attn.c_proj.weight"] = mat(D, D)
        p[pre + "attn.c_proj.bias"] = vec(D)
        p[pre + "ln_2.weight"] = vec(D, 1.0)
        p[pre + "ln_2.bias"] = vec(D)
        p[pre + "mlp.c_fc.weight"] = mat(D, Dm)
        p[pre + "mlp.c_fc.bias"] = vec(Dm)
        p[pre + "mlp.c_proj.weight"] = mat(Dm, D)
        p[pre + "mlp.c_proj.bias"] = vec(D)
    p["transformer.ln_f.weight"] = vec(D, 1.0)
    p["transformer.ln_f.bias"] = vec(D)
    return p


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    xc = x - mu
    var = (xc * xc).mean(-1, keepdim=True)  # biased variance, as torch LayerNorm
    return xc / torch.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def gpt2_forward(p, cfg, tokens, acts=None, attn_fn=causal_attention):
    """tokens: 1-D LongTensor. Returns logits [T, V]. acts: optional dict filled with TL-named hooks."""
    D, H, L, eps = cfg["n_embd"], cfg["n_head"], cfg["n_layer"], cfg["layer_norm_epsilon"]
    dh = D // H
    T = tokens.shape[0]
    rec = (lambda name, t: acts.__setitem__(name, t)) if acts is not None else (lambda name, t: None)

    embed = p["transformer.wte.weight"][tokens]
    pos = p["transformer.wpe.weight"][:T]
    x = embed + pos
    rec("hook_embed", embed)
    rec("hook_pos_embed", pos)
    for i in range(L):
        pre = f"transformer.h.{i}."
        rec(f"blocks.{i}.hook_resid_pre", x)
        h = layer_norm(x, p[pre + "ln_1.weight"], p[pre + "ln_1.bias"], eps)
        qkv = h @ p[pre + "attn.c_attn.weight"] + p[pre + "attn.c_attn.bias"]
        q, k, v = qkv.split(D, dim=-1)
        q, k, v = (t.reshape(T, H, dh) for t in (q, k, v))
        z, pattern = attn_fn(q, k, v)
        rec(f"blocks.{i}.attn.hook_pattern", pattern)
        attn_out = z.reshape(T, D) @ p[pre + "attn.c_proj.weight"] + p[pre + "attn.c_proj.bias"]
        x = x + attn_out
        rec(f"blocks.{i}.hook_resid_mid", x)
        h2 = layer_norm(x, p[pre + "ln_2.weight"], p[pre + "ln_2.bias"], eps)
        mlp_pre = h2 @ p[pre + "mlp.c_fc.weight"] + p[pre + "mlp.c_fc.bias"]
        mlp_post = gelu_new(mlp_pre)
        rec(f"blocks.{i}.mlp.hook_pre", mlp_pre)
        rec(f"blocks.{i}.mlp.hook_post", mlp_post)
        x = x + mlp_post @ p[pre + "mlp.c_proj.weight"] + p[pre + "mlp.c_proj.bias"]
        rec(f"blocks.{i}.hook_resid_post", x)
    xf = layer_norm(x, p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], eps)
    rec("ln_final_out", xf)
    rec("ln_final_pre_affine", layer_norm(x, 1.0, 0.0, eps))
    return xf @ p["transformer.wte.weight"].T  # tied unembedding


def make_gpt2():
    cfg = dict(GPT2_CFG)
    g = torch.Generator().manual_seed(1234)
    params = f32_round(gpt2_params(cfg, g))
    V = cfg["vocab_size"]
    tokens = [torch.randint(0, V, (n,), generator=g) for n in (20, 12)]

    out = os.path.join(FIXTURES, "gpt2-tiny")
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "config.json"), cfg)
    nbytes = write_safetensors(os.path.join(out, "model.safetensors"), list(params.items()), metadata=PT)

    acts = {}
    logits = [gpt2_forward(params, cfg, tokens[0], acts), gpt2_forward(params, cfg, tokens[1])]
    losses = [next_token_loss(lg, t) for lg, t in zip(logits, tokens)]

    # ---- self-checks ----
    checks = {}
    # 1. stored file round-trips to exactly the reference weights
    back = read_safetensors(os.path.join(out, "model.safetensors"))
    assert list(back.keys()) == list(params.keys())
    checks["safetensors_roundtrip_max_abs"] = max(float((back[k] - params[k]).abs().max()) for k in params)
    assert checks["safetensors_roundtrip_max_abs"] == 0.0
    # 2. attention with explicit loops over heads/positions gives the same logits and pattern
    acts_loop = {}
    logits_loop = gpt2_forward(params, cfg, tokens[0], acts_loop, attn_fn=causal_attention_loops)
    checks["attn_loops_logits_max_abs"] = float((logits_loop - logits[0]).abs().max())
    checks["attn_loops_pattern_max_abs"] = float(
        (acts_loop["blocks.0.attn.hook_pattern"] - acts["blocks.0.attn.hook_pattern"]).abs().max()
    )
    assert checks["attn_loops_logits_max_abs"] < 1e-10 and checks["attn_loops_pattern_max_abs"] < 1e-12
    # 3. component formulas vs torch's own
    xx = torch.randn(7, 32, dtype=DT, generator=g) * 3
    checks["gelu_new_vs_torch_tanh_gelu"] = float((gelu_new(xx) - F.gelu(xx, approximate="tanh")).abs().max())
    w, b = params["transformer.ln_f.weight"], params["transformer.ln_f.bias"]
    checks["layernorm_vs_torch"] = float(
        (layer_norm(xx, w, b, 1e-5) - F.layer_norm(xx, (32,), w, b, 1e-5)).abs().max()
    )
    assert checks["gelu_new_vs_torch_tanh_gelu"] < 1e-12 and checks["layernorm_vs_torch"] < 1e-12
    # 4. loss vs torch cross_entropy
    ce = float(F.cross_entropy(logits[0][:-1], tokens[0][1:]))
    checks["loss_vs_torch_cross_entropy"] = abs(ce - losses[0])
    assert checks["loss_vs_torch_cross_entropy"] < 1e-12
    # 5. the causal mask matters (sanity: pattern is lower triangular and rows sum to 1)
    pat = acts["blocks.0.attn.hook_pattern"]
    assert float(torch.triu(pat, 1).abs().max()) == 0.0
    assert float((pat.sum(-1) - 1).abs().max()) < 1e-12

    keep = [
        "blocks.0.hook_resid_pre",
        "blocks.0.attn.hook_pattern",
        "blocks.1.hook_resid_post",
        "blocks.0.mlp.hook_post",
        "ln_final_out",
        "ln_final_pre_affine",
    ]
    ref = {
        "description": (
            "gpt2-tiny: random GPT2LMHeadModel (n_layer 2, n_embd 32, n_head 4, vocab 96, n_positions 32), "
            "weights N(0,0.2) matrices, LN w=1+0.1N, biases 0.1N, stored F32. Reference computed in float64 "
            "from the float32 weights by scripts/reference/make_fixtures.py (HF semantics: Conv1D [in,out], "
            "gelu_new, tied unembedding). Each sequence is run on its own (no padding, positions from 0). "
            "logits: [seq][pos][vocab], 9 significant digits. loss: mean next-token cross-entropy per "
            "sequence. activations are for sequence 0 only, batch dim dropped; hook_pattern is [head, q, k]; "
            "ln_final_out is the final LayerNorm output AFTER w and b (input to the unembedding); "
            "ln_final_pre_affine is (x-mean)/sqrt(var+eps) BEFORE w and b."
        ),
        "tokens": [t.tolist() for t in tokens],
        "logits": [r9(lg) for lg in logits],
        "loss": [r9(l) for l in losses],
        "activations": {name: r9(acts[name]) for name in keep},
    }
    write_json(os.path.join(out, "reference.json"), ref, compact=True)
    return out, nbytes, losses, checks


# ----------------------------------------------------------------------------
# Llama
# ----------------------------------------------------------------------------

# Note on rope_scaling: with rope_theta 500000 and head_dim 8 the wavelengths 2*pi/inv_freq are
# ~6.28, ~167, ~4443, ~118141. With original_max_position_embeddings 16 none would be "kept"
# (high_freq_wavelen = 16/4 = 4 < 2*pi), so we use 256: high_freq_wavelen 64, low_freq_wavelen 256
# -> 6.28 kept, 167 smoothed, 4443 and 118141 divided by factor. max_position_embeddings is then
# factor * original = 2048 (as in real Llama-3.x configs, max_pos > original); it does not enter
# the llama3 inv_freq computation.
LLAMA_CFG = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "head_dim": 8,
    "hidden_act": "silu",
    "hidden_size": 48,
    "initializer_range": 0.02,
    "intermediate_size": 64,
    "max_position_embeddings": 2048,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 6,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 8.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 256,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "use_cache": True,
    "vocab_size": 96,
}


def llama_params(cfg, g):
    D, V, L = cfg["hidden_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    H, KV, dh, I = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["intermediate_size"]

    def mat(*shape):
        return torch.randn(*shape, generator=g, dtype=DT) * MATRIX_STD

    def norm_w(n):
        return 1.0 + 0.1 * torch.randn(n, generator=g, dtype=DT)

    p = {}
    p["model.embed_tokens.weight"] = mat(V, D)
    for i in range(L):
        pre = f"model.layers.{i}."
        p[pre + "input_layernorm.weight"] = norm_w(D)
        p[pre + "self_attn.q_proj.weight"] = mat(H * dh, D)  # nn.Linear: [out, in]
        p[pre + "self_attn.k_proj.weight"] = mat(KV * dh, D)
        p[pre + "self_attn.v_proj.weight"] = mat(KV * dh, D)
        p[pre + "self_attn.o_proj.weight"] = mat(D, H * dh)
        p[pre + "post_attention_layernorm.weight"] = norm_w(D)
        p[pre + "mlp.gate_proj.weight"] = mat(I, D)
        p[pre + "mlp.up_proj.weight"] = mat(I, D)
        p[pre + "mlp.down_proj.weight"] = mat(D, I)
    p["model.norm.weight"] = norm_w(D)
    p["lm_head.weight"] = mat(V, D)
    return p


def rope_inv_freq(cfg):
    """Returns (inv_freq_unscaled, inv_freq, regimes) in float64."""
    dh, theta = cfg["head_dim"], cfg["rope_theta"]
    inv = 1.0 / theta ** (torch.arange(0, dh, 2, dtype=DT) / dh)
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv, inv.clone(), ["none"] * len(inv)
    assert rs["rope_type"] == "llama3", rs
    factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    orig = rs["original_max_position_embeddings"]
    low_freq_wavelen = orig / lo
    high_freq_wavelen = orig / hi
    out, regimes = [], []
    for f in inv.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < high_freq_wavelen:
            out.append(f)
            regimes.append("kept")
        elif wavelen > low_freq_wavelen:
            out.append(f / factor)
            regimes.append("divided")
        else:
            smooth = (orig / wavelen - lo) / (hi - lo)
            out.append((1 - smooth) * f / factor + smooth * f)
            regimes.append("smoothed(%.6f)" % smooth)
    return inv, torch.tensor(out, dtype=DT), regimes


def rms_norm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def apply_rope_hf(x, inv_freq):
    """x: [T, heads, dh]; HF rotate_half layout (pairs (i, i+dh/2) share frequency i)."""
    T = x.shape[0]
    freqs = torch.outer(torch.arange(T, dtype=DT), inv_freq)  # [T, dh/2]
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    return x * cos + rotate_half(x) * sin


def apply_rope_interleaved(x, inv_freq):
    """Meta/complex layout (pairs (2i, 2i+1) share frequency i). Self-check only."""
    T, nh, dh = x.shape
    freqs = torch.outer(torch.arange(T, dtype=DT), inv_freq)
    rot = torch.polar(torch.ones_like(freqs), freqs)[:, None, :]  # [T,1,dh/2]
    xc = torch.view_as_complex(x.reshape(T, nh, dh // 2, 2).contiguous())
    return torch.view_as_real(xc * rot).reshape(T, nh, dh)


def llama_forward(p, cfg, tokens, acts=None, inv_freq=None, rope_fn=apply_rope_hf, attn_fn=causal_attention):
    D, L, eps = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["rms_norm_eps"]
    H, KV, dh = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    assert H % KV == 0
    group = H // KV
    kv_of_head = torch.arange(H) // group  # query head h reads kv head h // group
    if inv_freq is None:
        inv_freq = rope_inv_freq(cfg)[1]
    T = tokens.shape[0]
    rec = (lambda name, t: acts.__setitem__(name, t)) if acts is not None else (lambda name, t: None)

    x = p["model.embed_tokens.weight"][tokens]
    rec("hook_embed", x)
    for i in range(L):
        pre = f"model.layers.{i}."
        rec(f"blocks.{i}.hook_resid_pre", x)
        h = rms_norm(x, p[pre + "input_layernorm.weight"], eps)
        q = (h @ p[pre + "self_attn.q_proj.weight"].T).reshape(T, H, dh)
        k = (h @ p[pre + "self_attn.k_proj.weight"].T).reshape(T, KV, dh)
        v = (h @ p[pre + "self_attn.v_proj.weight"].T).reshape(T, KV, dh)
        q = rope_fn(q, inv_freq)
        k = rope_fn(k, inv_freq)
        rec(f"blocks.{i}.attn.hook_rot_q", q)
        rec(f"blocks.{i}.attn.hook_rot_k", k)
        z, pattern = attn_fn(q, k[:, kv_of_head], v[:, kv_of_head])
        rec(f"blocks.{i}.attn.hook_pattern", pattern)
        x = x + z.reshape(T, H * dh) @ p[pre + "self_attn.o_proj.weight"].T
        rec(f"blocks.{i}.hook_resid_mid", x)
        h2 = rms_norm(x, p[pre + "post_attention_layernorm.weight"], eps)
        gate = h2 @ p[pre + "mlp.gate_proj.weight"].T
        up = h2 @ p[pre + "mlp.up_proj.weight"].T
        act = gate * torch.sigmoid(gate) * up  # silu(gate) * up
        x = x + act @ p[pre + "mlp.down_proj.weight"].T
        rec(f"blocks.{i}.hook_resid_post", x)
    xf = rms_norm(x, p["model.norm.weight"], eps)
    rec("ln_final_out", xf)
    return xf @ p["lm_head.weight"].T  # untied


def hf_to_meta_rows(w, n_heads, dh):
    """Inverse of HF's convert_llama_weights permute: half layout -> interleaved layout (rows)."""
    d_in = w.shape[1]
    return w.reshape(n_heads, 2, dh // 2, d_in).transpose(1, 2).reshape(n_heads * dh, d_in)


def make_llama():
    cfg = json.loads(json.dumps(LLAMA_CFG))
    g = torch.Generator().manual_seed(5678)
    params = f32_round(llama_params(cfg, g))
    V, L = cfg["vocab_size"], cfg["num_hidden_layers"]
    H, KV, dh = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    tokens = [torch.randint(0, V, (n,), generator=g) for n in (20, 12)]

    inv_unscaled, inv_freq, regimes = rope_inv_freq(cfg)
    kinds = {r.split("(")[0] for r in regimes}
    assert kinds == {"kept", "divided", "smoothed"}, regimes

    out = os.path.join(FIXTURES, "llama-tiny")
    os.makedirs(out, exist_ok=True)
    for fn in os.listdir(out):
        if fn.endswith(".safetensors") or fn.endswith(".index.json"):
            os.remove(os.path.join(out, fn))
    write_json(os.path.join(out, "config.json"), cfg)

    # shard 1: embeddings + first half of the layers; shard 2: the rest + final norm + lm_head
    half = L // 2
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]

    def shard_of(name):
        if name.startswith("model.embed_tokens."):
            return 0
        if name.startswith("model.layers."):
            return 0 if int(name.split(".")[2]) < half else 1
        return 1

    shards = [[], []]
    for name, t in params.items():
        shards[shard_of(name)].append((name, t))
    total = 0
    weight_map = {}
    for si, fn in enumerate(files):
        total += write_safetensors(os.path.join(out, fn), shards[si], metadata=PT)
        for name, _ in shards[si]:
            weight_map[name] = fn
    write_json(
        os.path.join(out, "model.safetensors.index.json"),
        {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
    )

    acts = {}
    logits = [llama_forward(params, cfg, tokens[0], acts), llama_forward(params, cfg, tokens[1])]
    losses = [next_token_loss(lg, t) for lg, t in zip(logits, tokens)]

    # ---- self-checks ----
    checks = {}
    # 1. shards round-trip exactly and cover every tensor once
    back = {}
    for fn in files:
        part = read_safetensors(os.path.join(out, fn))
        assert not (set(part) & set(back))
        back.update(part)
    assert set(back) == set(params)
    checks["safetensors_roundtrip_max_abs"] = max(float((back[k] - params[k]).abs().max()) for k in params)
    assert checks["safetensors_roundtrip_max_abs"] == 0.0
    # 2. GQA: expanding k/v weights to one kv head per query head (kv head h // group repeated)
    #    and setting num_key_value_heads = num_attention_heads gives identical logits.
    group = H // KV
    p_mha = dict(params)
    for i in range(L):
        for nm in ("k_proj", "v_proj"):
            key = f"model.layers.{i}.self_attn.{nm}.weight"
            w = params[key].reshape(KV, dh, -1)
            p_mha[key] = w.repeat_interleave(group, dim=0).reshape(H * dh, -1)
    cfg_mha = dict(cfg, num_key_value_heads=H)
    lg_mha = llama_forward(p_mha, cfg_mha, tokens[0])
    checks["gqa_vs_expanded_mha_logits_max_abs"] = float((lg_mha - logits[0]).abs().max())
    assert checks["gqa_vs_expanded_mha_logits_max_abs"] < 1e-12
    # 3. RoPE layout: Meta-style interleaved complex rotation on un-permuted (Meta-layout) q/k
    #    weights must give the same logits as HF rotate_half on HF-layout weights.
    p_meta = dict(params)
    for i in range(L):
        qk = f"model.layers.{i}.self_attn."
        p_meta[qk + "q_proj.weight"] = hf_to_meta_rows(params[qk + "q_proj.weight"], H, dh)
        p_meta[qk + "k_proj.weight"] = hf_to_meta_rows(params[qk + "k_proj.weight"], KV, dh)
    acts_meta = {}
    lg_meta = llama_forward(p_meta, cfg, tokens[0], acts_meta, rope_fn=apply_rope_interleaved)
    checks["rope_interleaved_meta_vs_hf_logits_max_abs"] = float((lg_meta - logits[0]).abs().max())
    assert checks["rope_interleaved_meta_vs_hf_logits_max_abs"] < 1e-10
    # 4. attention with explicit loops gives the same logits
    lg_loop = llama_forward(params, cfg, tokens[0], attn_fn=causal_attention_loops)
    checks["attn_loops_logits_max_abs"] = float((lg_loop - logits[0]).abs().max())
    assert checks["attn_loops_logits_max_abs"] < 1e-10
    # 5. sensitivity: the llama3 rope scaling and rotate_half-vs-interleaved both change the logits
    lg_noscale = llama_forward(params, cfg, tokens[0], inv_freq=inv_unscaled)
    checks["sensitivity_no_rope_scaling_logits_max_abs"] = float((lg_noscale - logits[0]).abs().max())
    lg_wronglayout = llama_forward(params, cfg, tokens[0], rope_fn=apply_rope_interleaved)
    checks["sensitivity_wrong_rope_layout_logits_max_abs"] = float((lg_wronglayout - logits[0]).abs().max())
    assert checks["sensitivity_no_rope_scaling_logits_max_abs"] > 1e-3
    assert checks["sensitivity_wrong_rope_layout_logits_max_abs"] > 1e-3
    # 6. loss vs torch cross_entropy
    ce = float(F.cross_entropy(logits[0][:-1], tokens[0][1:]))
    checks["loss_vs_torch_cross_entropy"] = abs(ce - losses[0])
    assert checks["loss_vs_torch_cross_entropy"] < 1e-12

    ref = {
        "description": (
            "llama-tiny: random LlamaForCausalLM (hidden 48, 2 layers, 6 heads, 2 kv heads (GQA, query head h "
            "uses kv head h // 3), head_dim 8, intermediate 64, vocab 96, untied lm_head, no biases), llama3 "
            "rope_scaling (factor 8, low 1, high 4, original_max_position_embeddings 256, theta 500000; the "
            "4 frequencies are kept / smoothed / divided / divided), weights N(0,0.2), RMSNorm w=1+0.1N, "
            "stored F32 in 2 shards. Reference computed in float64 (inv_freq and cos/sin also float64, whereas "
            "HF computes them in float32) by scripts/reference/make_fixtures.py. Each sequence is run on its "
            "own, positions from 0. logits: [seq][pos][vocab], 9 significant digits. loss: mean next-token "
            "cross-entropy per sequence. activations are for sequence 0, batch dim dropped: "
            "blocks.0.attn.hook_rot_q is [pos, head, d_head] (q after RoPE, HF rotate_half layout)."
        ),
        "tokens": [t.tolist() for t in tokens],
        "logits": [r9(lg) for lg in logits],
        "loss": [r9(l) for l in losses],
        "activations": {
            "blocks.0.attn.hook_rot_q": r9(acts["blocks.0.attn.hook_rot_q"]),
            "blocks.1.hook_resid_post": r9(acts["blocks.1.hook_resid_post"]),
        },
        "rope": {
            "inv_freq_unscaled": r9(inv_unscaled),
            "inv_freq": r9(inv_freq),
            "regimes": regimes,
        },
    }
    write_json(os.path.join(out, "reference.json"), ref, compact=True)
    return out, total, losses, checks, (inv_unscaled, inv_freq, regimes)


def main():
    torch.manual_seed(0)
    torch.set_default_dtype(DT)

    gdir, gbytes, glosses, gchecks = make_gpt2()
    print(f"[gpt2-tiny]  {os.path.relpath(gdir, ROOT)}: {gbytes} tensor bytes, dir {dir_size(gdir)} bytes")
    print(f"  loss per sequence: {', '.join('%.6f' % l for l in glosses)}")
    for k, v in gchecks.items():
        print(f"  check {k}: {v:.3g}  OK")

    ldir, lbytes, llosses, lchecks, (inv0, inv1, regimes) = make_llama()
    print(f"[llama-tiny] {os.path.relpath(ldir, ROOT)}: {lbytes} tensor bytes (2 shards), dir {dir_size(ldir)} bytes")
    print(f"  loss per sequence: {', '.join('%.6f' % l for l in llosses)}")
    for i, (a, b, r) in enumerate(zip(inv0.tolist(), inv1.tolist(), regimes)):
        print(f"  rope freq {i}: wavelen {2 * math.pi / a:12.3f}  inv_freq {a:.6e} -> {b:.6e}  [{r}]")
    for k, v in lchecks.items():
        print(f"  check {k}: {v:.3g}  OK")
    total = dir_size(gdir) + dir_size(ldir)
    print(f"total fixture size: {total} bytes")
    assert total < 2 * 1024 * 1024


if __name__ == "__main__":
    sys.exit(main())
