#!/usr/bin/env python3
"""A hand-set 2-layer attention-only transformer whose induction circuit is known by construction,
with float64 reference scores for the circuit methods (edge patching, EAP, EAP-IG, ACDC).

Run from the repository root with Debian's Python (it has python3-torch):

    /usr/bin/python3 scripts/reference/make_circuit_fixture.py

Writes test/fixtures/circuit-induction-handset/: config.json, model.safetensors (GPT2LMHeadModel
layout, "attn_only": true), tokenizer.json (ids 1..15 are the letters A..O, 0 is <|endoftext|>),
data.jsonl (clean/corrupt pairs) and reference.json. Deterministic: two runs give identical files.

The residual stream (d_model 96) is cut into blocks; every vector a sender writes lies in one block and
sums to exactly zero, so each LayerNorm (epsilon 1e12, weight sqrt(1e12)) is the identity:

    TOK   0..15   token identity      (written by the embedding)
    POS  16..47   position            (written by the position embedding)
    PREV 48..63   previous token      (written by a0.h0)
    OUT  64..79   predicted token     (written by a1.h0, the only block the unembedding reads)
    JUNK 80..95   written by the decoy heads a0.h1, a1.h1 and the attention biases; read by no one

A token or position i of an n-slot block is coded as e_i - 1/n (n = 16 or 32, so exact in float32).

    a0.h0  previous-token head: q, k read POS (q shifted by one position), v reads TOK, writes PREV.
    a0.h1  decoy: attends to earlier copies of its own token (q, k read TOK), writes TOK into JUNK.
    a1.h0  induction head: q reads TOK, k reads PREV (K-composition with a0.h0), v reads TOK,
           writes OUT. On "BOS r1..rn r1..rk" the last token rk finds the position whose previous token
           is rk, i.e. r(k+1), and copies it.
    a1.h1  decoy: q reads TOK, k reads PREV and JUNK, v reads TOK and JUNK, writes JUNK.

The circuit semantics (senders, receivers, edge patching, metrics, EAP, EAP-IG, ACDC) are those of
issue 14; they are implemented here once more, independently of Sonde, as a forward pass in which every
receiver reads its own copy of the residual stream: the sum of its upstream senders' outputs.
"""

import json
import math
import os
import random

import torch

from reference_io import DT, byte_level_bpe, f32_round, r9, read_safetensors, write_json, write_safetensors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(ROOT, "test", "fixtures", "circuit-induction-handset")

V, D, H, L, NPOS = 16, 96, 2, 2, 32
DH = D // H
BOS = 0
LETTERS = "ABCDEFGHIJKLMNO"  # token ids 1..15
EPS = 1e12
TOK, POS, PREV, OUT, JUNK = 0, 16, 48, 64, 80
PREV_SCORE = 8.0  # attention score gap of the previous-token head (after the 1/sqrt(d_head) scale)
IND_SCORE = 7.0  # ... of the induction head
LOGIT_GAP = 7.0  # logit of the copied token above every other
DECOY_SCORE = 3.0
IG_STEPS = 5
METRICS = ["logit-diff", "kl"]

# ----------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------


