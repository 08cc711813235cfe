#!/usr/bin/env python3
"""benchmarks/cuda/hf_train_speed.py, the PyTorch side of scripts/gpu-check's training-speed table:

  flops LLMJP4_1_3B LLMJP4_8B RECIPE_DIR WORK_DIR
      its FLOPs per token and parameter count for llmjp4_1_3b / llmjp4_8b at sequence 4096 equal those
      kumiki's own code computes (TransformerConfig::flops_per_token and num_params, read from the
      example programs' `--dry-run --json` of the one-H200 recipes): both MFU columns of the table use
      one formula.
  tiny WORK_DIR
      two training steps of its tiny shape on the CPU give a report with finite losses, a Hugging Face
      model with the parameter count kumiki's formula gives, and attention through SDPA. Exits 77
      (skipped) where transformers is not installed.
"""
import importlib.util
import json
import math
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benchmarks", "cuda", "hf_train_speed.py")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)
    return ok


def hf(*args):
    p = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"hf_train_speed.py {' '.join(args)} failed (exit {p.returncode}):\n{p.stderr}")
    return p.stdout


def flops(prog13, prog8, recipe_dir, work):
    os.makedirs(work, exist_ok=True)
    for model, prog in (("llmjp4_1_3b", prog13), ("llmjp4_8b", prog8)):
        plan = os.path.join(work, f"{model}.json")
        subprocess.run([prog, "--dry-run", "--recipe", os.path.join(recipe_dir, f"{model}_gpu.toml"), "--json", plan],
                       check=True, stdout=subprocess.DEVNULL)
        with open(plan) as f:
            p = json.load(f)
        stage = p["stages"][0]
        mine = json.loads(hf("--model", model, "--seq", str(stage["seq_len"]), "--print-flops"))
        check(mine["flops_per_token"] == stage["flops_per_token"],
              f"{model} at seq {stage['seq_len']}: {mine['flops_per_token']:,.0f} FLOPs a token, kumiki's "
              f"{stage['flops_per_token']:,.0f}")
        check(mine["params"] == p["total_params"], f"{model}: {mine['params']:,} parameters, kumiki's {p['total_params']:,}")


def tiny(work):
    if importlib.util.find_spec("transformers") is None:
        print("skipped: transformers is not installed for this Python (the GPU machine has it)")
        sys.exit(77)
    os.makedirs(work, exist_ok=True)
    out = os.path.join(work, "tiny.json")
    hf("--tiny", "--device", "cpu", "--steps", "2", "--warmup", "0", "--json", out)
    with open(out) as f:
        r = json.load(f)
    check(r["fits"] and len(r["losses"]) == 2 and all(math.isfinite(x) for x in r["losses"]), f"2 finite losses {r['losses']}")
    check(r["params"] == r["params_kumiki"], f"the Hugging Face model has kumiki's parameter count ({r['params']:,})")
    check(r["attn_implementation"] == "sdpa", f"attention through SDPA ({r['attn_implementation']})")
    check(r["tokens_per_s"] > 0 and 0 < r["mfu"] < 1, f"{r['tokens_per_s']:.0f} tokens/s, MFU {r['mfu']:.2e}")


if __name__ == "__main__":
    {"flops": lambda: flops(*sys.argv[2:6]), "tiny": lambda: tiny(sys.argv[2])}[sys.argv[1]]()
    print(f"{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)
