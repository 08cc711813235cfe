#!/usr/bin/env python3
"""A recipe stage with `seeds = [42, 666, 42069]` (OLMo 2 / LLM-jp mid-training): the stage runs once
per seed from the same start, each with its own data order, in OUT/seeds/<stage>-seed<seed>/; the
main run goes on from the uniform f32 soup of their final weights and AdamW moments. Checks the soup
bit for bit against numpy and against `kumiki soup`, and that a run killed inside a seed run, between
seed runs and inside the soup resumes to bitwise the uninterrupted result, logs included.

usage: seeds_test.py KUMIKI_BINARY WORK_DIR
"""
import json
import os
import random
import signal
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kumiki_check import Checks, read_safetensors, write_indexed  # noqa: E402

_t = Checks()
kumiki, work, check = _t.kumiki, _t.work, _t.check

rng = random.Random(8)
write_indexed(f"{work}/web", [[rng.randrange(1, 50) for _ in range(rng.randint(10, 60))] for _ in range(300)])
write_indexed(f"{work}/hq", [[rng.randrange(1, 20) for _ in range(rng.randint(10, 60))] for _ in range(300)])
write_indexed(f"{work}/val", [[rng.randrange(1, 20) for _ in range(40)] for _ in range(30)])
SEEDS = (42, 666, 42069)
with open(f"{work}/r.toml", "w") as f:
    f.write(f"""
model = "tiny_test"
seed = 5
seq_len = 16
global_batch = 8
micro_batch = 4

[[stages]]
name = "pre"
data = ["web"]
steps = 8
[stages.lr]
lr_decay_style = "constant"
lr = 1e-2

[[stages]]
name = "mid"
data = [0.5, "web", 0.5, "hq"]
steps = 6
schedule = "anneal"
seeds = {list(SEEDS)}
checkpoint_interval = 2
eval = [ {{ name = "val", prefix = "val" }} ]
eval_batches = 2

[[stages]]
name = "after"
data = ["hq"]
steps = 4
[stages.lr]
lr_decay_style = "constant"
lr = 1e-3
""")


def train(out, crash=None):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    env.pop("KUMIKI_CRASH_AT", None)
    if crash:
        env["KUMIKI_CRASH_AT"] = crash
    return subprocess.run([kumiki, "train", "--recipe", f"{work}/r.toml", "--out", out], env=env, capture_output=True,
                          text=True)


a = f"{work}/A"
p = train(a)
check(p.returncode == 0, "the run with a seeded stage completes" + ("" if p.returncode == 0 else ": " + p.stderr[-400:]))
check(p.stderr.count("stage 'mid': run ") == 3 and "souped the 3 seed runs" in p.stderr, "three seed runs, then the soup")
finals = [f"{a}/seeds/mid-seed{s}/checkpoints/step_000000014" for s in SEEDS]
check(all(os.path.exists(f"{d}/manifest.json") for d in finals), "each seed run ends with its own checkpoint at step 14")


def steps(log):
    with open(log) as f:
        return [json.loads(line) for line in f if '"type":"step"' in line]


seed_losses = [[r["loss"] for r in steps(f"{a}/seeds/mid-seed{s}/log.jsonl")] for s in SEEDS]
check(all(len(x) == 6 for x in seed_losses) and len({tuple(x) for x in seed_losses}) == 3,
      "each seed run logs the stage's 6 steps, in its own data order (three different loss curves)")
with open(f"{a}/seeds/mid-seed42/checkpoints/step_000000014/state.json") as f:
    check(json.load(f)["rng"]["data_seed"] == 42, "a seed run's state records its data seed")

ins = [read_safetensors(f"{d}/model.safetensors")[0] for d in finals]
opt_ins = [read_safetensors(f"{d}/optimizer.safetensors")[0] for d in finals]
main14 = f"{a}/checkpoints/step_000000014"
got, _ = read_safetensors(f"{main14}/model.safetensors")
got_opt, _ = read_safetensors(f"{main14}/optimizer.safetensors")


def mean(xs):
    acc = np.zeros(xs[0].shape, dtype=np.float64)
    for x in xs:
        acc = acc + (1.0 / 3.0) * x.astype(np.float64)
    return acc.astype(np.float32)


same_w = all(np.array_equal(got[n].view(np.uint32), mean([x[n] for x in ins]).view(np.uint32)) for n in got)
same_m = all(np.array_equal(got_opt[n].view(np.uint32), mean([x[n] for x in opt_ins]).view(np.uint32)) for n in got_opt)
check(same_w, "the main run's weights at the stage end are the uniform f32 soup of the seed runs', bit for bit")
check(same_m, "and its AdamW moments the soup of theirs")
r = subprocess.run([kumiki, "soup", *finals, "--out", f"{work}/cli_soup"], capture_output=True, text=True)
cli, _ = read_safetensors(f"{work}/cli_soup/step_000000000/model.safetensors")
check(r.returncode == 0 and all(np.array_equal(cli[n], got[n]) for n in got), "kumiki soup of the three gives the same weights")

main = [json.loads(line) for line in open(f"{a}/log.jsonl")]
soups = [r for r in main if r["type"] == "soup"]
check(len(soups) == 1 and soups[0]["step"] == 14 and soups[0]["seeds"] == list(SEEDS), "the main log records the soup")
check(any(r["type"] == "eval" and r["step"] == 14 for r in main), "the soup is evaluated at the stage end")
check([r["step"] for r in main if r["type"] == "step"] == list(range(8)) + list(range(14, 18)),
      "the main log holds the other stages' steps; the seeded stage's are in the seed runs' logs")

# Kills: inside the first seed run, inside a checkpoint of the second, after a step of the third,
# inside the soup, then after it; each time the same command resumes.
b = f"{work}/B"
for crash in ("seed42:step:11", "seed666:checkpoint:12", "seed42069:step:13", "soup:14", "step:16", None):
    p = train(b, crash)
    if crash:
        check(p.returncode == -signal.SIGKILL, f"killed at {crash} (rc {p.returncode})")
check(p.returncode == 0, "the last rerun completes")


def read(path):
    with open(path, "rb") as f:
        return f.read()


for name in ("model.safetensors", "optimizer.safetensors", "state.json"):
    check(read(f"{a}/checkpoints/step_000000018/{name}") == read(f"{b}/checkpoints/step_000000018/{name}"),
          f"after the kills: final {name} bitwise identical")


def strip(path):
    drop = ("elapsed_s", "tokens_per_s", "model_flops_per_s", "mfu", "peak_rss_mb", "runs")
    return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in open(path)]


check(strip(f"{a}/log.jsonl") == strip(f"{b}/log.jsonl"), "the main log equals the uninterrupted one")
check(all(strip(f"{a}/seeds/mid-seed{s}/log.jsonl") == strip(f"{b}/seeds/mid-seed{s}/log.jsonl") for s in SEEDS),
      "and so does each seed run's")

# A recipe that lists a seed twice, or seeds with seed, is refused.
bad = open(f"{work}/r.toml").read().replace("seeds = [42, 666, 42069]", "seeds = [42, 42]")
open(f"{work}/bad.toml", "w").write(bad)
r = subprocess.run([kumiki, "train", "--recipe", f"{work}/bad.toml", "--out", f"{work}/bad"], capture_output=True, text=True)
check(r.returncode == 1 and "lists seed 42 twice" in r.stderr, "a repeated seed is refused: " + r.stderr.strip()[:160])

_t.finish()
