"""Shared by the reference scripts: hand-written safetensors, rounding to storage dtypes, JSON output.

No safetensors or transformers package is used, so the references stay independent of what they test.
"""

import json
import os
import struct

import numpy as np
import torch

DT = torch.float64
STORAGE = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def tensor_bytes(t, dtype):
    """Little-endian bytes of `t` stored as F32, F16 or BF16."""
    t = t.detach().to(torch.float32).to(STORAGE[dtype]).contiguous()
    if dtype == "BF16":  # numpy has no bfloat16: reinterpret the 16-bit patterns
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    if dtype == "F16":
        return t.numpy().astype("<f2").tobytes()
    return t.numpy().astype("<f4").tobytes()


def write_safetensors(path, tensors, dtype="F32", metadata=None):
    """tensors: list of (name, tensor), all stored as `dtype`, in list order. Returns the tensor bytes."""
    header = {} if metadata is None else {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name, t in tensors:
        data = tensor_bytes(t, dtype)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((-len(hbytes)) % 8)  # 8 + len(header) is then a multiple of 8
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for data in blobs:
            f.write(data)
    return offset


def read_safetensors(path):
    """Reader for the self-checks (F32, F16, BF16). Returns an ordered dict name -> float64 tensor."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        s, e = info["data_offsets"]
        buf = raw[base + s : base + e]
        if info["dtype"] == "F32":
            arr = np.frombuffer(buf, dtype="<f4").astype("float64")
        elif info["dtype"] == "F16":
            arr = np.frombuffer(buf, dtype="<f2").astype("float64")
        elif info["dtype"] == "BF16":  # the top half of a float32
            arr = (np.frombuffer(buf, dtype="<u2").astype("<u4") << 16).view("<f4").astype("float64")
        else:
            raise AssertionError(info)
        assert arr.size == int(np.prod(info["shape"])), (name, info)
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
        end = max(end, e)
    assert base + end == len(raw), "trailing bytes in " + path
    return out


def write_json(path, obj, compact=False):
    with open(path, "w") as f:
        if compact:
            json.dump(obj, f, separators=(",", ":"))
        else:
            json.dump(obj, f, indent=2)
        f.write("\n")


def r9(t):
    """Tensor -> nested lists of floats rounded to 9 significant digits."""
    if isinstance(t, torch.Tensor):
        t = t.tolist()
    if isinstance(t, list):
        return [r9(x) for x in t]
    return float("%.9g" % t)


def rounded(params, dtype):
    """Round every parameter to the storage dtype, then keep it as float64 for the reference."""
    return {k: v.to(torch.float32).to(STORAGE[dtype]).to(DT) for k, v in params.items()}


def f32_round(params):
    return rounded(params, "F32")


def bf16_round(params):
    return rounded(params, "BF16")


def next_token_loss(logits, tokens):
    """Mean cross-entropy predicting tokens[1:] from logits[:-1] (float64)."""
    logp = torch.log_softmax(logits[:-1], dim=-1)
    tgt = tokens[1:]
    return float(-logp[torch.arange(len(tgt)), tgt].mean())


def dir_size(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d)))


def byte_level_bpe(vocab, merges=(), eos="<|endoftext|>"):
    """A tokenizer.json of a byte-level BPE (GPT-2/NeoX/Qwen style) with `eos` as its one special token
    (id vocab[eos]); merges are (a, b) pairs."""
    level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": vocab[eos],
                "content": eos,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
        ],
        "normalizer": None,
        "pre_tokenizer": level,
        "post_processor": dict(level, trim_offsets=False),
        "decoder": level,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }
