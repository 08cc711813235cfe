#!/usr/bin/env python3
"""The demo's final table: held-out loss per eval set after each stage of a run (its stage-end
evaluations), for each seed run of a stage with `seeds` (OUT/seeds/<stage>-seed<seed>/) and for their
soup; with --tasks, also each of those models' few-shot task scores (`kumiki eval-tasks` on the
stage-end checkpoint: accuracy for multiple choice, exact match for generation). Every number is read
from the logs and results of this run: nothing is hard-coded.

usage: demo_table.py RUN_DIR [--kumiki BIN --tasks FILE.jsonl ... --scores DIR [--shots K] [--limit N]]
"""
import argparse
import json
import os
import subprocess
import sys


def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def stage_end_evals(recs):
    """{stage: (step, {dataset: loss})} from the last evaluation of each stage."""
    out = {}
    for r in recs:
        if r["type"] == "eval":
            step, losses = out.get(r["stage"], (-1, {}))
            if r["step"] > step:
                losses = {}
            losses[r["dataset"]] = r["loss"]
            out[r["stage"]] = (r["step"], losses)
    return out


ap = argparse.ArgumentParser()
ap.add_argument("run")
ap.add_argument("--kumiki")
ap.add_argument("--tasks", nargs="*", default=[])
ap.add_argument("--scores", help="where each model's eval-tasks results go (reused when newer than its checkpoint)")
ap.add_argument("--shots", default="1")
ap.add_argument("--limit", default="50")
ap.add_argument("--max-new-tokens", default="40")
args = ap.parse_args()
run = args.run
main = records(os.path.join(run, "log.jsonl"))
ends = stage_end_evals(main)
soups = {r["stage"]: r for r in main if r["type"] == "soup"}
order = [r["name"] for r in main if r["type"] == "stage"]
sets = []
for _, (_, losses) in ends.items():
    sets += [d for d in losses if d not in sets]

rows = []
for stage in dict.fromkeys(order):
    if stage in soups:
        for seed in soups[stage]["seeds"]:
            seed_run = os.path.join(run, "seeds", f"{stage}-seed{seed}")
            step, losses = stage_end_evals(records(os.path.join(seed_run, "log.jsonl")))[stage]
            rows.append((f"{stage}, seed {seed}", step, losses, seed_run))
        step, losses = ends[stage]
        rows.append((f"{stage}, soup of {len(soups[stage]['seeds'])} seeds", step, losses, run))
    elif stage in ends:
        step, losses = ends[stage]
        rows.append((f"after {stage}", step, losses, run))


def task_scores(name, step, run_dir):
    """{task: (metric, value, stderr, n)} of the checkpoint at `step` of run_dir, scored once and kept."""
    ckpt = os.path.join(run_dir, "checkpoints", f"step_{step:09d}")
    out = os.path.join(args.scores, name.replace(", ", "_").replace(" ", "-") + ".json")
    if not os.path.isdir(ckpt):
        print(f"[demo] no checkpoint {ckpt} to score (a run of an older kumiki pruned it; KUMIKI_DEMO_FRESH=1 "
              "./scripts/demo trains again)", file=sys.stderr)
        return {}
    if not os.path.isfile(out) or os.path.getmtime(out) < os.path.getmtime(os.path.join(ckpt, "manifest.json")):
        print(f"[demo] task scores of '{name}' ({ckpt})", file=sys.stderr, flush=True)
        subprocess.run([args.kumiki, "eval-tasks", "--model", ckpt, *sum((["--tasks", t] for t in args.tasks), []),
                        "--shots", args.shots, "--limit", args.limit, "--max-new-tokens", args.max_new_tokens,
                        "--out", out, "--quiet"], check=True, stdout=subprocess.DEVNULL)
    res = json.load(open(out))["tasks"]
    return {t: ("acc", r["acc"], r["acc_stderr"], r["n"]) if r["kind"] == "multiple_choice" else
            ("exact_match", r["exact_match"], r["exact_match_stderr"], r["n"]) for t, r in res.items()}


if args.tasks:
    os.makedirs(args.scores, exist_ok=True)
scores = [task_scores(name, step, d) if args.tasks else {} for name, step, _, d in rows]
tasks = list(dict.fromkeys(t for sc in scores for t in sc))
metric = {t: sc[t][0] for sc in scores for t in sc}
print("| model | step | " + " | ".join([f"{s} loss" for s in sets] + [f"{t} {metric[t].replace('exact_match', 'em')}" for t in tasks]) + " |")
print("|---|---:|" + "---:|" * (len(sets) + len(tasks)))
for (name, step, losses, _), sc in zip(rows, scores):
    cells = [f"{losses[s]:.4f}" if s in losses else "" for s in sets]
    cells += [f"{sc[t][1]:.2f}" if t in sc else "" for t in tasks]
    print(f"| {name} | {step} | " + " | ".join(cells) + " |")
if args.tasks:
    n = {t: sc[t][3] for sc in scores for t in sc}
    print(f"\nTask scores: `kumiki eval-tasks`, {args.shots}-shot, {', '.join(f'{t} n={n[t]}' for t in tasks)}; "
          "acc: multiple choice by log-likelihood (chance 0.25), em: exact match of the number after ####.")
