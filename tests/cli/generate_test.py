#!/usr/bin/env python3
"""`kumiki generate` on a briefly trained `demo` model (byte tokens): greedy continuations of prompts of
different lengths, generated together with the key/value cache, equal an independent PyTorch greedy
decode of the same weights (tests/parity/model_reference.py's model, full recomputation every step)
token for token; a seed reproduces sampled text exactly and another seed changes it; stop strings,
streaming of one prompt, the JSON lines of several; errors in the user's terms.

usage: generate_test.py KUMIKI_BINARY WORK_DIR
"""
import json
import os
import random
import subprocess
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, ".."))
sys.path.insert(0, os.path.join(here, "..", "parity"))
from kumiki_check import Checks, demo_weights, write_indexed  # noqa: E402
from model_reference import model_loss  # noqa: E402

_t = Checks()
kumiki, work, check = _t.kumiki, _t.work, _t.check

text = ("Debian is a free operating system. The Debian project packages free software. "
        "A package is installed with apt. ").encode()
rng = random.Random(3)
docs = [list(text[s:s + rng.randint(40, 120)]) for s in (rng.randrange(len(text) - 40) for _ in range(400))]
write_indexed(f"{work}/text", [d for d in docs if d])
run = _t.train_demo("text", steps=40)

prompts = ["Debian is a", "A", "The Debian project packages free"]
with open(f"{work}/prompts.jsonl", "w") as f:
    for s in prompts:
        f.write(json.dumps({"prompt": s}) + "\n")
N = 24
p = subprocess.run([kumiki, "generate", "--model", run, "--prompts", f"{work}/prompts.jsonl",
                    "--max-new-tokens", str(N), "--out", f"{work}/greedy.jsonl"], capture_output=True, text=True)
check(p.returncode == 0, "kumiki generate (greedy, three prompts) exits 0" + ("" if p.returncode == 0 else ": " + p.stderr[-300:]))
got = [json.loads(line) for line in open(f"{work}/greedy.jsonl")]
check([g["prompt"] for g in got] == prompts, "one JSON line per prompt, in order")
print("\n".join(repr(g["prompt"] + g["completion"]) for g in got))

# The same weights in PyTorch, greedy by full recomputation (no cache), over the real vocabulary.
P, cfg = demo_weights(run)
with torch.no_grad():
    for g, s in zip(got, prompts):
        ids = list(s.encode())
        out = []
        for _ in range(N):
            t = torch.tensor([ids])
            _, logits = model_loss(P, cfg, t, torch.zeros_like(t), None)
            nxt = int(torch.argmax(logits[0, -1, :258]))
            out.append(nxt)
            ids.append(nxt)
            if nxt == 256:  # end of document: generation stops after it
                break
        want = bytes(x for x in out if x < 256).decode("utf-8", errors="replace")
        check(g["completion"] == want and g["tokens"] == len(out),
              f"{s!r}: kumiki's cached greedy continuation equals PyTorch's token for token ({len(out)} tokens)")

# Sampling: the seed reproduces, another seed changes the text.
def sample(seed, extra=()):
    r = subprocess.run([kumiki, "generate", "--model", run, "--prompt", "Debian", "--max-new-tokens", "40",
                        "--temperature", "1.0", "--top-k", "20", "--top-p", "0.95", "--seed", str(seed), *extra],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"sampling with seed {seed} exits 0" + ("" if r.returncode == 0 else ": " + r.stderr[-200:]))
    return r.stdout
a, b, c = sample(7), sample(7), sample(8)
check(a == b and a != c, "the same seed gives the same text, another seed another")
check(a.startswith("Debian"), "one prompt streams to stdout, starting with the prompt")

# Stop strings end a sequence before them.
r = subprocess.run([kumiki, "generate", "--model", run, "--prompt", "Debian is", "--prompt", "A package",
                    "--max-new-tokens", "40", "--stop", " "], capture_output=True, text=True)
lines = [json.loads(x) for x in r.stdout.splitlines()]
check(r.returncode == 0 and len(lines) == 2 and all(" " not in x["completion"] for x in lines),
      f"--stop ' ' cuts each completion before its first space: {[x['completion'] for x in lines]}")
check(any(x["stop"] == "stop string" for x in lines), "and says why it stopped")

# Bad input.
for args, message in (([], "give the prompts as --prompt TEXT or as --prompts FILE.jsonl"),
                      (["--prompt", "x", "--top-p", "0"], "--top-p must lie in (0, 1]"),
                      (["--prompt", "x", "--temperature", "-1"], "--temperature must be >= 0")):
    r = subprocess.run([kumiki, "generate", "--model", run, *args], capture_output=True, text=True)
    check(r.returncode == 1 and message in r.stderr, f"refused: {r.stderr.strip()[:120]}")
with open(f"{work}/bad.jsonl", "w") as f:
    f.write('{"prompt": "fine"}\n{"text": "no prompt key"}\n')
r = subprocess.run([kumiki, "generate", "--model", run, "--prompts", f"{work}/bad.jsonl"], capture_output=True, text=True)
check(r.returncode == 1 and "bad.jsonl' line 2: expected an object with a string \"prompt\"" in r.stderr,
      f"refused: {r.stderr.strip()[:140]}")

_t.finish()
