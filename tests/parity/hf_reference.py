#!/usr/bin/python3
"""Independent PyTorch reference for `kumiki export-hf` and `kumiki dump` (no safetensors / transformers
packages: its own safetensors parser, its own Llama and Mixtral).

Llama (tiny_test):
1. Makes a tiny_test checkpoint with random weights (C++ helper), exports it with `kumiki export-hf`
   as f32 shards (index file) and as bf16 (one file).
2. Reads the f32 export (config.json + index + shards) with the parser below, runs the Llama forward
   and backward in torch fp32 (RMSNorm, rotate-half RoPE with rope_theta, GQA, SwiGLU, untied LM head,
   cross-entropy over all `vocab_size` rows of config.json, padded ones included, exactly as
   transformers' LlamaForCausalLM computes it), and compares
   logits, loss and every parameter gradient against `kumiki dump` (relative error <= 1e-4).
3. Checks that dumping the checkpoint itself (raw tokens) and the export (.npy tokens) agree bitwise,
   and that the bf16 export is the round-to-nearest-even of the f32 weights.
Mixtral (tiny_moe_test): the same flow with a MixtralForCausalLM export and a torch Mixtral written
from the semantics: fp32 router, softmax over all experts, top-k by probability renormalized to sum 1,
dropless SwiGLU experts (w1 gate, w3 up, w2 down); the objective adds per layer the Megatron/Switch
load-balancing loss coeff * E / (N k) * sum_e count_e * P_e and the router z-loss coeff *
mean(logsumexp(router logits)^2). Compares logits, loss, moe_aux_loss, moe_z_loss and every gradient;
the checkpoint is redrawn until every token's k-th and (k+1)-th routing probabilities differ by > 1e-4.
Usage: hf_reference.py <kumiki> <hf_make_checkpoint> <work dir> [all|llama|mixtral]
"""
import json
import math
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

TOL = 1e-4
REAL_VOCAB = 50  # tiny_test and tiny_moe_test: 50 real tokens, padded to 64 rows
# tiny_moe_test's router loss coefficients (models/configs.hpp); config.json carries only the first.
MOE_AUX_COEF, MOE_Z_COEF = 1e-2, 1e-3
ROUTE_GAP = 1e-4  # minimum k-th minus (k+1)-th routing probability for a decisive parity run

DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "BF16": np.uint16}



def continue_recipe(model, data_prefix):
    """A 2-step recipe that continues training `model` from an imported checkpoint."""
    return f"""model = "{model}"
seq_len = 16
global_batch = 2
micro_batch = 1
[[stages]]
name = "continue"
data = [1.0, "{data_prefix}"]
steps = 2
[stages.lr]
lr_decay_style = "WSD"
lr = 1e-3
min_lr = 0.0
lr_warmup_iters = 0
lr_decay_iters = 2
lr_wsd_decay_iters = 1
"""

