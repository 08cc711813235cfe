#!/usr/bin/env python3
"""Writes scripts/gpu-check's report: report.json and report.md in OUT from the step table and the
ceilings / benchmark / training-speed JSON files in LOGS. scripts/gpu-check runs it quietly after every
step (a run cut short still leaves its report) and once more at the end, when it prints the last lines
of each failed step's log, the step summary, then the speed table with the issue's targets, last.

Usage: gpu_report.py --out OUT --logs LOGS --steps STEPS_TSV --total SECONDS [--manifest FILE] [--quiet]
"""
import argparse
import json
import re
from datetime import datetime, timezone
from pathlib import Path

TAIL_LINES = 15  # of each failed or timed-out step's log, in report.json / report.md and on stdout


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_text(path):
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def catch_counts(log):
    """'test cases: 5 | 5 passed' / 'All tests passed (123 assertions in 5 test cases)' from a Catch2 log."""
    text = read_text(log)
    m = re.search(r"All tests passed \((\d+) assertions? in (\d+) test cases?\)", text)
    if m:
        return f"{m.group(2)} cases, {m.group(1)} assertions passed"
    m = re.search(r"test cases:\s*(.*)\nassertions:\s*(.*)", text)
    return f"cases: {m.group(1).strip()}; assertions: {m.group(2).strip()}" if m else ""


def check_counts(log):
    """'23 checks passed, 1 failed' from a Python system test's `ok` / `FAIL` lines (tests/kumiki_check.py)."""
    lines = read_text(log).splitlines()
    ok, fail = sum(x.startswith("ok   ") for x in lines), sum(x.startswith("FAIL ") for x in lines)
    return f"{ok} checks passed, {fail} failed" if ok + fail else ""


def log_tail(log, n=TAIL_LINES):
    lines = [x.rstrip()[:300] for x in read_text(log).splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines[-n:]


def benchmark_rows(bench, ceilings):
    """One row per benchmark: time, GB/s and TFLOP/s from its counters, as a fraction of the ceilings;
    a benchmark stopped with an error (SkipWithError) has its message instead."""
    rows = []
    if not bench:
        return rows
    bw = (ceilings or {}).get("copy_gbps")
    tf = (ceilings or {}).get("gemm_bf16_tflops")
    for b in bench.get("benchmarks", []):
        if b.get("run_type") == "aggregate":
            continue
        if b.get("error_occurred"):
            rows.append({"name": b.get("name", "?"), "error": b.get("error_message", "error"), "time_us": None,
                         "GB/s": None, "TFLOP/s": None, "of_ceiling": None})
            continue
        gbps = b.get("GB/s")
        tflops = b.get("TFLOP/s")
        frac = None
        if gbps and bw:
            frac = gbps / bw
        elif tflops and tf:
            frac = tflops / tf
        unit = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}.get(b.get("time_unit", "ns"), 1e-3)
        rows.append({
            "name": b.get("name", "?"),
            "time_us": (b.get("real_time") or 0.0) * unit,
            "GB/s": gbps,
            "TFLOP/s": tflops,
            "of_ceiling": frac,
        })
    return rows


# Training speed (issue 14): the rows scripts/gpu-check's speed steps write as
# LOGS/speed-<framework>-<model>.json, and the issue's targets for kumiki.
SPEED_MODELS = ("llmjp4_1_3b", "llmjp4_8b")
FRAMEWORKS = ("kumiki", "pytorch")


def _mfu(floor):
    def test(k):
        if k["fits"] is False:
            return False, "does not fit"
        return (None, "") if k["mfu"] is None else (k["mfu"] >= floor, f"{100 * k['mfu']:.1f}%")
    return test


TARGETS = (  # (model, what, test of the kumiki row -> (True / False / None: not measured, the value))
    ("llmjp4_1_3b", "kumiki MFU >= 50%", _mfu(0.50)),
    ("llmjp4_1_3b", "kumiki tokens/s >= 1.3 x PyTorch",
     lambda k: (None, "") if k["ratio"] is None else (k["ratio"] >= 1.3, f"{k['ratio']:.2f}x")),
    ("llmjp4_8b", "kumiki fits one GPU",
     lambda k: (k["fits"], "" if k["fits"] is None else ("fits" if k["fits"] else "does not fit"))),
    ("llmjp4_8b", "kumiki MFU >= 45%", _mfu(0.45)),
)


