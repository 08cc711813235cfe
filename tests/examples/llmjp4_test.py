#!/usr/bin/env python3
"""The LLM-jp-4 example programs (examples/llmjp4): every number of `--dry-run --json`, for both sizes,
backends and precisions, against an independent computation from the published shapes and the recipes'
own values (parsed here with tomllib): parameters per component, Megatron-LM's FLOPs per token, steps
and tokens per stage, the lr at each stage boundary (Megatron's WSD formulas restated), memory per
buffer (arena tensors rounded up to the allocator's alignment), GPU-days. Then the same program body on
tiny_test: `--smoke` lowers the loss of its batch, and its real arenas equal the dry run's memory.

usage: llmjp4_test.py LLMJP4_1_3B LLMJP4_8B LLMJP4_TINY WORK_DIR RECIPE_DIR
"""
import json
import math
import os
import subprocess
import sys
import tomllib

prog13, prog8, tiny, work, recipe_dir = sys.argv[1:6]
os.makedirs(work, exist_ok=True)
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def close(a, b, rel=1e-12):
    return a == b or abs(a - b) <= rel * max(abs(a), abs(b))


# The published shapes (shared/reference/llmjp-recipes.md section 1), not kumiki's config header.
SHAPES = {
    "llmjp4_1_3b": dict(V=99487, h=2048, F=7168, L=16, heads=16, groups=8),
    "llmjp4_8b": dict(V=99487, h=4096, F=14336, L=32, heads=32, groups=8),
    "tiny_test": dict(V=50, h=32, F=40, L=2, heads=4, groups=2, divisible=16),
}
H200_PEAK, H100_PEAK = 989e12, 989e12


