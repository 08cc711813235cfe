#!/usr/bin/env python3
"""Spike handling end to end (train/spikes.hpp): detection, skipped steps, rollback with data skip,
exact resume through a rollback, the `kumiki spikes` report and the plot marks.

  1. A normal run's losses, gradient norms and final weights are bitwise those of the same run with
     the detector off (no step is an outlier).
  2. A synthetic spike (KUMIKI_SPIKE_AT scales one data batch's loss and gradients) is detected and
     skipped: the weights and AdamW moments (and its step count) after the skipped step equal those
     before it, bitwise; every logged statistic matches an independent computation over the logged
     losses and gradient norms.
  3. Corrupt documents (a 3% junk dataset in the blend; `kumiki data inspect --dump-index` says which
     samples are junk) are detected: once the loss curve has flattened, every step reading junk is an
     outlier, and no step without junk is one.
  4. A burst of spikes exceeds max_consecutive: the run rolls back to the newest checkpoint before
     it, skips the data, lowers the lr for a few steps, and the run after the rollback equals a run
     started from that checkpoint with the same data offset (weights, moments, losses bitwise).
  5. kill -9 inside the rollback and after it: rerunning the command ends bitwise where the
     uninterrupted run did, its log (abandoned steps and the rollback included) identical.
  6. Without rollback, the same burst stops the run (exit 3) with a message saying what to do.

usage: spikes_test.py KUMIKI_BINARY WORK_DIR
"""
import csv
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kumiki_check import Checks, rewrite_manifest_entry  # noqa: E402

_t = Checks()
kumiki, work, check = _t.kumiki, _t.work, _t.check

rng = random.Random(5)
words = "the model reads data and learns to predict the next token of each text".split()
with open(f"{work}/en.txt", "w", encoding="utf-8") as f:
    for _ in range(600):
        f.write(" ".join(rng.choice(words) for _ in range(rng.randint(5, 60))) + ".\n\n")
with open(f"{work}/junk.txt", "w", encoding="utf-8") as f:  # corrupt documents: random characters
    for _ in range(40):
        f.write("".join(chr(rng.choice((rng.randint(0x21, 0x7E), rng.randint(0x3041, 0x9FFF)))) for _ in range(200)) + "\n\n")
for name in ("en", "junk"):
    subprocess.run([kumiki, "preprocess", "--input", f"{work}/{name}.txt", "--tokenizer", "bytes", "--output-prefix",
                    f"{work}/{name}", "--append-eod", "--paragraphs", "--quiet"], check=True)

WINDOW, MIN_HISTORY, SIGMA = 16, 16, 6.0


def recipe(name, steps, spikes="", data='["en"]', checkpoint_interval=5, keep=0):
    path = f"{work}/{name}.toml"
    with open(path, "w") as f:
        f.write(f"""
model = "demo"
seed = 99
seq_len = 32
global_batch = 4
micro_batch = 2

[spikes]
window = {WINDOW}
min_history = {MIN_HISTORY}
sigma = {SIGMA}
{spikes}

[[stages]]
name = "s1"
data = {data}
steps = {steps}
checkpoint_interval = {checkpoint_interval}
keep_checkpoints = {keep}
[stages.lr]
lr_decay_style = "constant"
lr = 1e-3
lr_warmup_iters = 5
""")
    return path


def train(rcp, out, spike=None, crash=None, expect=0):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    env.pop("KUMIKI_SPIKE_AT", None)
    env.pop("KUMIKI_CRASH_AT", None)
    if spike:
        env["KUMIKI_SPIKE_AT"] = spike
    if crash:
        env["KUMIKI_CRASH_AT"] = crash
    p = subprocess.run([kumiki, "train", "--recipe", rcp, "--out", out, "--progress-every", "1000"], env=env,
                       capture_output=True, text=True)
    if expect is not None and p.returncode != expect:
        print(p.stdout, p.stderr)
    if expect is not None:
        check(p.returncode == expect, f"train {os.path.basename(out)} exits {expect} (got {p.returncode})")
    return p


def log(out):
    with open(f"{out}/log.jsonl") as f:
        return [json.loads(line) for line in f]


