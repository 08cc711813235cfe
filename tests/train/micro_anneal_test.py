#!/usr/bin/env python3
"""`kumiki micro-anneal` on `tiny_test`: a start checkpoint trained on "web" data, then anneals on
50% candidate + 50% web for two candidates ("good": the structured source the held-out set is made
of; "noise": random tokens) and one web-only baseline. Checks the table (markdown and CSV) and its
deltas, each anneal's lr against the formula (the checkpoint's lr linearly to 0, no warmup), that each
run started from the checkpoint's weights and AdamW state, that each run is an ordinary resumable run
directory, and the errors for bad input. Also `kumiki train --init-from CKPT --keep-optimizer`, the
same start for an ordinary run.

usage: micro_anneal_test.py KUMIKI_BINARY WORK_DIR
"""
import csv
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kumiki_check import Checks, write_indexed  # noqa: E402

_t = Checks()
kumiki, work, check = _t.kumiki, _t.work, _t.check

rng = random.Random(11)
web = [[rng.randrange(1, 50) for _ in range(rng.randint(10, 60))] for _ in range(300)]
pattern = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9]
good = [[pattern[(i + o) % len(pattern)] for i in range(rng.randint(20, 60))] for o in range(200) for _ in (0,)]
write_indexed(f"{work}/web", web)
write_indexed(f"{work}/good", good)
write_indexed(f"{work}/noise", [[rng.randrange(1, 50) for _ in range(40)] for _ in range(200)])
write_indexed(f"{work}/good_val", [[pattern[(i + o) % len(pattern)] for i in range(40)] for o in range(40)])
write_indexed(f"{work}/web_val", [[rng.randrange(1, 50) for _ in range(40)] for _ in range(40)])

with open(f"{work}/pre.toml", "w") as f:
    f.write("""
model = "tiny_test"
seed = 5
seq_len = 16
global_batch = 8
micro_batch = 4

[[stages]]
name = "stable"
data = ["web"]
steps = 24
[stages.lr]
lr_decay_style = "WSD"
lr = 1e-2
lr_warmup_iters = 4
lr_decay_iters = 100000
lr_wsd_decay_iters = 1
""")
p = subprocess.run([kumiki, "train", "--recipe", f"{work}/pre.toml", "--out", f"{work}/pre", "--quiet"], capture_output=True, text=True)
check(p.returncode == 0, "the start checkpoint trains")
start = f"{work}/pre/checkpoints/step_000000024"

STEPS, TOKENS = 12, 12 * 8 * 16
args = [kumiki, "micro-anneal", "--from", f"{work}/pre", "--baseline", "1", f"{work}/web",
        "--candidate", f"good={work}/good", "--candidate", f"noise={work}/noise", "--tokens", str(TOKENS),
        "--eval", f"good_val={work}/good_val", "--eval", f"web_val={work}/web_val", "--eval-batches", "2",
        "--out", f"{work}/ma", "--quiet"]
p = subprocess.run(args, capture_output=True, text=True)
print(p.stdout)
check(p.returncode == 0, "kumiki micro-anneal exits 0" + ("" if p.returncode == 0 else ": " + p.stderr[-300:]))
check(p.stderr.count("[micro-anneal] run ") == 3, "it runs the three anneals one after another with progress")
check("| good | 50% good + 50% baseline |" in p.stdout, "it prints the markdown table")

with open(f"{work}/ma/micro_anneal.csv") as f:
    rows = {r["run"]: r for r in csv.DictReader(f)}
check(list(rows) == ["baseline", "good", "noise"], f"the CSV has one row per run: {list(rows)}")


