#!/usr/bin/python3
"""Independent PyTorch reference for kumiki's dense transformer (plain torch ops, no HF transformers).

Runs the C++ helper that dumps kumiki's weights, inputs, logits, loss and gradients, recomputes the
same model in fp32 with autograd, and compares logits, loss and every parameter gradient.
Usage: model_reference.py <model_parity_dump binary> <work dir>
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

TOL = 1e-4


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_tables(seq, head_dim, base):
    # Hugging Face Llama: inv_freq = base^(-2i/d), emb = cat(freqs, freqs); angles in float64 here.
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    freqs = torch.outer(torch.arange(seq, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().float(), emb.sin().float()


def model_loss(P, cfg, tokens, targets, doc_ids):
    B, T = tokens.shape
    C, H, G = cfg["hidden"], cfg["num_heads"], cfg["num_query_groups"]
    hd = C // H
    eps = cfg["rms_eps"]
    cos, sin = rope_tables(T, hd, cfg["rope_base"])
    allowed = torch.tril(torch.ones(T, T, dtype=torch.bool))  # (T, T) query x key
    allowed = allowed.expand(B, T, T)
    if doc_ids is not None:
        allowed = allowed & (doc_ids[:, :, None] == doc_ids[:, None, :])
    x = P["model.embed_tokens.weight"][tokens]  # (B, T, C)
    for l in range(cfg["num_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, P[p + "input_layernorm.weight"], eps)
        q = (h @ P[p + "self_attn.q_proj.weight"].T).view(B, T, H, hd).transpose(1, 2)
        k = (h @ P[p + "self_attn.k_proj.weight"].T).view(B, T, G, hd).transpose(1, 2)
        v = (h @ P[p + "self_attn.v_proj.weight"].T).view(B, T, G, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // G, dim=1)
        v = v.repeat_interleave(H // G, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)  # (B, H, T, T)
        s = s.masked_fill(~allowed[:, None], float("-inf"))
        a = torch.softmax(s, dim=-1) @ v  # (B, H, T, hd)
        a = a.transpose(1, 2).reshape(B, T, C)
        x = x + a @ P[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, P[p + "post_attention_layernorm.weight"], eps)
        g = h @ P[p + "mlp.gate_proj.weight"].T
        u = h @ P[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ P[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, P["model.norm.weight"], eps)
    logits = x @ P["lm_head.weight"].T  # (B, T, V_pad)
    V = logits.shape[-1]
    z = logits.reshape(B * T, V)  # softmax over the padded vocabulary, as Megatron-LM computes it
    t = targets.reshape(-1)
    valid = t != -100
    lse = torch.logsumexp(z, dim=-1)
    ce = lse - z.gather(1, t.clamp(min=0)[:, None])[:, 0]
    w = valid.float()
    loss = (ce * w).sum() / w.sum() + cfg["z_loss"] * (lse * lse * w).sum() / w.sum()
    return loss, logits


def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def main():
    exe, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, str(work)], check=True)
    meta = json.loads((work / "meta.json").read_text())
    cfg = meta["config"]
    specs = meta["params"]
    flat = np.fromfile(work / "params.bin", dtype=np.float32)
    P, off = {}, 0
    for sp in specs:
        n = int(np.prod(sp["shape"]))
        P[sp["name"]] = torch.tensor(flat[off:off + n].reshape(sp["shape"]), requires_grad=True)
        off += n
    assert off == flat.size
    worst = 0.0
    for case in meta["cases"]:
        B, T, name = case["batch"], case["seq"], case["name"]
        tokens = torch.from_numpy(np.fromfile(work / f"{name}.tokens.bin", dtype=np.int32).astype(np.int64)).view(B, T)
        targets = torch.from_numpy(np.fromfile(work / f"{name}.targets.bin", dtype=np.int32).astype(np.int64)).view(B, T)
        doc_ids = None
        if case["reset_attention_mask"]:
            # Megatron: a document ends with its EOD token; the next position opens a new document.
            eod = (tokens == case["eod_token"]).long()
            doc_ids = torch.cumsum(eod, dim=1) - eod
        for p in P.values():
            p.grad = None
        loss, logits = model_loss(P, cfg, tokens, targets, doc_ids)
        loss.backward()
        k_logits = torch.from_numpy(np.fromfile(work / f"{name}.logits.bin", dtype=np.float32)).view(logits.shape)
        k_grads = np.fromfile(work / f"{name}.grads.bin", dtype=np.float32)
        errs = {"logits": rel_err(k_logits, logits.detach()),
                "loss": abs(case["loss"] - loss.item()) / abs(loss.item()),
                "loss (forward only)": abs(case["forward_loss"] - loss.item()) / abs(loss.item())}
        off = 0
        for sp in specs:
            n = int(np.prod(sp["shape"]))
            kg = torch.from_numpy(k_grads[off:off + n].reshape(sp["shape"]))
            errs["grad " + sp["name"]] = rel_err(kg, P[sp["name"]].grad)
            off += n
        print(f"[{name}] kumiki loss {case['loss']:.7f}  torch loss {loss.item():.7f}")
        for k, e in errs.items():
            print(f"  {k:58s} max rel err {e:.3e}")
            worst = max(worst, e)
    print(f"worst max relative error {worst:.3e} (tolerance {TOL:g})")
    if not worst <= TOL:
        print("FAIL: kumiki disagrees with the PyTorch reference")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
