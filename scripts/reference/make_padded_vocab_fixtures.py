#!/usr/bin/env python3
"""Padded-vocabulary variants of reference fixtures: the model's vocab_size is larger than its tokenizer's.

Real checkpoints do this: Pythia pads vocab_size to 50304 over a 50277-token tokenizer, Qwen2/3 pad
151665 to 151936. The embedding and unembedding have rows for the padding ids, so a top-k prediction
can land on an id the tokenizer cannot decode.

Run from the repository root (plain Python 3, no torch: the weights and reference are the base's):

    python3 scripts/reference/make_padded_vocab_fixtures.py

Writes, under test/fixtures/:

    pythia-padded-tiny/  pythia-tiny (GPTNeoXForCausalLM, vocab_size 96) with a 75-token tokenizer
    qwen3-padded-tiny/   qwen3-tiny  (Qwen3ForCausalLM, vocab_size 96) with the same 75-token tokenizer

Each holds config.json (the base's, with bos/eos pointing at `<|endoftext|>`, id 0, since the base's
ids may lie in the padding), tokenizer.json (byte-level BPE like NeoX's and Qwen's: `<|endoftext|>`,
the byte-level characters of space, newline, letters, digits and `.,!?'`, and five merges; ids 0-74),
and relative symlinks to the base's safetensors files and reference.json (the forward is unchanged:
ids 75-95 are padding, their logits are in the reference). Deterministic.
"""

import json
import os
import string

from reference_io import byte_level_bpe

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "test", "fixtures")

BASES = {"pythia-padded-tiny": "pythia-tiny", "qwen3-padded-tiny": "qwen3-tiny"}
ENDOFTEXT = "<|endoftext|>"
# GPT-2 byte-level alphabet: printable ASCII maps to itself, space to Ġ (U+0120), newline to Ċ (U+010A).
CHARS = ["\u0120", "\u010a"] + list(string.ascii_lowercase + string.ascii_uppercase + string.digits + ".,!?'")
MERGES = [("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("\u0120", "a"), ("i", "n")]


def tokenizer_json():
    vocab = {ENDOFTEXT: 0}
    for c in CHARS:
        vocab[c] = len(vocab)
    for a, b in MERGES:
        vocab[a + b] = len(vocab)
    return byte_level_bpe(vocab, MERGES, ENDOFTEXT)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def main():
    tok = tokenizer_json()
    n_tok = len(tok["model"]["vocab"])
    for name, base in BASES.items():
        src, dst = os.path.join(FIXTURES, base), os.path.join(FIXTURES, name)
        os.makedirs(dst, exist_ok=True)
        with open(os.path.join(src, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        assert cfg["vocab_size"] > n_tok, (cfg["vocab_size"], n_tok)
        cfg["bos_token_id"] = cfg["eos_token_id"] = 0
        write_json(os.path.join(dst, "config.json"), cfg)
        write_json(os.path.join(dst, "tokenizer.json"), tok)
        for f in sorted(os.listdir(src)):
            if f.endswith(".safetensors") or f in ("model.safetensors.index.json", "reference.json"):
                link = os.path.join(dst, f)
                if os.path.lexists(link):
                    os.remove(link)
                os.symlink(os.path.join("..", base, f), link)
        print(f"[{name}] vocab_size {cfg['vocab_size']} over a {n_tok}-token tokenizer (base {base})")


if __name__ == "__main__":
    main()