def speed_table(logs):
    """Rows (model, framework, shape, tokens/s, MFU, peak memory, kumiki/PyTorch), the targets, and
    each run's JSON as written."""
    rows, raw = {}, {}
    for m in SPEED_MODELS:
        for fw in FRAMEWORKS:
            r = read_json(logs / f"speed-{fw}-{m}.json") or {}
            if r:
                raw[f"{fw}-{m}"] = r
            partial = r.get("complete") is False
            if fw == "pytorch" and r and "peak_memory_bytes_allocated" not in r:
                # train_speed.py watch did not finish (stopped with the run): the peak is PyTorch's own
                r = dict(r, peak_memory_bytes=None, peak_memory_bytes_allocated=r.get("peak_memory_bytes"))
            rows[m, fw] = {"model": m, "framework": fw, "measured": bool(r.get("tokens_per_s")) or r.get("fits") is False,
                           "fits": r.get("fits"), "micro_batch": r.get("micro_batch"), "seq": r.get("seq"),
                           "tokens_per_s": r.get("tokens_per_s"), "mfu": r.get("mfu"),
                           "peak_memory_bytes": r.get("peak_memory_bytes"),
                           "peak_memory_allocated_bytes": r.get("peak_memory_bytes_allocated"),
                           "recompute": r.get("recompute"), "error": r.get("error"), "ratio": None,
                           "partial": partial, "steps_timed": r.get("steps_timed")}
            if partial and r.get("tokens_per_s"):
                note = f"partial: the run stopped after {r.get('steps_timed', '?')} of {r.get('steps', '?')} timed steps"
                rows[m, fw]["error"] = "; ".join(x for x in (rows[m, fw]["error"], note) if x)
        k, p = rows[m, "kumiki"], rows[m, "pytorch"]
        same_shape = (k["micro_batch"], k["seq"]) == (p["micro_batch"], p["seq"])
        if k["tokens_per_s"] and p["tokens_per_s"] and same_shape:
            k["ratio"] = k["tokens_per_s"] / p["tokens_per_s"]
    targets = []
    for m, what, test in TARGETS:
        ok, value = test(rows[m, "kumiki"])
        targets.append({"model": m, "target": what, "value": value,
                        "status": "not measured" if ok is None else ("pass" if ok else "miss")})
    return list(rows.values()), targets, raw


def speed_cells(r):
    """The row's cells as text: shape, tokens/s, MFU, peak memory, ratio."""
    shape = f"{r['micro_batch']} x {r['seq']}" if r["micro_batch"] else "-"
    if r["fits"] is False:
        return [shape, "does not fit", "", "", ""]
    if not r["measured"]:
        return [shape, "error" if r["error"] else "not measured", "", "", ""]
    gib = lambda b: f"{b / 2 ** 30:.1f} GiB" if b is not None else "?"
    mem = gib(r["peak_memory_bytes"])
    if r["peak_memory_allocated_bytes"] is not None:
        mem += f" (allocated {gib(r['peak_memory_allocated_bytes'])})"
    if r["recompute"]:
        mem += ", " + (r["recompute"] if isinstance(r["recompute"], str) else "recompute")
    tokens = f"{r['tokens_per_s']:,.0f}" + (" (partial)" if r["partial"] else "")
    mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "?"
    return [shape, tokens, mfu, mem, f"{r['ratio']:.2f}x" if r["ratio"] else ""]


