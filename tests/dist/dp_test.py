#!/usr/bin/env python3
"""Data-parallel training over MPI (`mpirun -np 2 kumiki train`), against one process:

- two ranks with micro_batch b train like one process with micro_batch 2b (same global batch): the
  same per-step losses and gradient norms and the same final weights, to float rounding (the sums
  are associated differently), and the two ranks' run is bitwise reproducible;
- one rank SIGKILLed: the launcher ends the other one with a non-zero exit, and the rerun resumes
  exactly (bitwise the uninterrupted two-rank run);
- one rank stopped (SIGSTOP, a hang): the other gives up after --comm-timeout with a clear error and
  every rank ends; the rerun resumes exactly;
- resharding: a checkpoint written by two ranks resumes on one process and one written by one process
  resumes on two ranks, each ending like the uninterrupted runs (to rounding), with the same data
  position (consumed samples);
- ZeRO-1 (`[parallel] zero = 1`): two ranks train like plain data parallelism, bit for bit in the
  weights, the AdamW moments and the losses (the gradient norm's double sum is associated per shard:
  equal to 1e-12); stopped and resumed on two ranks it is still bitwise the same; its checkpoint
  resumes on one process, and one process's resumes under ZeRO-1 on two ranks;
- gradient buckets reduced during the last micro-batch's backward (--grad-bucket-mb): counted in
  log.jsonl, and bitwise the run with one bucket per step; with ZeRO-1 the buckets go to their
  owners (reduced, not all-reduced), bitwise the ZeRO-1 run without early buckets.

usage: dp_test.py KUMIKI_BINARY WORK_DIR MPIEXEC
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kumiki_check import Checks, read_safetensors  # noqa: E402

import numpy as np  # noqa: E402

_t = Checks(sys.argv[:3])
kumiki, work, check = _t.kumiki, _t.work, _t.check
mpiexec = sys.argv[3]
MPI = [mpiexec, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", "2"]
TIMEOUT = 5  # --comm-timeout of the hang test, seconds

_t.text_dataset("en", "the model reads data and learns to predict the next token of each text".split(), seed=5)

STEPS = 8


def recipe(micro_batch, zero=None):
    path = f"{work}/recipe_mb{micro_batch}{'' if zero is None else f'_zero{zero}'}.toml"
    parallel = "" if zero is None else f"[parallel]\nzero = {zero}\n"
    with open(path, "w") as f:
        f.write(f"""
model = "demo"
seed = 11
seq_len = 32
global_batch = 8
micro_batch = {micro_batch}

