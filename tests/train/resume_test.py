#!/usr/bin/env python3
"""Exact resume: a run killed with SIGKILL at several points (after a step, inside a checkpoint
write, at a random moment) and interrupted with SIGINT, then resumed by rerunning the same command,
ends with weights, optimizer state and per-step losses bitwise identical to an uninterrupted run.

usage: resume_test.py KUMIKI_BINARY WORK_DIR
"""
import json
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kumiki_check import Checks  # noqa: E402

_t = Checks()
kumiki, work, check = _t.kumiki, _t.work, _t.check


def corpus(path, seed, words):
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(300):
            f.write(" ".join(rng.choice(words) for _ in range(rng.randint(5, 60))) + ".\n\n")


corpus(f"{work}/en.txt", 1, "the model reads data and learns to predict the next token of each text".split())
corpus(f"{work}/ja.txt", 2, "日本語 の 文章 を 読んで 次 の 単語 を 予測 する モデル です".split())
corpus(f"{work}/val.txt", 3, "held out text is never trained on but evaluated at intervals".split())
for name in ("en", "ja", "val"):
    subprocess.run([kumiki, "preprocess", "--input", f"{work}/{name}.txt", "--tokenizer", "bytes",
                    "--output-prefix", f"{work}/{name}", "--append-eod", "--paragraphs", "--quiet"], check=True)

recipe = f"{work}/recipe.toml"
with open(recipe, "w") as f:
    f.write("""
model = "demo"
seed = 99
seq_len = 32
global_batch = 4
micro_batch = 2

[[stages]]
name = "english"
data = [1.0, "en"]
steps = 7
checkpoint_interval = 2
keep_checkpoints = 2
eval = [ { name = "val", prefix = "val" } ]
eval_interval = 3
eval_batches = 1
[stages.lr]
lr_decay_style = "WSD"
lr = 2e-3
min_lr = 0.0
lr_warmup_iters = 2
lr_decay_iters = 1000
lr_wsd_decay_iters = 1

[[stages]]
name = "japanese"
data = [0.6, "ja", 0.4, "en"]
steps = 6
schedule = "continue"
checkpoint_interval = 2
reset_optimizer = true
seed = 7

[[stages]]
name = "anneal"
data = [1.0, "en"]
steps = 5
seq_len = 48
schedule = "anneal"
checkpoint_interval = 2
""")

TOTAL = 18


def train(out, crash=None, extra_env=None):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    if crash:
        env["KUMIKI_CRASH_AT"] = crash
    return subprocess.Popen([kumiki, "train", "--recipe", recipe, "--out", out, "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def steps_logged(out):
    try:
        with open(f"{out}/log.jsonl") as f:
            return sum(1 for line in f if '"type":"step"' in line)
    except FileNotFoundError:
        return 0


# A: uninterrupted.
a = train(f"{work}/A")
out_a = a.communicate()[0]
check(a.returncode == 0, f"uninterrupted run exits 0 (got {a.returncode})")

# B: killed and interrupted along the way, resumed each time by the same command.
b = f"{work}/B"
p = train(b, crash="step:3")
p.communicate()
check(p.returncode == -signal.SIGKILL, f"killed right after step 3 (rc {p.returncode})")
p = train(b, crash="checkpoint:6")
p.communicate()
check(p.returncode == -signal.SIGKILL, f"killed inside the checkpoint write of step 6 (rc {p.returncode})")
check(not os.path.exists(f"{b}/checkpoints/step_000000006"), "the half-written checkpoint 6 is not visible")
p = train(b)
deadline = time.time() + 120
while steps_logged(b) < 9 and p.poll() is None and time.time() < deadline:
    time.sleep(0.01)
p.send_signal(signal.SIGINT)
text = p.communicate()[0]
check(p.returncode == 0, f"SIGINT exits 0 (rc {p.returncode})")
check("Resume with the same command" in text, "SIGINT prints how to resume")
for delay in (0.35, 0.8):
    p = train(b)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.communicate()
p = train(b)
text = p.communicate()[0]
check(p.returncode == 0, f"final resumed run exits 0 (rc {p.returncode})")
check("resuming from" in text, "the final run resumed from a checkpoint")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def step_records(out):
    with open(f"{out}/log.jsonl") as f:
        recs = [json.loads(line) for line in f]
    return [(r["step"], r["stage"], r["loss"], r["lr"], r["grad_norm"]) for r in recs if r["type"] == "step"], \
           [(r["step"], r["dataset"], r["loss"]) for r in recs if r["type"] == "eval"]


final = f"checkpoints/step_{TOTAL:09d}"
for name in ("model.safetensors", "optimizer.safetensors", "state.json"):
    check(read(f"{work}/A/{final}/{name}") == read(f"{b}/{final}/{name}"), f"{name} bitwise identical")
steps_a, evals_a = step_records(f"{work}/A")
steps_b, evals_b = step_records(b)
check(len(steps_a) == TOTAL and [s[0] for s in steps_a] == list(range(TOTAL)), f"A logged steps 0..{TOTAL - 1} once each")
check(steps_a == steps_b, "per-step losses, learning rates and gradient norms identical (exact float equality)")
check(evals_a == evals_b, "eval losses identical")
print("A losses:", " ".join(f"{s[2]:.4f}" for s in steps_a))

# A corrupted checkpoint is detected by its checksum, never loaded.
victim = f"{b}/{final}/model.safetensors"
data = bytearray(read(victim))
data[len(data) // 2] ^= 0xFF
with open(victim, "wb") as f:
    f.write(data)
r = subprocess.run([kumiki, "eval", "--checkpoint", f"{b}/{final}", "--data-path", f"{work}/val"],
                   capture_output=True, text=True)
check(r.returncode != 0 and "fails its checksum" in r.stderr, "a corrupted checkpoint is refused: " + r.stderr.strip()[-120:])
r = subprocess.run([kumiki, "eval", "--checkpoint", f"{work}/A/{final}", "--data-path", f"{work}/val", "--samples", "8"],
                   capture_output=True, text=True)
check(r.returncode == 0 and "perplexity" in r.stdout, "kumiki eval prints loss and perplexity")
print(r.stdout)

_t.finish()
