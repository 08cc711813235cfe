#!/usr/bin/env python3
"""`kumiki train --device cuda` end to end on the demo model (byte-level tokens), against itself and
against the CPU:
  (i)   two GPU runs of one recipe log bitwise identical losses and gradient norms and end with
        bitwise identical model.safetensors (the GPU kernels are deterministic);
  (ii)  a GPU run killed after a step and inside a checkpoint write (KUMIKI_CRASH_AT, as
        tests/train/resume_test.py does), rerun each time, ends bitwise identical to the uninterrupted run;
  (iii) a checkpoint written on the GPU resumes on the CPU (--device cpu), and one written on the CPU
        resumes on the GPU; each finishes the recipe with finite losses that follow the all-CPU run;
  (iv)  the GPU's 50 steps follow the CPU run's loss curve.
Tolerance of (iii) and (iv): every step's loss within 5e-2 relative of the CPU run's. The GPU trains in
bf16 (weights and activations rounded to 8 significant bits, ~4e-3 relative each time) with fp32
master weights, the CPU in f32, so the curves part by rounding, not by method; a wrong gradient or
update moves them much further apart: the test checks that the same recipe at half the lr is more than
4 x 5e-2 off on the CPU (0.54 at step 8 when written). The figures measured are printed for quoting.
Exits 77 (skipped) when kumiki has no GPU to train on: `no CUDA device` or `built without CUDA`.
The CPU runs go on beside the GPU runs (two at a time, the cores shared between them): the test takes
about as long as its CPU runs.

usage: train_gpu_test.py KUMIKI_BINARY WORK_DIR
"""
import glob
import json
import math
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kumiki_check import Checks  # noqa: E402

_t = Checks()
kumiki, work, check = _t.kumiki, _t.work, _t.check
STEPS, TOL = 50, 5e-2

_t.text_dataset("en", "the model reads data and learns to predict the next token of each text".split(), seed=1)
_t.text_dataset("ja", "日本語 の 文章 を 読んで 次 の 単語 を 予測 する モデル です".split(), seed=2)


def write_recipe(path, lr):
    # Two stages on one WSD clock (English, then a Japanese-containing mix), gradient accumulation of
    # two micro-batches, a checkpoint every 10 steps, all kept (the cross-device resumes start from them).
    with open(path, "w") as f:
        f.write(f"""model = "demo"
seed = 5
seq_len = 64
global_batch = 8
micro_batch = 4
[[stages]]
name = "english"
data = [1.0, "en"]
steps = 30
checkpoint_interval = 10
keep_checkpoints = 0
[stages.lr]
lr_decay_style = "WSD"
lr = {lr}
min_lr = 0.0
lr_warmup_iters = 5
lr_decay_iters = {STEPS}
lr_wsd_decay_iters = 10
lr_wsd_decay_style = "minus_sqrt"
[[stages]]
name = "japanese"
data = [0.7, "ja", 0.3, "en"]
steps = {STEPS - 30}
schedule = "continue"
checkpoint_interval = 10
keep_checkpoints = 0
""")


RECIPE, SLOW = f"{work}/recipe.toml", f"{work}/recipe_half_lr.toml"
write_recipe(RECIPE, 2e-3)
write_recipe(SLOW, 1e-3)