def padded(s):
    d = s.get("divisible", 128)
    return -(-s["V"] // d) * d


def param_tensors(s):
    h, F, kv, Vp = s["h"], s["F"], s["groups"] * s["h"] // s["heads"], padded(s)
    t = [("embedding", Vp * h)]
    for _ in range(s["L"]):
        t += [("block norms", h), ("attention q, k, v, o", h * h), ("attention q, k, v, o", kv * h),
              ("attention q, k, v, o", kv * h), ("attention q, k, v, o", h * h), ("block norms", h),
              ("mlp", F * h), ("mlp", F * h), ("mlp", h * F)]
    return t + [("final norm", h), ("lm head", Vp * h)]


def flops_per_token(s, seq):
    """Megatron-LM num_floating_point_operations per token: 12 L h^2 ((1 + groups/heads + seq/h/2) +
    (F/h) 3/2) + 6 Vp h, i.e. causal attention counted half and a SwiGLU MLP."""
    h, L = s["h"], s["L"]
    return (12 * L * h * h * ((1 + s["groups"] / s["heads"] + seq / h / 2) + (s["F"] / h) * 1.5)
            + 6 * padded(s) * h)


def aligned(nbytes, a):
    return -(-nbytes // a) * a


def activation_bytes(s, B, T, recompute, act, a, chunk=256):
    """The activation arena of a dense model: block inputs, saved activations per layer (or one slot),
    final norm, backward scratch, loss scratch, RoPE tables, document starts; stats in f32."""
    N, h, F, L = B * T, s["h"], s["F"], s["L"]
    qkv = h + 2 * s["groups"] * h // s["heads"]
    t = [(N * h, act)] * (L + 1)
    block = [(N * h, act), (N, 4), (N * qkv, act), (N * h, act), (B * s["heads"] * T, 4), (N * h, act),
             (N * h, act), (N, 4), (N * 2 * F, act), (N * F, act)]
    t += block * (1 if recompute else L)
    t += [(N * h, act), (N, 4)] + [(N * h, act)] * 4 + [(N * qkv, act), (N * F, act), (N * 2 * F, act)]
    hd = h // s["heads"]
    t += [(min(chunk, N) * padded(s), 4), (T * hd // 2, 4), (T * hd // 2, 4), (N, 4)]
    return sum(aligned(n * b, a) for n, b in t)


def megatron_lr(lr_table, s):
    """Megatron's warmup and decay (WSD with its decay styles, constant) at step s of a schedule."""
    mx, mn = lr_table["lr"], lr_table.get("min_lr", 0.0)
    W, init = lr_table.get("lr_warmup_iters", 0), lr_table.get("lr_warmup_init", 0.0)
    style = lr_table["lr_decay_style"]
    if W > 0 and s <= W:
        return init + (mx - init) * s / W
    if style == "constant":
        return mx
    D = lr_table["lr_decay_iters"]
    if s > D:
        return mn
    assert style == "WSD"
    wd = lr_table["lr_wsd_decay_iters"]
    A = D - wd
    if s <= A:
        coeff = 1.0
    else:
        q = (s - A) / wd
        coeff = {"linear": 1 - q, "cosine": 0.5 * (1 + math.cos(math.pi * q)), "exponential": 2 * 0.5 ** q - 1,
                 "minus_sqrt": 1 - math.sqrt(q)}[lr_table["lr_wsd_decay_style"]]
    return mn + coeff * (mx - mn)


def expected_stages(recipe_path):
    """(name, first_step, steps, seq, runs, tokens, lr_start, lr_end) for each stage of a recipe."""
    r = tomllib.load(open(recipe_path, "rb"))
    out, step, seg = [], 0, None  # seg: lr(global step) of the schedule in force
    for st in r["stages"]:
        seq = st.get("seq_len", r["seq_len"])
        per_step = r["global_batch"] * seq
        steps = st["steps"] if "steps" in st else -(-st["tokens"] // per_step)
        rule = st.get("schedule", "new")
        if rule == "new":
            seg = (lambda table, start: lambda g: megatron_lr(table, g - start))(st["lr"], step)
        elif rule == "branch":  # from the lr reached, 1 - sqrt cooldown to min_lr over the stage
            frm, to, n, start = seg(step), st.get("min_lr", 0.0), st.get("lr_decay_iters", 0) or steps, step
            assert st.get("lr_wsd_decay_style", "minus_sqrt") == "minus_sqrt"
            seg = (lambda frm, to, n, start: lambda g: to + (frm - to) * (1 - math.sqrt(min(g - start, n) / n)))(
                frm, to, n, start)
        runs = len(st.get("seeds", [])) or 1
        out.append((st["name"], step, steps, seq, runs, steps * per_step * runs, seg(step), seg(step + steps)))
        step += steps
    return r, out


def dry_run(prog, extra, tag):
    path = os.path.join(work, tag + ".json")
    p = subprocess.run([prog, "--dry-run", "--json", path] + extra, capture_output=True, text=True)
    check(p.returncode == 0, f"{tag}: --dry-run exits 0" + ("" if p.returncode == 0 else ": " + p.stderr[-300:]))
    return p.stdout, json.load(open(path))


def check_plan(model, j, recipes, cuda, bf16, gpus=64, mfu=0.4, peak=H200_PEAK, tag="", recompute=False, zero=0):
    s = SHAPES[model]
    tag = f"{model} {tag}"
    groups = {}
    for name, n in param_tensors(s):
        g = groups.setdefault(name, [0, 0])
        g[0] += 1
        g[1] += n
    got = {r["name"]: [r["tensors"], r["params"]] for r in j["params"]}
    check(got == groups, f"{tag}: parameters per component {got}")
    total = sum(n for _, n in param_tensors(s))
    check(j["total_params"] == total, f"{tag}: {total:,} parameters")
    rows, flops = [], 0.0
    for rp in recipes:
        r, st = expected_stages(rp)
        for name, first, steps, seq, runs, tokens, lr0, lr1 in st:
            rows.append((os.path.basename(rp), name, first, steps, seq, runs, tokens, lr0, lr1, flops_per_token(s, seq)))
            flops += tokens * flops_per_token(s, seq)
    check(len(j["stages"]) == len(rows), f"{tag}: {len(rows)} stages")
    for got, want in zip(j["stages"], rows):
        rp, name, first, steps, seq, runs, tokens, lr0, lr1, fpt = want
        ok = (got["recipe"] == rp and got["stage"] == name and got["first_step"] == first and got["steps"] == steps and
              got["seq_len"] == seq and got["runs"] == runs and got["tokens"] == tokens and close(got["lr_start"], lr0) and
              close(got["lr_end"], lr1) and close(got["flops_per_token"], fpt) and close(got["flops"], tokens * fpt))
        check(ok, f"{tag}: stage {name}: {steps:,} steps from {first:,}, seq {seq} x {runs} run(s), {tokens:,} tokens, "
                  f"lr {lr0:.4g} -> {lr1:.4g}, {fpt:.6g} FLOPs/token")
    check(close(j["total_flops"], flops), f"{tag}: {flops:.6g} FLOPs in all")
    days = flops / (peak * mfu) / 86400
    check(close(j["gpu_days"], days) and close(j["days"], days / gpus), f"{tag}: {days:.1f} GPU-days, {days / gpus:.2f} days on {gpus}")
    a = 256 if cuda else 64
    pb = 2 if bf16 else 4
    per_param = None
    for mem, rp in zip(j["memory"], recipes):
        r = tomllib.load(open(rp, "rb"))
        seq = max(st.get("seq_len", r["seq_len"]) for st in r["stages"])
        mb = r["micro_batch"]
        f32 = sum(aligned(4 * n, a) for _, n in param_tensors(s))
        params = sum(aligned(pb * n, a) for _, n in param_tensors(s))
        d = gpus if zero else 1  # ZeRO-1: each rank keeps 1/d of the fp32 master weights and moments
        part = lambda b: -(-b // d)
        # bf16: the fp32 master weights are the bf16 weights (high halves) and an arena of low halves of
        # the weights' layout (optim/master.hpp); the GPU also keeps cuBLASLt's 32 MiB and a 1 GiB reserve.
        state = [params] + ([part(params)] if bf16 else []) + [f32, part(2 * f32)]
        want = state + [activation_bytes(s, mb, seq, recompute, pb, a)] + ([32 << 20, 1 << 30] if cuda else [])
        got = [row["bytes"] for row in mem["rows"]]
        per_param = sum(state) / total
        check(got == want and mem["total"] == sum(want) and mem["zero"] == zero and mem["ranks"] == d and
              close(mem["state_bytes_per_param"], per_param),
              f"{tag}: memory for {os.path.basename(rp)} ({mb} x {seq}): {[round(b / 2**30, 3) for b in want]} GiB, "
              f"{per_param:.3f} bytes a parameter on each of {d} rank(s)")
    return per_param


recipes = {m: [os.path.join(recipe_dir, f"{m}_pretrain.toml"), os.path.join(recipe_dir, f"{m}_midtrain.toml")]
           for m in ("llmjp4_1_3b", "llmjp4_8b")}
for model, prog in (("llmjp4_1_3b", prog13), ("llmjp4_8b", prog8)):
    text, j = dry_run(prog, [], model)
    per_param = check_plan(model, j, recipes[model], cuda=True, bf16=True, tag="cuda bf16")
    # Unsharded: 2 + 2 + 4 + 8 = 16 bytes a parameter (bf16 weights, their low halves, fp32 gradients, moments).
    check(abs(per_param - 16) < 0.01, f"{model}: {per_param:.4f} bytes a parameter unsharded (2 + 2 + 4 + 8)")
    check("| **total** |" in text and "GPU-days" in text, f"{model}: the report has its tables")
    _, j = dry_run(prog, ["--backend", "cpu", "--gpu", "h100", "--gpus", "256", "--mfu", "0.35"], model + "-cpu")
    check_plan(model, j, recipes[model], cuda=False, bf16=False, gpus=256, mfu=0.35, peak=H100_PEAK, tag="cpu f32")
    _, j = dry_run(prog, ["--precision", "f32", "--recompute"], model + "-cuda-f32")
    check_plan(model, j, recipes[model], cuda=True, bf16=False, tag="cuda f32 recompute", recompute=True)
    # ZeRO-1 over 64 ranks: 2 + 4 + (2 + 8)/64 bytes a parameter (bf16 weights, fp32 gradients reduced in
    # place, 1/64 of the master weights' low halves and of the moments), the arenas' alignment aside.
    text, j = dry_run(prog, ["--zero", "1", "--gpus", "64"], model + "-zero1")
    per_param = check_plan(model, j, recipes[model], cuda=True, bf16=True, tag="cuda bf16 zero-1", zero=1)
    check(abs(per_param - (6 + 10 / 64)) < 0.01 and "ZeRO-1: the optimizer state over 64 ranks" in text,
          f"{model}: ZeRO-1 over 64 ranks: {per_param:.4f} bytes a parameter (2 + 4 + 10/64 = {6 + 10 / 64:.4f})")

# The 8B's plan at mid-training's 8192 tokens and every activation kept does not fit one H200: the
# report says so (its pretraining at 4096 fits; kumiki train --dry-run checks that run by run).
text, _ = dry_run(prog8, [], "llmjp4_8b")
check("Does not fit in one H200 SXM's 141 GB" in text, "8B: mid-training without recomputation does not fit one H200, and says so")

# Bad input.
p = subprocess.run([prog13, "--dry-run", "--backend", "cpu", "--precision", "bf16"], capture_output=True, text=True)
check(p.returncode == 1 and "--backend cpu trains in f32" in p.stderr, f"refused: {p.stderr.strip()[:120]}")
p = subprocess.run([prog13, "--dry-run", "--recipe", recipes["llmjp4_8b"][0]], capture_output=True, text=True)
check(p.returncode == 1 and "trains model 'llmjp4_8b', not 'llmjp4_1_3b'" in p.stderr, f"refused: {p.stderr.strip()[:120]}")
p = subprocess.run([prog13], capture_output=True, text=True)
check(p.returncode != 0 and "--dry-run" in p.stderr, "no mode: refused with the usage")

# The same body on tiny_test: a recipe of one sequence of 16 tokens, so the dry run's CPU memory is
# the smoke step's arenas exactly.
with open(os.path.join(work, "tiny.toml"), "w") as f:
    f.write("""model = "tiny_test"
seq_len = 16
global_batch = 4
micro_batch = 1
[[stages]]
name = "a"
data = ["none"]
steps = 30
[stages.lr]
lr_decay_style = "WSD"
lr = 1e-3
min_lr = 1e-4
lr_warmup_iters = 10
lr_decay_iters = 30
lr_wsd_decay_iters = 10
lr_wsd_decay_style = "cosine"
[[stages]]
name = "b"
data = ["none"]
steps = 7
schedule = "branch"
seeds = [1, 2]
""")
tiny_recipe = os.path.join(work, "tiny.toml")
_, j = dry_run(tiny, ["--backend", "cpu", "--recipe", tiny_recipe], "tiny")
check_plan("tiny_test", j, [tiny_recipe], cuda=False, bf16=False, tag="cpu f32")
p = subprocess.run([tiny, "--smoke", "--seq", "16"], capture_output=True, text=True)
print(p.stdout)
check(p.returncode == 0, "tiny: --smoke exits 0 (one AdamW step lowers the loss of its batch)")
smoke = json.loads(p.stdout.strip().splitlines()[-1])["smoke"]
check(smoke["loss_after"] < smoke["loss"] and abs(smoke["loss"] - math.log(50)) < 1.0,
      f"tiny: loss {smoke['loss']:.4f} (ln 50 = {math.log(50):.4f}) -> {smoke['loss_after']:.4f}")
check(smoke["arena_bytes"] == j["memory"][0]["total"],
      f"tiny: the smoke step's arenas ({smoke['arena_bytes']} bytes) are the dry run's CPU memory ({j['memory'][0]['total']})")
p = subprocess.run([tiny, "--smoke", "--seq", "64"], capture_output=True, text=True)
check(p.returncode == 1 and "--seq must lie in [2, 32]" in p.stderr, f"refused: {p.stderr.strip()[:120]}")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
