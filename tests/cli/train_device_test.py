"""kumiki train --device and --dry-run (issue 14), on any machine:
  - the GPU plan of LLM-jp-4 8B at sequence 4096, micro-batch 1 (examples/llmjp4's pretraining recipe):
    every row of the table adds up to its total, the state is 16 bytes a parameter (bf16 weights,
    their low halves, fp32 gradients, two fp32 moments); with every activation kept it does not fit an
    H200 (exit 2, and the advice names --light-recompute); with --light-recompute (no ln1 and no SwiGLU
    output kept: 4.5 GiB less) or --recompute it fits (exit 0);
  - LLM-jp-4 1.3B at sequence 4096, micro-batch 8 fits with every activation kept;
  - the LM head's loss chunk on a GPU: the largest of 4096, 2048, 1024, 512 that fits (the next larger
    one does not), its fp32 scratch exactly chunk x padded vocabulary x 4 bytes; --loss-chunk sets it;
    the CPU keeps 256;
  - --device cpu --dry-run plans f32 on the host; a dry run reads no data;
  - --device cuda without a GPU (or in a program built without CUDA) is refused with the reason and
    exit 1, before any work; --device auto trains on the CPU there and says so; a bad --device is refused.
usage: train_device_test.py KUMIKI WORK_DIR"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kumiki_check import Checks  # noqa: E402

t = Checks()
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
recipes = os.path.join(root, "examples", "llmjp4")


def train(*args):
    return subprocess.run([t.kumiki, "train", "--out", os.path.join(t.work, "run"), *args], capture_output=True, text=True)


def this_run(text):
    """{row name: bytes} of the '## This run' table, and the device's bytes."""
    part = text[text.index("## This run"):]
    rows = {m.group(1).strip(): int(m.group(2).replace(",", "")) for m in re.finditer(r"^\| ([^|]+) \| \**([\d,]+)\** \|", part, re.M)}
    return rows


def total_params(text):
    return int(re.search(r"^\| \*\*total\*\* \| \| \*\*([\d,]+)\*\* \|", text, re.M).group(1).replace(",", ""))


def chunk_of(text):
    m = re.search(r"^LM-head loss chunk: (\d+) tokens", text, re.M)
    return int(m.group(1)) if m else None


r8 = os.path.join(recipes, "llmjp4_8b_pretrain.toml")
p = train("--recipe", r8, "--device", "cuda", "--dry-run")
t.check(p.returncode == 2 and "Does not fit" in p.stdout and "with --light-recompute it fits" in p.stdout,
        f"8B, seq 4096, micro-batch 1, every activation kept: does not fit an H200, and the advice is the "
        f"cheapest recomputation that fits (exit {p.returncode})")
rows = this_run(p.stdout)
n = total_params(p.stdout)
state = sum(b for name, b in rows.items() if name.startswith(("parameters", "master weights' low halves", "gradients", "AdamW")))
buffers = {k: v for k, v in rows.items() if k != "**total**" and not k.endswith("memory")}
total = rows.get("**total**")
t.check(total == sum(buffers.values()), f"8B: the rows add up to the total ({total / 2**30:.2f} GiB)")
t.check(abs(state / n - 16) < 0.01, f"8B: {state / n:.4f} bytes a parameter of state ({n:,} parameters): 2 + 2 + 4 + 8")
t.check(any("cuBLASLt workspace" in k for k in rows) and any(k.startswith("activations (1 x 4096)") for k in rows),
        "8B: the table has the activations and cuBLASLt's workspace")
p = train("--recipe", r8, "--device", "cuda", "--dry-run", "--recompute")
rows_rc = this_run(p.stdout)
t.check(p.returncode == 0 and "Fits." in p.stdout and rows_rc["**total**"] <= 141e9,
        f"8B with --recompute fits one H200: {rows_rc['**total**'] / 2**30:.2f} GiB (exit {p.returncode})")

# Light recomputation: neither ln1 (N x C) nor the SwiGLU output (N x F) of the 32 layers kept, bf16:
# LLM-jp-4 8B's hidden 4096 and ffn 14336 at N = 4096 tokens; then it fits with every other activation.
p = train("--recipe", r8, "--device", "cuda", "--dry-run", "--light-recompute", "--loss-chunk", "256")
rows_light = this_run(p.stdout)
act = lambda r: next(v for k, v in r.items() if k.startswith("activations"))  # noqa: E731
saved = act(rows) - act(rows_light)
t.check(saved == 32 * 4096 * (4096 + 14336) * 2, f"8B light recompute keeps {saved / 2**30:.2f} GiB fewer activations: "
        "32 layers x 4096 tokens x (4096 + 14336) x 2 bytes")
t.check(p.returncode == 0 and "Fits." in p.stdout and any("light recompute" in k for k in rows_light),
        f"8B with --light-recompute fits one H200: {rows_light['**total**'] / 2**30:.2f} GiB (exit {p.returncode})")

