#!/usr/bin/env python3
"""`kumiki soup` (train/soup.hpp): three checkpoints of `tiny_test` trained from three seeds are
averaged uniformly and with weights, in f32 and in bf16; every souped weight equals the stated
arithmetic recomputed here with numpy, bit for bit. Checkpoints of different models or shapes are
refused naming the first difference. The soup evaluates, exports and trains like any checkpoint.

usage: soup_test.py KUMIKI_BINARY WORK_DIR
"""
import os
import random
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kumiki_check import Checks, read_safetensors, rewrite_manifest_entry, write_indexed  # noqa: E402

_t = Checks()
kumiki, work, check = _t.kumiki, _t.work, _t.check

rng = random.Random(3)
write_indexed(f"{work}/data", [[rng.randrange(1, 50) for _ in range(rng.randint(8, 80))] for _ in range(200)])


def recipe(name, seed, model="tiny_test"):
    path = f"{work}/{name}.toml"
    with open(path, "w") as f:
        f.write(f"""
model = "{model}"
seed = {seed}
seq_len = 16
global_batch = 4
micro_batch = 4

[[stages]]
name = "s"
data = ["data"]
steps = 6
[stages.lr]
lr_decay_style = "constant"
lr = 1e-2
""")
    return path


def run(*args, expect=0):
    p = subprocess.run([kumiki, *args], capture_output=True, text=True)
    if p.returncode != expect:
        print(p.stdout, p.stderr)
    return p


seeds = (42, 666, 42069)  # OLMo 2's and LLM-jp's three seeds
runs = [f"{work}/seed{s}" for s in seeds]
for s, out in zip(seeds, runs):
    check(run("train", "--recipe", recipe(f"seed{s}", s), "--out", out, "--quiet").returncode == 0, f"seed {s} trains")
ckpts = [f"{r}/checkpoints/step_000000006" for r in runs]
inputs = [read_safetensors(f"{c}/model.safetensors")[0] for c in ckpts]


def bf16(a):
    """Round-to-nearest-even to bfloat16, as float32 (kumiki's bf16, no NaNs here)."""
    bits = a.astype(np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return rounded.view(np.float32)


def expected(weights, dtype):
    w = [x / sum(weights) for x in weights]
    out = {}
    for name in inputs[0]:
        acc = np.zeros(inputs[0][name].shape, dtype=np.float64)
        for k, x in enumerate(inputs):
            v = bf16(x[name]) if dtype == "bf16" else x[name]
            acc = acc + w[k] * v.astype(np.float64)
        f = acc.astype(np.float32)
        out[name] = bf16(f) if dtype == "bf16" else f
    return out


for weights, dtype in (([1, 1, 1], "f32"), ([1, 2, 3], "f32"), ([1, 1, 1], "bf16"), ([0.5, 0.25, 0.25], "bf16")):
    out = f"{work}/soup_{dtype}_{'_'.join(map(str, weights))}"
    args = ["soup", *runs, "--dtype", dtype, "--out", out]
    if weights != [1, 1, 1]:
        args += ["--weights", *map(str, weights)]
    p = run(*args)
    check(p.returncode == 0, f"soup {dtype} weights {weights}: " + p.stdout.strip().splitlines()[-1])
    got, meta = read_safetensors(f"{out}/step_000000000/model.safetensors")
    want = expected(weights, dtype)
    same = all(np.array_equal(got[n].view(np.uint32), want[n].view(np.uint32)) for n in want) and got.keys() == want.keys()
    differs = sum(int(np.count_nonzero(got[n] != inputs[0][n])) for n in want)
    check(same and differs > 0, f"{dtype} soup, weights {weights}: every weight bit for bit the stated arithmetic "
                                f"({sum(a.size for a in want.values())} weights)")
    check(meta.get("kumiki_soup_dtype") == dtype and meta.get("kumiki_soup_inputs", "").count(";") == 2,
          "the soup records its inputs, weights and dtype in the file's metadata")

soup = f"{work}/soup_f32_1_1_1"
p = run("eval", "--checkpoint", soup, "--data-path", f"{work}/data", "--samples", "8")
check(p.returncode == 0 and "perplexity" in p.stdout, "the soup evaluates: " + p.stdout.strip().splitlines()[-1][:120])
p = run("export-hf", "--checkpoint", soup, "--out", f"{work}/soup_hf", "--dtype", "f32")
check(p.returncode == 0 and os.path.exists(f"{work}/soup_hf/config.json"), "the soup exports to Hugging Face")
check(run("train", "--recipe", recipe("cont", 7), "--out", f"{work}/cont", "--init-from", soup, "--quiet").returncode == 0,
      "training continues from the soup (--init-from)")

# Refusals, each naming the first difference.
other = f"{work}/other"
run("train", "--recipe", recipe("other", 1, model="tiny_moe_test"), "--out", other, "--quiet")
p = run("soup", runs[0], other, "--out", f"{work}/bad1", expect=1)
check(p.returncode == 1 and "holds a 'tiny_moe_test' model but checkpoint" in p.stderr and "a 'tiny_test' model" in p.stderr,
      "checkpoints of different models are refused: " + p.stderr.strip()[:200])
# Same model name, one tensor of another shape: a checkpoint whose model file was rewritten.
odd = f"{work}/odd/step_000000006"
shutil.copytree(ckpts[1], odd)
with open(f"{odd}/model.safetensors", "rb") as f:
    raw = bytearray(f.read())
n = int.from_bytes(raw[:8], "little")
header = raw[8:8 + n].decode()
name = "model.norm.weight"
at = header.index(f'"{name}"')
old = header[at:header.index("}", at)]
new = old.replace('"shape":[32]', '"shape":[2,16]')
check(new != old, f"the test found the shape of {name} to change")
body = header.replace(old, new).encode()
raw[0:8 + n] = len(body).to_bytes(8, "little") + body
with open(f"{odd}/model.safetensors", "wb") as f:
    f.write(raw)
rewrite_manifest_entry(odd, "model.safetensors")
p = run("soup", runs[0], odd, "--out", f"{work}/bad2", expect=1)
check(p.returncode == 1 and f"tensor '{name}' is F32 [2, 16] in checkpoint" in p.stderr,
      "a tensor of another shape is refused, named: " + p.stderr.strip()[:200])
p = run("soup", runs[0], runs[1], "--weights", "1", "--out", f"{work}/bad3", expect=1)
check(p.returncode == 1 and "--weights gives 1 weights for 2 checkpoints" in p.stderr, "a wrong number of weights is refused")
p = run("soup", runs[0], runs[1], "--weights", "0", "0", "--out", f"{work}/bad4", expect=1)
check(p.returncode == 1 and "--weights are all 0" in p.stderr, "all-zero weights are refused")
check(not any(os.path.exists(f"{work}/bad{i}/step_000000000") for i in range(1, 5)), "a refused soup writes nothing")

_t.finish()
