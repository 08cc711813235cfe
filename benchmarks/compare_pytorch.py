#!/usr/bin/python3
"""Runs the issue-3 reference training step in PyTorch and in kumiki and prints both and the ratio.

Model: hidden 256, 4 layers, 4 heads over 2 query groups (head_dim 64), SwiGLU ffn 704, vocab 8192,
untied embeddings, RMSNorm, RoPE; step = forward + backward + AdamW at batch 8 x seq 256.
PyTorch runs a plain nn.Module (what a user would write in PyTorch 1.13: explicit causal softmax
attention, F.cross_entropy, torch.optim.AdamW) with torch.set_num_threads(threads); kumiki runs
build/<dir>/bench/bench_model (TrainStep/bench_ref) with OMP_NUM_THREADS=threads.

Usage: /usr/bin/python3 benchmarks/compare_pytorch.py [--bench build-model/bench/bench_model]
       [--threads 2] [--steps 10] [--passive] [--kumiki-tokens-per-s X --kumiki-rss-mib Y]

Besides wall time it reports the process CPU time per step (all threads, user + system): on a busy
machine wall time measures the neighbours, CPU time still measures the work. --passive sets
OMP_WAIT_POLICY=passive for both so that idle OpenMP threads sleep instead of spinning and the CPU
time counts work only.
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

if "--passive" in sys.argv:  # must be set before the OpenMP runtime starts (torch import)
    os.environ["OMP_WAIT_POLICY"] = "passive"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

VOCAB, HIDDEN, LAYERS, HEADS, GROUPS, FFN, SEQ, BATCH = 8192, 256, 4, 4, 2, 704, 256, 8
HEAD_DIM = HIDDEN // HEADS


def flops_per_token(seq):
    # Megatron: 6 x matmul weights (incl. the output layer) + 6 x layers x hidden x seq (causal attention).
    kv = GROUPS * HEAD_DIM
    matmul = LAYERS * (2 * HIDDEN * HIDDEN + 2 * kv * HIDDEN + 3 * HIDDEN * FFN) + VOCAB * HIDDEN
    return 6 * matmul + 6 * LAYERS * HIDDEN * seq


class RMSNorm(torch.nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        kv = GROUPS * HEAD_DIM
        self.input_layernorm = RMSNorm(HIDDEN)
        self.q_proj = torch.nn.Linear(HIDDEN, HIDDEN, bias=False)
        self.k_proj = torch.nn.Linear(HIDDEN, kv, bias=False)
        self.v_proj = torch.nn.Linear(HIDDEN, kv, bias=False)
        self.o_proj = torch.nn.Linear(HIDDEN, HIDDEN, bias=False)
        self.post_attention_layernorm = RMSNorm(HIDDEN)
        self.gate_proj = torch.nn.Linear(HIDDEN, FFN, bias=False)
        self.up_proj = torch.nn.Linear(HIDDEN, FFN, bias=False)
        self.down_proj = torch.nn.Linear(FFN, HIDDEN, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, C = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, HEADS, HEAD_DIM).transpose(1, 2)
        k = self.k_proj(h).view(B, T, GROUPS, HEAD_DIM).transpose(1, 2)
        v = self.v_proj(h).view(B, T, GROUPS, HEAD_DIM).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(HEADS // GROUPS, dim=1)
        v = v.repeat_interleave(HEADS // GROUPS, dim=1)
        s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(HEAD_DIM))
        s = s.masked_fill(mask, float("-inf"))
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.o_proj(a)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(VOCAB, HIDDEN)
        self.layers = torch.nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm = RMSNorm(HIDDEN)
        self.lm_head = torch.nn.Linear(HIDDEN, VOCAB, bias=False)
        inv_freq = 10000.0 ** (-torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM)
        emb = torch.outer(torch.arange(SEQ, dtype=torch.float32), inv_freq).repeat(1, 2)
        self.register_buffer("cos", emb.cos())
        self.register_buffer("sin", emb.sin())
        self.register_buffer("mask", torch.ones(SEQ, SEQ, dtype=torch.bool).triu(1))

    def forward(self, tokens, targets):
        x = self.embed_tokens(tokens)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.mask)
        logits = self.lm_head(self.norm(x))
        return F.cross_entropy(logits.view(-1, VOCAB), targets.view(-1))


def run_torch(threads, steps):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Model()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ))
    targets = torch.randint(0, VOCAB, (BATCH, SEQ))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(tokens, targets)
        loss.backward()
        opt.step()
        return loss.item()

    def cpu_seconds():
        u = resource.getrusage(resource.RUSAGE_SELF)
        return u.ru_utime + u.ru_stime

    for _ in range(2):
        step()
    c0, t0 = cpu_seconds(), time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    cpu = (cpu_seconds() - c0) / steps
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return BATCH * SEQ / dt, rss, dt, cpu


def run_kumiki(bench, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([bench, "--benchmark_filter=^TrainStep/bench_ref/B:8/T:256/recompute:0/mode:0",
                          "--benchmark_format=json"], env=env, check=True, capture_output=True, text=True).stdout
    b = json.loads(out)["benchmarks"][0]
    return b["tokens/s"], b["peak_rss_MiB"], b["real_time"] / 1e3, b["process_cpu_ms"] / 1e3


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--bench", default=os.path.join(here, "..", "build", "release", "bench", "bench_model"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--kumiki-tokens-per-s", type=float)
    ap.add_argument("--kumiki-rss-mib", type=float)
    ap.add_argument("--passive", action="store_true", help="OMP_WAIT_POLICY=passive for both")
    a = ap.parse_args()
    if a.kumiki_tokens_per_s:
        k_tps, k_rss = a.kumiki_tokens_per_s, a.kumiki_rss_mib or float("nan")
        k_dt, k_cpu = BATCH * SEQ / a.kumiki_tokens_per_s, float("nan")
    else:
        k_tps, k_rss, k_dt, k_cpu = run_kumiki(a.bench, a.threads)
    t_tps, t_rss, t_dt, t_cpu = run_torch(a.threads, a.steps)
    fpt = flops_per_token(SEQ)
    print(f"reference step: batch {BATCH} x seq {SEQ}, fwd+bwd+AdamW, {a.threads} threads, "
          f"{fpt / 1e6:.1f} MFLOP/token (Megatron formula); load average {os.getloadavg()[0]:.2f}")
    print(f"{'':10s} {'tokens/s':>10s} {'ms/step':>9s} {'GFLOP/s':>9s} {'CPU ms/step':>12s} {'peak RSS MiB':>13s}")
    for name, tps, dt, cpu, rss in (("PyTorch", t_tps, t_dt, t_cpu, t_rss), ("kumiki", k_tps, k_dt, k_cpu, k_rss)):
        print(f"{name:10s} {tps:10.0f} {dt * 1e3:9.1f} {tps * fpt / 1e9:9.1f} {cpu * 1e3:12.1f} {rss:13.1f}")
    print(f"speed ratio kumiki / PyTorch: {k_tps / t_tps:.2f}x (wall), {t_cpu / k_cpu:.2f}x (CPU time per step)   "
          f"memory ratio: {k_rss / t_rss:.2f}x")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
