#!/usr/bin/env python3
"""Every class of bad input to the `kumiki` program ends with a message a user can act on: exit
status 1, one `kumiki: error: ...` naming the file / flag / value in the user's terms, and no library
source path or internal check text (those only with --verbose). One case per class; each also checks
that the files the user gave are left as they were.

usage: cli_errors_test.py KUMIKI_BINARY WORK_DIR
"""
import hashlib
import os
import re
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kumiki_check import Checks, write_indexed  # noqa: E402

_t = Checks()
kumiki, work, check = _t.kumiki, _t.work, _t.check
LEAKS = (".hpp", ".cpp", "check failed", "/include/kumiki", "internal error")



def digest(paths):
    h = hashlib.sha256()
    for p in sorted(paths):
        for root, _, names in os.walk(p) if os.path.isdir(p) else [(os.path.dirname(p), [], [os.path.basename(p)])]:
            for n in sorted(names):
                with open(os.path.join(root, n), "rb") as f:
                    h.update(n.encode() + f.read())
    return h.hexdigest()


def expect_error(name, args, *needles, inputs=(), stdin=None):
    """Runs kumiki ARGS; requires exit 1, a single-line user message containing every needle, no leak
    of library internals, untouched inputs; then the same with --verbose shows where it was raised."""
    before = digest([p for p in inputs if os.path.exists(p)])
    r = subprocess.run([kumiki, *args], capture_output=True, text=True, input=stdin)
    err = r.stderr.strip().splitlines()
    msg = next((line for line in err if line.startswith("kumiki: error: ")), "")
    ok = check(r.returncode == 1, f"{name}: exit status 1 (got {r.returncode}; stderr {r.stderr.strip()[-300:]!r})")
    ok &= check(bool(msg) and all(n in msg for n in needles), f"{name}: message names {needles}: {msg!r}")
    ok &= check(not any(leak in r.stderr for leak in LEAKS), f"{name}: no library path or check text in {r.stderr.strip()!r}")
    check(digest([p for p in inputs if os.path.exists(p)]) == before, f"{name}: the inputs are unchanged")
    v = subprocess.run([kumiki, *args, "--verbose"], capture_output=True, text=True, input=stdin)
    check(v.returncode == 1 and re.search(r"\(raised at \S+\.(hpp|cpp):\d+\)", v.stderr) is not None,
          f"{name}: --verbose adds where it was raised ({v.stderr.strip().splitlines()[-1:]})")
    return ok


# --- a small trained checkpoint of the demo model, on byte tokens --------------------------------------
text = "".join(f"line {i} of a small corpus for the error tests.\n\n" for i in range(300))
with open(f"{work}/text.txt", "w") as f:
    f.write(text)
subprocess.run([kumiki, "preprocess", "--input", f"{work}/text.txt", "--tokenizer", "bytes", "--output-prefix",
                f"{work}/text", "--append-eod", "--paragraphs", "--quiet"], check=True)
write_indexed(f"{work}/tiny", [[1, 2, 3]])                      # 3 tokens: no sample of 64
write_indexed(f"{work}/wide", [[5] * 40 + [300] + [6] * 40] * 8)  # id 300: outside demo's 258
recipe = f"{work}/recipe.toml"
with open(recipe, "w") as f:
    f.write(f"""model = "demo"
seq_len = 64
global_batch = 2
micro_batch = 2

[[stages]]
name = "s"
data = [1.0, "{work}/text"]
steps = 2
checkpoint_interval = 2
[stages.lr]
lr_decay_style = "constant"
lr = 1e-3
""")
r = subprocess.run([kumiki, "train", "--recipe", recipe, "--out", f"{work}/run"], capture_output=True, text=True)
if not check(r.returncode == 0, f"a 2-step demo run trains ({r.stderr.strip()[-300:]})"):
    _t.finish()
run = f"{work}/run"

# --- kumiki eval ---------------------------------------------------------------------------------------
expect_error("eval --samples beyond one pass", ["eval", "--checkpoint", run, "--data-path", f"{work}/text", "--samples", "100000"],
             "--samples 100000", f"'{work}/text'", "omit --samples")
r = subprocess.run([kumiki, "eval", "--checkpoint", run, "--data-path", f"{work}/text", "--seq-len", "512"],
                   capture_output=True, text=True)
expect_error("eval --seq-len above the model's", ["eval", "--checkpoint", run, "--data-path", f"{work}/text", "--seq-len", "512"],
             "--seq-len 512", "'demo'", "256")
check(r.stdout == "", f"eval --seq-len 512 fails before printing anything (stdout {r.stdout!r})")
expect_error("eval of a missing dataset", ["eval", "--checkpoint", run, "--data-path", f"{work}/nothing"], f"{work}/nothing")
expect_error("eval of a dataset too small for one sample", ["eval", "--checkpoint", run, "--data-path", f"{work}/tiny"],
             f"'{work}/tiny'", "too few")
r = subprocess.run([kumiki, "eval", "--checkpoint", run, "--data-path", f"{work}/text", "--micro-batch", "7"],
                   capture_output=True, text=True)
tokens = os.path.getsize(f"{work}/text.bin") // 2
check(r.returncode == 0 and f" {(tokens - 1) // 64:>9}" in r.stdout and "[eval]" in r.stderr,
      f"eval without --samples makes one full pass ({(tokens - 1) // 64} samples) with progress lines: {r.stdout[-200:]!r}")

# --- data outside the model's vocabulary ------------------------------------------------------------------
bad_recipe = f"{work}/wide.toml"
with open(bad_recipe, "w") as f:
    f.write(open(recipe).read().replace(f'"{work}/text"', f'"{work}/wide"'))
expect_error("train on data outside the vocabulary", ["train", "--recipe", bad_recipe, "--out", f"{work}/wide_run"],
             "token id 300", f"dataset '{work}/wide'", "258", inputs=[bad_recipe, f"{work}/wide.bin"])
np_tokens = f"{work}/tokens.bin"
with open(np_tokens, "wb") as f:
    f.write(struct.pack("<9i", 1, 2, 3, 4, 999, 5, 6, 7, 8))
expect_error("dump with a token outside the vocabulary",
             ["dump", "--model", run, "--tokens", np_tokens, "--batch", "1", "--out", f"{work}/dump.safetensors"],
             "token id 999", inputs=[np_tokens])

# --- other commands -------------------------------------------------------------------------------------
with open(f"{work}/empty.jsonl", "w") as f:
    f.write('{"type": "eval", "loss": 1.0, "tokens": 5}\n')
expect_error("plot of a log without steps", ["plot", f"{work}/empty.jsonl", "--out", f"{work}/x.png"],
             f"'{work}/empty.jsonl'", "no training steps")
expect_error("export-hf of a directory that is no checkpoint", ["export-hf", "--checkpoint", work, "--out", f"{work}/hf"], work)
expect_error("import-hf of a directory without config.json", ["import-hf", "--model", f"{work}/run", "--out", f"{work}/imp"],
             "config.json")
expect_error("preprocess of a missing input", ["preprocess", "--input", f"{work}/missing.txt", "--tokenizer", "bytes",
                                               "--output-prefix", f"{work}/out"], f"{work}/missing.txt")
expect_error("upcycle into an incompatible model", ["upcycle", "--checkpoint", run, "--model", "tiny_moe_test",
                                                    "--out", f"{work}/up"], "'demo'", "'tiny_moe_test'")
_t.finish()
