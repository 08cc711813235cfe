#!/usr/bin/env python3
"""Checks `kumiki lr` CSV against Megatron-LM's scheduler rules re-implemented here in Python, the way
Megatron computes them (a consumed-samples counter advanced by the global batch each iteration):
every value must be bitwise equal.

Usage: check_lr_cli.py PATH/TO/kumiki
"""
import math
import os
import shutil
import subprocess
import sys
import tempfile


def megatron_lr(n, *, style, max_lr, min_lr, init_lr, warmup, decay, wsd_decay=None, wsd_style=None):
    """OptimizerParamScheduler.get_lr at num_steps = n (all quantities in the same unit)."""
    if warmup > 0 and n <= warmup:
        return init_lr + (max_lr - init_lr) * float(n) / float(warmup)
    if style == "constant":
        return max_lr
    if n > decay:
        return min_lr
    if style == "inverse-square-root":
        lr = max_lr * max(warmup, 1) ** 0.5 / (max(n, 1) ** 0.5)
        return max(min_lr, lr)
    ratio = float(n - warmup) / float(decay - warmup)
    assert 0.0 <= ratio <= 1.0
    if style == "linear":
        coeff = 1.0 - ratio
    elif style == "cosine":
        coeff = 0.5 * (math.cos(math.pi * ratio) + 1.0)
    elif style == "WSD":
        start = decay - wsd_decay
        if n <= start:
            coeff = 1.0
        else:
            q = float(n - start) / float(wsd_decay)
            coeff = {"linear": lambda: 1.0 - q,
                     "cosine": lambda: 0.5 * (math.cos(math.pi * q) + 1.0),
                     "exponential": lambda: 2.0 * math.pow(0.5, q) - 1.0,
                     "minus_sqrt": lambda: 1.0 - math.sqrt(q)}[wsd_style]()
    else:
        raise ValueError(style)
    return min_lr + coeff * (max_lr - min_lr)


failures = []


def run(kumiki, *args, expect_rc=0):
    p = subprocess.run([kumiki, "lr", *map(str, args)], capture_output=True, text=True)
    if p.returncode != expect_rc:
        failures.append(f"kumiki lr {' '.join(map(str, args))}: exit {p.returncode}, stderr {p.stderr.strip()}")
    return p


def parse_csv(text):
    lines = text.strip().splitlines()
    return lines[0].split(","), [[float(x) for x in line.split(",")] for line in lines[1:]]


def check(name, kumiki, args, expected, columns=1, steps=None):
    header, rows = parse_csv(run(kumiki, *args).stdout)
    if len(header) != columns + 1 or header[0] != "step":
        failures.append(f"{name}: header {header}")
        return
    got_steps = [int(r[0]) for r in rows]
    if steps is not None and got_steps != steps:
        failures.append(f"{name}: steps {got_steps[:5]}... expected {steps[:5]}...")
    # Bit for bit: kumiki prints the shortest text that reads back exactly, and its schedule
    # arithmetic is Megatron's, in Megatron's order, with no fused multiply-add.
    for r in rows:
        for c in range(columns):
            want = expected(int(r[0]))[c] if columns > 1 else expected(int(r[0]))
            if r[1 + c] != want:
                failures.append(f"{name}: step {int(r[0])} column {c}: {r[1 + c]!r} vs Megatron {want!r} "
                                f"(differs by {abs(r[1 + c] - want) / max(abs(want), 1e-300):.1e} relative)")
                return
    print(f"ok   {name}: {len(rows)} rows, every value bitwise equal to Megatron's")


