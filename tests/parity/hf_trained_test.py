#!/usr/bin/python3
"""A trained model evaluates in Hugging Face's terms exactly as in kumiki (issue: the padded vocabulary).

Trains the `demo` model (byte tokens: 258 real ids padded to 384) for 40 steps on byte text, exports
it with `kumiki export-hf`, and evaluates held-out tokens twice: `kumiki dump` (kumiki's loss) and the
independent PyTorch Llama of hf_reference.py computing the cross-entropy over all `vocab_size` logits
as transformers' LlamaForCausalLM does. The losses must agree to 1e-5 (relative), and the probability
the exported model gives the padded (fake) ids must be small: training pushes them down. Before the
fix kumiki's softmax ignored the padded rows (loss 3.772 in kumiki, 3.920 in transformers, 13% of the
probability on fake ids for such a model).

usage: hf_trained_test.py KUMIKI_BINARY WORK_DIR
"""
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_reference import model_loss, read_model_dir, read_safetensors, rel  # noqa: E402

kumiki, work = sys.argv[1], Path(sys.argv[2])
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)


def run(*a):
    r = subprocess.run([str(x) for x in a], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(map(str, a))}\n{r.stdout}{r.stderr}")
    return r.stdout + r.stderr


rng = random.Random(3)
words = ("the river town wakes slowly while fishermen untie their boats and the bakery pulls bread from "
         "the oven as a tokenizer turns text into numbers and back again").split()
text = "".join(" ".join(rng.choice(words) for _ in range(rng.randint(8, 30))) + ".\n\n" for _ in range(1500))
(work / "train.txt").write_text(text)
run(kumiki, "preprocess", "--input", work / "train.txt", "--tokenizer", "bytes", "--output-prefix", work / "train",
    "--append-eod", "--paragraphs", "--quiet")
(work / "recipe.toml").write_text(f"""model = "demo"
seed = 11
seq_len = 128
global_batch = 8
micro_batch = 4

[[stages]]
name = "train"
data = [1.0, "{work / 'train'}"]
steps = 40
checkpoint_interval = 40
[stages.lr]
lr_decay_style = "constant"
lr = 3e-3
lr_warmup_iters = 5
""")
run(kumiki, "train", "--recipe", work / "recipe.toml", "--out", work / "run")
run(kumiki, "export-hf", "--checkpoint", work / "run", "--out", work / "hf", "--dtype", "f32")
cfg = json.loads((work / "hf" / "config.json").read_text())
REAL, PADDED = 258, cfg["vocab_size"]
assert PADDED == 384, cfg

held = [b for b in " ".join(rng.choice(words) for _ in range(200)).encode()]
B, T = 2, 128
toks = np.array([held[i * T:(i + 1) * T + 1] for i in range(B)], dtype=np.int32)
np.save(work / "tokens.npy", toks)
run(kumiki, "dump", "--model", work / "hf", "--tokens", work / "tokens.npy", "--out", work / "dump.safetensors")
dump, _ = read_safetensors(work / "dump.safetensors")

W = read_model_dir(work / "hf")
P = {k: torch.tensor(np.array(v)) for k, v in W.items()}
tokens = torch.from_numpy(toks[:, :T].astype(np.int64))
targets = torch.from_numpy(toks[:, 1:].astype(np.int64))
with torch.no_grad():
    loss, logits, _ = model_loss(P, cfg, tokens, targets, REAL)
    p = torch.softmax(logits.double(), dim=-1)
fake = p[..., REAL:].sum(-1)  # probability on ids that are no token
e_loss = rel(dump["loss"].reshape(()), loss)
print(f"loss: kumiki {float(dump['loss'][0]):.6f}, Hugging Face semantics {float(loss):.6f}, rel err {e_loss:.2e}")
print(f"probability on the {PADDED - REAL} padded ids: mean {float(fake.mean()):.2e}, max {float(fake.max()):.2e}")
ok = e_loss <= 1e-5 and float(fake.mean()) < 0.01 and float(fake.max()) < 0.25  # before: mean 13%, max 34%
print("OK" if ok else "FAILED")
sys.exit(0 if ok else 1)
