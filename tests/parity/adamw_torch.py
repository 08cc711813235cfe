#!/usr/bin/env python3
"""Parity of kumiki's AdamW with torch.optim.AdamW: same fp32 parameters and gradients, 5 steps with a
changing lr, Megatron parameter groups (no weight decay on 1-D tensors and biases, an lr multiplier
on the embedding); kumiki runs its bf16 master-weight path, so the fp32 master is compared with torch's
fp32 parameters and kumiki's bf16 model with torch's parameters cast to bf16.

Usage: adamw_torch.py PATH/TO/adamw_parity_tool     (needs torch and numpy; exit 0 on success)
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

STEPS = 5
TENSORS = [  # (name, shape, lr_mult); Megatron's rule decides weight decay
    ("embed.weight", (33, 8), 0.5),
    ("layers.0.input_norm.weight", (8,), 1.0),
    ("layers.0.attn.qkv.weight", (24, 8), 1.0),
    ("layers.0.attn.qkv.bias", (24,), 1.0),
    ("layers.0.mlp.fc1.weight", (7, 8, 3), 1.0),
    ("head.weight", (5, 8), 1.0),
]
f32 = lambda x: float(np.float32(x))  # kumiki's config is fp32; give torch the same values
BETA1, BETA2, EPS, WD = f32(0.9), f32(0.95), f32(1e-8), f32(0.1)
LRS = [f32(x) for x in (1e-3, 2e-3, 3e-3, 3e-3, 2.5e-3)]


def no_decay(name, shape):
    return len(shape) == 1 or name.endswith(".bias")


def main():
    tool = sys.argv[1]
    gen = torch.Generator().manual_seed(20261126)
    # Parameters bounded away from zero (|p| in [0.5, 1.5]) so a per-element relative error is meaningful.
    init = []
    for _, shape, _ in TENSORS:
        mag = 0.5 + torch.rand(shape, generator=gen)
        sign = torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0)
        init.append((mag * sign).float())
    grads = [[torch.randn(shape, generator=gen) * 0.1 for _, shape, _ in TENSORS] for _ in range(STEPS)]

    # torch: one group per tensor carrying its lr multiplier and weight decay.
    params = [torch.nn.Parameter(t.clone()) for t in init]
    groups = [{"params": [p], "lr_mult": m, "weight_decay": 0.0 if no_decay(n, s) else WD}
              for p, (n, s, m) in zip(params, TENSORS)]
    opt = torch.optim.AdamW(groups, lr=LRS[0], betas=(BETA1, BETA2), eps=EPS, weight_decay=WD, foreach=False)
    for s in range(STEPS):
        for g, p, gr in zip(opt.param_groups, params, grads[s]):
            g["lr"] = LRS[s] * g["lr_mult"]
            p.grad = gr.clone()
        opt.step()

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "spec.txt"), "w") as f:
            f.write(f"config {BETA1!r} {BETA2!r} {EPS!r} {WD!r}\n")
            f.write("lrs " + " ".join(repr(x) for x in LRS) + "\n")
            f.write("group embed. 0.5 1\n")
            for name, shape, _ in TENSORS:
                f.write(f"tensor {name} {len(shape)} {' '.join(map(str, shape))}\n")
        np.concatenate([t.numpy().ravel() for t in init]).astype("<f4").tofile(os.path.join(d, "params.bin"))
        np.concatenate([g.numpy().ravel() for step in grads for g in step]).astype("<f4").tofile(os.path.join(d, "grads.bin"))
        subprocess.run([tool, d], check=True)
        out = {k: np.fromfile(os.path.join(d, f"out_{k}.bin"), dtype="<f4") for k in ("params", "m", "v")}
        out_bf16 = np.fromfile(os.path.join(d, "out_bf16.bin"), dtype="<u2")

    ok = True
    offset = 0
    for (name, shape, _), p in zip(TENSORS, params):
        n = int(np.prod(shape))
        sl = slice(offset, offset + n)
        offset += n
        state = opt.state[p]
        ref_p = p.detach().numpy().ravel().astype(np.float64)
        ref_m = state["exp_avg"].numpy().ravel().astype(np.float64)
        ref_v = state["exp_avg_sq"].numpy().ravel().astype(np.float64)
        err_p = np.max(np.abs(out["params"][sl] - ref_p) / np.abs(ref_p))
        # m can cancel to ~0, so its error is relative to the tensor's largest |m|; v >= 0 has no cancellation.
        err_m = np.max(np.abs(out["m"][sl] - ref_m)) / np.max(np.abs(ref_m))
        err_v = np.max(np.abs(out["v"][sl] - ref_v) / np.abs(ref_v))
        moved = np.max(np.abs(ref_p - init[TENSORS.index((name, shape, _))].numpy().ravel()))
        # bf16 model: kumiki's bits equal torch's RNE cast of kumiki's master, and are within one bf16
        # ulp of torch's cast of torch's own parameters.
        torch_of_ours = torch.from_numpy(out["params"][sl].copy()).to(torch.bfloat16).view(torch.int16).numpy().view("<u2")
        torch_of_torch = p.detach().ravel().to(torch.bfloat16).view(torch.int16).numpy().view("<u2")
        bf_exact = np.array_equal(out_bf16[sl], torch_of_ours)
        bf_ulps = int(np.max(np.abs(out_bf16[sl].astype(np.int64) - torch_of_torch.astype(np.int64))))
        good = err_p <= 1e-6 and err_m <= 1e-6 and err_v <= 1e-6 and bf_exact and bf_ulps <= 1 and moved > 1e-3
        ok &= good
        print(f"{'ok  ' if good else 'FAIL'} {name:28s} params rel {err_p:.2e}  m {err_m:.2e}  v {err_v:.2e}  "
              f"moved {moved:.2e}  bf16 exact-cast {bf_exact} max ulps vs torch {bf_ulps}")
    print("parity.adamw_torch:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
