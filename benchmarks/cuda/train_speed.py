#!/usr/bin/env python3
"""kumiki's training speed on one GPU, for scripts/gpu-check's speed table beside PyTorch's
(benchmarks/cuda/hf_train_speed.py). Three commands:

  train_speed.py data --kumiki BIN --out PREFIX [--mb 4]
      a few MB of generated text (English and Japanese words) as a byte-level Megatron dataset
      (`kumiki preprocess --tokenizer bytes`): the GPU machine has no corpus, and speed does not
      depend on which tokens are read.
  train_speed.py kumiki --kumiki BIN --recipe R --data PREFIX --work DIR --steps N --skip K
                        --deadline S --json OUT
      `kumiki train --device cuda` of a speed recipe (benchmarks/cuda/recipes/): first its --dry-run
      (exit 2: the plan does not fit the GPU, reported as "fits": false, unless the plan says that it
      fits with --light-recompute or --recompute: then the run recomputes so, and says so), then N steps, stopped by
      KUMIKI_CRASH_AT right after step N so that no checkpoint is written (the 8B's would be 94 GB),
      or at S seconds. tokens/s and MFU are the medians of the log's steps after the first K; the
      peak memory is nvidia-smi's, polled every 0.2 s.
  train_speed.py watch --json OUT -- COMMAND...
      runs COMMAND (hf_train_speed.py ... --json OUT) with the same nvidia-smi polling and adds its
      peak to OUT: one memory measure for both columns of the table. Exits with COMMAND's status.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time


class GpuMemory:
    """Peak of nvidia-smi's memory.used over a run, less what was in use before it (bytes)."""

    def __init__(self):
        self.base = self.peak = None
        self.proc = None
        if not shutil.which("nvidia-smi"):
            return
        gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or "0"
        cmd = ["nvidia-smi", f"--id={gpu}", "--query-gpu=memory.used", "--format=csv,noheader,nounits"]
        try:
            self.base = float(subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.split()[0])
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            return
        self.peak = self.base
        self.proc = subprocess.Popen(cmd + ["-lms", "200"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.peak = max(self.peak, float(line.strip()))
            except ValueError:
                pass

    def stop(self):
        """The peak above the baseline in bytes (None without nvidia-smi)."""
        if self.proc is None:
            return None
        time.sleep(0.3)  # one more reading after the run
        self.proc.terminate()
        self.proc.wait()
        return int((self.peak - self.base) * 2 ** 20)


def write_json(path, report):
    text = json.dumps(report, indent=1)
    print(text)
    with open(path, "w") as f:
        f.write(text + "\n")


def cmd_data(a):
    """Paragraphs of random words; --mb megabytes of UTF-8 text, preprocessed with the bytes tokenizer."""
    words = ("the model reads data and learns to predict the next token of each text while the optimizer "
             "moves every weight a little 日本語 の 文章 を 読んで 次 の 単語 を 予測 する モデル です").split()
    rng = random.Random(1234)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    size = 0
    with open(a.out + ".txt", "w", encoding="utf-8") as f:
        while size < a.mb * 2 ** 20:
            para = " ".join(rng.choice(words) for _ in range(rng.randint(50, 400))) + ".\n\n"
            size += len(para.encode())
            f.write(para)
    subprocess.run([a.kumiki, "preprocess", "--input", a.out + ".txt", "--tokenizer", "bytes", "--output-prefix", a.out,
                    "--append-eod", "--paragraphs", "--quiet"], check=True)
    print(f"train_speed: {size / 2 ** 20:.1f} MiB of text in {a.out}.bin/.idx")
    return 0


def recipe_keys(path):
    """The speed recipe's top-level numbers and names, and its first `data` prefix: a few regular
    expressions rather than tomllib, which the GPU machine's Python (before 3.11) may lack."""
    with open(path) as f:
        text = f.read()
    keys = {k: v.strip('"') for k, v in re.findall(r'^(\w+)\s*=\s*("[^"]*"|\d+)', text, re.M)}
    keys["data"] = re.search(r'^data\s*=\s*\[.*"([^"]+)"\s*\]', text, re.M).group(1)
    return keys


def step_records(path):
    try:
        with open(path) as f:
            return [r for r in map(json.loads, f) if r.get("type") == "step"]
    except FileNotFoundError:
        return []


def no_gpu(text):
    """Whether kumiki says that it cannot train on a GPU here; prints the reason as a skip's last line."""
    why = next((w for w in ("no CUDA device", "built without CUDA") if w in text), None)
    if why:
        print(f"skipped: kumiki train --device cuda: {why}")
    return why is not None


def cmd_kumiki(a):
    recipe = recipe_keys(a.recipe)
    report = {"framework": "kumiki", "model": recipe["model"], "micro_batch": int(recipe["micro_batch"]),
              "global_batch": int(recipe["global_batch"]), "seq": int(recipe["seq_len"]), "recipe": os.path.basename(a.recipe)}
    # The recipe's data prefix is relative to the recipe: a copy beside links to the generated data.
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    shutil.copy(a.recipe, os.path.join(a.work, "recipe.toml"))
    data = recipe["data"]
    for ext in (".bin", ".idx"):
        os.symlink(os.path.abspath(a.data + ext), os.path.join(a.work, data + ext))
    train = [a.kumiki, "train", "--recipe", os.path.join(a.work, "recipe.toml"), "--out", os.path.join(a.work, "run"),
             "--device", "cuda", "--quiet"]

    plan = subprocess.run(train + ["--dry-run"], capture_output=True, text=True)
    if no_gpu(plan.stderr):
        return 77
    verdict = (plan.stdout.strip().splitlines() or ["?"])[-1]
    report.update(plan=verdict, recompute=False)
    for flag in ("--light-recompute", "--recompute"):  # the plan's own advice: the cheapest that fits
        if plan.returncode == 2 and f"with {flag} it fits" in verdict:
            train.append(flag)
            report["recompute"] = flag.lstrip("-")
            plan = subprocess.run(train + ["--dry-run"], capture_output=True, text=True)
            break
    if plan.returncode == 2:  # kumiki's own plan says it does not fit: nothing to run
        report.update(fits=False, error=f"kumiki train --dry-run: {verdict}")
        write_json(a.json, report)
        return 0
    if plan.returncode != 0:
        print(plan.stdout + plan.stderr, file=sys.stderr)
        report["error"] = f"kumiki train --dry-run exited {plan.returncode}: " + \
            ((plan.stderr or plan.stdout).strip().splitlines() or ["?"])[-1][:400]
        write_json(a.json, report)
        return 1
    chunk = re.search(r"^LM-head loss chunk: (\d+)", plan.stdout, re.M)  # the run's own choice
    report["loss_chunk"] = int(chunk.group(1)) if chunk else None

    log = os.path.join(a.work, "run", "log.jsonl")
    env = dict(os.environ, KUMIKI_CRASH_AT=f"step:{a.steps}")
    memory = GpuMemory()
    t0 = time.time()
    with open(os.path.join(a.work, "train.txt"), "w") as out:
        p = subprocess.Popen(train, env=env, stdout=out, stderr=subprocess.STDOUT)
        while p.poll() is None and time.time() - t0 < a.deadline:
            time.sleep(0.2)
        stopped = p.poll() is None
        if stopped:
            p.kill()
        p.wait()
    report["peak_memory_bytes"] = memory.stop()
    report["wall_s"] = time.time() - t0
    with open(os.path.join(a.work, "train.txt"), errors="replace") as f:
        text = f.read()
    print(text[-3000:])
    report["device"] = next((x for x in text.splitlines() if x.startswith("kumiki: device:")), "?")
    steps = step_records(log)
    if not steps and no_gpu(text):  # --dry-run plans for an H200 where none is visible; the run needs one
        return 77
    timed = [s for s in steps if s["step"] >= a.skip]
    # The expected end: killed by its own KUMIKI_CRASH_AT after step N (SIGKILL), or the deadline.
    expected = p.returncode in (0, -signal.SIGKILL)
    if not timed:
        if "out of memory" in text.lower():
            report.update(fits=False, error=next(x for x in text.splitlines() if "out of memory" in x.lower())[:400])
            write_json(a.json, report)
            return 0
        why = f"{len(steps)} steps logged in {report['wall_s']:.0f} s (exit {p.returncode}), none after the first {a.skip}"
        print(f"train_speed: {why}", file=sys.stderr)
        last = (text.strip().splitlines() or [""])[-1][:300]
        report["error"] = f"{why}{': ' + last if last else ''}"
        write_json(a.json, report)
        return 1
    report.update(fits=True, steps_logged=len(steps), steps_timed=len(timed), stopped_at_deadline=stopped,
                  exit=p.returncode, tokens_per_s=statistics.median(s["tokens_per_s"] for s in timed),
                  mfu=statistics.median(s["mfu"] for s in timed), step_s_median=statistics.median(
                      report["global_batch"] * report["seq"] / s["tokens_per_s"] for s in timed),
                  first_step_s=report["global_batch"] * report["seq"] / steps[0]["tokens_per_s"],
                  losses=[s["loss"] for s in steps], peak_rss_mb=max(s.get("peak_rss_mb", 0) for s in steps),
                  # kumiki's own count of its device buffers (log.jsonl), beside nvidia-smi's peak
                  peak_device_mb=max(s.get("peak_device_mb", 0) for s in steps))
    shutil.copy(log, a.json + ".log.jsonl")
    write_json(a.json, report)
    return 0 if expected or stopped else 1


def cmd_watch(a):
    if a.command[:1] == ["--"]:
        a.command = a.command[1:]
    memory = GpuMemory()
    rc = subprocess.run(a.command).returncode
    peak = memory.stop()
    if os.path.exists(a.json):
        with open(a.json) as f:
            report = json.load(f)
        report["peak_memory_bytes_allocated"] = report.get("peak_memory_bytes")
        report["peak_memory_bytes"] = peak  # nvidia-smi's, as for kumiki
        write_json(a.json, report)
    return rc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data")
    d.add_argument("--kumiki", required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--mb", type=float, default=4)
    k = sub.add_parser("kumiki")
    for opt in ("--kumiki", "--recipe", "--data", "--work", "--json"):
        k.add_argument(opt, required=True)
    k.add_argument("--steps", type=int, default=30, help="steps to run (KUMIKI_CRASH_AT=step:N)")
    k.add_argument("--skip", type=int, default=5, help="first steps left out of the medians")
    k.add_argument("--deadline", type=float, default=60, help="seconds before the run is stopped")
    w = sub.add_parser("watch")
    w.add_argument("--json", required=True)
    w.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    return {"data": cmd_data, "kumiki": cmd_kumiki, "watch": cmd_watch}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
