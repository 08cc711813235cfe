#!/usr/bin/env python3
"""Writes scripts/gpu-check's report: report.json and report.md in OUT from the step table and the
ceilings / benchmark JSON files in OUT/logs, and prints the summary table last.

Usage: gpu_report.py OUT STEPS_TSV TOTAL_SECONDS
"""
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def catch_counts(log):
    """'test cases: 5 | 5 passed' / 'All tests passed (123 assertions in 5 test cases)' from a Catch2 log."""
    try:
        text = Path(log).read_text(errors="replace")
    except OSError:
        return ""
    m = re.search(r"All tests passed \((\d+) assertions? in (\d+) test cases?\)", text)
    if m:
        return f"{m.group(2)} cases, {m.group(1)} assertions passed"
    m = re.search(r"test cases:\s*(.*)\nassertions:\s*(.*)", text)
    return f"cases: {m.group(1).strip()}; assertions: {m.group(2).strip()}" if m else ""


def benchmark_rows(bench, ceilings):
    """One row per benchmark: time, GB/s and TFLOP/s from its counters, as a fraction of the ceilings."""
    rows = []
    if not bench:
        return rows
    bw = (ceilings or {}).get("copy_gbps")
    tf = (ceilings or {}).get("gemm_bf16_tflops")
    for b in bench.get("benchmarks", []):
        if b.get("run_type") == "aggregate":
            continue
        gbps = b.get("GB/s")
        tflops = b.get("TFLOP/s")
        frac = None
        if gbps and bw:
            frac = gbps / bw
        elif tflops and tf:
            frac = tflops / tf
        rows.append({
            "name": b["name"],
            "time_us": b.get("real_time") * {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b.get("time_unit", "ns")],
            "GB/s": gbps,
            "TFLOP/s": tflops,
            "of_ceiling": frac,
        })
    return rows


def main():
    out, steps_path, total = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    logs = out / "logs"
    steps = []
    for line in steps_path.read_text().splitlines():
        name, status, seconds, detail = (line.split("\t") + [""] * 4)[:4]
        if name.startswith("cuda.") and status in ("ok", "FAIL"):
            counts = catch_counts(logs / f"{name}.txt")
            detail = "; ".join(x for x in (detail, counts) if x)
        steps.append({"step": name, "status": status, "seconds": int(seconds or 0), "detail": detail})
    ceilings = read_json(logs / "ceilings.json")
    bench = benchmark_rows(read_json(logs / "bench.json"), ceilings)
    gpu = (logs / "gpu.txt").read_text().strip() if (logs / "gpu.txt").exists() else "?"
    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "gpu": gpu,
        "total_seconds": total,
        "steps": steps,
        "ceilings": ceilings,
        "benchmarks": bench,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")

    md = [f"# GPU check, {report['date']}", "", f"GPU: {gpu}; wall time {total} s.", "",
          "| step | status | s | detail |", "|---|---|---|---|"]
    md += [f"| {s['step']} | {s['status']} | {s['seconds']} | {s['detail']} |" for s in steps]
    if ceilings:
        md += ["", "## Ceilings", "", "| measure | value |", "|---|---|"]
        md += [f"| {k} | {v} |" for k, v in ceilings.items()]
    if bench:
        md += ["", "## Kernel benchmarks", "", "| benchmark | time (us) | GB/s | TFLOP/s | of ceiling |", "|---|---|---|---|---|"]
        for r in bench:
            f = lambda v, fmt: (fmt % v) if v is not None else ""
            md.append(f"| {r['name']} | {r['time_us']:.1f} | {f(r['GB/s'], '%.0f')} | {f(r['TFLOP/s'], '%.1f')} | "
                      f"{f(None if r['of_ceiling'] is None else 100 * r['of_ceiling'], '%.0f%%')} |")
    (out / "report.md").write_text("\n".join(md) + "\n")

    print()
    print(f"GPU check summary ({gpu}, {total} s; report: {out / 'report.md'})")
    width = max([len(s["step"]) for s in steps] + [4])
    for s in steps:
        print(f"  {s['step']:<{width}}  {s['status']:<8} {s['seconds']:>4} s  {s['detail']}")


if __name__ == "__main__":
    main()
