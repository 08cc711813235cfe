#!/usr/bin/env python3
"""`kumiki train` on an MoE model (demo_moe: 4 experts, top-2) over real bytes: the run finishes, every
step line carries the router losses, the LM loss falls, the load-balancing loss stays near its
balanced value (the coefficient), and `kumiki eval` reads the MoE checkpoint. Then Drop-Upcycling: a
dense demo run upcycled into demo_moe by `kumiki upcycle`; with r = 0 the first step's loss equals the
dense model's, with r = 0.5 it lies between that and a fresh model's.

usage: moe_train_test.py KUMIKI_BINARY WORK_DIR
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kumiki_check import Checks  # noqa: E402

_t = Checks()
kumiki, work, check = _t.kumiki, _t.work, _t.check


_t.text_dataset("text", "experts share the work of the model and the router sends each token to two of them".split(),
                seed=7, documents=400, max_words=40)

with open(f"{work}/recipe.toml", "w") as f:
    f.write("""
model = "demo_moe"
seed = 5
seq_len = 64
global_batch = 8
micro_batch = 4

[[stages]]
name = "moe"
data = [1.0, "text"]
steps = 30
checkpoint_interval = 30
[stages.lr]
lr_decay_style = "WSD"
lr = 3e-3
min_lr = 0.0
lr_warmup_iters = 5
lr_decay_iters = 30
lr_wsd_decay_iters = 10
""")
run = subprocess.run([kumiki, "train", "--recipe", f"{work}/recipe.toml", "--out", f"{work}/run", "--quiet"],
                     cwd=work, capture_output=True, text=True)
check(run.returncode == 0, f"kumiki train exits 0 (got {run.returncode}: {run.stderr[-400:]})")
steps = [json.loads(l) for l in open(f"{work}/run/log.jsonl") if '"type": "step"' in l or '"type":"step"' in l]
check(len(steps) == 30, f"30 step lines (got {len(steps)})")
check(all("moe_aux_loss" in s and "moe_z_loss" in s for s in steps), "every step line has moe_aux_loss and moe_z_loss")
first = sum(s["loss"] for s in steps[:3]) / 3
last = sum(s["loss"] for s in steps[-3:]) / 3
print(f"loss: first 3 steps {first:.4f}, last 3 steps {last:.4f}")
check(last < first - 1.0, "the LM loss falls by more than 1 nat over 30 steps")
aux = [s["moe_aux_loss"] for s in steps]
# Summed over 4 layers, each about coeff (1e-2) when balanced and at most coeff * E / k when every
# token goes to the same k experts.
print(f"moe_aux_loss: min {min(aux):.5f} max {max(aux):.5f} (4 layers x 0.01 balanced, 0.08 collapsed)")
check(all(0.03 < a < 0.06 for a in aux), "the load-balancing loss stays near balance (0.03 .. 0.06 over 4 layers)")
check(all(s["moe_z_loss"] > 0 for s in steps), "router z-loss is positive")
ev = subprocess.run([kumiki, "eval", "--checkpoint", f"{work}/run", "--data-path", f"{work}/text", "--seq-len", "64",
                     "--samples", "8"], capture_output=True, text=True)
check(ev.returncode == 0 and "perplexity" in ev.stdout + ev.stderr, f"kumiki eval reads the MoE checkpoint: {ev.stdout.strip()[-200:]}")

# --init-from: a new run starts from the trained weights (fresh optimizer, step 0).
with open(f"{work}/recipe2.toml", "w") as f:
    f.write(open(f"{work}/recipe.toml").read().replace("steps = 30", "steps = 2").replace("lr_decay_iters = 30", "lr_decay_iters = 2")
            .replace("lr_wsd_decay_iters = 10", "lr_wsd_decay_iters = 1").replace("lr_warmup_iters = 5", "lr_warmup_iters = 0"))


def train_from(init, out, recipe="recipe2.toml"):
    return subprocess.run([kumiki, "train", "--recipe", f"{work}/{recipe}", "--out", f"{work}/{out}", "--quiet",
                           "--init-from", init], cwd=work, capture_output=True, text=True)


def step_losses(out):
    return [json.loads(l)["loss"] for l in open(f"{work}/{out}/log.jsonl") if '"type": "step"' in l or '"type":"step"' in l]


r = train_from(f"{work}/run", "from_ckpt")
check(r.returncode == 0 and "from the weights of checkpoint" in r.stderr + r.stdout,
      f"--init-from a run directory starts from its weights ({r.returncode}: {(r.stderr + r.stdout)[-300:]})")
from_ckpt = step_losses("from_ckpt")
print(f"--init-from: first step loss {from_ckpt[0]:.4f} (a fresh demo_moe starts near {steps[0]['loss']:.2f})")
check(from_ckpt[0] < last + 0.5, "the first step of the new run has the trained model's loss")
ex = subprocess.run([kumiki, "export-hf", "--checkpoint", f"{work}/run", "--out", f"{work}/hf", "--dtype", "f32"],
                    capture_output=True, text=True)
check(ex.returncode == 0 and json.load(open(f"{work}/hf/config.json"))["architectures"] == ["MixtralForCausalLM"],
      "export-hf writes the MoE run as a Mixtral")
r = train_from(f"{work}/hf", "from_hf")
check(r.returncode == 0 and "from the weights of Hugging Face model" in r.stderr + r.stdout,
      f"--init-from a Hugging Face Mixtral directory ({r.returncode}: {(r.stderr + r.stdout)[-300:]})")
check(r.returncode == 0 and step_losses("from_hf") == from_ckpt,
      "starting from the f32 Mixtral export gives exactly the losses of starting from the checkpoint")
with open(f"{work}/recipe_dense.toml", "w") as f:
    f.write(open(f"{work}/recipe2.toml").read().replace('model = "demo_moe"', 'model = "demo"'))
r = train_from(f"{work}/run", "dense", "recipe_dense.toml")
check(r.returncode != 0 and "holds a 'demo_moe' model, but the recipe trains 'demo'" in r.stderr,
      f"--init-from weights of another model is refused: {r.stderr.strip()[-200:]}")

# Drop-Upcycling: a dense demo model trained on the same text, upcycled into demo_moe by `kumiki upcycle`.
with open(f"{work}/recipe_dense30.toml", "w") as f:
    f.write(open(f"{work}/recipe.toml").read().replace('model = "demo_moe"', 'model = "demo"'))
r = subprocess.run([kumiki, "train", "--recipe", f"{work}/recipe_dense30.toml", "--out", f"{work}/dense_run", "--quiet"],
                   cwd=work, capture_output=True, text=True)
check(r.returncode == 0, f"kumiki train on the dense demo model ({r.returncode}: {r.stderr[-300:]})")
dense_steps = step_losses("dense_run")
print(f"dense demo: loss {dense_steps[0]:.4f} -> {dense_steps[-1]:.4f} over {len(dense_steps)} steps")


def upcycle(out, *extra):
    return subprocess.run([kumiki, "upcycle", "--checkpoint", f"{work}/dense_run", "--model", "demo_moe", "--out",
                           f"{work}/{out}", *extra], capture_output=True, text=True)


u = upcycle("up0", "--ratio", "0", "--seed", "3")
check(u.returncode == 0 and "0 of 688" in u.stdout, f"kumiki upcycle --ratio 0 ({u.returncode}: {(u.stdout + u.stderr)[-300:]})")
ck0 = f"{work}/up0/step_000000000"
state = json.load(open(f"{ck0}/state.json")) if os.path.isfile(f"{ck0}/state.json") else {}
check(state.get("step") == 0 and 'model = "demo_moe"' in open(f"{ck0}/recipe.toml").read(),
      "the upcycled checkpoint is at step 0 and its recipe names demo_moe")
# With r = 0 every expert is the dense MLP and the renormalized top-2 weights sum to 1: the MoE computes
# the dense function, so on the same first batch its loss equals the dense model's.
r = train_from(f"{work}/dense_run", "dense_cont", "recipe_dense.toml")
check(r.returncode == 0, f"--init-from the dense run ({r.returncode}: {r.stderr[-300:]})")
r = train_from(ck0, "from_up0")
check(r.returncode == 0 and "from the weights of checkpoint" in r.stderr + r.stdout,
      f"kumiki train --init-from the upcycled checkpoint ({r.returncode}: {(r.stderr + r.stdout)[-300:]})")
dense_cont, up0 = step_losses("dense_cont"), step_losses("from_up0")
print(f"first-step loss: dense {dense_cont[0]:.6f}, upcycled r=0 {up0[0]:.6f} (|diff| {abs(dense_cont[0] - up0[0]):.2e}); "
      f"second step: dense {dense_cont[1]:.4f}, MoE {up0[1]:.4f}")
check(abs(dense_cont[0] - up0[0]) < 1e-4, "r = 0: the upcycled MoE's first-step loss equals the dense model's (1e-4)")

u = upcycle("up5", "--ratio", "0.5", "--seed", "3")
check(u.returncode == 0 and "344 of 688" in u.stdout, f"kumiki upcycle --ratio 0.5 ({(u.stdout + u.stderr)[-300:]})")
us = upcycle("up5s", "--ratio", "0.5", "--seed", "3", "--separate-index-sets")
check(us.returncode == 0 and open(f"{work}/up5/step_000000000/model.safetensors", "rb").read() !=
      open(f"{work}/up5s/step_000000000/model.safetensors", "rb").read(), "--separate-index-sets gives other experts")
r = train_from(f"{work}/up5/step_000000000", "from_up5")
up5 = step_losses("from_up5") if r.returncode == 0 else [float("nan")] * 2
print(f"r=0.5: first-step loss {up5[0]:.4f}, second {up5[1]:.4f} (fresh demo_moe {steps[0]['loss']:.4f}, r=0 {up0[0]:.4f})")
check(r.returncode == 0 and up0[0] < up5[0] < steps[0]["loss"],
      "r = 0.5 starts between plain upcycling and a fresh model (half of each expert redrawn)")
bad = subprocess.run([kumiki, "upcycle", "--checkpoint", f"{work}/dense_run", "--model", "tiny_moe_test", "--out",
                      f"{work}/bad"], capture_output=True, text=True)
check(bad.returncode != 0 and "cannot upcycle 'demo' into 'tiny_moe_test'" in bad.stderr,
      f"an incompatible MoE configuration is refused: {bad.stderr.strip()[-200:]}")

_t.finish()
