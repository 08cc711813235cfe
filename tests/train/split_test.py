#!/usr/bin/env python3
"""Megatron's --split in training and evaluation, end to end: a stage trains on the train part of its
datasets only, eval sets read whole files unless given a split (then their valid part), a weightless
blend too small for its stage and a weight of 0 are refused. The parts are told apart by token ids:
documents of one part hold ids outside the tiny_test model's vocabulary (50), which the trainer refuses.

usage: split_test.py KUMIKI_BINARY WORK_DIR
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kumiki_check import Checks, write_indexed  # noqa: E402

_t = Checks()
kumiki, work, check = _t.kumiki, _t.work, _t.check



good = [[(7 * d + k) % 50 for k in range(40)] for d in range(10)]
bad = [[60 + k % 5 for k in range(400)] for _ in range(10)]  # ~90% of a whole file's samples
write_indexed(f"{work}/train_first", good + bad)   # "50,50": train part in vocabulary, valid part not
write_indexed(f"{work}/valid_last", bad + good)    # "50,50": valid part in vocabulary, train part not

RECIPE = """
model = "tiny_test"
seq_len = 16
global_batch = 2
micro_batch = 1

[[stages]]
name = "only"
data = DATA
SPLIT
steps = STEPS
eval = [ { name = "held", prefix = "valid_last" EVALSPLIT} ]
eval_batches = 8
[stages.lr]
lr_decay_style = "WSD"
lr = 1e-3
lr_warmup_iters = 1
lr_decay_iters = 100
lr_wsd_decay_iters = 1
"""


def train(name, data='[1.0, "train_first"]', split='split = "50,50"', evalsplit=', split = "50,50"', steps=12):
    text = (RECIPE.replace("EVALSPLIT", evalsplit).replace("DATA", data).replace("SPLIT", split)
            .replace("STEPS", str(steps)))
    with open(f"{work}/{name}.toml", "w") as f:
        f.write(text)
    return subprocess.run([kumiki, "train", "--recipe", f"{work}/{name}.toml", "--out", f"{work}/{name}"],
                          capture_output=True, text=True)


r = train("ok")
check(r.returncode == 0, "a stage with split 50,50 trains on the train part and evaluates the valid part "
      "(exit %d: %s)" % (r.returncode, r.stderr.strip()[-300:]))
r = train("whole_train", split="")
check(r.returncode != 0 and "vocabulary" in r.stderr,
      "the default split 969,30,1 reaches the out-of-vocabulary documents of the training file")
r = train("whole_eval", evalsplit="")
check(r.returncode != 0 and "vocabulary" in r.stderr, "an eval set without a split is read whole")
r = train("weightless", data='["train_first", "train_first"]', steps=100)
check(r.returncode == 1 and "kumiki: error:" in r.stderr and "holds 48" in r.stderr,
      "a weightless blend of 2 x 24 samples is refused for a stage of 200 (%s)" % r.stderr.strip()[-300:])
r = train("weightless_ok", data='["train_first", "train_first"]')
check(r.returncode == 0, "a weightless blend trains when it holds enough samples (%s)" % r.stderr.strip()[-300:])
r = train("zero", data='[0.0, "train_first", 1.0, "valid_last"]')
check(r.returncode != 0 and "train_first" in r.stderr and "must be > 0" in r.stderr,
      "a weight of 0 is refused naming its dataset (%s)" % r.stderr.strip()[-300:])
r = train("badsplit", split='split = "50,x"')
check(r.returncode != 0 and "stages[0].split" in r.stderr, "a bad split names its recipe key (%s)" % r.stderr.strip()[-300:])

run = f"{work}/ok"
ev = [kumiki, "eval", "--checkpoint", run, "--samples", "4", "--micro-batch", "2", "--seq-len", "16"]
r = subprocess.run(ev + ["--data-path", f"{work}/valid_last", "--split", "50,50"], capture_output=True, text=True)
check(r.returncode == 0 and "valid_last" in r.stdout, "kumiki eval --split reads the valid part (%s)" % r.stderr.strip()[-300:])
r = subprocess.run(ev + ["--data-path", f"{work}/valid_last"], capture_output=True, text=True)
check(r.returncode != 0 and "vocabulary" in r.stderr, "kumiki eval reads whole files by default")
r = subprocess.run(ev + ["--data-path", "0", f"{work}/valid_last"], capture_output=True, text=True)
check(r.returncode == 1 and "weight 0" in r.stderr and "valid_last" in r.stderr, "kumiki eval refuses a weight of 0")
_t.finish()