# The loss chunk a GPU run takes by default: the largest that fits, then its scratch is the only change.
vocab_bytes = 99584 * 4  # LLM-jp-4's padded vocabulary, fp32 logits
p = train("--recipe", r8, "--device", "cuda", "--dry-run", "--light-recompute")
chunk = chunk_of(p.stdout)
rows_auto = this_run(p.stdout)
t.check(p.returncode == 0 and chunk in (4096, 2048, 1024, 512) and rows_auto["**total**"] <= 141e9,
        f"8B with --light-recompute: the default loss chunk is {chunk} tokens and the run fits "
        f"({rows_auto['**total**'] / 2**30:.2f} GiB, exit {p.returncode})")
t.check(act(rows_auto) - act(rows_light) == (chunk - 256) * vocab_bytes,
        f"8B: a {chunk}-token chunk adds exactly ({chunk} - 256) x 99584 x 4 bytes of fp32 logits scratch")
if chunk is not None and chunk < 4096:
    p = train("--recipe", r8, "--device", "cuda", "--dry-run", "--light-recompute", "--loss-chunk", str(2 * chunk))
    t.check(p.returncode == 2 and "Does not fit" in p.stdout and chunk_of(p.stdout) == 2 * chunk,
            f"8B: the next larger chunk ({2 * chunk}, given with --loss-chunk) does not fit (exit {p.returncode})")
p = train("--recipe", r8, "--device", "cuda", "--dry-run", "--loss-chunk", "0")
t.check(p.returncode != 0 and "--loss-chunk" in p.stderr, f"--loss-chunk 0 is refused (exit {p.returncode})")

# 1.3B at micro-batch 8: the recipe with its micro-batch changed, and no data on disk (a dry run reads none).
text = open(os.path.join(recipes, "llmjp4_1_3b_pretrain.toml")).read()
text = re.sub(r"^micro_batch = \d+", "micro_batch = 8", text, flags=re.M)
r13 = os.path.join(t.work, "llmjp4_1_3b_mb8.toml")
open(r13, "w").write(text)
p = train("--recipe", r13, "--device", "cuda", "--dry-run")
rows = this_run(p.stdout) if "## This run" in p.stdout else {}
t.check(p.returncode == 0 and "Fits." in p.stdout and any(k.startswith("activations (8 x 4096)") for k in rows),
        f"1.3B, seq 4096, micro-batch 8, every activation kept: fits ({rows.get('**total**', 0) / 2**30:.2f} GiB, exit {p.returncode})"
        + ("" if p.returncode == 0 else ": " + p.stderr[-300:]))
t.check(chunk_of(p.stdout) == 4096, f"1.3B, micro-batch 8: the loss chunk is 4096 tokens ({chunk_of(p.stdout)})")

p = train("--recipe", r13, "--device", "cpu", "--dry-run")
t.check(p.returncode in (0, 2) and "buffer (8 x 4096, cpu, f32)" in p.stdout and "parameters (f32)" in p.stdout,
        f"--device cpu --dry-run plans f32 on the host (exit {p.returncode})")
t.check(chunk_of(p.stdout) == 256, f"--device cpu keeps the 256-token loss chunk ({chunk_of(p.stdout)})")

# Without a GPU (this machine): --device cuda is refused before any work, --device auto runs on the CPU.
t.text_dataset("en", "a small corpus of words to train on".split(), 5, documents=40)
tiny = os.path.join(t.work, "tiny.toml")
open(tiny, "w").write('model = "demo"\nseq_len = 16\nglobal_batch = 2\nmicro_batch = 2\n[[stages]]\nname = "a"\n'
                      f'data = ["{t.work}/en"]\nsteps = 2\n[stages.lr]\nlr_decay_style = "constant"\nlr = 1e-3\n')
probe = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True) if os.path.exists("/usr/bin/nvidia-smi") else None
if probe is None or probe.returncode != 0:
    p = train("--recipe", tiny, "--device", "cuda", "--quiet")
    why = "no CUDA device" in p.stderr or "built without CUDA" in p.stderr
    t.check(p.returncode == 1 and why and not os.path.exists(os.path.join(t.work, "run", "log.jsonl")),
            f"--device cuda without a GPU: refused, nothing written ({p.stderr.strip().splitlines()[-1][:140]})")
    p = train("--recipe", tiny, "--quiet")
    t.check(p.returncode == 0 and "kumiki: device: cpu" in p.stderr, "--device auto without a GPU trains on the CPU and says so")
else:
    print("(a GPU is visible: the no-GPU checks are skipped; tests/cuda/train_gpu_test.py trains on it)")
p = train("--recipe", tiny, "--device", "tpu")
t.check(p.returncode != 0 and "tpu" in p.stderr, "--device tpu: refused")
t.finish()