def hadamard16():
    h = torch.ones(1, 1, dtype=DT)
    for _ in range(4):
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def make_params():
    """HF GPT2LMHeadModel tensors (Conv1D weights are [in, out]), float64."""
    Z = lambda *s: torch.zeros(*s, dtype=DT)  # noqa: E731
    had = hadamard16()
    balanced = had[1:]  # rows 1..15 have eight +1 and eight -1: they sum to exactly zero
    scale = math.sqrt(DH)
    p = {}
    wte = Z(V, D)
    wte[:, TOK : TOK + 16] = torch.eye(16, dtype=DT) - 1 / 16
    wpe = Z(NPOS, D)
    wpe[:, POS : POS + 32] = torch.eye(32, dtype=DT) - 1 / 32
    p["transformer.wte.weight"] = wte
    p["transformer.wpe.weight"] = wpe

    def head_cols(h):
        return slice(h * DH, (h + 1) * DH)

    for l in range(L):
        Wq, Wk, Wv, Wo = Z(D, D), Z(D, D), Z(D, D), Z(D, D)
        c0, c1 = head_cols(0), head_cols(1)
        if l == 0:
            # a0.h0: q at position p is the code of p-1, k is the code of p: score gap PREV_SCORE at p-1.
            for i in range(1, 32):
                Wq[POS + i, c0.start + i - 1] = PREV_SCORE * scale
            for i in range(32):
                Wk[POS + i, c0.start + i] = 1.0
            for i in range(16):
                Wv[TOK + i, c0.start + i] = 1.0
                Wo[c0.start + i, PREV + i] = 1.0
            # a0.h1 (decoy): same-token attention, writes the token through a balanced code into JUNK.
            for i in range(16):
                Wq[TOK + i, c1.start + i] = DECOY_SCORE * scale
                Wk[TOK + i, c1.start + i] = 1.0
                Wv[TOK + i, c1.start + i] = 1.0
                Wo[c1.start + i, JUNK : JUNK + 16] = 0.5 * balanced[i % 15]
        else:
            # a1.h0: query = current token, key = previous token (from a0.h0), value = token; writes OUT.
            for i in range(16):
                Wq[TOK + i, c0.start + i] = IND_SCORE * scale
                Wk[PREV + i, c0.start + i] = 1.0
                Wv[TOK + i, c0.start + i] = 1.0
                Wo[c0.start + i, OUT + i] = 1.0
            # a1.h1 (decoy): reads TOK, PREV and JUNK, writes JUNK.
            for i in range(16):
                Wq[TOK + i, c1.start + i] = DECOY_SCORE * scale
                Wk[PREV + i, c1.start + i] = 1.0
                Wk[JUNK + i, c1.start + 16 + i] = 0.5
                Wv[TOK + i, c1.start + i] = 1.0
                Wv[JUNK + i, c1.start + 16 + i] = 1.0
                Wo[c1.start + i, JUNK : JUNK + 16] = 0.5 * balanced[(i + 3) % 15]
                Wo[c1.start + 16 + i, JUNK : JUNK + 16] = 0.25 * balanced[(i + 7) % 15]
            Wq[JUNK : JUNK + 16, c1.start + 16 : c1.start + 32] = 0.5 * had[:, :]  # q reads JUNK too
        h = f"transformer.h.{l}."
        p[h + "ln_1.weight"] = torch.full((D,), math.sqrt(EPS), dtype=DT)
        p[h + "ln_1.bias"] = Z(D)
        p[h + "attn.c_attn.weight"] = torch.cat([Wq, Wk, Wv], 1)
        p[h + "attn.c_attn.bias"] = Z(3 * D)
        p[h + "attn.c_proj.weight"] = Wo
        bo = Z(D)
        bo[JUNK : JUNK + 16] = 0.25 * balanced[5 + l]  # a bias in the residual, never a sender
        p[h + "attn.c_proj.bias"] = bo
    p["transformer.ln_f.weight"] = torch.full((D,), math.sqrt(EPS), dtype=DT)
    p["transformer.ln_f.bias"] = Z(D)
    lm = Z(V, D)
    lm[:, OUT : OUT + 16] = LOGIT_GAP * torch.eye(16, dtype=DT)
    p["lm_head.weight"] = lm
    return p


def config():
    return {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_only": True,
        "bos_token_id": BOS,
        "eos_token_id": BOS,
        "layer_norm_epsilon": EPS,
        "model_type": "gpt2",
        "n_ctx": NPOS,
        "n_embd": D,
        "n_head": H,
        "n_inner": None,
        "n_layer": L,
        "n_positions": NPOS,
        "scale_attn_weights": True,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "vocab_size": V,
    }


def tokenizer():
    """A byte-level BPE with no merges over the letters A..O: text 'ABC' is the ids 1, 2, 3."""
    return byte_level_bpe({"<|endoftext|>": 0, **{c: i + 1 for i, c in enumerate(LETTERS)}})


