"""Shared plumbing of kumiki's Python system tests: a fresh work directory and soft checks that
print `ok` / `FAIL` lines and set the exit status at the end.

    from kumiki_check import Checks
    t = Checks()                        # argv: KUMIKI_BINARY WORK_DIR; WORK_DIR is emptied
    t.check(cond, "what was expected")
    run = t.train_demo("data", steps=40)  # a `demo` model trained briefly on WORK_DIR/data (.bin/.idx)
    t.text_dataset("en", words, seed)   # WORK_DIR/en.bin/.idx from random sentences (bytes tokenizer)
    t.finish()                          # prints the count, exits 1 if any check failed
    write_indexed(prefix, docs)         # a small Megatron .bin/.idx dataset (uint16 tokens)
    rewrite_manifest_entry(ckpt, name)  # after editing a checkpoint file: its size and CRC-32C again
    read_safetensors(path)              # {name: numpy array} of a safetensors file (f32 / bf16 as f32)
    demo_weights(run, dtype)            # (weights as torch tensors, config) of a demo run's newest checkpoint,
                                        # for tests/parity/model_reference.py's model_loss
"""
import os
import shutil
import struct
import sys


class Checks:
    def __init__(self, argv=None):
        argv = sys.argv if argv is None else argv
        if len(argv) < 3:
            sys.exit(f"usage: {os.path.basename(argv[0])} KUMIKI_BINARY WORK_DIR")
        self.kumiki, self.work = argv[1], argv[2]
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        self.failures = []

    def check(self, ok, what):
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if not ok:
            self.failures.append(what)
        return ok

    def train_demo(self, data, steps, seq_len=64, seed=9, lr=3e-3):
        """Trains the `demo` configuration on dataset prefix WORK_DIR/<data> at a constant lr; returns
        the run directory (checked: training exits 0)."""
        import subprocess
        with open(f"{self.work}/train_demo.toml", "w") as f:
            f.write(f'model = "demo"\nseed = {seed}\nseq_len = {seq_len}\nglobal_batch = 8\nmicro_batch = 8\n'
                    f'[[stages]]\nname = "a"\ndata = ["{data}"]\nsteps = {steps}\n'
                    f'[stages.lr]\nlr_decay_style = "constant"\nlr = {lr}\n')
        run = f"{self.work}/run"
        p = subprocess.run([self.kumiki, "train", "--recipe", f"{self.work}/train_demo.toml", "--out", run, "--quiet"],
                           capture_output=True, text=True)
        self.check(p.returncode == 0, f"a demo model trains for {steps} steps" + ("" if p.returncode == 0 else ": " + p.stderr[-300:]))
        return run

    def text_dataset(self, name, words, seed, documents=300, max_words=60):
        """WORK_DIR/<name>.bin/.idx: `documents` random sentences of 5..max_words of `words`, one per
        paragraph, preprocessed by `kumiki preprocess` with the bytes tokenizer and an EOD per document;
        returns the prefix."""
        import random
        import subprocess
        rng = random.Random(seed)
        prefix = f"{self.work}/{name}"
        with open(prefix + ".txt", "w", encoding="utf-8") as f:
            for _ in range(documents):
                f.write(" ".join(rng.choice(words) for _ in range(rng.randint(5, max_words))) + ".\n\n")
        subprocess.run([self.kumiki, "preprocess", "--input", prefix + ".txt", "--tokenizer", "bytes", "--output-prefix",
                        prefix, "--append-eod", "--paragraphs", "--quiet"], check=True)
        return prefix

    def finish(self):
        print(f"{len(self.failures)} failure(s)")
        sys.exit(1 if self.failures else 0)


def write_indexed(prefix, docs):
    """A Megatron .bin/.idx pair (uint16 tokens, one sequence per document), written from the layout."""
    with open(prefix + ".bin", "wb") as f:
        for d in docs:
            f.write(struct.pack("<%dH" % len(d), *d))
    lengths = [len(d) for d in docs]
    pointers = [2 * sum(lengths[:i]) for i in range(len(docs))]
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, 8, len(docs), len(docs) + 1))
        f.write(struct.pack("<%di" % len(docs), *lengths))
        f.write(struct.pack("<%dq" % len(docs), *pointers))
        f.write(struct.pack("<%dq" % (len(docs) + 1), *range(len(docs) + 1)))


def crc32c(data):
    """CRC-32C (Castagnoli), bitwise: what kumiki's checkpoint manifests record."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def rewrite_manifest_entry(ckpt, name):
    """Records file `name` of checkpoint directory `ckpt` in its manifest again (size, CRC-32C)."""
    import json
    with open(os.path.join(ckpt, name), "rb") as f:
        body = f.read()
    path = os.path.join(ckpt, "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    manifest["files"][name] = {"bytes": len(body), "crc32c": f"{crc32c(body):08x}"}
    with open(path, "w") as f:
        f.write(json.dumps(manifest, indent=2) + "\n")


def read_safetensors(path):
    """{name: numpy float32 array} of a safetensors file holding F32 or BF16 tensors, and its metadata."""
    import json
    import numpy as np
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        if e["dtype"] == "F32":
            a = np.frombuffer(data[b:end], dtype="<f4")
        elif e["dtype"] == "BF16":
            a = (np.frombuffer(data[b:end], dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name} is {e['dtype']}")
        out[name] = a.reshape(e["shape"])
    return out, header.get("__metadata__", {})


# The `demo` configuration (include/kumiki/models/configs.hpp) as tests/parity/model_reference.py reads it.
DEMO_CONFIG = {"hidden": 256, "num_heads": 8, "num_query_groups": 4, "num_layers": 4, "rms_eps": 1e-5,
               "rope_base": 10000.0, "z_loss": 0.0}


def demo_weights(run, dtype="float32"):
    """The newest checkpoint of a `demo` run as {HF name: torch tensor of dtype}, and DEMO_CONFIG."""
    import glob
    import numpy as np
    import torch
    ckpt = sorted(glob.glob(f"{run}/checkpoints/step_*"))[-1]
    W, _ = read_safetensors(f"{ckpt}/model.safetensors")
    return {k: torch.from_numpy(np.array(v, dtype=dtype)) for k, v in W.items()}, DEMO_CONFIG