def read_safetensors(path):
    """name -> numpy array (BF16 as float32, widened exactly), and the __metadata__ map."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert 8 + n <= len(raw), f"{path}: header length beyond the file"
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        assert 0 <= begin <= end <= len(data), f"{path}: {name} outside the data section"
        dt = DTYPES[e["dtype"]]
        a = np.frombuffer(data[begin:end], dtype=np.dtype(dt).newbyteorder("<"))
        assert a.size == int(np.prod(e["shape"], dtype=np.int64)), f"{path}: {name} size"
        a = a.reshape(e["shape"])
        if e["dtype"] == "BF16":
            out[name + ".__bf16_bits"] = a.copy()
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = a
    return out, meta


def read_model_dir(d):
    d = Path(d)
    single = d / "model.safetensors"
    if single.exists():
        return read_safetensors(single)[0]
    index = json.loads((d / "model.safetensors.index.json").read_text())
    tensors = {}
    for shard in sorted(set(index["weight_map"].values())):
        t, _ = read_safetensors(d / shard)
        for k, v in t.items():
            assert k not in tensors, f"{k} in two shards"
            tensors[k] = v
    names = {k for k in tensors if not k.endswith(".__bf16_bits")}
    assert names == set(index["weight_map"]), "index and shards disagree"
    return tensors


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def swiglu(h, w_gate, w_up, w_down):
    return (torch.nn.functional.silu(h @ w_gate.T) * (h @ w_up.T)) @ w_down.T


def mixtral_moe(h, p, cfg, stats):
    """Mixtral's sparse MoE block on normalized inputs h (B, T, C); adds this layer's load-balancing and
    router z-losses and its smallest k-th / (k+1)-th probability gap to `stats`."""
    B, T, C = h.shape
    E, k = cfg["num_local_experts"], cfg["num_experts_per_tok"]
    x = h.reshape(B * T, C)
    N = x.shape[0]
    logits = x.float() @ p["block_sparse_moe.gate.weight"].float().T  # (N, E), fp32
    probs = torch.softmax(logits, dim=-1)
    order = torch.sort(probs.detach(), dim=-1, descending=True, stable=True)
    stats["min_gap"] = min(stats["min_gap"], float((order.values[:, k - 1] - order.values[:, k]).min()) if k < E else 1.0)
    top_idx = order.indices[:, :k]  # (N, k): ties would go to the lower index (stable sort)
    top_p = probs.gather(1, top_idx)
    weights = top_p / top_p.sum(dim=-1, keepdim=True)  # Mixtral renormalizes the k probabilities
    out = torch.zeros_like(x)
    for e in range(E):
        tok, slot = (top_idx == e).nonzero(as_tuple=True)
        if tok.numel() == 0:
            continue
        q = f"block_sparse_moe.experts.{e}."
        y = swiglu(x[tok], p[q + "w1.weight"], p[q + "w3.weight"], p[q + "w2.weight"])
        out = out.index_add(0, tok, y * weights[tok, slot].unsqueeze(-1))
    counts = torch.bincount(top_idx.reshape(-1), minlength=E).to(probs.dtype)  # assignments, no gradient
    stats["aux"] = stats["aux"] + MOE_AUX_COEF * E / (N * k) * (counts * probs.mean(dim=0)).sum()
    stats["z"] = stats["z"] + MOE_Z_COEF * torch.logsumexp(logits, dim=-1).pow(2).mean()
    return out.view(B, T, C)


def model_loss(P, cfg, tokens, targets, real_vocab):
    """LM loss and logits of the Llama or Mixtral in `cfg`; for Mixtral also the router statistics
    (summed aux and z-losses, the smallest routing gap), else None."""
    B, T = tokens.shape
    C, H, G = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    moe = cfg["model_type"] == "mixtral"
    stats = {"aux": torch.zeros(()), "z": torch.zeros(()), "min_gap": 1.0} if moe else None
    hd = C // H
    eps = cfg["rms_norm_eps"]
    inv = cfg["rope_theta"] ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
    ang = torch.cat((ang, ang), dim=-1)
    cos, sin = ang.cos().float(), ang.sin().float()
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    x = P["model.embed_tokens.weight"][tokens]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, P[p + "input_layernorm.weight"], eps)
        q = (h @ P[p + "self_attn.q_proj.weight"].T).view(B, T, H, hd).transpose(1, 2)
        k = (h @ P[p + "self_attn.k_proj.weight"].T).view(B, T, G, hd).transpose(1, 2)
        v = (h @ P[p + "self_attn.v_proj.weight"].T).view(B, T, G, hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(H // G, dim=1), v.repeat_interleave(H // G, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(~causal, float("-inf"))
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + a @ P[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, P[p + "post_attention_layernorm.weight"], eps)
        if moe:
            x = x + mixtral_moe(h, {n[len(p):]: w for n, w in P.items() if n.startswith(p)}, cfg, stats)
        else:
            x = x + swiglu(h, P[p + "mlp.gate_proj.weight"], P[p + "mlp.up_proj.weight"], P[p + "mlp.down_proj.weight"])
    x = rms_norm(x, P["model.norm.weight"], eps)
    logits = x @ P["lm_head.weight"].T  # (B, T, vocab_size): the padded rows are ordinary ids here
    assert logits.shape[-1] == cfg["vocab_size"] and int(targets.max()) < real_vocab
    loss = torch.nn.functional.cross_entropy(logits.reshape(B * T, cfg["vocab_size"]), targets.reshape(-1))
    return loss, logits, stats


def rel(a, b):
    a, b = torch.as_tensor(np.array(a)).double(), torch.as_tensor(np.array(b)).double()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def rne_bf16_bits(f32):
    u = f32.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def run(*a):
    r = subprocess.run([str(x) for x in a], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(map(str, a))}\n{r.stdout}{r.stderr}")
    return r.stdout + r.stderr


def llama_case(kumiki, make_ckpt, work):
    print("== Llama (tiny_test)")
    work.mkdir(parents=True)
    ckpt = run(make_ckpt, work / "run", 2024, 8).strip()  # matrices x 8: far from uniform logits
    run(kumiki, "export-hf", "--checkpoint", ckpt, "--out", work / "hf32", "--dtype", "f32", "--max-shard-bytes", 20000)
    (work / "sp.model").write_bytes(b"\x0a\x05fake sentencepiece model")
    run(kumiki, "export-hf", "--checkpoint", ckpt, "--out", work / "hf16", "--dtype", "bf16", "--tokenizer", work / "sp.model")
    assert (work / "hf16" / "tokenizer.model").read_bytes() == (work / "sp.model").read_bytes(), "tokenizer not copied"
    assert (work / "hf32" / "model.safetensors.index.json").exists(), "f32 export should be sharded"
    cfg = json.loads((work / "hf32" / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["vocab_size"] == 64, cfg

    rng = np.random.default_rng(7)
    B, T = 3, 16
    toks = rng.integers(0, REAL_VOCAB, size=(B, T + 1), dtype=np.int32)
    np.save(work / "tokens.npy", toks)
    toks.astype("<i4").tofile(work / "tokens.bin")
    run(kumiki, "dump", "--model", work / "hf32", "--tokens", work / "tokens.npy", "--out", work / "dump_hf.safetensors")
    run(kumiki, "dump", "--model", ckpt, "--tokens", work / "tokens.bin", "--batch", B, "--out", work / "dump_ck.safetensors")
    dump, meta = read_safetensors(work / "dump_hf.safetensors")
    dump_ck, _ = read_safetensors(work / "dump_ck.safetensors")
    assert int(meta["vocab_size"]) == REAL_VOCAB and int(meta["padded_vocab_size"]) == 64, meta
    assert dump.keys() == dump_ck.keys()
    for k in dump:
        assert np.array_equal(dump[k], dump_ck[k]), f"dump of checkpoint and of export differ in {k}"

    # import-hf of the sharded export, dumped again: the same numbers bit for bit.
    run(kumiki, "import-hf", "--model", work / "hf32", "--out", work / "imported")
    run(kumiki, "dump", "--model", work / "imported" / "step_000000000", "--tokens", work / "tokens.npy",
        "--out", work / "dump_im.safetensors")
    dump_im, _ = read_safetensors(work / "dump_im.safetensors")
    for k in dump:
        assert np.array_equal(dump[k], dump_im[k]), f"dump of the imported checkpoint differs in {k}"
    # int64 .npy tokens give the same dump; a raw file without --batch is refused.
    np.save(work / "tokens64.npy", toks.astype(np.int64))
    run(kumiki, "dump", "--model", ckpt, "--tokens", work / "tokens64.npy", "--out", work / "dump_64.safetensors")
    assert all(np.array_equal(v, read_safetensors(work / "dump_64.safetensors")[0][k]) for k, v in dump.items())
    r = subprocess.run([kumiki, "dump", "--model", ckpt, "--tokens", work / "tokens.bin", "--out", work / "x.safetensors"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "needs --batch" in r.stderr, r.stderr
    # Errors reach the user with a non-zero exit: a token outside the vocabulary, a config matching nothing.
    bad = toks.copy()
    bad[1, 4] = REAL_VOCAB
    np.save(work / "bad.npy", bad)
    r = subprocess.run([kumiki, "dump", "--model", ckpt, "--tokens", work / "bad.npy", "--out", work / "x.safetensors"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "outside the vocabulary" in r.stderr, r.stderr
    shutil.copytree(work / "hf32", work / "hf_bad")
    c = dict(cfg, num_key_value_heads=4)
    (work / "hf_bad" / "config.json").write_text(json.dumps(c))
    r = subprocess.run([kumiki, "import-hf", "--model", work / "hf_bad", "--out", work / "x"], capture_output=True, text=True)
    assert r.returncode != 0 and "num_key_value_heads expected 2, got 4" in r.stderr, r.stderr
    print("import-hf -> dump: bitwise equal; bad token and mismatching config rejected")
    # `kumiki train` continues from the imported checkpoint placed as a run's checkpoints/ directory.
    run(make_ckpt, "dataset", work / "ids", 5)
    (work / "cont.toml").write_text(continue_recipe("tiny_test", work / "ids"))
    shutil.copytree(work / "imported", work / "cont" / "checkpoints")
    out = run(kumiki, "train", "--recipe", work / "cont.toml", "--out", work / "cont", "--allow-recipe-change")
    assert "resuming from" in out and "step 0" in out, out
    log = [json.loads(l) for l in (work / "cont" / "log.jsonl").read_text().splitlines() if l.strip()]
    steps = [r for r in log if "loss" in r and "step" in r]
    assert steps, log
    print(f"kumiki train from the imported checkpoint: {len(steps)} steps, first loss {steps[0]['loss']:.4f}")
    run(kumiki, "export-hf", "--checkpoint", work / "cont", "--out", work / "hf_cont", "--dtype", "f32")  # a run dir
    assert read_safetensors(work / "hf_cont" / "model.safetensors")[1]["kumiki_checkpoint"] == "step_000000002"

    W = read_model_dir(work / "hf32")
    P = {k: torch.tensor(np.array(v), requires_grad=True) for k, v in W.items() if not k.endswith(".__bf16_bits")}
    tokens = torch.from_numpy(toks[:, :T].astype(np.int64))
    targets = torch.from_numpy(toks[:, 1:].astype(np.int64))
    loss, logits, _ = model_loss(P, cfg, tokens, targets, REAL_VOCAB)
    loss.backward()
    e_logits = rel(dump["logits"], logits.detach())
    e_loss = rel(dump["loss"].reshape(()), loss.detach())
    print(f"logits [{B}, {T}, 64] rel err {e_logits:.3e}; loss {float(loss):.7f} (kumiki {float(dump['loss'][0]):.7f}) "
          f"rel err {e_loss:.3e}")
    ok = e_logits <= TOL and e_loss <= TOL
    worst, worst_name = 0.0, ""
    grads = [k for k in dump if k.startswith("grad.")]
    assert sorted(g[5:] for g in grads) == sorted(P), "dump gradients do not cover every parameter"
    for g in grads:
        e = rel(dump[g], P[g[5:]].grad)
        if e > worst:
            worst, worst_name = e, g
    print(f"{len(grads)} gradients: worst rel err {worst:.3e} ({worst_name})")
    ok = ok and worst <= TOL
    # Padded ids are part of the softmax: their LM-head rows are trained down like any wrong id.
    assert np.abs(dump["grad.lm_head.weight"][REAL_VOCAB:]).max() > 0, "padded LM-head rows got no gradient"

    W16 = read_model_dir(work / "hf16")
    for k, v in W.items():
        assert np.array_equal(W16[k + ".__bf16_bits"], rne_bf16_bits(v)), f"bf16 export of {k} is not RNE of f32"
    print(f"bf16 export: {len(W)} tensors equal to round-to-nearest-even of the f32 weights")
    return ok


def mixtral_case(kumiki, make_ckpt, work):
    print("== Mixtral (tiny_moe_test)")
    work.mkdir(parents=True)
    rng = np.random.default_rng(11)
    B, T = 3, 16
    toks = rng.integers(0, REAL_VOCAB, size=(B, T + 1), dtype=np.int32)
    np.save(work / "tokens.npy", toks)
    toks.astype("<i4").tofile(work / "tokens.bin")
    tokens = torch.from_numpy(toks[:, :T].astype(np.int64))
    targets = torch.from_numpy(toks[:, 1:].astype(np.int64))

    # Draw checkpoints until routing is decisive for every token of every layer (no near-ties that
    # fp32 rounding could flip between the two implementations).
    for seed in range(2025, 2035):
        d = work / f"seed{seed}"
        ckpt = run(make_ckpt, d / "run", seed, 8, "tiny_moe_test").strip()  # matrices x 8, router included
        run(kumiki, "export-hf", "--checkpoint", ckpt, "--out", d / "hf32", "--dtype", "f32", "--max-shard-bytes", 40000)
        cfg = json.loads((d / "hf32" / "config.json").read_text())
        W = read_model_dir(d / "hf32")
        P = {k: torch.tensor(np.array(v), requires_grad=True) for k, v in W.items() if not k.endswith(".__bf16_bits")}
        loss, logits, stats = model_loss(P, cfg, tokens, targets, REAL_VOCAB)
        print(f"seed {seed}: smallest k-th minus (k+1)-th routing probability {stats['min_gap']:.3e}")
        if stats["min_gap"] > ROUTE_GAP:
            break
    else:
        sys.exit("FAILED: no seed gave decisive routing")
    assert cfg["architectures"] == ["MixtralForCausalLM"] and cfg["model_type"] == "mixtral", cfg
    assert (cfg["num_local_experts"], cfg["num_experts_per_tok"], cfg["intermediate_size"]) == (4, 2, 24), cfg
    assert cfg["router_aux_loss_coef"] == MOE_AUX_COEF and cfg["vocab_size"] == 64, cfg
    assert (d / "hf32" / "model.safetensors.index.json").exists(), "f32 export should be sharded"
    expert_names = [k for k in P if ".block_sparse_moe.experts." in k]
    assert len(expert_names) == 2 * 4 * 3 and not any(".mlp." in k for k in P), sorted(P)

    run(kumiki, "dump", "--model", d / "hf32", "--tokens", work / "tokens.npy", "--out", work / "dump_hf.safetensors")
    run(kumiki, "dump", "--model", ckpt, "--tokens", work / "tokens.bin", "--batch", B, "--out", work / "dump_ck.safetensors")
    run(kumiki, "import-hf", "--model", d / "hf32", "--out", work / "imported")
    run(kumiki, "dump", "--model", work / "imported" / "step_000000000", "--tokens", work / "tokens.npy",
        "--out", work / "dump_im.safetensors")
    dump, meta = read_safetensors(work / "dump_hf.safetensors")
    assert meta["model"] == "tiny_moe_test", meta
    for other in ("dump_ck", "dump_im"):
        o, _ = read_safetensors(work / f"{other}.safetensors")
        assert dump.keys() == o.keys()
        for k in dump:
            assert np.array_equal(dump[k], o[k]), f"{other} differs from the export's dump in {k}"
    print("dump of checkpoint, export and import-hf of the export: bitwise equal")
    bad = dict(cfg, num_local_experts=8)
    shutil.copytree(d / "hf32", work / "hf_bad")
    (work / "hf_bad" / "config.json").write_text(json.dumps(bad))
    r = subprocess.run([kumiki, "import-hf", "--model", work / "hf_bad", "--out", work / "x"], capture_output=True, text=True)
    assert r.returncode != 0 and "num_local_experts expected 4, got 8" in r.stderr, r.stderr

    # Gradients of the objective: LM loss + load-balancing + router z-loss (summed over layers).
    (loss + stats["aux"] + stats["z"]).backward()
    errs = {"logits": rel(dump["logits"], logits.detach()), "loss": rel(dump["loss"].reshape(()), loss.detach()),
            "moe_aux_loss": rel(dump["moe_aux_loss"].reshape(()), stats["aux"].detach()),
            "moe_z_loss": rel(dump["moe_z_loss"].reshape(()), stats["z"].detach())}
    print(f"logits [{B}, {T}, 64] rel err {errs['logits']:.3e}; loss {float(loss):.7f} (kumiki "
          f"{float(dump['loss'][0]):.7f}) rel err {errs['loss']:.3e}")
    print(f"moe_aux_loss {float(stats['aux']):.7g} (kumiki {float(meta['moe_aux_loss']):.7g}) rel err "
          f"{errs['moe_aux_loss']:.3e}; moe_z_loss {float(stats['z']):.7g} (kumiki {float(meta['moe_z_loss']):.7g}) "
          f"rel err {errs['moe_z_loss']:.3e}")
    ok = all(e <= TOL for e in errs.values())
    grads = [k for k in dump if k.startswith("grad.")]
    assert sorted(g[5:] for g in grads) == sorted(P), "dump gradients do not cover every parameter"
    worst, worst_name, by_kind = 0.0, "", {}
    for g in grads:
        e = rel(dump[g], P[g[5:]].grad)
        kind = g.split(".")[-2] if ".block_sparse_moe." in g else "other"
        by_kind[kind] = max(by_kind.get(kind, 0.0), e)
        if e > worst:
            worst, worst_name = e, g
    print(f"{len(grads)} gradients: worst rel err {worst:.3e} ({worst_name}); worst by kind: " +
          ", ".join(f"{k} {v:.2e}" for k, v in sorted(by_kind.items())))
    ok = ok and worst <= TOL
    assert np.abs(dump["grad.lm_head.weight"][REAL_VOCAB:]).max() > 0, "padded LM-head rows got no gradient"
    # The router losses must matter for the router gradient at this tolerance, else a wrong or
    # missing aux / z gradient would pass unnoticed.
    share = []
    for l in range(cfg["num_hidden_layers"]):
        n = f"model.layers.{l}.block_sparse_moe.gate.weight"
        Pd = {k: v.detach().clone().requires_grad_(k == n) for k, v in P.items()}
        _, _, st = model_loss(Pd, cfg, tokens, targets, REAL_VOCAB)
        (st["aux"] + st["z"]).backward()
        share.append(float(Pd[n].grad.abs().max() / P[n].grad.abs().max()))
    print("router-loss part of the router gradient (max abs, relative): " + ", ".join(f"{x:.2e}" for x in share))
    assert min(share) > 100 * TOL, "router losses too weak to be checked by the gradient comparison"

    run(kumiki, "export-hf", "--checkpoint", ckpt, "--out", work / "hf16", "--dtype", "bf16")
    W16 = read_model_dir(work / "hf16")
    for k, v in W.items():
        if not k.endswith(".__bf16_bits"):
            assert np.array_equal(W16[k + ".__bf16_bits"], rne_bf16_bits(v)), f"bf16 export of {k} is not RNE of f32"
    print(f"bf16 export: {len(P)} tensors equal to round-to-nearest-even of the f32 weights")

    # `kumiki train` continues from the imported Mixtral; the run exports as a Mixtral again.
    run(make_ckpt, "dataset", work / "ids", 5)
    (work / "cont.toml").write_text(continue_recipe("tiny_moe_test", work / "ids"))
    shutil.copytree(work / "imported", work / "cont" / "checkpoints")
    out = run(kumiki, "train", "--recipe", work / "cont.toml", "--out", work / "cont", "--allow-recipe-change")
    assert "resuming from" in out and "step 0" in out, out
    run(kumiki, "export-hf", "--checkpoint", work / "cont", "--out", work / "hf_cont", "--dtype", "f32")
    cont = read_model_dir(work / "hf_cont")
    assert cont.keys() == W.keys(), "the trained run's export has other tensors"
    changed = {k for k in W if not np.array_equal(cont[k], W[k])}
    assert all(k in changed for k in W if k.endswith("block_sparse_moe.gate.weight")), "a router did not train"
    assert len(changed) > len(W) // 2, f"only {len(changed)} of {len(W)} tensors changed in 2 training steps"
    print(f"kumiki train from the imported Mixtral: 2 steps, {len(changed)} of {len(W)} tensors updated, exported again")
    return ok


def main():
    kumiki, make_ckpt, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    which = sys.argv[4] if len(sys.argv) > 4 else "all"
    assert which in ("all", "llama", "mixtral"), f"unknown case {which}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ok = True
    if which in ("all", "llama"):
        ok = llama_case(kumiki, make_ckpt, work / "llama") and ok
    if which in ("all", "mixtral"):
        ok = mixtral_case(kumiki, make_ckpt, work / "mixtral") and ok
    if not ok:
        print(f"FAILED: tolerance {TOL}")
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