# ----------------------------------------------------------------------------
# the plain forward (GPT-2, attention only), for the self-checks
# ----------------------------------------------------------------------------


def layer_norm(x, w, b):
    c = x - x.mean(-1, keepdim=True)
    return c / torch.sqrt((c * c).mean(-1, keepdim=True) + EPS) * w + b


def attend(xq, xk, xv, W, l, h):
    """One head of layer l on (possibly different) normalised inputs [T, D]: its output z_h W_O[h] [T, D]."""
    pre = f"transformer.h.{l}."
    cw, cb = W[pre + "attn.c_attn.weight"], W[pre + "attn.c_attn.bias"]
    cols = lambda i: slice(i * D + h * DH, i * D + (h + 1) * DH)  # noqa: E731
    q = xq @ cw[:, cols(0)] + cb[cols(0)]
    k = xk @ cw[:, cols(1)] + cb[cols(1)]
    v = xv @ cw[:, cols(2)] + cb[cols(2)]
    T = q.shape[0]
    scores = q @ k.T / math.sqrt(DH)
    scores = scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    pattern = torch.softmax(scores, -1)
    return (pattern @ v) @ W[pre + "attn.c_proj.weight"][h * DH : (h + 1) * DH], pattern


def plain_forward(W, tokens):
    """The ordinary residual-stream forward: logits [T, V] and each layer's attention patterns."""
    T = len(tokens)
    x = W["transformer.wte.weight"][tokens] + W["transformer.wpe.weight"][:T]
    patterns = []
    for l in range(L):
        pre = f"transformer.h.{l}."
        n = layer_norm(x, W[pre + "ln_1.weight"], W[pre + "ln_1.bias"])
        outs = [attend(n, n, n, W, l, h) for h in range(H)]
        patterns.append([o[1] for o in outs])
        x = x + sum(o[0] for o in outs) + W[pre + "attn.c_proj.bias"]
    x = layer_norm(x, W["transformer.ln_f.weight"], W["transformer.ln_f.bias"])
    return x @ W["lm_head.weight"].T, patterns


# ----------------------------------------------------------------------------
# the circuit graph and its forward with per-receiver inputs
# ----------------------------------------------------------------------------

SENDERS = ["input"] + [f"a{l}.h{h}" for l in range(L) for h in range(H)]
RECEIVERS = []  # (name, node, layer, kind, head, number of upstream senders)
for _l in range(L):
    for _kind in "qkv":
        for _h in range(H):  # GPT-2: as many KV heads as heads
            RECEIVERS.append((f"a{_l}.h{_h}<{_kind}>", f"a{_l}.h{_h}", _l, _kind, _h, 1 + _l * H))
RECEIVERS.append(("logits", "logits", L, "logits", None, 1 + L * H))
# Edges by receiver in forward order, then by sender (Sonde's src/circuits/graph.ts order).
EDGES = [(s, r) for r, rec in enumerate(RECEIVERS) for s in range(rec[5])]
EDGE_NAMES = [f"{SENDERS[s]}->{RECEIVERS[r][0]}" for s, r in EDGES]