def steps_of(out):
    return [r for r in log(out) if r["type"] == "step"]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def ckpt(out, step):
    return f"{out}/checkpoints/step_{step:09d}"


def same_files(a, b, names=("model.safetensors", "optimizer.safetensors")):
    return all(read(f"{a}/{n}") == read(f"{b}/{n}") for n in names)


def key(r):
    return (r["step"], r["loss"], r["lr"], r["grad_norm"], r["skipped"])


# 1. Detector on, no outlier: bitwise the run with the detector off.
on, off = recipe("on", 40), recipe("off", 40, spikes="detect = false")
train(on, f"{work}/on")
train(off, f"{work}/off")
s_on, s_off = steps_of(f"{work}/on"), steps_of(f"{work}/off")
judged = [r for r in s_on if "spike" in r]
check(len(judged) == 40 - MIN_HISTORY + 1, f"the detector judged steps {MIN_HISTORY - 1}..39 ({len(judged)} steps)")
check(not any(r["spike"]["outlier"] for r in judged), "no step of the normal run is an outlier")
check(not any("spike" in r for r in s_off), "detect = false logs no spike statistics")
check([key(r) for r in s_on] == [key(r) for r in s_off], "losses, lrs and gradient norms bitwise equal with the detector on and off")
check(same_files(ckpt(f"{work}/on", 40), ckpt(f"{work}/off", 40)), "final weights and moments bitwise equal")


def independent_stats(records, window, min_history, sigma):
    """Recomputes every verdict from the logged values of a run without rollbacks: the window is the
    last `window` accepted (finite, non-outlier) steps, mean and unbiased std."""
    problems, hist = [], []
    for r in records:
        x, g = r["loss"], r["grad_norm"]
        if len(hist) + 1 >= min_history:
            sp = r.get("spike")
            if sp is None:
                problems.append(f"step {r['step']}: not judged")
                continue
            for name, v, col in (("loss", x, 0), ("grad_norm", g, 1)):
                vals = [h[col] for h in hist]
                mean = sum(vals) / len(vals)
                std = math.sqrt(sum((a - mean) ** 2 for a in vals) / (len(vals) - 1))
                z = (v - mean) / std
                for k, want in (("mean", mean), ("std", std), ("z", z)):
                    got = sp[f"{name}_{k}"]
                    if abs(got - want) > 1e-12 * max(1.0, abs(want)):
                        problems.append(f"step {r['step']}: {name}_{k} {got} != {want}")
            outlier = [n for n, v, col in (("loss", x, 0), ("grad_norm", g, 1))
                       if v - sum(h[col] for h in hist) / len(hist) > sigma * math.sqrt(
                           sum((h[col] - sum(q[col] for q in hist) / len(hist)) ** 2 for h in hist) / (len(hist) - 1))]
            if "+".join(outlier) != sp["outlier"]:
                problems.append(f"step {r['step']}: outlier '{sp['outlier']}', independently '{'+'.join(outlier)}'")
            if sp["outlier"]:
                continue
        elif "spike" in r:
            problems.append(f"step {r['step']}: judged with {len(hist)} earlier steps")
        hist = (hist + [(x, g)])[-window:]
    return problems


# 2. One synthetic spike (data batch 30, loss and gradients x20): detected and skipped.
one = recipe("one", 31, checkpoint_interval=30)
train(one, f"{work}/one", spike="30:20")
s_one = steps_of(f"{work}/one")
r30 = s_one[30]
check(r30["skipped"] and r30["skip_reason"] == "outlier" and r30["spike"]["outlier"] == "loss+grad_norm",
      f"step 30 is a loss+grad_norm outlier, skipped (loss z {r30['spike']['loss_z']:.1f}, grad norm z {r30['spike']['grad_norm_z']:.1f})")
check([key(r) for r in s_one[:30]] == [key(r) for r in s_on[:30]], "steps before the spike equal the normal run's")
check(same_files(ckpt(f"{work}/one", 30), ckpt(f"{work}/one", 31)),
      "weights and AdamW moments (and step_count) after the skipped step equal those before it, bitwise")
