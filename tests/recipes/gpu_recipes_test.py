#!/usr/bin/env python3
"""The one-H200 recipes (examples/recipes/llmjp4_<size>_gpu.toml) hold LLM-jp-4's phase-1 figures
(shared/reference/llmjp-recipes.md sections 1-3): each loads against its model in the program that plans
it (`llmjp4_<size> --dry-run --recipe R --json`, the recipe reader the trainer uses), the schedule the
trainer would run (`kumiki lr --recipe R --table stages[0].lr`, the stage-1 table whose clock stage 2
continues) warms up over 2000 steps from 0 to 3e-4, stays there, and ends at min lr 3e-5 at the run's
end; sequence 4096, global batch 512, English then Japanese-containing data. And `kumiki train
--device cuda --dry-run` plans each for one H200 (no GPU needed): the 1.3B fits as it is, the 8B
with --recompute (activations of one block kept).

usage: gpu_recipes_test.py KUMIKI LLMJP4_1_3B LLMJP4_8B RECIPE_DIR WORK_DIR
"""
import json
import os
import subprocess
import sys
import tomllib

kumiki, prog13, prog8, recipe_dir, work = sys.argv[1:6]
os.makedirs(work, exist_ok=True)
failures = []

PEAK, MIN, WARMUP, SEQ, BATCH = 3e-4, 3e-5, 2000, 4096, 512
# LLM-jp-4 phase 1 (llm-jp/scripts v4-8b-phase1): Adam(0.9, 0.95, eps 1e-8), weight decay 0.1, clip 1.0.
OPTIMIZER = {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "clip_grad": 1.0}


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)
    return ok


def close(a, b, rel=1e-12):
    return abs(a - b) <= rel * max(abs(a), abs(b))


def lr_curve(recipe, steps):
    p = subprocess.run([kumiki, "lr", "--recipe", recipe, "--table", "stages[0].lr", "--steps", str(steps)],
                       capture_output=True, text=True)
    if not check(p.returncode == 0, f"kumiki lr reads {os.path.basename(recipe)}'s schedule" + (p.stderr and ": " + p.stderr)):
        return {}
    return {int(s): float(v) for s, v in (line.split(",") for line in p.stdout.split()[1:])}


for size, prog, micro in (("1_3b", prog13, 8), ("8b", prog8, 1)):
    model = f"llmjp4_{size}"
    recipe = os.path.join(recipe_dir, f"{model}_gpu.toml")
    name = os.path.basename(recipe)
    with open(recipe, "rb") as f:
        toml = tomllib.load(f)
    check(toml["model"] == model and toml["seq_len"] == SEQ and toml["global_batch"] == BATCH and toml["micro_batch"] == micro,
          f"{name}: {model}, seq {SEQ}, global batch {BATCH}, micro-batch {micro}")
    check(all(toml["optimizer"].get(k) == v for k, v in OPTIMIZER.items()), f"{name}: optimizer {OPTIMIZER}")
    check(toml.get("peak_flops") == 989e12, f"{name}: MFU against the H200's 989 TFLOP/s")

    # The program that plans the recipe reads it as the trainer does (train::load_recipe), data aside.
    plan_json = os.path.join(work, f"{model}.json")
    p = subprocess.run([prog, "--dry-run", "--recipe", recipe, "--backend", "cuda", "--gpus", "1", "--json", plan_json],
                       capture_output=True, text=True)
    if not check(p.returncode == 0, f"{name} loads in {os.path.basename(prog)} --dry-run" + (p.stderr and ": " + p.stderr)):
        continue
    with open(plan_json) as f:
        stages = json.load(f)["stages"]
    check([s["stage"] for s in stages] == ["english", "japanese"], f"{name}: stages english then japanese")
    check(all(s["seq_len"] == SEQ and s["global_batch"] == BATCH and s["micro_batch"] == micro for s in stages),
          f"{name}: every stage at seq {SEQ}, global batch {BATCH}, micro-batch {micro}")
    check(stages[0]["lr_start"] == 0.0 and close(stages[0]["lr_end"], PEAK), f"{name}: stage 1 from 0 to {PEAK}")
    check(close(stages[1]["lr_start"], PEAK) and close(stages[1]["lr_end"], MIN), f"{name}: stage 2 from {PEAK} to {MIN}")
    total = sum(s["steps"] for s in stages)
    tokens = sum(s["tokens"] for s in stages)
    print(f"     {name}: {total} steps, {tokens / 1e9:.1f}B tokens, stages {[s['steps'] for s in stages]}")

    lr = lr_curve(recipe, total)
    if not lr:
        continue
    check(lr[0] == 0.0 and close(lr[WARMUP // 2], PEAK / 2) and lr[WARMUP - 1] < PEAK and close(lr[WARMUP], PEAK),
          f"{name}: linear warmup over {WARMUP} steps from 0 to {PEAK}")
    check(close(max(lr.values()), PEAK), f"{name}: peak lr {PEAK}")
    cooldown = toml["stages"][0]["lr"]["lr_wsd_decay_iters"]
    check(all(close(lr[s], PEAK) for s in range(WARMUP, total - cooldown + 1)), f"{name}: stable at {PEAK} until the cooldown")
    check(close(lr[total], MIN) and min(lr[s] for s in range(WARMUP, total + 1)) >= MIN * (1 - 1e-12),
          f"{name}: cools down to min lr {MIN} at the run's end (step {total}), never below")

    # The run's memory plan on one H200: exit 0 when it fits, 2 when not.
    extra = ["--recompute"] if size == "8b" else []
    p = subprocess.run([kumiki, "train", "--recipe", recipe, "--out", os.path.join(work, model), "--device", "cuda",
                        "--dry-run", *extra], capture_output=True, text=True)
    verdict = (p.stdout.strip().splitlines() or [p.stderr.strip()])[-1]
    check(p.returncode == 0, f"{name}: kumiki train --device cuda --dry-run {' '.join(extra)}: {verdict}")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