def main():
    kumiki = sys.argv[1]
    common = dict(max_lr=1e-3, min_lr=1e-4, init_lr=1e-5, warmup=10, decay=100)
    opts = ["--max-lr", 1e-3, "--min-lr", 1e-4, "--init-lr", 1e-5, "--warmup", 10, "--decay-steps", 100, "--steps", 110]
    every = list(range(0, 111))
    for style, megatron_style in [("linear", "linear"), ("cosine", "cosine"), ("constant", "constant"),
                                  ("inverse-sqrt", "inverse-square-root")]:
        check(style, kumiki, ["--schedule", style, *opts],
              lambda s, ms=megatron_style: megatron_lr(s, style=ms, **common), steps=every)
    for wsd_style in ["linear", "cosine", "exponential", "minus_sqrt"]:
        check(f"wsd {wsd_style}", kumiki, ["--schedule", "wsd", *opts, "--wsd-decay-steps", 30, "--decay-style", wsd_style],
              lambda s, w=wsd_style: megatron_lr(s, style="WSD", wsd_decay=30, wsd_style=w, **common), steps=every)

    # Samples: Megatron's counter is iterations x global batch; W, D, cooldown given in samples
    # (a warmup of 42 samples ends inside iteration 11 at global batch 4).
    check("wsd in samples", kumiki,
          ["--schedule", "wsd", "--max-lr", 1e-3, "--min-lr", 0, "--warmup", 42, "--decay-steps", 400,
           "--wsd-decay-steps", 90, "--decay-style", "cosine", "--unit", "samples", "--global-batch", 4, "--steps", 110],
          lambda s: megatron_lr(4 * s, style="WSD", max_lr=1e-3, min_lr=0.0, init_lr=0.0, warmup=42, decay=400,
                                wsd_decay=90, wsd_style="cosine"))

    # LLM-jp-4 decay branch from a 'stable only' WSD run == Megatron WSD relaunched with D = S + N.
    check("decay branch", kumiki,
          ["--schedule", "wsd", "--max-lr", 3e-4, "--min-lr", 3e-5, "--warmup", 20, "--decay-steps", 10**7,
           "--wsd-decay-steps", 1, "--branch-start", 60, "--branch-steps", 30, "--branch-to", 0, "--branch-style", "minus_sqrt",
           "--steps", 100],
          lambda s: megatron_lr(s, style="WSD", max_lr=3e-4, min_lr=0.0, init_lr=0.0, warmup=20, decay=90, wsd_decay=30,
                                wsd_style="minus_sqrt"))

    # DeepSeek steps: constant after warmup, x0.316 from 80% and again from 90% of --steps.
    check("steps", kumiki, ["--schedule", "steps", "--max-lr", 1e-3, "--warmup", 10, "--steps", 100],
          lambda s: (1e-3 * s / 10 if s <= 10 else 1e-3) * (0.316 if s >= 80 else 1.0) * (0.316 if s >= 90 else 1.0))

    # OLMo 2 stage 2: from the current lr linearly to 0 over D, no warmup.
    check("anneal", kumiki, ["--schedule", "anneal", "--max-lr", 6e-5, "--min-lr", 0, "--decay-steps", 100,
                             "--decay-style", "linear", "--steps", 110],
          lambda s: 6e-5 * max(0.0, 1.0 - s / 100.0))

    # --compare: the talk's three curves.
    check("compare", kumiki, ["--compare", "--max-lr", 3e-4, "--warmup", 200, "--steps", 10000, "--every", 50],
          lambda s: (megatron_lr(s, style="cosine", max_lr=3e-4, min_lr=3e-4 / 10, init_lr=0.0, warmup=200, decay=10000),
                     megatron_lr(s, style="WSD", max_lr=3e-4, min_lr=0.0, init_lr=0.0, warmup=200, decay=10000,
                                 wsd_decay=1000, wsd_style="minus_sqrt"),
                     megatron_lr(s, style="WSD", max_lr=3e-4, min_lr=3e-4 / 10, init_lr=0.0, warmup=200, decay=10000,
                                 wsd_decay=1000, wsd_style="minus_sqrt")),
          columns=3, steps=list(range(0, 10001, 50)))

    with tempfile.TemporaryDirectory() as d:
        # The TOML the command prints reads back (--recipe) to the same curve.
        args = ["--schedule", "wsd", *opts, "--wsd-decay-steps", 30, "--decay-style", "exponential"]
        toml_text = run(kumiki, *args, "--print-toml").stdout
        recipe = os.path.join(d, "recipe.toml")
        with open(recipe, "w") as f:
            f.write("[train.lr]\n" + toml_text)
        direct = run(kumiki, *args).stdout
        via = run(kumiki, "--recipe", recipe, "--table", "train.lr", "--steps", 110).stdout
        if direct != via or "style = 'wsd'" not in toml_text:
            failures.append("--print-toml / --recipe round trip changed the curve")
        else:
            print("ok   --print-toml -> --recipe round trip")
        # A plot when gnuplot is present.
        if shutil.which("gnuplot"):
            png = os.path.join(d, "lr.png")
            run(kumiki, "--schedule", "cosine", *opts, "--plot", png)
            with open(png, "rb") as f:
                if f.read(8) != b"\x89PNG\r\n\x1a\n":
                    failures.append("--plot did not write a PNG")
                else:
                    print("ok   --plot wrote a PNG")

    # Bad input: a clear error, exit 1.
    p = run(kumiki, "--schedule", "triangle", expect_rc=1)
    if "--schedule" not in p.stderr:
        failures.append(f"bad --schedule error does not name the option: {p.stderr!r}")
    p = run(kumiki, "--schedule", "cosine", "--warmup", 100, "--decay-steps", 50, expect_rc=1)
    if "decay_end" not in p.stderr:
        failures.append(f"warmup beyond decay end not reported: {p.stderr!r}")

    for f in failures:
        print("FAIL", f)
    print("sched.kumiki_lr_csv:", "PASS" if not failures else "FAIL")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
