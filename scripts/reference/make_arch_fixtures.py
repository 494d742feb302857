#!/usr/bin/env python3
"""Tiny random-weight checkpoints of more HF architectures + float64 reference outputs.

Run from the repository root with Debian's Python (it has python3-torch):

    /usr/bin/python3 scripts/reference/make_arch_fixtures.py

Writes, under test/fixtures/:

    gpt-neo-tiny/     GPTNeoForCausalLM    global + local (window 6) layers, no 1/sqrt(d) scaling
    pythia-tiny/      GPTNeoXForCausalLM   parallel residual, rotary_pct 0.25, fused per-head QKV, 2 shards
    pythia-seq-tiny/  GPTNeoXForCausalLM   same with use_parallel_residual false
    gemma-tiny/       GemmaForCausalLM     sqrt(d) embed scale, (1+w) RMSNorm, GeGLU, MQA, head_dim != d/H
    gemma2-tiny/      Gemma2ForCausalLM    sliding/global, pre+post norms, soft-capping, query_pre_attn_scalar, BF16
    gemma3-tiny/      Gemma3ForCausalLM    2 sliding + 1 global, q/k norms, local/global RoPE bases, linear scaling
    mistral-tiny/     MistralForCausalLM   GQA, sliding window 6 on every layer
    qwen2-tiny/       Qwen2ForCausalLM     q/k/v biases, GQA, tied
    qwen3-tiny/       Qwen3ForCausalLM     q/k RMSNorm (plain w) per head before RoPE, head_dim != d/H, tied

each with config.json, safetensors weights (tensor names and shapes as HF's state_dict(); tied
lm_head weights are left out as save_pretrained does) and reference.json.

Everything here is an independent plain-function float64 implementation that follows the semantics
of the HF transformers modeling code (no transformers, no safetensors package). Weights are drawn
in float64, rounded to their storage dtype (F32, or BF16 for gemma2-tiny) and the reference is
computed from the rounded values cast back to float64. RoPE inv_freq/cos/sin are float64 here too
(HF computes them in float32; the difference is ~1e-7 relative).

Conventions shared by all fixtures (see each reference.json's description):
  * sliding-window / local attention: key j is visible to query i iff j <= i and j > i - window
    (window tokens including the query itself), as transformers' masking_utils.sliding_window_overlay,
    GPT-Neo's `bias ^ tril(bias, -window_size)` and Gemma 2's `tril(ones, diagonal=-sliding_window)`;
  * each sequence is run on its own, positions from 0, no padding.

The script checks itself before it writes anything and stops on a failed assertion; it is
deterministic (two runs give byte-identical files).
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

# Checkpoints carry the __metadata__ torch's save_file writes.
PT = {"format": "pt"}
from reference_io import (
    DT,
    bf16_round,
    dir_size,
    f32_round,
    next_token_loss,
    r9,
    read_safetensors,
    write_json,
    write_safetensors,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "test", "fixtures")

SEQ_LENS = (20, 12)
MAX_DIR_BYTES = 5 * 1024 * 1024
# A feature "matters" when switching it off moves some logit of sequence 0 by at least this much.
MIN_EFFECT = 0.1

# ----------------------------------------------------------------------------
# safetensors (hand-written), rounding, json
# ----------------------------------------------------------------------------


def max_abs(a, b):
    return float((a - b).abs().max())


# ----------------------------------------------------------------------------
# building blocks (float64)
# ----------------------------------------------------------------------------


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    xc = x - mu
    var = (xc * xc).mean(-1, keepdim=True)  # biased variance, as torch LayerNorm
    return xc / torch.sqrt(var + eps) * w + b


def rms_normalize(x, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps)


def rms_norm(x, w, eps, kind):
    """kind 'plain': x/rms * w (Llama, Mistral, Qwen2/3, incl. Qwen3 q/k norm);
    kind 'gemma': x/rms * (1 + w) (Gemma 1/2/3 incl. Gemma 3 q/k norm)."""
    if kind == "plain":
        return rms_normalize(x, eps) * w
    if kind == "gemma":
        return rms_normalize(x, eps) * (1.0 + w)
    if kind == "gemma_wrong_plain":  # self-check only: Gemma weights used without the +1
        return rms_normalize(x, eps) * w
    if kind == "plain_wrong_1p":  # self-check only: plain weights used as (1 + w)
        return rms_normalize(x, eps) * (1.0 + w)
    raise ValueError(kind)


def gelu_tanh(x):  # HF gelu_new == gelu_pytorch_tanh
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def gelu_erf(x):  # HF "gelu" (exact)
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def silu(x):
    return x * torch.sigmoid(x)


ACTS = {"gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "gelu": gelu_erf, "silu": silu}


def softcap(x, cap):
    return cap * torch.tanh(x / cap)


def rope_inv_freq(dim, base, linear_factor=1.0):
    """HF default rope: inv_freq[i] = base^(-2i/dim), i < dim/2; 'linear' scaling divides by factor."""
    inv = 1.0 / base ** (torch.arange(0, dim, 2, dtype=DT) / dim)
    return inv / linear_factor


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def apply_rope(x, inv_freq, rotary_dim=None):
    """x: [T, heads, dh]. HF rotate_half layout on the first rotary_dim dims (all by default);
    pairs (i, i + rotary_dim/2) share frequency i; the remaining dims pass through (GPT-NeoX)."""
    T, _, dh = x.shape
    rd = dh if rotary_dim is None else rotary_dim
    assert inv_freq.shape[0] * 2 == rd
    inv_freq = inv_freq.to(x.dtype)  # float64 here; float32 in the float32 conditioning check
    freqs = torch.outer(torch.arange(T, dtype=x.dtype), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    xr, xp = x[..., :rd], x[..., rd:]
    return torch.cat([xr * cos + rotate_half(xr) * sin, xp], dim=-1)


def visible_mask(T, window):
    """[T, T] bool: key j visible to query i iff j <= i and (window is None or j > i - window)."""
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    m = j <= i
    if window is not None:
        m = m & (j > i - window)
    return m


def attention(q, k, v, scale, window=None, cap=None, kv_of_head=None):
    """q: [T,H,dh]; k, v: [T,KV,dh] (query head h reads kv head kv_of_head[h]).
    scores = q.k * scale, then optional tanh soft-cap, then the causal/window mask, softmax.
    Returns z [T,H,dh] (pattern-weighted values) and pattern [H,T,T]."""
    T, H, dh = q.shape
    if kv_of_head is not None:
        k, v = k[:, kv_of_head], v[:, kv_of_head]
    qh, kh, vh = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
    scores = (qh @ kh.transpose(-1, -2)) * scale
    if cap is not None:
        scores = softcap(scores, cap)
    scores = scores.masked_fill(~visible_mask(T, window), float("-inf"))
    pattern = torch.softmax(scores, dim=-1)
    return (pattern @ vh).transpose(0, 1), pattern


def attention_loops(q, k, v, scale, window=None, cap=None, kv_of_head=None):
    """The same attention with explicit python loops (self-check only)."""
    T, H, dh = q.shape
    z = torch.zeros(T, H, dh, dtype=DT)
    pattern = torch.zeros(H, T, T, dtype=DT)
    for h in range(H):
        kvh = h if kv_of_head is None else int(kv_of_head[h])
        for t in range(T):
            lo = 0 if window is None else max(0, t - window + 1)
            js = list(range(lo, t + 1))
            s = []
            for j in js:
                x = float(torch.dot(q[t, h], k[j, kvh])) * scale
                if cap is not None:
                    x = cap * math.tanh(x / cap)
                s.append(x)
            m = max(s)
            e = [math.exp(x - m) for x in s]
            tot = sum(e)
            for j, ej in zip(js, e):
                pattern[h, t, j] = ej / tot
                z[t, h] += (ej / tot) * v[j, kvh]
    return z, pattern


class Recorder:
    def __init__(self, acts):
        self.acts = acts

    def __call__(self, name, t):
        if self.acts is not None:
            self.acts[name] = t.clone()


class Init:
    """Weight draws. mat(out, in, gain) has std gain/sqrt(in): a unit-variance input gives ~gain-sized outputs."""

    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def randn(self, *shape):
        return torch.randn(*shape, generator=self.g, dtype=DT)

    def mat(self, out_f, in_f, gain=1.0):
        return self.randn(out_f, in_f) * (gain / math.sqrt(in_f))

    def vec(self, n, mean=0.0, std=0.1):
        return mean + std * self.randn(n)

    def tokens(self, vocab):
        return [torch.randint(0, vocab, (n,), generator=self.g) for n in SEQ_LENS]


# ----------------------------------------------------------------------------
# GPT-Neo
# ----------------------------------------------------------------------------

GPT_NEO_CFG = {
    "activation_function": "gelu_new",
    "architectures": ["GPTNeoForCausalLM"],
    "attention_dropout": 0.0,
    "attention_layers": ["global", "local"],
    "attention_types": [[["global", "local"], 1]],
    "bos_token_id": 95,
    "classifier_dropout": 0.1,
    "embed_dropout": 0.0,
    "eos_token_id": 95,
    "hidden_size": 32,
    "initializer_range": 0.02,
    "intermediate_size": None,
    "layer_norm_epsilon": 1e-05,
    "max_position_embeddings": 32,
    "model_type": "gpt_neo",
    "num_heads": 4,
    "num_layers": 2,
    "resid_dropout": 0.0,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
    "use_cache": True,
    "vocab_size": 96,
    "window_size": 6,
}


def expand_attention_types(attention_types):
    """GPTNeoConfig.expand_attention_types_params: [[types, n], ...] -> types repeated n times."""
    out = []
    for types, n in attention_types:
        for _ in range(n):
            out.extend(types)
    return out


def gpt_neo_params(cfg, init):
    D, V, P, L = cfg["hidden_size"], cfg["vocab_size"], cfg["max_position_embeddings"], cfg["num_layers"]
    I = cfg["intermediate_size"] or 4 * D
    p = {}
    p["transformer.wte.weight"] = init.randn(V, D) * 0.4
    p["transformer.wpe.weight"] = init.randn(P, D) * 0.4
    for i in range(L):
        pre = f"transformer.h.{i}."
        p[pre + "ln_1.weight"] = init.vec(D, 1.0)
        p[pre + "ln_1.bias"] = init.vec(D)
        # nn.Linear [out, in]; q/k/v without bias, out_proj with bias
        p[pre + "attn.attention.k_proj.weight"] = init.mat(D, D, 1.0)
        p[pre + "attn.attention.v_proj.weight"] = init.mat(D, D, 1.0)
        p[pre + "attn.attention.q_proj.weight"] = init.mat(D, D, 1.0)
        p[pre + "attn.attention.out_proj.weight"] = init.mat(D, D, 1.0)
        p[pre + "attn.attention.out_proj.bias"] = init.vec(D)
        p[pre + "ln_2.weight"] = init.vec(D, 1.0)
        p[pre + "ln_2.bias"] = init.vec(D)
        p[pre + "mlp.c_fc.weight"] = init.mat(I, D, 1.5)
        p[pre + "mlp.c_fc.bias"] = init.vec(I)
        p[pre + "mlp.c_proj.weight"] = init.mat(D, I, 1.0)
        p[pre + "mlp.c_proj.bias"] = init.vec(D)
    p["transformer.ln_f.weight"] = init.vec(D, 1.0)
    p["transformer.ln_f.bias"] = init.vec(D)
    return p


def gpt_neo_forward(p, cfg, tokens, acts=None, attn_fn=attention, scale=1.0, layer_types=None, window=None):
    """HF GPTNeoForCausalLM: wte + wpe, pre-LN sequential blocks, NO 1/sqrt(d_head) on the scores
    (scale=1), local layers see the last window_size keys, gelu_new MLP, ln_f, tied unembedding."""
    D, H, L, eps = cfg["hidden_size"], cfg["num_heads"], cfg["num_layers"], cfg["layer_norm_epsilon"]
    dh = D // H
    T = tokens.shape[0]
    types = layer_types or expand_attention_types(cfg["attention_types"])
    W = cfg["window_size"] if window is None else window
    act = ACTS[cfg["activation_function"]]
    rec = Recorder(acts)

    embed = p["transformer.wte.weight"][tokens]
    pos = p["transformer.wpe.weight"][:T]
    rec("hook_embed", embed)
    rec("hook_pos_embed", pos)
    x = embed + pos
    for i in range(L):
        pre = f"transformer.h.{i}."
        a = pre + "attn.attention."
        rec(f"blocks.{i}.hook_resid_pre", x)
        h = layer_norm(x, p[pre + "ln_1.weight"], p[pre + "ln_1.bias"], eps)
        q = (h @ p[a + "q_proj.weight"].T).reshape(T, H, dh)
        k = (h @ p[a + "k_proj.weight"].T).reshape(T, H, dh)
        v = (h @ p[a + "v_proj.weight"].T).reshape(T, H, dh)
        z, pattern = attn_fn(q, k, v, scale, window=W if types[i] == "local" else None)
        rec(f"blocks.{i}.attn.hook_pattern", pattern)
        rec(f"blocks.{i}.attn.hook_z", z)
        attn_out = z.reshape(T, D) @ p[a + "out_proj.weight"].T + p[a + "out_proj.bias"]
        rec(f"blocks.{i}.hook_attn_out", attn_out)
        x = x + attn_out
        rec(f"blocks.{i}.hook_resid_mid", x)
        h2 = layer_norm(x, p[pre + "ln_2.weight"], p[pre + "ln_2.bias"], eps)
        mlp_out = act(h2 @ p[pre + "mlp.c_fc.weight"].T + p[pre + "mlp.c_fc.bias"]) @ p[
            pre + "mlp.c_proj.weight"
        ].T + p[pre + "mlp.c_proj.bias"]
        rec(f"blocks.{i}.hook_mlp_out", mlp_out)
        x = x + mlp_out
        rec(f"blocks.{i}.hook_resid_post", x)
    xf = layer_norm(x, p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], eps)
    rec("ln_final_out", xf)
    return xf @ p["transformer.wte.weight"].T


# ----------------------------------------------------------------------------
# GPT-NeoX (Pythia)
# ----------------------------------------------------------------------------

PYTHIA_CFG = {
    "architectures": ["GPTNeoXForCausalLM"],
    "attention_bias": True,
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "classifier_dropout": 0.1,
    "eos_token_id": 0,
    "hidden_act": "gelu",
    "hidden_dropout": 0.0,
    "hidden_size": 32,
    "initializer_range": 0.02,
    "intermediate_size": 64,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 32,
    "model_type": "gpt_neox",
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "rope_scaling": None,
    "rotary_emb_base": 10000,
    "rotary_pct": 0.25,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "use_cache": True,
    "use_parallel_residual": True,
    "vocab_size": 96,
}


def pythia_params(cfg, init):
    D, V, L, I = cfg["hidden_size"], cfg["vocab_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    p = {}
    p["gpt_neox.embed_in.weight"] = init.randn(V, D) * 0.6
    for i in range(L):
        pre = f"gpt_neox.layers.{i}."
        p[pre + "input_layernorm.weight"] = init.vec(D, 1.0)
        p[pre + "input_layernorm.bias"] = init.vec(D)
        p[pre + "post_attention_layernorm.weight"] = init.vec(D, 1.0)
        p[pre + "post_attention_layernorm.bias"] = init.vec(D)
        # fused [3D, D]; output rows viewed as [H, 3, head_size]: per head q rows, then k rows, then v rows
        p[pre + "attention.query_key_value.weight"] = init.mat(3 * D, D, 1.4)
        p[pre + "attention.query_key_value.bias"] = init.vec(3 * D, std=0.2)
        p[pre + "attention.dense.weight"] = init.mat(D, D, 1.0)
        p[pre + "attention.dense.bias"] = init.vec(D)
        p[pre + "mlp.dense_h_to_4h.weight"] = init.mat(I, D, 1.5)
        p[pre + "mlp.dense_h_to_4h.bias"] = init.vec(I)
        p[pre + "mlp.dense_4h_to_h.weight"] = init.mat(D, I, 1.0)
        p[pre + "mlp.dense_4h_to_h.bias"] = init.vec(D)
    p["gpt_neox.final_layer_norm.weight"] = init.vec(D, 1.0)
    p["gpt_neox.final_layer_norm.bias"] = init.vec(D)
    p["embed_out.weight"] = init.mat(V, D, 2.5)
    return p


def neox_split_qkv(qkv, H, hs, layout="hf"):
    """qkv: [T, 3*H*hs] output of query_key_value. HF layout: view [T, H, 3*hs], per head
    q = [..., :hs], k = [..., hs:2hs], v = [..., 2hs:]. 'naive' (self-check only): [q | k | v] blocks."""
    T = qkv.shape[0]
    if layout == "hf":
        x = qkv.reshape(T, H, 3 * hs)
        return x[..., :hs], x[..., hs : 2 * hs], x[..., 2 * hs :]
    q, k, v = qkv.split(H * hs, dim=-1)
    return q.reshape(T, H, hs), k.reshape(T, H, hs), v.reshape(T, H, hs)


def pythia_forward(p, cfg, tokens, acts=None, attn_fn=attention, parallel=None, rotary_pct=None, layout="hf"):
    """HF GPTNeoXForCausalLM. Attention: fused per-head qkv, rotary (rotate_half) on the first
    rotary_ndims = int(head_size * rotary_pct) dims of q and k, scores / sqrt(head_size), dense with bias.
    Parallel: x + attn(ln1(x)) + mlp(ln2(x)); sequential: m = x + attn(ln1(x)); m + mlp(ln2(m))."""
    D, H, L, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["layer_norm_eps"]
    hs = D // H
    pct = cfg["rotary_pct"] if rotary_pct is None else rotary_pct
    rd = int(hs * pct)
    inv_freq = rope_inv_freq(rd, cfg["rotary_emb_base"])
    par = cfg["use_parallel_residual"] if parallel is None else parallel
    act = ACTS[cfg["hidden_act"]]
    T = tokens.shape[0]
    rec = Recorder(acts)

    x = p["gpt_neox.embed_in.weight"][tokens]
    rec("hook_embed", x)
    for i in range(L):
        pre = f"gpt_neox.layers.{i}."
        a = pre + "attention."
        rec(f"blocks.{i}.hook_resid_pre", x)
        h = layer_norm(x, p[pre + "input_layernorm.weight"], p[pre + "input_layernorm.bias"], eps)
        qkv = h @ p[a + "query_key_value.weight"].T + p[a + "query_key_value.bias"]
        q, k, v = neox_split_qkv(qkv, H, hs, layout)
        q, k = apply_rope(q, inv_freq, rd), apply_rope(k, inv_freq, rd)
        z, pattern = attn_fn(q, k, v, 1.0 / math.sqrt(hs))
        rec(f"blocks.{i}.attn.hook_pattern", pattern)
        rec(f"blocks.{i}.attn.hook_z", z)
        attn_out = z.reshape(T, D) @ p[a + "dense.weight"].T + p[a + "dense.bias"]
        rec(f"blocks.{i}.hook_attn_out", attn_out)

        def mlp(y):
            ln2 = pre + "post_attention_layernorm."
            hh = layer_norm(y, p[ln2 + "weight"], p[ln2 + "bias"], eps)
            m = act(hh @ p[pre + "mlp.dense_h_to_4h.weight"].T + p[pre + "mlp.dense_h_to_4h.bias"])
            return m @ p[pre + "mlp.dense_4h_to_h.weight"].T + p[pre + "mlp.dense_4h_to_h.bias"]

        if par:
            mlp_out = mlp(x)
            x = x + attn_out + mlp_out
        else:
            x = x + attn_out
            rec(f"blocks.{i}.hook_resid_mid", x)
            mlp_out = mlp(x)
            x = x + mlp_out
        rec(f"blocks.{i}.hook_mlp_out", mlp_out)
        rec(f"blocks.{i}.hook_resid_post", x)
    xf = layer_norm(x, p["gpt_neox.final_layer_norm.weight"], p["gpt_neox.final_layer_norm.bias"], eps)
    rec("ln_final_out", xf)
    return xf @ p["embed_out.weight"].T


def pythia_forward_separate_qkv(p, cfg, tokens):
    """Self-check: de-interleave the fused weight into separate per-head W_q/W_k/W_v ([H*hs, D] each,
    head-major rows, like Llama's q_proj) and run the attention from those; must equal pythia_forward."""
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    hs = D // H
    q2 = dict(p)
    for i in range(cfg["num_hidden_layers"]):
        a = f"gpt_neox.layers.{i}.attention."
        w = p[a + "query_key_value.weight"].reshape(H, 3, hs, D)
        b = p[a + "query_key_value.bias"].reshape(H, 3, hs)
        Wq, Wk, Wv = (w[:, j].reshape(H * hs, D) for j in range(3))
        bq, bk, bv = (b[:, j].reshape(H * hs) for j in range(3))
        # re-fuse as naive [q; k; v] blocks and run the 'naive' split: same numbers if the layout is right
        q2[a + "query_key_value.weight"] = torch.cat([Wq, Wk, Wv], 0)
        q2[a + "query_key_value.bias"] = torch.cat([bq, bk, bv], 0)
    return pythia_forward(q2, cfg, tokens, layout="naive")


# ----------------------------------------------------------------------------
# Llama-family decoders: Gemma 1/2/3, Mistral, Qwen2, Qwen3
# ----------------------------------------------------------------------------


def decoder_spec(cfg):
    """Interpret an HF config the way the HF modeling code does. Returns a plain dict of semantics."""
    mt = cfg["model_type"]
    D, H, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    dh = cfg.get("head_dim") or D // H
    KV = cfg.get("num_key_value_heads") or H
    s = {
        "model_type": mt,
        "D": D,
        "H": H,
        "KV": KV,
        "dh": dh,
        "L": L,
        "eps": cfg["rms_norm_eps"],
        "embed_scale": None,
        "norm": "plain",
        "post_norms": False,
        "qk_norm": None,
        "qkv_bias": False,
        "mlp_bias": cfg.get("mlp_bias", False),  # LlamaMLP: gate/up/down nn.Linear(..., bias=config.mlp_bias)
        "scale": dh**-0.5,
        "attn_cap": None,
        "final_cap": None,
        "tied": cfg.get("tie_word_embeddings", True),
    }
    windows = [None] * L
    base = cfg.get("rope_theta", 10000.0)
    rs = cfg.get("rope_scaling")
    factor = 1.0
    if rs:
        assert rs["rope_type"] == "linear", rs
        factor = rs["factor"]
    inv = [rope_inv_freq(dh, base, factor)] * L
    if mt in ("gemma", "gemma2", "gemma3_text"):
        s["embed_scale"] = math.sqrt(D)  # hidden_size**0.5 (exact here: see the per-fixture notes)
        s["norm"] = "gemma"
        s["act"] = cfg["hidden_activation"]
    else:
        s["act"] = cfg["hidden_act"]
    if mt in ("gemma2", "gemma3_text"):
        s["post_norms"] = True
        s["scale"] = cfg["query_pre_attn_scalar"] ** -0.5
        s["attn_cap"] = cfg.get("attn_logit_softcapping")
        s["final_cap"] = cfg.get("final_logit_softcapping")
        types = cfg["layer_types"]
        windows = [cfg["sliding_window"] if t == "sliding_attention" else None for t in types]
    if mt == "gemma3_text":
        s["qk_norm"] = "gemma"
        # sliding layers: rope_local_base_freq, default rope (no scaling); full layers: rope_theta + rope_scaling
        inv = [
            rope_inv_freq(dh, cfg["rope_local_base_freq"]) if w is not None else rope_inv_freq(dh, base, factor)
            for w in windows
        ]
    if mt == "mistral":
        windows = [cfg["sliding_window"]] * L
    if mt in ("qwen2", "qwen3"):
        types = cfg["layer_types"]
        windows = [cfg["sliding_window"] if t == "sliding_attention" else None for t in types]
    if mt == "qwen2":
        s["qkv_bias"] = True
    if mt == "qwen3":
        s["qk_norm"] = "plain"
    s["windows"] = windows
    s["inv_freq"] = inv
    return s


def decoder_params(cfg, init, gains):
    """HF state_dict names/shapes in module registration order (lm_head only when untied)."""
    s = decoder_spec(cfg)
    D, H, KV, dh, L, V, I = s["D"], s["H"], s["KV"], s["dh"], s["L"], cfg["vocab_size"], cfg["intermediate_size"]
    g = gains
    gemma = s["norm"] == "gemma"

    def norm_w(n, std):
        return init.vec(n, 0.0, std) if gemma else init.vec(n, 1.0, std)

    p = {}
    p["model.embed_tokens.weight"] = init.randn(V, D) * g["embed"]
    for i in range(L):
        pre = f"model.layers.{i}."
        a = pre + "self_attn."
        p[a + "q_proj.weight"] = init.mat(H * dh, D, g["q"])
        if s["qkv_bias"]:
            p[a + "q_proj.bias"] = init.vec(H * dh, std=g["bias"])
        p[a + "k_proj.weight"] = init.mat(KV * dh, D, g["k"])
        if s["qkv_bias"]:
            p[a + "k_proj.bias"] = init.vec(KV * dh, std=g["bias"])
        p[a + "v_proj.weight"] = init.mat(KV * dh, D, g["v"])
        if s["qkv_bias"]:
            p[a + "v_proj.bias"] = init.vec(KV * dh, std=g["bias"])
        p[a + "o_proj.weight"] = init.mat(D, H * dh, g["o"])
        if s["qk_norm"]:
            p[a + "q_norm.weight"] = norm_w(dh, g["qk_norm"])
            p[a + "k_norm.weight"] = norm_w(dh, g["qk_norm"])
        p[pre + "mlp.gate_proj.weight"] = init.mat(I, D, g["gate"])
        p[pre + "mlp.up_proj.weight"] = init.mat(I, D, g["up"])
        p[pre + "mlp.down_proj.weight"] = init.mat(D, I, g["down"])
        if s["mlp_bias"]:
            p[pre + "mlp.gate_proj.bias"] = init.vec(I, std=g["bias"])
            p[pre + "mlp.up_proj.bias"] = init.vec(I, std=g["bias"])
            p[pre + "mlp.down_proj.bias"] = init.vec(D, std=g["bias"])
        p[pre + "input_layernorm.weight"] = norm_w(D, g["norm"])
        p[pre + "post_attention_layernorm.weight"] = norm_w(D, g["norm"])
        if s["post_norms"]:
            p[pre + "pre_feedforward_layernorm.weight"] = norm_w(D, g["norm"])
            p[pre + "post_feedforward_layernorm.weight"] = norm_w(D, g["norm"])
    p["model.norm.weight"] = norm_w(D, g["norm"])
    if not s["tied"]:
        p["lm_head.weight"] = init.mat(V, D, g["lm_head"])
    return p


def decoder_forward(p, s, tokens, acts=None, attn_fn=attention):
    """Forward of the HF Llama-family decoders as parametrised by decoder_spec (or a modified copy).

    x = E[tokens] (* sqrt(D) for Gemma); per layer:
      h = norm(x, input_layernorm); q,k,v = h W^T (+ b for Qwen2); [q/k norm per head over d_head];
      RoPE (rotate_half; per-layer inv_freq); scores = q.k * scale; [cap*tanh(./cap)]; causal or
      sliding mask; softmax; attn_out = z W_o^T; [Gemma 2/3: attn_out = norm(attn_out, post_attention_layernorm)];
      x += attn_out; h2 = norm(x, post_attention_layernorm) for Llama/Mistral/Qwen/Gemma 1, but
      norm(x, pre_feedforward_layernorm) for Gemma 2/3; mlp = down(act(gate h2) * up h2);
      [Gemma 2/3: mlp = norm(mlp, post_feedforward_layernorm)]; x += mlp.
    Then model.norm, lm_head (or the tied embedding), [final cap*tanh(./cap)]."""
    D, H, KV, dh, L, eps = s["D"], s["H"], s["KV"], s["dh"], s["L"], s["eps"]
    kv_of_head = torch.arange(H) // (H // KV)
    act = ACTS[s["act"]]
    nk = s["norm"]
    T = tokens.shape[0]
    rec = Recorder(acts)

    def norm(y, name):
        return rms_norm(y, p[name], eps, nk)

    x = p["model.embed_tokens.weight"][tokens]
    if s["embed_scale"] is not None:
        x = x * s["embed_scale"]
    rec("hook_embed", x)
    for i in range(L):
        pre = f"model.layers.{i}."
        a = pre + "self_attn."
        rec(f"blocks.{i}.hook_resid_pre", x)
        h = norm(x, pre + "input_layernorm.weight")
        q = h @ p[a + "q_proj.weight"].T
        k = h @ p[a + "k_proj.weight"].T
        v = h @ p[a + "v_proj.weight"].T
        if s["qkv_bias"]:
            q, k, v = q + p[a + "q_proj.bias"], k + p[a + "k_proj.bias"], v + p[a + "v_proj.bias"]
        q, k, v = q.reshape(T, H, dh), k.reshape(T, KV, dh), v.reshape(T, KV, dh)
        if s["qk_norm"]:
            q = rms_norm(q, p[a + "q_norm.weight"], eps, s["qk_norm"])
            k = rms_norm(k, p[a + "k_norm.weight"], eps, s["qk_norm"])
        q, k = apply_rope(q, s["inv_freq"][i]), apply_rope(k, s["inv_freq"][i])
        rec(f"blocks.{i}.attn.hook_rot_q", q)
        rec(f"blocks.{i}.attn.hook_rot_k", k)
        z, pattern = attn_fn(q, k, v, s["scale"], window=s["windows"][i], cap=s["attn_cap"], kv_of_head=kv_of_head)
        rec(f"blocks.{i}.attn.hook_pattern", pattern)
        rec(f"blocks.{i}.attn.hook_z", z)
        attn_out = z.reshape(T, H * dh) @ p[a + "o_proj.weight"].T
        if s["post_norms"]:
            attn_out = norm(attn_out, pre + "post_attention_layernorm.weight")
        rec(f"blocks.{i}.hook_attn_out", attn_out)
        x = x + attn_out
        rec(f"blocks.{i}.hook_resid_mid", x)
        # the MLP's input norm: Gemma 2/3 name it pre_feedforward_layernorm, the others post_attention_layernorm
        ln2 = "pre_feedforward_layernorm" if s["post_norms"] else "post_attention_layernorm"
        h2 = norm(x, pre + ln2 + ".weight")
        gate = h2 @ p[pre + "mlp.gate_proj.weight"].T
        up = h2 @ p[pre + "mlp.up_proj.weight"].T
        if s["mlp_bias"]:
            gate, up = gate + p[pre + "mlp.gate_proj.bias"], up + p[pre + "mlp.up_proj.bias"]
        mlp_out = (act(gate) * up) @ p[pre + "mlp.down_proj.weight"].T
        if s["mlp_bias"]:
            mlp_out = mlp_out + p[pre + "mlp.down_proj.bias"]
        if s["post_norms"]:
            mlp_out = norm(mlp_out, pre + "post_feedforward_layernorm.weight")
        rec(f"blocks.{i}.hook_mlp_out", mlp_out)
        x = x + mlp_out
        rec(f"blocks.{i}.hook_resid_post", x)
    xf = norm(x, "model.norm.weight")
    rec("ln_final_out", xf)
    logits = xf @ (p["model.embed_tokens.weight"] if s["tied"] else p["lm_head.weight"]).T
    if s["final_cap"] is not None:
        logits = softcap(logits, s["final_cap"])
    return logits


# ----------------------------------------------------------------------------
# configs of the Llama-family fixtures
# ----------------------------------------------------------------------------

GEMMA_CFG = {
    "architectures": ["GemmaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 2,
    "eos_token_id": 1,
    "head_dim": 16,
    "hidden_act": "gelu_pytorch_tanh",
    "hidden_activation": "gelu_pytorch_tanh",
    "hidden_size": 32,
    "initializer_range": 0.02,
    "intermediate_size": 64,
    "max_position_embeddings": 32,
    "model_type": "gemma",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 1,
    "pad_token_id": 0,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
    "use_cache": True,
    "vocab_size": 96,
}

GEMMA2_CFG = {
    "architectures": ["Gemma2ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "attn_logit_softcapping": 5.0,
    "bos_token_id": 2,
    "cache_implementation": "hybrid",
    "eos_token_id": 1,
    "final_logit_softcapping": 3.0,
    "head_dim": 16,
    "hidden_act": "gelu_pytorch_tanh",
    "hidden_activation": "gelu_pytorch_tanh",
    "hidden_size": 64,
    "initializer_range": 0.02,
    "intermediate_size": 96,
    "layer_types": ["sliding_attention", "full_attention"],
    "max_position_embeddings": 32,
    "model_type": "gemma2",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "pad_token_id": 0,
    "query_pre_attn_scalar": 24,
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000.0,
    "sliding_window": 6,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 96,
}

GEMMA3_CFG = {
    "architectures": ["Gemma3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "attn_logit_softcapping": None,
    "bos_token_id": 2,
    "cache_implementation": "hybrid",
    "eos_token_id": 1,
    "final_logit_softcapping": None,
    "head_dim": 16,
    "hidden_activation": "gelu_pytorch_tanh",
    "hidden_size": 32,
    "initializer_range": 0.02,
    "intermediate_size": 64,
    "layer_types": ["sliding_attention", "sliding_attention", "full_attention"],
    "max_position_embeddings": 32,
    "model_type": "gemma3_text",
    "num_attention_heads": 4,
    "num_hidden_layers": 3,
    "num_key_value_heads": 2,
    "pad_token_id": 0,
    "query_pre_attn_scalar": 32,
    "rms_norm_eps": 1e-06,
    "rope_local_base_freq": 10000.0,
    "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
    "rope_theta": 1000000.0,
    "sliding_window": 6,
    "sliding_window_pattern": 3,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
    "use_cache": True,
    "vocab_size": 96,
}

MISTRAL_CFG = {
    "architectures": ["MistralForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "head_dim": 8,
    "hidden_act": "silu",
    "hidden_size": 32,
    "initializer_range": 0.02,
    "intermediate_size": 64,
    "max_position_embeddings": 32,
    "model_type": "mistral",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "sliding_window": 6,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "use_cache": True,
    "vocab_size": 96,
}

LLAMA_MLP_BIAS_CFG = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "head_dim": 8,
    "hidden_act": "silu",
    "hidden_size": 32,
    "initializer_range": 0.02,
    "intermediate_size": 64,
    "max_position_embeddings": 32,
    "mlp_bias": True,
    "model_type": "llama",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "use_cache": True,
    "vocab_size": 96,
}

QWEN2_CFG = {
    "architectures": ["Qwen2ForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 95,
    "eos_token_id": 95,
    "hidden_act": "silu",
    "hidden_size": 32,
    "initializer_range": 0.02,
    "intermediate_size": 64,
    "layer_types": ["full_attention", "full_attention"],
    "max_position_embeddings": 32768,
    "max_window_layers": 2,
    "model_type": "qwen2",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 96,
}

QWEN3_CFG = {
    "architectures": ["Qwen3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 95,
    "eos_token_id": 95,
    "head_dim": 16,
    "hidden_act": "silu",
    "hidden_size": 32,
    "initializer_range": 0.02,
    "intermediate_size": 64,
    "layer_types": ["full_attention", "full_attention"],
    "max_position_embeddings": 32768,
    "max_window_layers": 2,
    "model_type": "qwen3",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000.0,
    "sliding_window": None,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 96,
}

# Weight scales (see Init.mat). Chosen so activations are O(1) and every feature moves the logits.
GAINS_BASE = {
    "embed": 1.0, "q": 1.0, "k": 1.0, "v": 1.0, "o": 1.0, "gate": 1.0, "up": 1.0, "down": 1.0,
    "norm": 0.1, "qk_norm": 0.1, "bias": 0.3, "lm_head": 2.5,
}  # fmt: skip


def hf_layer_types(cfg):
    """How current transformers derives layer_types when a config has none (for the self-check)."""
    mt, L = cfg["model_type"], cfg["num_hidden_layers"]
    if mt == "gemma2":  # Gemma2Config: even layers slide (old code: is_sliding = not bool(layer_idx % 2))
        return ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(L)]
    if mt == "gemma3_text":  # Gemma3TextConfig: sliding unless (i + 1) % sliding_window_pattern == 0
        pat = cfg.get("sliding_window_pattern", 6)
        return ["sliding_attention" if (i + 1) % pat else "full_attention" for i in range(L)]
    if mt in ("qwen2", "qwen3"):  # sliding only with use_sliding_window, from layer max_window_layers on
        return [
            "sliding_attention" if cfg["use_sliding_window"] and i >= cfg["max_window_layers"] else "full_attention"
            for i in range(L)
        ]
    raise ValueError(mt)


# ----------------------------------------------------------------------------
# writing a fixture
# ----------------------------------------------------------------------------


def clean_dir(out):
    os.makedirs(out, exist_ok=True)
    for fn in os.listdir(out):
        if fn.endswith(".safetensors") or fn.endswith(".index.json") or fn in ("config.json", "reference.json"):
            os.remove(os.path.join(out, fn))


def write_weights(out, params, dtype="F32", shard_of=None):
    """One model.safetensors, or (shard_of: name -> shard index) model-0000k-of-0000n + index.json.
    Returns the list of files written and checks they read back exactly."""
    names = list(params.keys())
    if shard_of is None:
        files = ["model.safetensors"]
        write_safetensors(os.path.join(out, files[0]), [(k, params[k]) for k in names], dtype, metadata=PT)
    else:
        n = 1 + max(shard_of(k) for k in names)
        files = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
        total = 0
        weight_map = {}
        for si, fn in enumerate(files):
            part = [(k, params[k]) for k in names if shard_of(k) == si]
            assert part
            total += write_safetensors(os.path.join(out, fn), part, dtype, metadata=PT)
            for k, _ in part:
                weight_map[k] = fn
        write_json(
            os.path.join(out, "model.safetensors.index.json"),
            {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
        )
    back = {}
    for fn in files:
        part = read_safetensors(os.path.join(out, fn))
        assert not (set(part) & set(back))
        back.update(part)
    assert set(back) == set(params), sorted(set(back) ^ set(params))
    err = max(max_abs(back[k], params[k]) for k in params)
    assert err == 0.0, err
    for k in params:
        assert tuple(back[k].shape) == tuple(params[k].shape), k
    return files


def finish(name, cfg, params, tokens, forward, keep, description, checks, dtype="F32", shard_of=None, extra=None):
    """Common tail: logits/loss for both sequences, self-checks common to all, files, size check."""
    acts = {}
    logits = [forward(params, tokens[0], acts=acts), forward(params, tokens[1])]
    losses = [next_token_loss(lg, t) for lg, t in zip(logits, tokens)]
    # explicit-loop attention gives the same logits and activations
    acts_loop = {}
    lg_loop = forward(params, tokens[0], acts=acts_loop, attn_fn=attention_loops)
    checks["attn_loops_logits_max_abs"] = max_abs(lg_loop, logits[0])
    checks["attn_loops_acts_max_abs"] = max(max_abs(acts_loop[k], acts[k]) for k in acts)
    assert checks["attn_loops_logits_max_abs"] < 1e-10 and checks["attn_loops_acts_max_abs"] < 1e-10
    # conditioning: the same forward run in float32 (as Sonde computes) stays well inside the 1e-4 tests
    acts32 = {}
    p32 = {k: v.to(torch.float32) for k, v in params.items()}
    lg32 = forward(p32, tokens[0], acts=acts32).to(DT)
    rel = lambda a, b: float((a.to(DT) - b).abs().max() / b.abs().max().clamp_min(1e-6))  # noqa: E731
    checks["float32_forward_logits_rel"] = rel(lg32, logits[0])
    checks["float32_forward_acts_rel_max"] = max(rel(acts32[k], acts[k]) for k in keep)
    assert checks["float32_forward_logits_rel"] < 1e-5 and checks["float32_forward_acts_rel_max"] < 1e-5
    # causality: a prefix of sequence 0 gives the prefix of its logits
    lg_prefix = forward(params, tokens[0][:9])
    checks["causal_prefix_max_abs"] = max_abs(lg_prefix, logits[0][:9])
    assert checks["causal_prefix_max_abs"] < 1e-10
    ce = float(F.cross_entropy(logits[0][:-1], tokens[0][1:]))
    checks["loss_vs_torch_cross_entropy"] = abs(ce - losses[0])
    assert checks["loss_vs_torch_cross_entropy"] < 1e-12
    for k in keep:
        assert k in acts, k
    # the hooks add up: resid_post = resid_pre + attn_out + mlp_out (and resid_mid = resid_pre + attn_out)
    L = sum(1 for k in keep if k.endswith("hook_resid_post"))
    for i in range(L):
        b = f"blocks.{i}."
        summed = acts[b + "hook_resid_pre"] + acts[b + "hook_attn_out"] + acts[b + "hook_mlp_out"]
        assert max_abs(acts[b + "hook_resid_post"], summed) < 1e-12
        if b + "hook_resid_mid" in keep:
            assert max_abs(acts[b + "hook_resid_mid"], acts[b + "hook_resid_pre"] + acts[b + "hook_attn_out"]) < 1e-12
        if i + 1 < L:
            assert torch.equal(acts[b + "hook_resid_post"], acts[f"blocks.{i + 1}.hook_resid_pre"])
    checks["info_logits_std"] = float(logits[0].std())
    checks["info_logits_max_abs"] = float(logits[0].abs().max())
    # activations are O(1)
    rms = {k: float(acts[k].pow(2).mean().sqrt()) for k in keep if "hook_pattern" not in k}
    checks["max_activation_rms"] = max(rms.values())
    checks["min_activation_rms"] = min(rms.values())
    assert 0.05 < checks["min_activation_rms"] and checks["max_activation_rms"] < 30, rms
    for k in keep:
        if "hook_pattern" in k:
            pat = acts[k]
            assert float(torch.triu(pat, 1).abs().max()) == 0.0
            assert float((pat.sum(-1) - 1).abs().max()) < 1e-12

    out = os.path.join(FIXTURES, name)
    clean_dir(out)
    write_json(os.path.join(out, "config.json"), cfg)
    files = write_weights(out, params, dtype, shard_of)  # asserts the files read back exactly
    checks["safetensors_roundtrip_max_abs"] = 0.0
    ref = {
        "description": description,
        "tokens": [t.tolist() for t in tokens],
        "logits": [r9(lg) for lg in logits],
        "loss": [r9(l) for l in losses],
        "activations": {k: r9(acts[k]) for k in keep},
    }
    if extra:
        ref.update(extra)
    write_json(os.path.join(out, "reference.json"), ref, compact=True)
    size = dir_size(out)
    assert size < MAX_DIR_BYTES, (name, size)
    return {"name": name, "dir": out, "files": files, "size": size, "losses": losses, "checks": checks}


def sensitivity(checks, label, base, other, min_effect=MIN_EFFECT):
    d = max_abs(base, other)
    checks["effect_" + label] = d
    assert d >= min_effect, (label, d)


def hook_list(L, rot=False, parallel=False, pos=False):
    keep = ["hook_embed"] + (["hook_pos_embed"] if pos else [])
    for i in range(L):
        b = f"blocks.{i}."
        keep += [b + "hook_resid_pre"]
        if rot:
            keep += [b + "attn.hook_rot_q", b + "attn.hook_rot_k"]
        keep += [b + "attn.hook_pattern", b + "attn.hook_z", b + "hook_attn_out"]
        if not parallel:
            keep += [b + "hook_resid_mid"]
        keep += [b + "hook_mlp_out", b + "hook_resid_post"]
    return keep + ["ln_final_out"]


COMMON_DESC = (
    "Reference computed in float64 from the stored weights by scripts/reference/make_arch_fixtures.py "
    "(plain torch, following the HF transformers modeling code). Each sequence is run on its own, positions "
    "from 0, no padding. logits: [seq][pos][vocab], 9 significant digits. loss: mean next-token cross-entropy "
    "per sequence (from the final logits). activations: sequence 0 only, batch dim dropped, TransformerLens "
    "names: hook_pattern [head, q, k] (masked entries 0); hook_z [pos, head, d_head] = pattern-weighted values "
    "before the output projection; hook_attn_out / hook_mlp_out = what each sublayer adds to the residual "
    "stream (output biases included{post}); hook_resid_mid only for sequential blocks; ln_final_out = final "
    "norm output (input to the unembedding){rot}. Sliding-window/local attention: key j visible to query i "
    "iff j <= i and j > i - window."
)


def common_desc(post=False, rot=False):
    return COMMON_DESC.format(
        post=", and after the post-attention / post-feedforward norms" if post else "",
        rot="; hook_rot_q [pos, head, d_head] and hook_rot_k [pos, kv_head, d_head] = q/k after the q/k norm "
        "and after RoPE"
        if rot
        else "",
    )


# ----------------------------------------------------------------------------
# the fixtures
# ----------------------------------------------------------------------------


def mask_conventions_check():
    """The three HF formulations of a sliding window agree with visible_mask."""
    T, W = 20, 6
    bias = torch.tril(torch.ones(T, T, dtype=torch.uint8))
    neo = (bias ^ torch.tril(bias, -W)).bool()  # GPT-Neo GPTNeoSelfAttention
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    g2 = causal & ~torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-W)  # Gemma 2 (4.4x) decoder layer
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    mu = (j <= i) & (j > i - W)  # masking_utils causal_mask_function & sliding_window_overlay
    want = visible_mask(T, W)
    assert torch.equal(neo, want) and torch.equal(g2, want) and torch.equal(mu, want)
    assert int(want[19].sum()) == W
    # component formulas vs torch's own
    g = torch.Generator().manual_seed(7)
    xx = torch.randn(7, 16, generator=g, dtype=DT) * 3
    assert max_abs(gelu_tanh(xx), F.gelu(xx, approximate="tanh")) < 1e-12
    assert max_abs(gelu_erf(xx), F.gelu(xx)) < 1e-12
    assert max_abs(silu(xx), F.silu(xx)) < 1e-12
    w, b = torch.randn(16, generator=g, dtype=DT), torch.randn(16, generator=g, dtype=DT)
    assert max_abs(layer_norm(xx, w, b, 1e-5), F.layer_norm(xx, (16,), w, b, 1e-5)) < 1e-12


def make_gpt_neo():
    cfg = json.loads(json.dumps(GPT_NEO_CFG))
    assert expand_attention_types(cfg["attention_types"]) == cfg["attention_layers"]
    assert len(cfg["attention_layers"]) == cfg["num_layers"]
    init = Init(101)
    params = f32_round(gpt_neo_params(cfg, init))
    tokens = init.tokens(cfg["vocab_size"])

    def fwd(p, t, acts=None, attn_fn=attention, **kw):
        return gpt_neo_forward(p, cfg, t, acts, attn_fn, **kw)

    checks = {}
    base = fwd(params, tokens[0])
    dh = cfg["hidden_size"] // cfg["num_heads"]
    sensitivity(checks, "local_layer_as_global", base, fwd(params, tokens[0], layer_types=["global", "global"]))
    sensitivity(checks, "scaled_by_1_over_sqrt_dhead", base, fwd(params, tokens[0], scale=dh**-0.5))
    sensitivity(checks, "window_plus_one", base, fwd(params, tokens[0], window=cfg["window_size"] + 1))
    L = cfg["num_layers"]
    desc = (
        "gpt-neo-tiny: random GPTNeoForCausalLM (hidden 32, 2 layers, 4 heads of 8, vocab 96, 32 positions, "
        "intermediate_size null -> 4*hidden = 128, tied lm_head not stored). attention_types "
        "[[['global','local'],1]] -> layer 0 global (causal), layer 1 local with window_size 6. Attention "
        "scores are NOT scaled by 1/sqrt(d_head) (HF GPT-Neo has no scaling). q/k/v_proj without bias, "
        "out_proj with bias, mlp c_fc/c_proj nn.Linear [out, in] with bias, gelu_new, learned positions "
        "(hook_pos_embed = wpe[:T]; hook_embed = wte[tokens]), LayerNorm eps 1e-5. Stored F32. "
        + common_desc()
    )
    return finish(
        "gpt-neo-tiny", cfg, params, tokens, fwd, hook_list(L, pos=True), desc, checks,
        extra={"layer_attention": ["global", "local"], "window_size": cfg["window_size"]},
    )  # fmt: skip


def make_pythia(parallel):
    cfg = json.loads(json.dumps(PYTHIA_CFG))
    cfg["use_parallel_residual"] = parallel
    init = Init(202 if parallel else 203)
    params = f32_round(pythia_params(cfg, init))
    tokens = init.tokens(cfg["vocab_size"])
    H = cfg["num_attention_heads"]
    hs = cfg["hidden_size"] // H
    assert int(hs * cfg["rotary_pct"]) == 4

    def fwd(p, t, acts=None, attn_fn=attention, **kw):
        return pythia_forward(p, cfg, t, acts, attn_fn, **kw)

    checks = {}
    base = fwd(params, tokens[0])
    checks["separate_qkv_weights_max_abs"] = max_abs(pythia_forward_separate_qkv(params, cfg, tokens[0]), base)
    assert checks["separate_qkv_weights_max_abs"] < 1e-12
    sensitivity(checks, "parallel_vs_sequential", base, fwd(params, tokens[0], parallel=not parallel))
    sensitivity(checks, "full_rotary_instead_of_partial", base, fwd(params, tokens[0], rotary_pct=1.0))
    sensitivity(checks, "naive_qkv_split", base, fwd(params, tokens[0], layout="naive"))
    sensitivity(checks, "no_rotary", base, fwd(params, tokens[0], rotary_pct=0.0))

    L = cfg["num_hidden_layers"]
    name = "pythia-tiny" if parallel else "pythia-seq-tiny"
    if parallel:
        block = (
            "use_parallel_residual true: resid_post = resid_pre + attn(input_layernorm(resid_pre)) + "
            "mlp(post_attention_layernorm(resid_pre)) (no hook_resid_mid). Stored F32 in 2 shards "
            "(embed_in + layer 0 | layer 1 + final_layer_norm + embed_out) with model.safetensors.index.json."
        )
    else:
        block = (
            "use_parallel_residual false: resid_mid = resid_pre + attn(input_layernorm(resid_pre)), "
            "resid_post = resid_mid + mlp(post_attention_layernorm(resid_mid)). Stored F32, one file."
        )
    desc = (
        f"{name}: random GPTNeoXForCausalLM (hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} layers, "
        f"{H} heads of head_size {hs}, intermediate {cfg['intermediate_size']}, vocab {cfg['vocab_size']}, "
        "untied embed_out). Fused attention.query_key_value [3*hidden, hidden] (+bias) in HF NeoX's "
        "per-head layout: output viewed as [head, 3*head_size], q = [..., :16], k = [..., 16:32], v = "
        "[..., 32:48]. rotary_pct 0.25 -> rotary_ndims = int(16*0.25) = 4: RoPE (rotate_half over those 4 dims, "
        "inv_freq = rotary_emb_base^(-[0,2]/4), base 10000) on q/k dims 0..3, dims 4..15 pass through. Scores / "
        "sqrt(head_size). hidden_act gelu (exact erf). LayerNorms with bias, layer_norm_eps 1e-5. "
        + block + " " + common_desc()
    )
    shard_of = None
    if parallel:

        def shard_of(k):
            if k.startswith("gpt_neox.embed_in.") or k.startswith("gpt_neox.layers.0."):
                return 0
            return 1

    return finish(name, cfg, params, tokens, fwd, hook_list(L, parallel=parallel), desc, checks, shard_of=shard_of)


def llama_family(name, cfg_in, seed, gains, dtype, desc_head, rot, checks_fn, extra=None):
    cfg = json.loads(json.dumps(cfg_in))
    if "layer_types" in cfg:
        assert cfg["layer_types"] == hf_layer_types(cfg), (name, hf_layer_types(cfg))
    spec = decoder_spec(cfg)
    init = Init(seed)
    g = dict(GAINS_BASE, **gains)
    raw = decoder_params(cfg, init, g)
    params = bf16_round(raw) if dtype == "BF16" else f32_round(raw)
    tokens = init.tokens(cfg["vocab_size"])

    def fwd(p, t, acts=None, attn_fn=attention, spec_=None):
        return decoder_forward(p, spec_ or spec, t, acts, attn_fn)

    checks = {}
    base = fwd(params, tokens[0])

    def variant(label, min_effect=MIN_EFFECT, p=None, **changes):
        s2 = dict(spec, **changes)
        sensitivity(checks, label, base, fwd(p if p is not None else params, tokens[0], spec_=s2), min_effect)

    checks_fn(cfg, spec, params, tokens, base, variant, checks, fwd)
    shape = (
        f"hidden {spec['D']}, {spec['L']} layers, {spec['H']} heads, {spec['KV']} kv heads, head_dim {spec['dh']}, "
        f"intermediate {cfg['intermediate_size']}, vocab {cfg['vocab_size']}"
    )
    desc = desc_head.replace("{shape}", shape) + " " + common_desc(post=spec["post_norms"], rot=rot)
    ex = {"layer_attention": ["sliding" if w else "full" for w in spec["windows"]]}
    if any(spec["windows"]):
        ex["sliding_window"] = cfg["sliding_window"]
    if extra:
        ex.update(extra(spec))
    return finish(
        name, cfg, params, tokens, fwd, hook_list(spec["L"], rot=rot), desc, checks, dtype=dtype, extra=ex
    )


def gqa_expansion_check(cfg, spec, params, tokens, base, checks, fwd):
    """GQA: repeating each kv head's k/v weights for its query group and setting KV = H gives the same logits."""
    H, KV, dh = spec["H"], spec["KV"], spec["dh"]
    group = H // KV
    p2 = dict(params)
    for i in range(spec["L"]):
        for nm in ("k_proj", "v_proj"):
            key = f"model.layers.{i}.self_attn.{nm}.weight"
            p2[key] = params[key].reshape(KV, dh, -1).repeat_interleave(group, dim=0).reshape(H * dh, -1)
            bkey = f"model.layers.{i}.self_attn.{nm}.bias"
            if bkey in params:
                p2[bkey] = params[bkey].reshape(KV, dh).repeat_interleave(group, dim=0).reshape(H * dh)
    checks["gqa_vs_expanded_mha_max_abs"] = max_abs(fwd(p2, tokens[0], spec_=dict(spec, KV=H)), base)
    assert checks["gqa_vs_expanded_mha_max_abs"] < 1e-10


def make_gemma():
    def checks_fn(cfg, spec, params, tokens, base, variant, checks, fwd):
        variant("no_embed_scale", embed_scale=None)
        variant("norm_w_instead_of_1_plus_w", norm="gemma_wrong_plain")
        variant("scale_by_hidden_over_heads", scale=(spec["D"] / spec["H"]) ** -0.5)
        gqa_expansion_check(cfg, spec, params, tokens, base, checks, fwd)
        # informational: exact gelu instead of the tanh approximation (small, not asserted large)
        checks["info_exact_gelu_instead_of_tanh"] = max_abs(base, fwd(params, tokens[0], spec_=dict(spec, act="gelu")))

    desc = (
        "gemma-tiny: random GemmaForCausalLM (Gemma 1; {shape}; num_key_value_heads 1 = MQA: every query head "
        "reads kv head 0; explicit head_dim 16 while hidden/heads would be 8; tied embeddings, rope_theta 10000 "
        "over head_dim). hook_embed = embed_tokens[tokens] * sqrt(hidden_size) = * sqrt(32) (the value added to "
        "the residual stream; HF multiplies by the normalizer cast to the activation dtype, float32 here). "
        "RMSNorm: x * rsqrt(mean(x^2) + 1e-6) * (1 + w), norm weights drawn N(0, 0.3) around 0 (stored as w). "
        "Scores * head_dim^-0.5. GeGLU MLP: "
        "down(gelu_tanh(gate(h)) * up(h)) (hidden_activation and hidden_act both gelu_pytorch_tanh). "
        "Stored F32."
    )
    return llama_family("gemma-tiny", GEMMA_CFG, 301, {"embed": 0.2, "norm": 0.3}, "F32", desc, False, checks_fn)


def make_gemma2():
    def checks_fn(cfg, spec, params, tokens, base, variant, checks, fwd):
        W = cfg["sliding_window"]
        variant("sliding_layer_as_full", windows=[None, None])
        variant("window_plus_one", windows=[W + 1, None])
        variant("no_post_norms", post_norms=False)
        variant("no_attn_softcap", attn_cap=None)
        variant("no_final_softcap", final_cap=None)
        variant("scale_head_dim_instead_of_query_pre_attn_scalar", scale=spec["dh"] ** -0.5)
        variant("no_embed_scale", embed_scale=None)
        variant("norm_w_instead_of_1_plus_w", norm="gemma_wrong_plain")
        # the caps are clearly active: a good fraction of scores/logits sit where tanh bends
        acts = {}
        fwd(params, tokens[0], acts=acts)
        lg = base
        half_cap = 0.5 * cfg["final_logit_softcapping"]
        checks["final_logits_frac_above_half_cap"] = float((lg.abs() > half_cap).double().mean())
        assert checks["final_logits_frac_above_half_cap"] > 0.2
        raw = fwd(params, tokens[0], spec_=dict(spec, final_cap=None))
        checks["info_raw_logits_std"] = float(raw.std())
        cap = cfg["attn_logit_softcapping"]
        fracs = []
        for i in range(spec["L"]):
            q, k = acts[f"blocks.{i}.attn.hook_rot_q"], acts[f"blocks.{i}.attn.hook_rot_k"]
            k = k[:, torch.arange(spec["H"]) // (spec["H"] // spec["KV"])]
            sc = torch.einsum("thd,shd->hts", q, k) * spec["scale"]
            vis = visible_mask(q.shape[0], spec["windows"][i]).expand_as(sc)
            fracs.append(float((sc[vis].abs() > 0.5 * cap).double().mean()))
        checks["attn_scores_frac_above_half_cap_min_layer"] = min(fracs)
        assert min(fracs) > 0.1, fracs
        gqa_expansion_check(cfg, spec, params, tokens, base, checks, fwd)

    desc = (
        "gemma2-tiny: random Gemma2ForCausalLM ({shape}; query head h reads kv head h // 2; tied embeddings, "
        "rope_theta 10000). Layer "
        "attention types (config layer_types, = current Gemma2Config's default: even layers sliding): "
        "[sliding_attention (window 6), full_attention]. hook_embed = embed_tokens[tokens] * sqrt(64) = * 8 "
        "(exact in bf16 too). RMSNorm x * rsqrt(mean(x^2) + 1e-6) * (1 + w), w ~ N(0, 0.3). Attention: scores = "
        "q.k * query_pre_attn_scalar^-0.5 (24^-0.5, NOT head_dim^-0.5), then attn_logit_softcapping: 5 * "
        "tanh(scores / 5), then the mask, softmax. Block: attn_out = post_attention_layernorm(o_proj(z)); "
        "resid_mid = resid_pre + attn_out; mlp_out = post_feedforward_layernorm(mlp(pre_feedforward_layernorm("
        "resid_mid))); GeGLU gelu_tanh. Final: model.norm, tied unembedding, then final_logit_softcapping: "
        "3 * tanh(logits / 3) (logits and loss are the capped values). Weights stored as BF16; the reference "
        "uses exactly those bf16 values."
    )
    return llama_family(
        "gemma2-tiny", GEMMA2_CFG, 401,
        {"embed": 0.25, "norm": 0.3, "q": 2.2, "k": 2.2},
        "BF16", desc, False, checks_fn,
    )  # fmt: skip


def make_gemma3():
    def checks_fn(cfg, spec, params, tokens, base, variant, checks, fwd):
        dh = spec["dh"]
        inv = spec["inv_freq"]
        local = rope_inv_freq(dh, cfg["rope_local_base_freq"])
        glob = rope_inv_freq(dh, cfg["rope_theta"], cfg["rope_scaling"]["factor"])
        glob_unscaled = rope_inv_freq(dh, cfg["rope_theta"])
        assert torch.equal(inv[0], local) and torch.equal(inv[1], local) and torch.equal(inv[2], glob)
        variant("sliding_layers_as_full", windows=[None, None, None])
        variant("no_qk_norm", qk_norm=None)
        variant("qk_norm_w_instead_of_1_plus_w", qk_norm="gemma_wrong_plain")
        variant("local_layers_use_global_rope", inv_freq=[glob, glob, glob])
        variant("local_layers_use_rope_theta_unscaled", inv_freq=[glob_unscaled, glob_unscaled, glob])
        variant("global_layer_without_linear_scaling", inv_freq=[local, local, glob_unscaled])
        variant("linear_scaling_also_on_local_layers", inv_freq=[local / 8.0, local / 8.0, glob])
        variant("scale_head_dim_instead_of_query_pre_attn_scalar", scale=dh**-0.5)
        variant("no_post_norms", post_norms=False)
        variant("no_embed_scale", embed_scale=None)
        variant("norm_w_instead_of_1_plus_w", norm="gemma_wrong_plain")
        gqa_expansion_check(cfg, spec, params, tokens, base, checks, fwd)

    desc = (
        "gemma3-tiny: random Gemma3ForCausalLM, text only like gemma-3-1b ({shape}; query head h reads kv head "
        "h // 2; tied embeddings). Layer attention types: config "
        "layer_types [sliding_attention, sliding_attention, full_attention], the same as the legacy "
        "sliding_window_pattern 3 gives (layer l slides unless (l+1) % 3 == 0); sliding window 6. "
        "hook_embed = embed_tokens[tokens] * sqrt(32). RMSNorm x * rsqrt(mean(x^2) + 1e-6) * (1 + w) everywhere, "
        "w ~ N(0, 0.3). Attention: q_norm / k_norm = the same (1 + w) RMSNorm over head_dim, per head, applied to "
        "q and k BEFORE RoPE; RoPE on sliding layers: base rope_local_base_freq 10000, no scaling; on the full "
        "layer: base rope_theta 1e6 with rope_scaling linear factor 8 (inv_freq / 8); scores * "
        "query_pre_attn_scalar^-0.5 (32^-0.5, not head_dim^-0.5); no soft-capping (both null). Block as Gemma 2: "
        "attn_out = post_attention_layernorm(o_proj(z)), mlp_out = post_feedforward_layernorm(mlp("
        "pre_feedforward_layernorm(resid_mid))), GeGLU gelu_tanh. Stored F32."
    )
    return llama_family(
        "gemma3-tiny", GEMMA3_CFG, 501,
        {"embed": 0.2, "norm": 0.3, "qk_norm": 0.3},
        "F32", desc, True, checks_fn,
        extra=lambda s: {"rope_inv_freq_per_layer": [r9(x) for x in s["inv_freq"]]},
    )  # fmt: skip


def make_mistral():
    def checks_fn(cfg, spec, params, tokens, base, variant, checks, fwd):
        W = cfg["sliding_window"]
        variant("no_sliding_window", windows=[None, None])
        variant("window_plus_one", windows=[W + 1, W + 1])
        gqa_expansion_check(cfg, spec, params, tokens, base, checks, fwd)

    desc = (
        "mistral-tiny: random MistralForCausalLM ({shape}; query head h reads kv head h // 2; untied lm_head, "
        "rope_theta 10000, rms_norm_eps "
        "1e-5). sliding_window 6 on every layer. RMSNorm x * rsqrt(mean(x^2) + eps) * w (w ~ 1 + N(0, 0.1)); "
        "SwiGLU down(silu(gate(h)) * up(h)); scores * head_dim^-0.5; no biases. Stored F32."
    )
    return llama_family("mistral-tiny", MISTRAL_CFG, 601, {"q": 1.6, "k": 1.6}, "F32", desc, False, checks_fn)


def make_llama_mlp_bias():
    def checks_fn(cfg, spec, params, tokens, base, variant, checks, fwd):
        variant("no_mlp_bias", mlp_bias=False)
        gqa_expansion_check(cfg, spec, params, tokens, base, checks, fwd)

    desc = (
        "llama-mlp-bias-tiny: random LlamaForCausalLM with mlp_bias true ({shape}; query head h reads kv head "
        "h // 2; untied lm_head, rope_theta 10000, no rope scaling, rms_norm_eps 1e-5). gate_proj, up_proj and "
        "down_proj have biases (HF LlamaMLP: bias=config.mlp_bias): down(silu(gate(h) + b_g) * (up(h) + b_u)) + "
        "b_d; attention has none. RMSNorm x * rsqrt(mean(x^2) + eps) * w. Stored F32."
    )
    return llama_family(
        "llama-mlp-bias-tiny", LLAMA_MLP_BIAS_CFG, 651, {"bias": 0.6}, "F32", desc, False, checks_fn
    )


def make_qwen2():
    def checks_fn(cfg, spec, params, tokens, base, variant, checks, fwd):
        p2 = {k: (torch.zeros_like(v) if k.endswith("_proj.bias") else v) for k, v in params.items()}
        variant("no_qkv_biases", p=p2)
        for nm in ("q", "k", "v"):
            p3 = {k: (torch.zeros_like(v) if k.endswith(f"{nm}_proj.bias") else v) for k, v in params.items()}
            variant(f"no_{nm}_bias", p=p3)
        gqa_expansion_check(cfg, spec, params, tokens, base, checks, fwd)

    desc = (
        "qwen2-tiny: random Qwen2ForCausalLM ({shape}; query head h reads kv head h // 2; tied embeddings (no "
        "lm_head.weight in the file), rope_theta 1e6). q_proj/k_proj/v_proj "
        "have biases, o_proj has none. use_sliding_window false (layer_types all full_attention; sliding_window "
        "32768 is then unused). RMSNorm x * rsqrt(mean(x^2) + 1e-6) * w; SwiGLU; scores * head_dim^-0.5. "
        "Stored F32."
    )
    return llama_family(
        "qwen2-tiny", QWEN2_CFG, 701, {"q": 1.4, "k": 1.4, "bias": 0.6, "embed": 0.4}, "F32", desc, False, checks_fn
    )


def make_qwen3():
    def checks_fn(cfg, spec, params, tokens, base, variant, checks, fwd):
        variant("no_qk_norm", qk_norm=None)
        variant("qk_norm_1_plus_w_instead_of_w", qk_norm="plain_wrong_1p")
        variant("scale_by_hidden_over_heads", scale=(spec["D"] / spec["H"]) ** -0.5)
        gqa_expansion_check(cfg, spec, params, tokens, base, checks, fwd)

    desc = (
        "qwen3-tiny: random Qwen3ForCausalLM ({shape}; explicit head_dim 16 while hidden/heads would be 8; "
        "query head h reads kv head h // 2; tied embeddings, rope_theta 1e6, no biases). "
        "q_norm / k_norm: plain RMSNorm x * rsqrt(mean(x^2) + 1e-6) * w (w ~ 1 + N(0, 0.3), NOT 1 + w) over "
        "head_dim, per head, on q and k BEFORE RoPE. Other norms plain RMSNorm; SwiGLU; scores * head_dim^-0.5. "
        "Stored F32."
    )
    return llama_family(
        "qwen3-tiny", QWEN3_CFG, 801, {"qk_norm": 0.3, "embed": 0.4}, "F32", desc, True, checks_fn
    )


def main():
    torch.manual_seed(0)
    torch.set_default_dtype(DT)
    mask_conventions_check()
    makers = {
        "gpt-neo-tiny": make_gpt_neo,
        "pythia-tiny": lambda: make_pythia(True),
        "pythia-seq-tiny": lambda: make_pythia(False),
        "gemma-tiny": make_gemma,
        "gemma2-tiny": make_gemma2,
        "gemma3-tiny": make_gemma3,
        "mistral-tiny": make_mistral,
        "llama-mlp-bias-tiny": make_llama_mlp_bias,
        "qwen2-tiny": make_qwen2,
        "qwen3-tiny": make_qwen3,
    }
    # Fixture names as arguments make only those (each fixture has its own seed).
    only = sys.argv[1:] or list(makers)
    results = [makers[n]() for n in only]
    total = 0
    for r in results:
        total += r["size"]
        print(f"[{r['name']}] {os.path.relpath(r['dir'], ROOT)}: {', '.join(r['files'])}; dir {r['size']} bytes")
        print(f"  loss per sequence: {', '.join('%.6f' % l for l in r['losses'])}")
        for k, v in r["checks"].items():
            print(f"  check {k}: {v:.3g}  OK")
    print(f"total fixture size: {total} bytes")


if __name__ == "__main__":
    sys.exit(main())