def circuit_forward(W, tokens, patched=(), other=None, scale=1.0, input_out=None, keep=False):
    """Forward in which receiver r reads  sum_s out_s + biases - sum_{(s,r) in patched} scale (out_s - other_s).

    other: sender outputs [T, D] of the corrupt run (None: zero ablation). input_out replaces the `input`
    sender's output (EAP-IG's interpolation). keep: retain each receiver input's gradient.
    Returns logits [T, V], the sender outputs and the receiver inputs.
    """
    T = len(tokens)
    emb = W["transformer.wte.weight"][tokens] + W["transformer.wpe.weight"][:T]
    outs = [emb if input_out is None else input_out]
    patched = set(patched)
    bias = torch.zeros(D, dtype=DT)
    rin = {}

    def receiver_input(r):
        n_up = RECEIVERS[r][5]
        x = sum(outs[:n_up]) + bias
        for s in range(n_up):
            if (s, r) in patched:
                x = x - scale * (outs[s] - (0 if other is None else other[s]))
        if keep:
            x.retain_grad()
        rin[r] = x
        return x

    r = 0
    for l in range(L):
        pre = f"transformer.h.{l}."
        ln = lambda x: layer_norm(x, W[pre + "ln_1.weight"], W[pre + "ln_1.bias"])  # noqa: B023, E731
        xs = {}
        for kind in "qkv":
            for h in range(H):
                xs[kind, h] = ln(receiver_input(r))
                r += 1
        for h in range(H):
            outs.append(attend(xs["q", h], xs["k", h], xs["v", h], W, l, h)[0])
        bias = bias + W[pre + "attn.c_proj.bias"]
    x = layer_norm(receiver_input(r), W["transformer.ln_f.weight"], W["transformer.ln_f.bias"])
    return x @ W["lm_head.weight"].T, outs, rin


# ----------------------------------------------------------------------------
# metrics over the pairs
# ----------------------------------------------------------------------------


class Pair:
    def __init__(self, W, row):
        self.clean, self.corrupt = row["clean_ids"], row["corrupt_ids"]
        self.answer, self.wrong = row["answer"], row["wrong"]
        self.clean_logits, self.clean_outs, _ = circuit_forward(W, self.clean)
        self.corrupt_logits, self.corrupt_outs, _ = circuit_forward(W, self.corrupt)
        self.clean_logp = torch.log_softmax(self.clean_logits[-1], -1)

    def metric(self, name, logits):
        last = logits[-1]
        if name == "logit-diff":
            return last[self.answer] - last[self.wrong]
        logp = torch.log_softmax(last, -1)
        return (self.clean_logp.exp() * (self.clean_logp - logp)).sum()


def mean_metric(W, pairs, name, patched=(), zero=False):
    vals = []
    for p in pairs:
        logits = circuit_forward(W, p.clean, patched, None if zero else p.corrupt_outs)[0]
        vals.append(float(p.metric(name, logits)))
    return sum(vals) / len(vals)


def attribution(W, pairs, name, steps):
    """EAP-IG (inputs variant) of every edge; steps=1 is EAP. Score = mean grad . (clean - corrupt)."""
    scores = torch.zeros(len(EDGES), dtype=DT)
    for p in pairs:
        grads = {}
        for k in range(1, steps + 1):
            a = k / steps
            emb = (p.corrupt_outs[0] + a * (p.clean_outs[0] - p.corrupt_outs[0])).clone().requires_grad_(True)
            logits, _, rin = circuit_forward(W, p.clean, input_out=emb, keep=True)
            p.metric(name, logits).backward()
            for r, x in rin.items():
                grads[r] = grads.get(r, 0) + x.grad / steps
        for e, (s, r) in enumerate(EDGES):
            scores[e] += (grads[r] * (p.clean_outs[s] - p.corrupt_outs[s])).sum()
    return scores / len(pairs)


def acdc(W, pairs, threshold, name="kl"):
    """ACDC (Conmy et al. 2023): receivers from the logits backwards, senders in descending order;
    an edge is removed (patched) when patching it too raises the badness by less than the threshold."""
    badness = lambda patched: (1 if name == "kl" else -1) * mean_metric(W, pairs, name, patched)  # noqa: E731
    removed = set()
    decisions = []
    current = badness(removed)
    kept = set(EDGES)
    for r in reversed(range(len(RECEIVERS))):
        rname, node = RECEIVERS[r][0], RECEIVERS[r][1]
        incoming = [(s, r) for s in reversed(range(RECEIVERS[r][5]))]
        if node != "logits" and not any(SENDERS[s] == node for s, _ in kept):
            for e in incoming:
                removed.add(e)
                kept.discard(e)
                decisions.append({"edge": f"{SENDERS[e[0]]}->{rname}", "removed": True, "reason": "unused"})
            continue
        for e in incoming:
            trial = badness(removed | {e})
            delta = trial - current
            drop = delta < threshold
            decisions.append({"edge": f"{SENDERS[e[0]]}->{rname}", "removed": drop, "delta": r9(delta)})
            if drop:
                removed.add(e)
                kept.discard(e)
                current = trial
    return [EDGE_NAMES[i] for i, e in enumerate(EDGES) if e in kept], removed, decisions