def final_losses(run):
    out = {}
    with open(f"{work}/ma/{run}/log.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if r["type"] == "eval":
                out[r["dataset"]] = r["loss"]
    return out


ok = True
for run in rows:
    logged = final_losses(run)
    for s in ("good_val", "web_val"):
        ok &= float(rows[run][s]) == logged[s]
        if run != "baseline":
            ok &= float(rows[run][f"delta_{s}"]) == logged[s] - final_losses("baseline")[s]
check(ok, "the table's losses are each run's final held-out losses, its deltas run - baseline exactly")
check(float(rows["good"]["delta_good_val"]) < 0, f"annealing on the good source lowers its held-out loss "
      f"(delta {float(rows['good']['delta_good_val']):+.4f})")

# The lr: the checkpoint's (the WSD stable value 1e-2) linearly to 0, no warmup: lr(s) = 1e-2 (1 - s / N).
for run in rows:
    with open(f"{work}/ma/{run}/log.jsonl") as f:
        lrs = [json.loads(line)["lr"] for line in f if '"type":"step"' in line]
    want = [1e-2 * (1 - s / STEPS) for s in range(STEPS)]
    check(len(lrs) == STEPS and all(abs(a - b) <= 1e-15 * 1e-2 for a, b in zip(lrs, want)),
          f"run '{run}': lr from 1e-2 linearly to 0 over {STEPS} steps, no warmup")

# Started from the checkpoint's weights and AdamW state: its first step's loss is the checkpoint's level.
with open(f"{work}/pre/log.jsonl") as f:
    pre_last = [json.loads(line)["loss"] for line in f if '"type":"step"' in line][-1]
with open(f"{work}/ma/baseline/log.jsonl") as f:
    first = [json.loads(line)["loss"] for line in f if '"type":"step"' in line][0]
check(abs(first - pre_last) < 0.5, f"the baseline anneal starts at the checkpoint's loss ({first:.3f} vs {pre_last:.3f})")
with open(f"{work}/ma/baseline/checkpoints/step_000000012/optimizer.safetensors", "rb") as f:
    head = f.read(20000)
check(b'"step_count":"36"' in head, "AdamW's step count continues from the checkpoint's 24")

# Rerunning resumes: every run is complete, the table is the same.
p2 = subprocess.run(args, capture_output=True, text=True)
check(p2.returncode == 0 and p2.stdout == p.stdout and p2.stderr.count("already complete") == 3,
      "rerunning the command finds the three runs complete and prints the same table")

# `kumiki train --init-from CKPT --keep-optimizer`, the same start as an anneal (mid-training from the
# end of pretraining): AdamW's step count goes on from the checkpoint's, the weights are the checkpoint's.
with open(f"{work}/keep.toml", "w") as f:
    f.write(open(f"{work}/pre.toml").read().replace("steps = 24", "steps = 4").replace('"WSD"', '"constant"')
            .replace("lr_warmup_iters = 4\nlr_decay_iters = 100000\nlr_wsd_decay_iters = 1\n", ""))
keep = [kumiki, "train", "--recipe", f"{work}/keep.toml", "--out", f"{work}/keep", "--quiet", "--init-from", f"{work}/pre"]
r = subprocess.run(keep + ["--keep-optimizer"], capture_output=True, text=True)
check(r.returncode == 0, "kumiki train --keep-optimizer runs" + ("" if r.returncode == 0 else ": " + r.stderr[-300:]))
with open(f"{work}/keep/checkpoints/step_000000004/optimizer.safetensors", "rb") as f:
    check(b'"step_count":"28"' in f.read(20000), "--keep-optimizer: AdamW's step count goes on from 24 to 28")
with open(f"{work}/keep/log.jsonl") as f:
    first = [json.loads(line)["loss"] for line in f if '"type":"step"' in line][0]
check(abs(first - pre_last) < 0.5, f"--keep-optimizer starts at the checkpoint's loss ({first:.3f} vs {pre_last:.3f})")
r = subprocess.run(keep[:-2] + ["--keep-optimizer"], capture_output=True, text=True)
check(r.returncode == 1 and "--keep-optimizer needs --init-from" in r.stderr, f"refused: {r.stderr.strip()[:140]}")
os.makedirs(f"{work}/hf_like", exist_ok=True)
open(f"{work}/hf_like/config.json", "w").write("{}")
r = subprocess.run(keep[:-1] + [f"{work}/hf_like", "--keep-optimizer"], capture_output=True, text=True)
check(r.returncode == 1 and "holds no optimizer state" in r.stderr, f"refused: {r.stderr.strip()[:140]}")

# Bad input, in the user's terms.
for extra, message in ((["--candidate", "baseline=" + f"{work}/good"], "the name 'baseline' is the baseline-only run's"),
                       (["--candidate", f"x={work}/missing"], "dataset file"),
                       (["--candidate", "nonsense"], "expected NAME=PREFIX")):
    bad = [a for a in args if a not in ("--quiet",)]
    i = bad.index("--candidate")
    bad[i:i + 4] = extra
    bad[bad.index("--out") + 1] = f"{work}/bad"
    r = subprocess.run(bad, capture_output=True, text=True)
    check(r.returncode == 1 and message in r.stderr, f"refused: {r.stderr.strip()[:140]}")

_t.finish()