st = json.loads(read(f"{ckpt(f'{work}/one', 31)}/state.json"))
check(st["skipped_total"] == 1 and st["spikes"]["outliers_total"] == 1, "the checkpoint counts one skipped outlier")
check(len(st["spikes"]["window"]["loss"]) == WINDOW and 20 * s_on[30]["loss"] not in st["spikes"]["window"]["loss"],
      "the window holds the last 16 accepted steps, not the spike")
problems = independent_stats(s_one, WINDOW, MIN_HISTORY, SIGMA) + independent_stats(s_on, WINDOW, MIN_HISTORY, SIGMA)
check(not problems, "every logged mean, std, z-score and verdict matches an independent computation" +
      ("" if not problems else ": " + "; ".join(problems[:3])))

# 3. A burst of corrupt documents in the data: the steps that read them are the outliers.
junk = recipe("junk", 60, data='[0.97, "en", 0.03, "junk"]', checkpoint_interval=0)
train(junk, f"{work}/junk")
subprocess.run([kumiki, "data", "inspect", "--data-path", "0.97", f"{work}/en", "0.03", f"{work}/junk", "--seq-len", "32",
                "--samples", str(60 * 4), "--seed", "99", "--dump-index", f"{work}/junk_index.csv"],
               check=True, capture_output=True)
