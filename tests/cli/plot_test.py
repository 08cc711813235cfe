#!/usr/bin/env python3
"""`kumiki plot` draws each eval set in its own colour with its own legend entry (the demo's English
and Japanese eval losses must be told apart). Renders a hand-written log to SVG and reads gnuplot's
SVG back: one plot group per curve, titled, with its stroke colour.

usage: plot_test.py KUMIKI_BINARY WORK_DIR
"""
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kumiki_check import Checks  # noqa: E402

t = Checks()
if shutil.which("gnuplot") is None:
    print("gnuplot is not installed: skipped")
    sys.exit(77)
log = os.path.join(t.work, "log.jsonl")
with open(log, "w") as f:
    f.write(json.dumps({"type": "stage", "name": "en", "tokens": 0}) + "\n")
    for s in range(40):
        f.write(json.dumps({"type": "step", "step": s, "tokens": 1000 * s, "loss": 5.0 - 0.05 * s, "lr": 1e-3}) + "\n")
        if s % 10 == 9:
            for name, loss in (("held_out_en", 4.0 - 0.01 * s), ("held_out_ja", 4.5 - 0.01 * s), ("it's_code", 3.0)):
                f.write(json.dumps({"type": "eval", "step": s, "tokens": 1000 * s, "dataset": name, "loss": loss}) + "\n")
    f.write(json.dumps({"type": "stage", "name": "ja", "tokens": 20000}) + "\n")
svg = os.path.join(t.work, "curves.svg")
r = subprocess.run([t.kumiki, "plot", log, "--out", svg], capture_output=True, text=True)
t.check(r.returncode == 0, f"kumiki plot exits 0 ({r.stderr.strip()[-300:]})")
t.check("12 evals of 3 eval sets" in r.stdout, f"the summary counts the eval sets: {r.stdout.strip()!r}")
text = open(svg).read() if os.path.exists(svg) else ""
# gnuplot's SVG: <g id="gnuplot_plot_N..."><title>TITLE</title> ... stroke='rgb(R, G, B)' ...
groups = re.split(r"<g id=\"gnuplot_plot_\d+[a-z]?\"", text)[1:]
colour_of = {}
for g in groups:
    title = re.search(r"<title>(.*?)</title>", g)
    colour = re.search(r"stroke=['\"](rgb\([^)]*\)|#[0-9a-fA-F]{6})['\"]", g)
    if title and colour:
        colour_of.setdefault(title.group(1).replace("&#39;", "'").replace("&apos;", "'"), colour.group(1))
wanted = ["eval loss: held_out_en", "eval loss: held_out_ja", "eval loss: it's_code"]
t.check(all(w in colour_of for w in wanted), f"each eval set has its own legend entry: {sorted(colour_of)}")
colours = [colour_of.get(w) for w in wanted]
t.check(None not in colours and len(set(colours)) == 3, f"three different colours: {colours}")
t.check("train loss" in colour_of and colour_of["train loss"] not in colours,
        f"the training curve's colour differs from the eval sets': {colour_of.get('train loss')}")
t.finish()
