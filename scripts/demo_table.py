#!/usr/bin/env python3
"""The demo's final table: held-out loss per eval set after each stage of a run (its stage-end
evaluations), for each seed run of a stage with `seeds` (OUT/seeds/<stage>-seed<seed>/) and for their
soup. Every number is read from the logs of this run: nothing is hard-coded.

usage: demo_table.py RUN_DIR
"""
import json
import os
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


run = sys.argv[1]
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
            log = os.path.join(run, "seeds", f"{stage}-seed{seed}", "log.jsonl")
            step, losses = stage_end_evals(records(log))[stage]
            rows.append((f"{stage}, seed {seed}", step, losses))
        step, losses = ends[stage]
        rows.append((f"{stage}, soup of {len(soups[stage]['seeds'])} seeds", step, losses))
    elif stage in ends:
        step, losses = ends[stage]
        rows.append((f"after {stage}", step, losses))

print("| model | step | " + " | ".join(f"{s} loss" for s in sets) + " |")
print("|---|---:|" + "---:|" * len(sets))
for name, step, losses in rows:
    print(f"| {name} | {step} | " + " | ".join(f"{losses[s]:.4f}" if s in losses else "" for s in sets) + " |")