with open(f"{work}/junk_index.csv") as f:
    junk_steps = sorted({int(row["sample"]) // 4 for row in csv.DictReader(f) if row["dataset"] == "1"})
s_junk = steps_of(f"{work}/junk")
# Until about step 30 the window still holds the steep start of the loss curve (std ~1.3 nats), so a
# batch with a quarter of junk (+1 nat) is not 6 sigma out; from then on (std ~0.4) it is.
SETTLED = 30
settled_junk = [s for s in junk_steps if s >= SETTLED]
flagged = [r["step"] for r in s_junk if r.get("spike", {}).get("outlier")]
check(len(settled_junk) >= 3, f"the blend puts junk into steps {junk_steps}, {len(settled_junk)} of them from step {SETTLED}")
check(set(settled_junk) <= set(flagged) and set(flagged) <= set(junk_steps),
      f"every step from {SETTLED} reading corrupt documents is an outlier, and no other step is: {flagged}")
check(all(s_junk[s]["skipped"] for s in flagged), "each of them was skipped")
problems = independent_stats(s_junk, WINDOW, MIN_HISTORY, SIGMA)
check(not problems, "the corrupt-data run's statistics match the independent computation" +
      ("" if not problems else ": " + "; ".join(problems[:3])))

# 4. A burst of spikes on data batches 30..33 with rollback: two skipped outliers are allowed, the
# third rolls back to checkpoint 30 and skips the 3 batches read since; batch 33 is read (and
# skipped) once more; the lr is halved for 3 steps.
RB = """max_consecutive = 2
rollback = true
rollback_lr_factor = 0.5
rollback_lr_steps = 3"""
rb = recipe("rb", 45, spikes=RB)
train(rb, f"{work}/rb", spike="30-33:20")
rb_log = log(f"{work}/rb")
rolls = [r for r in rb_log if r["type"] == "rollback"]
check(len(rolls) == 1 and rolls[0]["to_step"] == 30 and rolls[0]["step"] == 32 and rolls[0]["skip_batches"] == 3
      and rolls[0]["trouble_start"] == 30 and rolls[0]["reason"] == "outliers",
      "one rollback after step 32, back to checkpoint 30, 3 batches skipped: " + json.dumps(rolls[0] if rolls else None))
rb_steps = [r for r in rb_log if r["type"] == "step"]
after = [r for r in rb_steps if r.get("rollbacks", 0) == 1]
check([r["step"] for r in after] == list(range(30, 45)), "after it the run goes on from step 30 to the end")
check(after[0]["skipped"] and after[0]["data_skip"] == 3, "step 30 now reads batch 33, the last spike, and skips it")
check([r["lr"] for r in after[:4]] == [0.5e-3, 0.5e-3, 0.5e-3, 1e-3], "the lr is halved for 3 steps")
check(not os.path.exists(ckpt(f"{work}/rb", 35)) or json.loads(read(f"{ckpt(f'{work}/rb', 35)}/state.json"))["spikes"]["rollbacks"] == 1,
      "checkpoints after the rollback belong to the new branch")

# The same from checkpoint 30 of a run without the spike, its state given the same data offset.
clean = f"{work}/clean"
train(rb, clean)
start = f"{work}/from30"
os.makedirs(f"{start}/checkpoints")
shutil.copytree(ckpt(clean, 30), ckpt(start, 30))
state_path = f"{ckpt(start, 30)}/state.json"
state = json.loads(read(state_path))
state["spikes"].update(rollbacks=1, data_skip_batches=3, lr_factor=0.5, lr_factor_until=33)
with open(state_path, "w") as f:
    f.write(json.dumps(state, indent=2) + "\n")


rewrite_manifest_entry(ckpt(start, 30), "state.json")
train(rb, start, spike="30-33:20")
check(same_files(ckpt(f"{work}/rb", 45), ckpt(start, 45)),
      "after the rollback, weights and moments equal a run started from checkpoint 30 with the same data offset")
check([key(r) for r in after] == [key(r) for r in steps_of(start)], "and its losses, lrs and gradient norms too")

# 5. kill -9 inside the rollback (abandoned checkpoints removed, not yet reloaded), then after it.
killed = f"{work}/killed"
p = train(rb, killed, spike="30-33:20", crash="rollback:33", expect=None)
check(p.returncode == -signal.SIGKILL, f"killed inside the rollback (rc {p.returncode})")
p = train(rb, killed, spike="30-33:20", crash="step:38@1", expect=None)
check(p.returncode == -signal.SIGKILL, f"killed after step 38 of the new branch (rc {p.returncode})")
p = train(rb, killed, spike="30-33:20", crash="checkpoint:40@1", expect=None)
check(p.returncode == -signal.SIGKILL, f"killed inside checkpoint 40 of the new branch (rc {p.returncode})")
train(rb, killed, spike="30-33:20")
for name in ("model.safetensors", "optimizer.safetensors", "state.json"):
    check(read(f"{ckpt(f'{work}/rb', 45)}/{name}") == read(f"{ckpt(killed, 45)}/{name}"),
          f"after kills during and after the rollback: {name} bitwise identical")


def strip(records):
    return [{k: v for k, v in r.items() if k not in ("elapsed_s", "tokens_per_s", "model_flops_per_s", "mfu", "peak_rss_mb")}
            for r in records]


check(strip(log(killed)) == strip(rb_log), "the resumed log equals the uninterrupted one, abandoned steps and rollback included")

# 6. Without rollback the burst stops the run, saying what to do.
stop = recipe("stop", 45, spikes="max_consecutive = 2")
p = train(stop, f"{work}/stop", spike="30-33:20", expect=3)
check("outlier steps skipped in a row" in p.stderr and "rollback = true" in p.stderr,
      "the stop message names the bound and the rollback key: " + p.stderr.strip().splitlines()[-1][:200])

# The report and the plot.
r = subprocess.run([kumiki, "spikes", f"{work}/rb", "--csv", f"{work}/rb_spikes.csv"], capture_output=True, text=True)
print(r.stdout)
check(r.returncode == 0 and "4 outliers" in r.stdout and "1 rollback(s)" in r.stdout and "abandoned by rollback 1" in r.stdout,
      "kumiki spikes reports 4 outliers, 1 rollback and the abandoned steps")
with open(f"{work}/rb_spikes.csv") as f:
    rows = list(csv.DictReader(f))
check([row["event"] for row in rows] == ["step"] * 4 + ["rollback"], "its CSV lists the 4 outliers and the rollback")
if shutil.which("gnuplot"):
    r = subprocess.run([kumiki, "plot", f"{work}/rb/log.jsonl", "--out", f"{work}/rb.png"], capture_output=True, text=True)
    check(r.returncode == 0 and "4 skipped outliers, 1 rollbacks" in r.stdout, "kumiki plot marks them: " + r.stdout.strip())

_t.finish()