# The CPU runs share the cores two at a time while the GPU runs go on (each of those keeps a core busy).
CPU_THREADS = max(1, ((os.cpu_count() or 2) - 2) // 2)


def train(name, device, crash=None, recipe=RECIPE):
    """Runs (or resumes) run directory WORK/name; returns (exit status, output)."""
    env = dict(os.environ)
    env.pop("KUMIKI_CRASH_AT", None)
    if crash:
        env["KUMIKI_CRASH_AT"] = crash
    if device == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(CPU_THREADS)
    p = subprocess.run([kumiki, "train", "--recipe", recipe, "--out", f"{work}/{name}", "--device", device, "--quiet"],
                       env=env, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def steps_of(name):
    with open(f"{work}/{name}/log.jsonl") as f:
        return [(r["step"], r["loss"], r["grad_norm"]) for r in map(json.loads, f) if r["type"] == "step"]


def final(name, file="model.safetensors"):
    with open(sorted(glob.glob(f"{work}/{name}/checkpoints/step_*"))[-1] + "/" + file, "rb") as f:
        return f.read()


def curve_gap(name, reference):
    """Largest and mean relative loss difference per step, and the step of the largest."""
    a, b = steps_of(name), steps_of(reference)
    if [s[0] for s in a] != list(range(STEPS)) or [s[0] for s in b] != list(range(STEPS)):
        return math.inf, math.inf, -1
    rel = [abs(x[1] - y[1]) / abs(y[1]) for x, y in zip(a, b)]
    worst = max(range(STEPS), key=lambda i: rel[i])
    return rel[worst], sum(rel) / STEPS, worst


# The first GPU run decides whether this machine can run the rest.
rc, out = train("gpu_a", "cuda")
for why in ("no CUDA device", "built without CUDA"):
    if why in out:
        print(f"skipped: kumiki train --device cuda: {why} ({out.strip().splitlines()[-1]})")
        sys.exit(77)
if not check(rc == 0, f"a GPU run of {STEPS} steps exits 0" + ("" if rc == 0 else f" (exit {rc}): {out[-600:]}")):
    _t.finish()
print("     " + next((x for x in out.splitlines() if x.startswith("kumiki: device:")), "(no device line)"), flush=True)

# The CPU runs start now, beside the GPU's: the references (the recipe, and the same recipe at half the
# lr: the control of the tolerance), and the first half of (iii)'s CPU-to-GPU run.
cpu = ThreadPoolExecutor(max_workers=2)
cpu_runs = {name: cpu.submit(train, name, "cpu", recipe=recipe) for name, recipe in (("cpu", RECIPE), ("cpu_half_lr", SLOW))}
cpu_first = cpu.submit(train, "cpu_to_cuda", "cpu", crash="step:25")

# (i) Determinism.
rc, out = train("gpu_b", "cuda")
check(rc == 0, f"a second GPU run exits 0 (exit {rc})")
check(steps_of("gpu_a") == steps_of("gpu_b"), "(i) two GPU runs: every step's loss and gradient norm bitwise equal")
check(final("gpu_a") == final("gpu_b"), "(i) two GPU runs: final model.safetensors bitwise equal")

# (ii) Exact resume on the GPU after SIGKILL after step 17 and inside the checkpoint write of step 30.
for crash in ("step:17", "checkpoint:30"):
    rc, out = train("gpu_kill", "cuda", crash=crash)
    check(rc == -signal.SIGKILL, f"(ii) GPU run killed at {crash} (exit {rc})")
rc, out = train("gpu_kill", "cuda")
check(rc == 0 and "resuming from" in out, f"(ii) the rerun resumes and finishes (exit {rc})")
check(steps_of("gpu_kill") == steps_of("gpu_a"), "(ii) killed and resumed: every step's loss and gradient norm bitwise equal")
for file in ("model.safetensors", "optimizer.safetensors"):
    check(final("gpu_kill", file) == final("gpu_a", file), f"(ii) killed and resumed: final {file} bitwise equal")

# (iii)'s GPU-to-CPU run, first half on the GPU.
gpu_first = train("cuda_to_cpu", "cuda", crash="step:25")

for name, run in cpu_runs.items():
    rc, out = run.result()
    check(rc == 0, f"CPU run {name} exits 0 (exit {rc})" + ("" if rc == 0 else ": " + out[-400:]))

# (iii) Across devices: killed after step 25 (checkpoint 20 written), resumed on the other device (the
# CPU's resume beside the GPU's).
cpu_then = cpu.submit(train, "cuda_to_cpu", "cpu")
cpu_first.result()  # (its checkpoint 20 is what the GPU resumes from)
gpu_then = train("cpu_to_cuda", "cuda")
cpu.shutdown()
for first, then, (rc, _), (rc2, out) in (("cuda", "cpu", gpu_first, cpu_then.result()),
                                         ("cpu", "cuda", cpu_first.result(), gpu_then)):
    name = f"{first}_to_{then}"
    check(rc == -signal.SIGKILL and rc2 == 0 and "resuming from" in out,
          f"(iii) a {first} checkpoint resumes on the {then} and finishes (exits {rc}, {rc2})")
    losses = [s[1] for s in steps_of(name)]
    worst, mean, at = curve_gap(name, "cpu")
    check(len(losses) == STEPS and all(math.isfinite(x) for x in losses) and worst <= TOL,
          f"(iii) {first} then {then}: {len(losses)} finite losses, largest relative gap to the CPU run "
          f"{worst:.2e} (step {at}; mean {mean:.2e}) <= {TOL}")

# (iv) The GPU's curve against the CPU's, and the control: how far a halved lr moves the CPU's.
worst, mean, at = curve_gap("gpu_a", "cpu")
check(worst <= TOL, f"(iv) GPU vs CPU over {STEPS} steps: largest relative loss gap {worst:.2e} (step {at}), "
      f"mean {mean:.2e} <= {TOL}")
control, control_mean, control_at = curve_gap("cpu_half_lr", "cpu")
check(control > 4 * TOL, f"the tolerance tells a wrong update apart: the CPU at half the lr is {control:.2e} off "
      f"the CPU (step {control_at}; mean {control_mean:.2e}), over 4 x {TOL}")
print(f"     final loss: GPU {steps_of('gpu_a')[-1][1]:.4f}, CPU {steps_of('cpu')[-1][1]:.4f}, "
      f"first {steps_of('cpu')[0][1]:.4f}")
_t.finish()