# ----------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------


def make_data():
    """Pairs "BOS r1..rn r1..rk" (answer r(k+1)) against the same pattern on tokens disjoint from the clean
    ones (wrong = what the corrupt run predicts). Two lengths, so a batch-by-length split is exercised."""
    rng = random.Random(14)
    rows = []
    for n, k, count in [(7, 5, 6), (6, 4, 6)]:
        for _ in range(count):
            ids = rng.sample(range(1, V), V - 1)
            r, s = ids[:n], ids[n : 2 * n]
            rows.append(
                {
                    "clean_ids": [BOS] + r + r[:k],
                    "corrupt_ids": [BOS] + s + s[:k],
                    "answer": r[k],
                    "wrong": s[k],
                }
            )
    return rows


# ----------------------------------------------------------------------------
# checks and output
# ----------------------------------------------------------------------------


def check_induction(W):
    """On random repeated sequences the second half predicts its next token; returns the mean probability."""
    rng = random.Random(7)
    probs = []
    for _ in range(20):
        n = rng.randint(4, 15)
        r = rng.sample(range(1, V), n)
        toks = [BOS] + r + r
        logp = torch.log_softmax(plain_forward(W, toks)[0], -1)
        for i in range(n + 1, 2 * n):  # positions of r1..r(n-1) in the second half
            probs.append(float(logp[i, toks[i + 1]].exp()))
    assert min(probs) > 0.9, min(probs)
    return sum(probs) / len(probs), min(probs)