def read_steps(path, logs):
    steps = []
    for line in read_text(path).splitlines():
        if not line.strip():
            continue
        name, status, seconds, detail = (line.split("\t") + [""] * 4)[:4]
        log = logs / f"{name}.txt"
        if status in ("ok", "FAIL", "TIMEOUT") and (name.startswith("cuda.") or name == "train.gpu"):
            counts = (check_counts if name == "train.gpu" else catch_counts)(log)
            detail = "; ".join(x for x in (detail, counts) if x)
        step = {"step": name, "status": status, "seconds": int(seconds) if seconds.isdigit() else 0, "detail": detail}
        if status in ("FAIL", "TIMEOUT"):
            step["log_tail"] = log_tail(log)
        steps.append(step)
    return steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--logs", required=True, type=Path)
    ap.add_argument("--steps", required=True, type=Path)
    ap.add_argument("--total", type=int, default=0)
    ap.add_argument("--manifest", type=Path)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    out, logs = a.out, a.logs
    steps = read_steps(a.steps, logs)
    ceilings = read_json(logs / "ceilings.json")
    bench = benchmark_rows(read_json(logs / "bench.json"), ceilings)
    gpu = read_text(logs / "gpu.txt").strip() or "?"
    manifest = read_text(a.manifest).strip() if a.manifest else ""
    versions = [x.strip() for x in read_text(logs / "prewarm.txt").splitlines() if " imported in " in x]
    speed, targets, raw = speed_table(logs)
    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "gpu": gpu,
        "total_seconds": a.total,
        "manifest": manifest,
        "python_packages": versions,
        "steps": steps,
        "ceilings": ceilings,
        "benchmarks": bench,
        "speed": {"rows": speed, "targets": targets, "runs": raw},
        "machine": read_text(logs / "machine.txt")[-6000:],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")

    failed = [s for s in steps if s["status"] in ("FAIL", "TIMEOUT")]
    md = [f"# GPU check, {report['date']}", "", f"GPU: {gpu}; wall time {a.total} s.", ""]
    if manifest:
        md += ["Binaries (the stage's MANIFEST, and what this run used):", "", "```", manifest, "```", ""]
    if versions:
        md += ["PyTorch: " + "; ".join(versions), ""]
    md += ["| step | status | s | detail |", "|---|---|---|---|"]
    md += [f"| {s['step']} | {s['status']} | {s['seconds']} | {s['detail'].replace('|', '/')} |" for s in steps]
    for s in failed:
        md += ["", f"### {s['step']}: {s['status']} (last lines of logs/{s['step']}.txt)", "", "```"]
        md += s["log_tail"] + ["```"]
    if ceilings:
        md += ["", "## Ceilings", "", "| measure | value |", "|---|---|"]
        md += [f"| {k} | {v} |" for k, v in ceilings.items()]
    if bench:
        f = lambda v, fmt: (fmt % v) if v is not None else ""
        md += ["", "## Kernel benchmarks", "", "| benchmark | time (us) | GB/s | TFLOP/s | of ceiling |", "|---|---|---|---|---|"]
        for r in bench:
            if r.get("error"):
                md.append(f"| {r['name']} | error: {r['error']} | | | |")
                continue
            md.append(f"| {r['name']} | {r['time_us']:.1f} | {f(r['GB/s'], '%.0f')} | {f(r['TFLOP/s'], '%.1f')} | "
                      f"{f(None if r['of_ceiling'] is None else 100 * r['of_ceiling'], '%.0f%%')} |")
    header = ["model", "framework", "micro-batch x seq", "tokens/s", "MFU", "peak memory", "kumiki/PyTorch"]
    md += ["", "## Training speed", "",
           "One GPU, random or generated tokens; MFU: Megatron's model FLOPs per token against 989 TFLOP/s; peak "
           "memory: nvidia-smi's, above what was in use before (PyTorch's own max_memory_allocated in parentheses).", "",
           "| " + " | ".join(header) + " |", "|---|---|---|---:|---:|---:|---:|"]
    md += ["| " + " | ".join([r["model"], r["framework"]] + speed_cells(r)) + " |" for r in speed]
    notes = [f"{r['model']} {r['framework']}: {r['error']}" for r in speed if r["error"]]
    md += [""] + [f"- {n}" for n in notes]
    md += ["", "| model | target (issue 14) | status | measured |", "|---|---|---|---|"]
    md += [f"| {t['model']} | {t['target']} | {t['status']} | {t['value']} |" for t in targets]
    (out / "report.md").write_text("\n".join(md) + "\n")
    if a.quiet:
        return

    # stdout: the failed steps' last lines, the summary, then the speed table (last: the device tool's
    # output keeps the end).
    for s in failed:
        print(f"---- {s['step']}: {s['status']}; last lines of logs/{s['step']}.txt ----")
        for x in s["log_tail"]:
            print("  " + x[:200])
    print()
    print(f"GPU check summary ({gpu}, {a.total} s; report: {out / 'report.md'})")
    for x in manifest.splitlines():
        if x.startswith(("# gpu-check stage", "# used here")):
            print("  " + x[2:200])
    width = max([len(s["step"]) for s in steps] + [4])
    for s in steps:
        print(f"  {s['step']:<{width}}  {s['status']:<8} {s['seconds']:>4} s  {s['detail'][:160]}")
    print()
    print("Training speed (MFU: Megatron's model FLOPs / 989 TFLOP/s; memory: nvidia-smi's peak)")
    cells = [header] + [[r["model"], r["framework"]] + speed_cells(r) for r in speed]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    for c in cells:
        print("  " + "  ".join(f"{x:<{w}}" if i < 3 else f"{x:>{w}}" for i, (x, w) in enumerate(zip(c, widths))).rstrip())
    for n in notes:
        print("  " + n[:300])
    print("Targets (issue 14):")
    for t in targets:
        print(f"  {t['model']:<12} {t['target']:<34} {t['status']:<13} {t['value']}")


if __name__ == "__main__":
    main()
