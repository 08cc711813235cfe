#!/usr/bin/env python3
"""Step-time overhead of data parallelism over MPI on one machine: the `demo` model trained at the same
global batch by one process with T threads and by R ranks (mpirun) with T / R threads each, the same
cores in both, the ranks once all-reducing the gradients and once with ZeRO-1 ([parallel] zero = 1:
reduce-scatter, each rank's AdamW part, all-gather). Prints one JSON line per run (median step time
over the steps after the first, from log.jsonl) and the overheads of the ranks against the one process.

usage: dp_overhead.py KUMIKI_BINARY WORK_DIR [--ranks 2] [--threads 2] [--steps 12] [--seq-len 128]
                      [--global-batch 16] [--micro-batch 4] [--mpiexec mpirun]
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess

ap = argparse.ArgumentParser()
ap.add_argument("kumiki")
ap.add_argument("work")
ap.add_argument("--ranks", type=int, default=2)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=12)
ap.add_argument("--seq-len", type=int, default=128)
ap.add_argument("--global-batch", type=int, default=16)
ap.add_argument("--micro-batch", type=int, default=4)
ap.add_argument("--mpiexec", default="mpirun")
a = ap.parse_args()

shutil.rmtree(a.work, ignore_errors=True)
os.makedirs(a.work)
rng = random.Random(1)
words = "the model reads data and learns to predict the next token of each text".split()
with open(f"{a.work}/en.txt", "w") as f:
    for _ in range(3000):
        f.write(" ".join(rng.choice(words) for _ in range(rng.randint(20, 200))) + ".\n\n")
subprocess.run([a.kumiki, "preprocess", "--input", f"{a.work}/en.txt", "--tokenizer", "bytes", "--output-prefix",
                f"{a.work}/en", "--append-eod", "--paragraphs", "--quiet"], check=True)
for zero in (0, 1):
    with open(f"{a.work}/recipe{zero}.toml", "w") as f:
        f.write(f"""model = "demo"
seed = 1
seq_len = {a.seq_len}
global_batch = {a.global_batch}
micro_batch = {a.micro_batch}
[[stages]]
name = "a"
data = [1.0, "en"]
steps = {a.steps}
checkpoint_interval = 0
[stages.lr]
lr_decay_style = "constant"
lr = 1e-3
[parallel]
zero = {zero}
""")


def run(name, ranks, threads, zero=0):
    out = f"{a.work}/{name}"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    launch = [a.mpiexec, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", str(ranks)] if ranks > 1 else []
    subprocess.run(launch + [a.kumiki, "train", "--recipe", f"{a.work}/recipe{zero}.toml", "--out", out, "--quiet"],
                   env=env, check=True)
    with open(f"{out}/log.jsonl") as f:
        recs = [json.loads(line) for line in f]
    tokens = a.global_batch * a.seq_len
    times = [tokens / r["tokens_per_s"] for r in recs if r["type"] == "step"][1:]
    line = {"ranks": ranks, "zero": zero if ranks > 1 else 0, "threads_per_rank": threads, "steps_timed": len(times), "global_batch": a.global_batch,
            "micro_batch": a.micro_batch, "seq_len": a.seq_len, "median_step_s": statistics.median(times),
            "min_step_s": min(times)}
    print(json.dumps(line), flush=True)
    return line


one = run("one", 1, a.threads)
many = run("ranks", a.ranks, max(1, a.threads // a.ranks))
zero1 = run("ranks_zero1", a.ranks, max(1, a.threads // a.ranks), zero=1)
print(json.dumps({"overhead": many["median_step_s"] / one["median_step_s"] - 1.0,
                  "overhead_zero1": zero1["median_step_s"] / one["median_step_s"] - 1.0,
                  "one_process_s": one["median_step_s"], f"{a.ranks}_ranks_s": many["median_step_s"],
                  f"{a.ranks}_ranks_zero1_s": zero1["median_step_s"]}))