def main():
    params = f32_round(make_params())
    os.makedirs(OUT_DIR, exist_ok=True)
    st = os.path.join(OUT_DIR, "model.safetensors")
    write_safetensors(st, list(params.items()), metadata={"format": "pt"})
    back = read_safetensors(st)
    assert list(back) == list(params) and all(torch.equal(back[k], params[k]) for k in params)
    write_json(os.path.join(OUT_DIR, "config.json"), config())
    write_json(os.path.join(OUT_DIR, "tokenizer.json"), tokenizer())
    W = params

    # Embeddings and biases sum to exactly zero (so do head outputs, checked below): LayerNorm is centring.
    for name in ["transformer.wte.weight", "transformer.wpe.weight"]:
        assert float(W[name].sum(-1).abs().max()) == 0.0
    for l in range(L):
        assert float(W[f"transformer.h.{l}.attn.c_proj.bias"].sum()) == 0.0
    mean_p, min_p = check_induction(W)
    print(f"induction on repeated random tokens: mean p(next) {mean_p:.4f}, min {min_p:.4f}")

    rows = make_data()
    with open(os.path.join(OUT_DIR, "data.jsonl"), "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    pairs = [Pair(W, row) for row in rows]

    # The per-receiver forward is the plain forward; all edges patched is the corrupt run.
    all_edges = set(EDGES)
    for p in pairs:
        plain = plain_forward(W, p.clean)[0]
        assert float((plain - p.clean_logits).abs().max()) < 1e-12
        patched = circuit_forward(W, p.clean, all_edges, p.corrupt_outs)[0]
        assert float((patched - p.corrupt_logits).abs().max()) < 1e-12
        assert int(p.clean_logits[-1].argmax()) == p.answer and int(p.corrupt_logits[-1].argmax()) == p.wrong
        assert max(float(o.sum(-1).abs().max()) for o in p.clean_outs + p.corrupt_outs) < 1e-12
        # The decoys are active: their outputs differ between clean and corrupt.
        for s in (2, 4):
            assert float((p.clean_outs[s] - p.corrupt_outs[s]).abs().max()) > 0.1

    ref = {"description": __doc__.strip().split("\n")[0], "edges": EDGE_NAMES}
    ref["tokens"] = [p.clean for p in pairs]
    ref["logits"] = [r9(p.clean_logits) for p in pairs]
    ref["corruptTokens"] = [p.corrupt for p in pairs]
    ref["corruptLogits"] = [r9(p.corrupt_logits) for p in pairs]
    ref["cleanMetric"], ref["corruptMetric"] = {}, {}
    ref["effects"], ref["effectsZero"], ref["eap"], ref["eapIg5"] = {}, {}, {}, {}
    for m in METRICS:
        clean = mean_metric(W, pairs, m)
        ref["cleanMetric"][m] = r9(clean)
        ref["corruptMetric"][m] = r9(mean_metric(W, pairs, m, all_edges))
        eff = [mean_metric(W, pairs, m, {e}) - clean for e in EDGES]
        effz = [mean_metric(W, pairs, m, {e}, zero=True) - clean for e in EDGES]
        eap = attribution(W, pairs, m, 1)
        ig = attribution(W, pairs, m, IG_STEPS)
        ref["effects"][m] = {n: r9(v) for n, v in zip(EDGE_NAMES, eff)}
        ref["effectsZero"][m] = {n: r9(v) for n, v in zip(EDGE_NAMES, effz)}
        ref["eap"][m] = {n: r9(v) for n, v in zip(EDGE_NAMES, eap)}
        ref["eapIg5"][m] = {n: r9(v) for n, v in zip(EDGE_NAMES, ig)}
        # EAP is the derivative of patching a scaled edge: d/dt metric(edge patched by t) at 0 = -EAP.
        for i, e in enumerate(EDGES):
            h = 1e-5
            up = [float(p.metric(m, circuit_forward(W, p.clean, {e}, p.corrupt_outs, h)[0])) for p in pairs]
            dn = [float(p.metric(m, circuit_forward(W, p.clean, {e}, p.corrupt_outs, -h)[0])) for p in pairs]
            fd = (sum(up) - sum(dn)) / (2 * h * len(pairs))
            assert abs(fd + float(eap[i])) < 1e-6 * max(1.0, abs(float(eap[i]))), (m, EDGE_NAMES[i], fd, eap[i])
        print(f"{m}: clean {clean:.6g}, corrupt {ref['corruptMetric'][m]:.6g}")

    kl = ref["effects"]["kl"]
    known = [n for n in EDGE_NAMES if abs(kl[n]) > 1e-6]
    ref["knownCircuit"] = known
    ref["knownCircuitZero"] = [n for n in EDGE_NAMES if abs(ref["effectsZero"]["kl"][n]) > 1e-6]
    inside = min(abs(kl[n]) for n in known)
    outside = max(abs(v) for n, v in kl.items() if n not in known)
    print(f"known circuit ({len(known)} edges): {known}; with zero ablation {ref['knownCircuitZero']}")
    print(f"kl effects: smallest in the circuit {inside:.6g}, largest outside {outside:.3g}")
    for m in METRICS:
        for field in ["effects", "eap", "eapIg5"]:
            vals = ref[field][m]
            out = max(abs(v) for n, v in vals.items() if n not in known)
            inn = min(abs(vals[n]) for n in known)
            print(f"  {field}[{m}]: min |in circuit| {inn:.6g}, max |outside| {out:.3g}")

    threshold = 0.01
    assert outside < threshold < inside
    kept, removed, decisions = acdc(W, pairs, threshold)
    assert kept == known, kept
    ref["acdc"] = {
        "metric": "kl",
        "threshold": threshold,
        "edges": kept,
        "circuitMetric": {m: r9(mean_metric(W, pairs, m, removed)) for m in METRICS},
        "decisions": decisions,
    }
    print(f"ACDC (kl, threshold {threshold}): {len(kept)} edges kept; circuit metric {ref['acdc']['circuitMetric']}")
    write_json(os.path.join(OUT_DIR, "reference.json"), ref)


if __name__ == "__main__":
    main()
