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
    # kumiki lr's flags are Megatron's, with Megatron's values.
    opts = ["--lr", 1e-3, "--min-lr", 1e-4, "--lr-warmup-init", 1e-5, "--lr-warmup-iters", 10, "--lr-decay-iters", 100,
            "--steps", 110]
    every = list(range(0, 111))
    for style in ["linear", "cosine", "inverse-square-root"]:
        check(style, kumiki, ["--lr-decay-style", style, *opts],
              lambda s, ms=style: megatron_lr(s, style=ms, **common), steps=every)
    constant_opts = ["--lr", 1e-3, "--lr-warmup-init", 1e-5, "--lr-warmup-iters", 10, "--steps", 110]  # no decay keys
    check("constant", kumiki, ["--lr-decay-style", "constant", *constant_opts],
          lambda s: megatron_lr(s, style="constant", **common), steps=every)
    for wsd_style in ["linear", "cosine", "exponential", "minus_sqrt"]:
        check(f"wsd {wsd_style}", kumiki,
              ["--lr-decay-style", "WSD", *opts, "--lr-wsd-decay-iters", 30, "--lr-wsd-decay-style", wsd_style],
              lambda s, w=wsd_style: megatron_lr(s, style="WSD", wsd_decay=30, wsd_style=w, **common), steps=every)
    # The decay ends with the run (--steps) unless --lr-decay-iters says otherwise, as in Megatron.
    check("cosine to --steps", kumiki, ["--lr-decay-style", "cosine", "--lr", 1e-3, "--lr-warmup-iters", 10, "--steps", 100],
          lambda s: megatron_lr(s, style="cosine", max_lr=1e-3, min_lr=0.0, init_lr=0.0, warmup=10, decay=100))

    # Samples: Megatron's counter is iterations x global batch; W, D, cooldown given in samples
    # (a warmup of 42 samples ends inside iteration 11 at global batch 4).
    check("wsd in samples", kumiki,
          ["--lr-decay-style", "WSD", "--lr", 1e-3, "--min-lr", 0, "--lr-warmup-samples", 42, "--lr-decay-samples", 400,
           "--lr-wsd-decay-samples", 90, "--lr-wsd-decay-style", "cosine", "--global-batch", 4, "--steps", 110],
          lambda s: megatron_lr(4 * s, style="WSD", max_lr=1e-3, min_lr=0.0, init_lr=0.0, warmup=42, decay=400,
                                wsd_decay=90, wsd_style="cosine"))

    # LLM-jp-4 decay branch from a 'stable only' WSD run == Megatron WSD relaunched with D = S + N.
    check("decay branch", kumiki,
          ["--lr-decay-style", "WSD", "--lr", 3e-4, "--min-lr", 3e-5, "--lr-warmup-iters", 20, "--lr-decay-iters", 10**7,
           "--lr-wsd-decay-iters", 1, "--branch-start-iters", 60, "--branch-decay-iters", 30, "--branch-min-lr", 0,
           "--branch-decay-style", "minus_sqrt", "--steps", 100],
          lambda s: megatron_lr(s, style="WSD", max_lr=3e-4, min_lr=0.0, init_lr=0.0, warmup=20, decay=90, wsd_decay=30,
                                wsd_style="minus_sqrt"))

    # DeepSeek steps: constant after warmup, x0.316 from 80% and again from 90% of --steps.
    check("steps", kumiki, ["--lr-decay-style", "constant", "--lr", 1e-3, "--lr-warmup-iters", 10, "--steps", 100,
                            "--milestone-iters", "80,90", "--milestone-factors", 0.316],
          lambda s: (1e-3 * s / 10 if s <= 10 else 1e-3) * (0.316 if s >= 80 else 1.0) * (0.316 if s >= 90 else 1.0))

    # OLMo 2 stage 2: from the current lr linearly to 0 over D, no warmup.
    check("anneal", kumiki, ["--lr-decay-style", "anneal", "--lr", 6e-5, "--min-lr", 0, "--lr-decay-iters", 100,
                             "--lr-wsd-decay-style", "linear", "--steps", 110],
          lambda s: 6e-5 * max(0.0, 1.0 - s / 100.0))

    # --compare: the talk's three curves.
    check("compare", kumiki, ["--compare", "--lr", 3e-4, "--lr-warmup-iters", 200, "--steps", 10000, "--every", 50],
          lambda s: (megatron_lr(s, style="cosine", max_lr=3e-4, min_lr=3e-4 / 10, init_lr=0.0, warmup=200, decay=10000),
                     megatron_lr(s, style="WSD", max_lr=3e-4, min_lr=0.0, init_lr=0.0, warmup=200, decay=10000,
                                 wsd_decay=1000, wsd_style="minus_sqrt"),
                     megatron_lr(s, style="WSD", max_lr=3e-4, min_lr=3e-4 / 10, init_lr=0.0, warmup=200, decay=10000,
                                 wsd_decay=1000, wsd_style="minus_sqrt")),
          columns=3, steps=list(range(0, 10001, 50)))

    with tempfile.TemporaryDirectory() as d:
        # The TOML the command prints reads back (--recipe) to the same curve.
        args = ["--lr-decay-style", "WSD", *opts, "--lr-wsd-decay-iters", 30, "--lr-wsd-decay-style", "exponential"]
        toml_text = run(kumiki, *args, "--print-toml").stdout
        recipe = os.path.join(d, "recipe.toml")
        with open(recipe, "w") as f:
            f.write("[train.lr]\n" + toml_text)
        direct = run(kumiki, *args).stdout
        via = run(kumiki, "--recipe", recipe, "--table", "train.lr", "--steps", 110).stdout
        if direct != via or 'lr_decay_style = "WSD"' not in toml_text or "lr_decay_iters = 100" not in toml_text:
            failures.append("--print-toml / --recipe round trip changed the curve")
        else:
            print("ok   --print-toml -> --recipe round trip")
        # A plot when gnuplot is present.
        if shutil.which("gnuplot"):
            png = os.path.join(d, "lr.png")
            run(kumiki, "--lr-decay-style", "cosine", *opts, "--plot", png)
            with open(png, "rb") as f:
                if f.read(8) != b"\x89PNG\r\n\x1a\n":
                    failures.append("--plot did not write a PNG")
                else:
                    print("ok   --plot wrote a PNG")

    # Bad input: the whole message, exit 1, no library source path.
    def expect_error(args, message):
        p = run(kumiki, *args, expect_rc=1)
        want = f"kumiki: error: {message}\n"
        if p.stderr != want:
            failures.append(f"kumiki lr {' '.join(map(str, args))}: stderr {p.stderr!r}, expected {want!r}")
        else:
            print(f"ok   error: {message}")
    expect_error(["--lr-decay-style", "triangle", "--lr", 1],
                 '--lr-decay-style: unknown value "triangle" (expected "constant", "linear", "cosine", "inverse-square-root", '
                 '"WSD" or "anneal")')
    expect_error(["--lr-decay-style", "inverse-sqrt", "--lr", 1],
                 '--lr-decay-style: value "inverse-sqrt" was renamed: use "inverse-square-root" (Megatron\'s --lr-decay-style)')
    expect_error(["--lr-decay-style", "cosine", "--lr", 1e-3, "--lr-warmup-iters", 100, "--lr-decay-iters", 50],
                 "lr schedule 'cosine': lr_warmup_iters (100) must be below lr_decay_iters (50)")
    expect_error(["--lr-decay-style", "WSD", "--lr", 1e-3],
                 "--lr-wsd-decay-iters is missing: the length of WSD's cooldown (Megatron's --lr-wsd-decay-iters)")
    expect_error(["--lr-decay-style", "cosine"], "--lr is missing: the peak learning rate (Megatron's --lr)")
    expect_error(["--schedule", "cosine"],
                 "--schedule was renamed: use --lr-decay-style (Megatron's; constant, linear, cosine, inverse-square-root, WSD or "
                 "anneal; a decay branch and milestones are the --branch-* and --milestone-* options)")
    expect_error(["--lr-decay-style", "cosine", "--lr", 1e-3, "--decay-steps", 50],
                 "--decay-steps was renamed: use --lr-decay-iters (Megatron's)")
    expect_error(["--lr-decay-style", "cosine", "--lr", 1e-3, "--lr-warmup-samples", 5],
                 "--global-batch is missing: lengths in samples need the samples per iteration")

    for f in failures:
        print("FAIL", f)
    print("sched.kumiki_lr_csv:", "PASS" if not failures else "FAIL")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