[[stages]]
name = "english"
data = [1.0, "en"]
steps = {STEPS}
checkpoint_interval = 2
keep_checkpoints = 10
[stages.lr]
lr_decay_style = "cosine"
lr = 2e-3
min_lr = 2e-4
lr_warmup_iters = 2
lr_decay_iters = {STEPS}
{parallel}""")
    return path


R4, R2, RZ = recipe(4), recipe(2), recipe(2, zero=1)


def train(out, rcp, ranks, env_extra=None, timeout=None):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.update(env_extra or {})
    cmd = [kumiki, "train", "--recipe", rcp, "--out", out, "--quiet"]
    if timeout:
        cmd += ["--comm-timeout", str(timeout)]
    return subprocess.Popen((MPI if ranks == 2 else []) + cmd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def run(out, rcp, ranks, **kw):
    p = train(out, rcp, ranks, **kw)
    text = p.communicate()[0]
    return p.returncode, text


def steps(out):
    with open(f"{out}/log.jsonl") as f:
        recs = [json.loads(line) for line in f]
    return [(r["step"], r["loss"], r["grad_norm"], r["lr"]) for r in recs if r["type"] == "step"]


def final(out, name="model.safetensors"):
    return f"{out}/checkpoints/step_{STEPS:09d}/{name}"


def weights(out):
    return read_safetensors(final(out))[0]


def position(out, step):
    """The training position of a checkpoint: everything in state.json but the spike window's recent
    losses and gradient norms (floats that differ in rounding between rank counts)."""
    with open(f"{out}/checkpoints/step_{step:09d}/state.json") as f:
        s = json.load(f)
    del s["spikes"]["window"]
    return s


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def bitwise(out_a, out_b, what, norm_tol=0.0):
    """The final checkpoints and the logs identical; with norm_tol, the gradient norms (and the spike
    window of state.json, which holds them) agree to that relative difference instead."""
    for name in ("model.safetensors", "optimizer.safetensors") + (("state.json",) if norm_tol == 0 else ()):
        check(same_bytes(final(out_a, name), final(out_b, name)), f"{what}: {name} bitwise identical")
    sa, sb = steps(out_a), steps(out_b)
    if norm_tol == 0:
        check(sa == sb, f"{what}: per-step losses, gradient norms and lrs identical")
        return
    check(position(out_a, STEPS) == position(out_b, STEPS), f"{what}: the final position identical")
    check([(x[0], x[1], x[3]) for x in sa] == [(x[0], x[1], x[3]) for x in sb], f"{what}: per-step losses and lrs identical")
    dg = max(abs(x[2] - y[2]) / abs(x[2]) for x, y in zip(sa, sb))
    check(len(sa) == len(sb) == STEPS and dg <= norm_tol,
          f"{what}: gradient norms agree (max relative difference {dg:.1e} <= {norm_tol:g})")
    print(f"FIGURE {what}: weights and moments bitwise, losses bitwise, grad-norm rel {dg:.1e}")


def close(out_a, out_b, what, loss_tol=1e-6, weight_tol=1e-6):
    sa, sb = steps(out_a), steps(out_b)
    check([s[0] for s in sa] == list(range(STEPS)) and [s[0] for s in sb] == list(range(STEPS)),
          f"{what}: both logged steps 0..{STEPS - 1} once")
    dl = max(abs(x[1] - y[1]) / abs(x[1]) for x, y in zip(sa, sb))
    dg = max(abs(x[2] - y[2]) / abs(x[2]) for x, y in zip(sa, sb))
    wa, wb = weights(out_a), weights(out_b)
    check(wa.keys() == wb.keys(), f"{what}: same tensors")
    dw = max(float(np.max(np.abs(wa[k].astype(np.float64) - wb[k]))) for k in wa)
    scale = max(float(np.max(np.abs(wa[k]))) for k in wa)
    check(dl < loss_tol, f"{what}: per-step losses agree (max relative difference {dl:.2e} < {loss_tol:g})")
    check(dg < 10 * loss_tol, f"{what}: gradient norms agree (max relative difference {dg:.2e} < {10 * loss_tol:g})")
    check(dw < weight_tol, f"{what}: final weights agree (max |difference| {dw:.2e} < {weight_tol:g}; "
                           f"largest weight {scale:.3f})")
    print(f"FIGURE {what}: loss rel {dl:.3e}, grad-norm rel {dg:.3e}, weight abs {dw:.3e}")


# 1. One process with micro_batch 4 against two ranks with micro_batch 2; the two-rank run twice.
t0 = time.time()
rc, text = run(f"{work}/one", R4, 1)
t_one = time.time() - t0
check(rc == 0, f"one process trains (rc {rc}) {text[-300:]}")
t0 = time.time()
rc, text = run(f"{work}/two", R2, 2)
t_two = time.time() - t0
check(rc == 0, f"two ranks train under mpirun (rc {rc}) {text[-600:]}")
print(f"FIGURE wall time for {STEPS} steps, global batch 8: one process (micro_batch 4) {t_one:.2f} s, "
      f"two ranks (micro_batch 2) {t_two:.2f} s")
close(f"{work}/one", f"{work}/two", "1 process x micro_batch 4 vs 2 ranks x micro_batch 2")
rc, text = run(f"{work}/two_again", R2, 2)
check(rc == 0, f"the two-rank run again (rc {rc})")
bitwise(f"{work}/two", f"{work}/two_again", "two ranks, run twice")
check(len(steps(f"{work}/two")) == STEPS, "rank 0 alone writes the log: one line per step")

# 2. Rank 1 killed after step 3: the launcher ends rank 0; the rerun resumes exactly.
out = f"{work}/killed"
t0 = time.time()
p = train(out, R2, 2, env_extra={"KUMIKI_CRASH_AT": "step:3", "KUMIKI_CRASH_RANK": "1"}, timeout=60)
text = p.communicate()[0]
print(f"FIGURE rank 1 SIGKILLed after step 3: the job ended {time.time() - t0:.1f} s after its start "
      f"(rc {p.returncode}; --comm-timeout 60 not reached)")
check(p.returncode != 0, f"a rank killed: mpirun exits non-zero (rc {p.returncode})")
check("signal 9" in text or "Killed" in text, "the launcher names the killed rank: " + text.strip()[-200:])
rc, text = run(out, R2, 2)
check(rc == 0 and "resuming from" in text, f"the rerun resumes and completes (rc {rc})")
bitwise(f"{work}/two", out, "killed at step 3, resumed on two ranks")

# 3. Rank 1 stopped (hangs) after step 3: rank 0 times out, every rank ends; the rerun resumes exactly.
out = f"{work}/hung"
t0 = time.time()
p = train(out, R2, 2, env_extra={"KUMIKI_CRASH_AT": "step:3", "KUMIKI_CRASH_RANK": "1", "KUMIKI_CRASH_SIGNAL": "STOP"},
          timeout=TIMEOUT)
try:
    text = p.communicate(timeout=120)[0]
except subprocess.TimeoutExpired:
    p.kill()
    text = p.communicate()[0]
    check(False, "a hung rank: the job did not end within 120 s")
elapsed = time.time() - t0
check(p.returncode != 0, f"a hung rank: mpirun exits non-zero (rc {p.returncode})")
check(f"did not complete within {TIMEOUT} s" in text and "rank 0 of 2" in text,
      "rank 0 says which collective timed out: " + text.strip()[:300])
check(elapsed < TIMEOUT + 60, f"the job ended {elapsed:.1f} s after its start (timeout {TIMEOUT} s)")
print(f"FIGURE hung rank: job ended {elapsed:.1f} s after start with --comm-timeout {TIMEOUT}")
rc, text = run(out, R2, 2)
check(rc == 0 and "resuming from" in text, f"the rerun after the hang resumes and completes (rc {rc})")
bitwise(f"{work}/two", out, "hung at step 3, resumed on two ranks")

# 4. Resharding: two ranks -> one process, and one process -> two ranks, from the checkpoint of step 4.
rc, _ = run(f"{work}/one_mb2", R2, 1)
check(rc == 0, "one process with the two-rank recipe (micro_batch 2, 4 accumulation steps)")
close(f"{work}/one_mb2", f"{work}/two", "1 process x 4 accumulation vs 2 ranks x 2")
for name, first, then in (("2to1", 2, 1), ("1to2", 1, 2)):
    out = f"{work}/{name}"
    rc, _ = run(out, R2, first, env_extra={"KUMIKI_CRASH_AT": "step:5"})
    check(rc != 0, f"{name}: the first part stops after step 5 (rc {rc})")
    check(os.path.isdir(f"{out}/checkpoints/step_000000004"), f"{name}: the checkpoint of step 4 exists")
    rc, text = run(out, R2, then)
    check(rc == 0 and "resuming from" in text, f"{name}: resumed on {then} rank(s) (rc {rc})")
    check(position(out, STEPS) == position(f"{work}/two", STEPS),
          f"{name}: the final position (step, tokens, consumed samples per dataset, seeds) equals the uninterrupted run's")
    close(f"{work}/two" if then == 1 else f"{work}/one_mb2", out, f"resharded {name}")

# 5. ZeRO-1: two ranks, each keeping its half of the AdamW moments, against plain data parallelism.
t0 = time.time()
rc, text = run(f"{work}/zero", RZ, 2)
t_zero = time.time() - t0
check(rc == 0, f"two ranks train with [parallel] zero = 1 (rc {rc}) {text[-600:]}")
print(f"FIGURE wall time for {STEPS} steps on two ranks: plain {t_two:.2f} s, ZeRO-1 {t_zero:.2f} s")
bitwise(f"{work}/two", f"{work}/zero", "ZeRO-1 vs plain data parallelism on two ranks", norm_tol=1e-12)
out = f"{work}/zero_stopped"
rc, _ = run(out, RZ, 2, env_extra={"KUMIKI_CRASH_AT": "step:5"})
check(rc != 0, f"ZeRO-1: the first part stops after step 5 (rc {rc})")
rc, text = run(out, RZ, 2)
check(rc == 0 and "resuming from" in text, f"ZeRO-1: resumed on two ranks (rc {rc})")
bitwise(f"{work}/zero", out, "ZeRO-1 stopped after step 5, resumed on two ranks")
for name, first, then in (("zero2to1", 2, 1), ("1tozero2", 1, 2)):
    out = f"{work}/{name}"
    rc, _ = run(out, RZ, first, env_extra={"KUMIKI_CRASH_AT": "step:5"})
    check(rc != 0 and os.path.isdir(f"{out}/checkpoints/step_000000004"), f"{name}: the first part stops after step 5")
    rc, text = run(out, RZ, then)
    check(rc == 0 and "resuming from" in text, f"{name}: resumed on {then} rank(s) (rc {rc})")
    check(position(out, STEPS) == position(f"{work}/two", STEPS), f"{name}: the final position equals the uninterrupted run's")
    close(f"{work}/zero" if then == 1 else f"{work}/one_mb2", out, f"resharded {name}")

# 6. Gradient buckets overlapped with the backward: with 64 KB buckets the last micro-batch's backward
# starts most all-reduces before it ends (log.jsonl counts them), and the run is bitwise the one with
# a single bucket per step (each element is still a + b of the same two floats).
env = dict(os.environ, OMP_NUM_THREADS="1")


def bucket_run(out, rec, what):
    """Two ranks train `rec` with 64 KB buckets into `out`; returns each step's overlapped_buckets."""
    p = subprocess.run(MPI + [kumiki, "train", "--recipe", rec, "--out", out, "--quiet", "--grad-bucket-mb", "0.064"],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check(p.returncode == 0, f"two ranks, {what}, --grad-bucket-mb 0.064 (rc {p.returncode}) {p.stdout[-600:]}")
    with open(f"{out}/log.jsonl") as f:
        return [json.loads(line).get("overlapped_buckets") for line in f if '"type":"step"' in line.replace(" ", "")]


out = f"{work}/buckets"
early = bucket_run(out, R2, "plain")
check(len(early) == STEPS and all(e is not None and e >= 2 for e in early),
      f"every step started at least two buckets during its backward: {early}")
with open(f"{work}/two/log.jsonl") as f:
    plain = [json.loads(line).get("overlapped_buckets") for line in f if '"type":"step"' in line.replace(" ", "")]
check(all(e == 0 for e in plain), f"with the default 160 MB buckets the small model's gradients go in one, at the end: {plain}")
bitwise(f"{work}/two", out, "64 KB buckets overlapped with the backward vs one bucket")
print(f"FIGURE overlapped buckets per step with 64 KB buckets: {early[0]}")
# ZeRO-1: each bucket's pieces reduced to the ranks that own them while the backward goes on.
out = f"{work}/zero_buckets"
zero_early = bucket_run(out, RZ, "ZeRO-1")
check(len(zero_early) == STEPS and all(e is not None and e >= 2 for e in zero_early),
      f"ZeRO-1: every step reduced at least two buckets to their owners during its backward: {zero_early}")
bitwise(f"{work}/zero", out, "ZeRO-1, 64 KB buckets reduced to their owners during the backward vs after it")
print(f"FIGURE ZeRO-1 buckets reduced to their owners during the backward, per step: {zero_early[0]}")

_t.finish()
