#!/usr/bin/env python3
"""examples/embed/my_kumiki, the kumiki command line over a configuration of a user's own (`my_model`),
built as an outside project: it trains a recipe naming `my_model` (stopped and resumed, bitwise equal to
an uninterrupted run), evaluates it and exports it to Hugging Face with the configuration's shapes and
the checkpoint's exact weights. Each program refuses what it was not compiled for, naming it: my_kumiki
a recipe of kumiki's `demo`, kumiki a checkpoint of `my_model`.

usage: my_kumiki_test.py MY_KUMIKI KUMIKI WORK_DIR
"""
import json
import os
import random
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, ".."))
from kumiki_check import Checks, read_safetensors, write_indexed  # noqa: E402

_t = Checks([sys.argv[0], sys.argv[1], sys.argv[3]])
mine, kumiki, work, check = sys.argv[1], sys.argv[2], _t.work, _t.check


def run(prog, *args, env=None):
    return subprocess.run([prog, *args], capture_output=True, text=True, cwd=work, env=env)


# my_model (examples/embed/my_kumiki.cpp): byte vocabulary 258 padded to 384, hidden 128, 3 layers,
# 4 heads in 2 query groups (head_dim 32), SwiGLU 352, untied embeddings. Its parameter count, by hand.
V, H, F, L, KV = 384, 128, 352, 3, 2 * 32
params = V * H + L * (2 * H + H * H + 2 * KV * H + H * H + 3 * H * F) + H + V * H

text = ("Debian is a free operating system. The Debian project packages free software. "
        "A package is installed with apt. ").encode()
rng = random.Random(5)
docs = [list(text[s:s + rng.randint(30, 90)]) for s in (rng.randrange(len(text) - 30) for _ in range(300))]
write_indexed(f"{work}/text", [d for d in docs if d])


def recipe(name, model="my_model"):
    path = f"{work}/{name}.toml"
    with open(path, "w") as f:
        f.write(f'model = "{model}"\nseed = 3\nseq_len = 64\nglobal_batch = 4\nmicro_batch = 2\n'
                f'[[stages]]\nname = "a"\ndata = ["text"]\nsteps = 12\ncheckpoint_interval = 4\nkeep_checkpoints = 3\n'
                f'[stages.lr]\nlr_decay_style = "WSD"\nlr = 3e-3\nmin_lr = 0.0\nlr_warmup_iters = 2\n'
                f'lr_decay_iters = 12\nlr_wsd_decay_iters = 4\nlr_wsd_decay_style = "minus_sqrt"\n')
    return path


p = run(mine, "info")
check(p.returncode == 0 and "my_model" in p.stdout and "demo" not in p.stdout,
      "my_kumiki info lists its configuration only: " + (p.stdout.strip().splitlines() or [""])[-1][:100])

r = recipe("r")
p = run(mine, "train", "--recipe", r, "--out", f"{work}/run", "--quiet")
check(p.returncode == 0, "my_kumiki train runs a my_model recipe" + ("" if p.returncode == 0 else ": " + p.stderr[-400:]))
check(f"starting my_model ({params} parameters)" in p.stderr + p.stdout,
      f"it trains my_model with the {params} parameters counted by hand")


def losses(run_dir):
    recs = [json.loads(line) for line in open(f"{run_dir}/log.jsonl")]
    return [(r["step"], r["loss"], r["lr"], r["grad_norm"]) for r in recs if r["type"] == "step"]


# Killed at step 10 and resumed from its step-8 checkpoint: the same losses and weights, bit for bit.
env = dict(os.environ, KUMIKI_CRASH_AT="step:10")
p = run(mine, "train", "--recipe", r, "--out", f"{work}/resumed", "--quiet", env=env)
check(p.returncode != 0 and os.path.isdir(f"{work}/resumed/checkpoints/step_000000008"),
      f"a run killed at step 10, after its step-8 checkpoint (exit {p.returncode})")
p = run(mine, "train", "--recipe", r, "--out", f"{work}/resumed", "--quiet")
check(p.returncode == 0, "and resumed" + ("" if p.returncode == 0 else ": " + p.stderr[-300:]))
check(losses(f"{work}/resumed") == losses(f"{work}/run") and len(losses(f"{work}/run")) == 12,
      "the resumed run logs the uninterrupted run's 12 steps exactly (loss, lr, gradient norm)")
a, _ = read_safetensors(f"{work}/run/checkpoints/step_000000012/model.safetensors")
b, meta = read_safetensors(f"{work}/resumed/checkpoints/step_000000012/model.safetensors")
check(a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), "and ends with bitwise-equal weights")
rec = json.loads(meta.get("kumiki_config", "{}"))
check(rec.get("name") == "my_model" and rec.get("hidden") == 128 and rec.get("ffn_hidden") == 352,
      "the checkpoint records its configuration (kumiki_config)")

p = run(mine, "eval", "--checkpoint", f"{work}/run", "--data-path", "text", "--samples", "16")
check(p.returncode == 0 and "perplexity" in p.stdout,
      "my_kumiki eval: " + (p.stdout.strip().splitlines() or [p.stderr[-200:]])[-1][:120])

p = run(mine, "export-hf", "--checkpoint", f"{work}/run", "--out", f"{work}/hf", "--dtype", "f32")
check(p.returncode == 0, "my_kumiki export-hf" + ("" if p.returncode == 0 else ": " + p.stderr[-300:]))
cfg = json.load(open(f"{work}/hf/config.json")) if p.returncode == 0 else {}
check((cfg.get("hidden_size"), cfg.get("intermediate_size"), cfg.get("num_hidden_layers"), cfg.get("num_attention_heads"),
       cfg.get("num_key_value_heads"), cfg.get("vocab_size")) == (128, 352, 3, 4, 2, 384),
      "config.json has my_model's shapes (vocab_size: the padded 384 rows, as kumiki exports)")
w, _ = read_safetensors(f"{work}/hf/model.safetensors") if p.returncode == 0 else ({}, {})
check(w.keys() == a.keys() and all((w[k] == a[k]).all() for k in a), "the export holds the checkpoint's weights exactly")

# Refusals, in the user's terms.
p = run(mine, "train", "--recipe", recipe("demo", model="demo"), "--out", f"{work}/demo", "--quiet")
check(p.returncode == 1 and "unknown model configuration 'demo' (known: my_model)" in p.stderr,
      "my_kumiki refuses a recipe naming kumiki's demo: " + p.stderr.strip()[:160])
p = run(kumiki, "export-hf", "--checkpoint", f"{work}/run", "--out", f"{work}/hf2")
check(p.returncode == 1 and "holds model 'my_model', a configuration this program does not know" in p.stderr,
      "kumiki refuses a my_model checkpoint: " + p.stderr.strip()[:200])
p = run(mine, "--version")
check(p.returncode == 0 and p.stdout.startswith("my_kumiki (kumiki "), "my_kumiki --version: " + p.stdout.strip())
_t.finish()
