#!/usr/bin/env python3
"""`kumiki eval-tasks` on a `demo` model briefly trained on arithmetic word problems (byte tokens),
checked against an independent implementation of lm-evaluation-harness's rules in PyTorch (float64,
tests/parity/model_reference.py's model, full recomputation):
- multiple choice: every choice's log-likelihood given the few-shot prompt (the last 257 tokens of
  context + continuation, softmax over the LM head's rows), acc and acc_norm (per Unicode character),
  their standard errors; prompts hold K examples of the same task, never the item itself; an item's
  own target delimiter ("" for Japanese); contexts longer than the model reads cut from the left;
- generation: greedy continuations (until "\\n\\n", EOS or --max-new-tokens), answers extracted with
  lm-eval's gsm8k regexes (strict `#### (\\-?[0-9\\.\\,]+)`, flexible `(-?[$0-9.,]{2,})|(-?[0-9]+)`)
  and its exact_match normalization, item by item;
- the project's task files are what scripts/make_tasks.py writes, and all load and score;
- bad task files are refused naming file, line and key.

usage: eval_tasks_test.py KUMIKI_BINARY WORK_DIR
"""
import glob
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.join(here, "..", "..")
sys.path.insert(0, os.path.join(here, ".."))
sys.path.insert(0, os.path.join(here, "..", "parity"))
from kumiki_check import Checks, demo_weights, write_indexed  # noqa: E402
from model_reference import model_loss  # noqa: E402

_t = Checks()
kumiki, work, check = _t.kumiki, _t.work, _t.check
tasks_dir = os.path.join(root, "examples", "tasks")

p = subprocess.run([sys.executable, os.path.join(root, "scripts", "make_tasks.py"), "arithmetic", tasks_dir, "--check"],
                   capture_output=True, text=True)
check(p.returncode == 0, "examples/tasks/ is what scripts/make_tasks.py arithmetic writes" + (p.stderr and ": " + p.stderr))


def lines(path):
    return [json.loads(x) for x in open(path, encoding="utf-8") if x.strip()]


gen_en, mc_en, mc_ja = (lines(f"{tasks_dir}/{n}.jsonl") for n in ("arith-gen-en", "arith-mc-en", "arith-mc-ja"))

# Train on worked answers (the scored ones too) so that the model writes "#### n" and answers some
# right: the extraction and matching rules get work on both sides.
names = ["Ken", "Mary", "Taro", "Anna", "Sam"]
seven = [{"task": "t-gen", "kind": "generate", "answer": f"{a} + {7 - a} = 7. #### 7",
          "query": f"Question: {names[a % 5]} has {a} cards and gets {7 - a} more. How many cards does {names[a % 5]} have?\nAnswer:"}
         for a in range(1, 7)]
docs = [list(f"{x['query']} {x['answer']}\n\n".encode()) for x in gen_en + seven] * 3
write_indexed(f"{work}/arith", docs)
run = _t.train_demo("arith", steps=150, seq_len=128, seed=5)

# The test's tasks: English multiple choice (one item with a context longer than the model reads),
# Japanese multiple choice with no target delimiter, and generation.
long_q = "Question: " + "Debian is a free operating system. " * 9 + "What is 2 + 3?\nAnswer:"
mc = [dict(x, task="t-mc") for x in mc_en[:9]] + [{"task": "t-mc", "kind": "multiple_choice", "query": long_q,
                                                    "choices": ["5", "6", "4", "15"], "gold": 0}]
ja = [dict(x, task="t-ja", target_delimiter="", choices=[c + "個" for c in x["choices"]]) for x in mc_ja[:6]]
gen = [dict(x, task="t-gen") for x in gen_en[:6]] + seven
with open(f"{work}/tasks.jsonl", "w", encoding="utf-8") as f:
    for x in mc + ja + gen:
        f.write(json.dumps(x, ensure_ascii=False) + "\n")
SHOTS, NEW = 2, 40
p = subprocess.run([kumiki, "eval-tasks", "--model", run, "--tasks", f"{work}/tasks.jsonl", "--shots", str(SHOTS),
                    "--batch", "3", "--max-new-tokens", str(NEW), "--out", f"{work}/results.json",
                    "--markdown", f"{work}/results.md", "--samples", f"{work}/samples.jsonl"],
                   capture_output=True, text=True)
check(p.returncode == 0, "kumiki eval-tasks exits 0" + ("" if p.returncode == 0 else ": " + p.stderr[-400:]))
print(p.stdout)
check("[eval-tasks] t-mc: " in p.stderr and "prompts cut from the left" in p.stderr, "progress lines on stderr, the cut counted")
res = json.load(open(f"{work}/results.json"))["tasks"]
samples = lines(f"{work}/samples.jsonl")
check(open(f"{work}/results.md").read() == p.stdout and "| t-mc | multiple_choice | 10 | 2 | acc |" in p.stdout,
      "the markdown table on stdout and in --markdown")

P, cfg = demo_weights(run, "float64")
MAX = 256


def logits_of(ids):
    t = torch.tensor([ids])
    _, logits = model_loss(P, cfg, t, torch.zeros_like(t), None)
    return logits[0]


def stderr(x):
    return float(np.std(x, ddof=1) / math.sqrt(len(x)))


def check_prompt(s, items):
    """The prompt: SHOTS examples of the task (query + delimiter + target, never the item itself) and the query."""
    me = items[s["item"]]
    parts = s["prompt"].split("\n\n")  # no query or target holds a blank line
    shots, rest = parts[:SHOTS], "\n\n".join(parts[SHOTS:])

    def shown(x):
        return x["query"] + x.get("target_delimiter", " ") + (x["choices"][x["gold"]] if "choices" in x else x["answer"])
    examples = [shown(x) for k, x in enumerate(items) if k != s["item"]]
    return rest == me["query"] and len(set(shots)) == SHOTS and all(e in examples for e in shots)


with torch.no_grad():
    for name, items in (("t-mc", mc), ("t-ja", ja)):
        got = [s for s in samples if s["task"] == name]
        worst, acc, acc_norm, ok_prompts = 0.0, [], [], True
        for s in got:
            it = items[s["item"]]
            ok_prompts = ok_prompts and check_prompt(s, items)
            ctx = list(s["prompt"].encode())
            lls = []
            for c in it["choices"]:
                cont = list((it.get("target_delimiter", " ") + c).encode())
                whole = (ctx + cont)[-(MAX + 1):]
                lp = torch.log_softmax(logits_of(whole[:-1]), dim=-1)
                n = len(cont)
                lls.append(float(sum(lp[len(whole) - 1 - n + k, cont[k]] for k in range(n))))
            worst = max(worst, max(abs(a - b) for a, b in zip(lls, s["loglikelihoods"])))
            norm = [ll / len(c) for ll, c in zip(lls, it["choices"])]
            acc.append(float(int(np.argmax(lls)) == it["gold"]))
            acc_norm.append(float(int(np.argmax(norm)) == it["gold"]))
            check(s["acc"] == acc[-1] and s["acc_norm"] == acc_norm[-1] or abs(sorted(lls)[-1] - sorted(lls)[-2]) < 1e-3,
                  f"{name} item {s['item']}: acc {s['acc']}, acc_norm {s['acc_norm']} as PyTorch's log-likelihoods choose")
        check(ok_prompts, f"{name}: every prompt is {SHOTS} examples of the task (not the item) and the item's query")
        check(worst < 2e-3, f"{name}: choice log-likelihoods equal PyTorch's (float64) within {worst:.2e} (bound 2e-3)")
        r = res[name]
        check(len(got) == r["n"] == len(items) and abs(r["acc"] - np.mean(acc)) < 1e-12 and abs(r["acc_norm"] - np.mean(acc_norm)) < 1e-12,
              f"{name}: acc {r['acc']:.3f}, acc_norm {r['acc_norm']:.3f} over {r['n']} items")
        check(abs(r["acc_stderr"] - stderr(acc)) < 1e-12 and abs(r["acc_norm_stderr"] - stderr(acc_norm)) < 1e-12,
              f"{name}: standard errors {r['acc_stderr']:.4f}, {r['acc_norm_stderr']:.4f} (sample std / sqrt(n))")
    cut = {n: sum(any(len(s["prompt"].encode()) + len((it.get("target_delimiter", " ") + c).encode()) - 1 > MAX
                      for c in it["choices"]) for s in samples if s["task"] == n for it in [items[s["item"]]])
           for n, items in (("t-mc", mc), ("t-ja", ja))}
    check(res["t-mc"]["truncated"] == cut["t-mc"] > 0 and res["t-ja"]["truncated"] == cut["t-ja"],
          f"contexts cut from the left counted: {cut}")

    # Generation: greedy by full recomputation, the prompt cut to leave room for NEW tokens.
    strict_re, flex_re = re.compile(r"#### (\-?[0-9\.\,]+)"), re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")

    def norm(s):
        for r_ in [",", r"\$", r"(?s).*#### ", r"\.$"]:
            s = re.sub(r_, "", s)
        return s.lower()
    got = [s for s in samples if s["task"] == "t-gen"]
    same_text, same_em, em, em_flex, found = True, True, [], [], 0
    for s in got:
        it = gen[s["item"]]
        ids = list(s["prompt"].encode())[-(MAX - NEW):]
        out = []
        for _ in range(NEW):
            nxt = int(torch.argmax(logits_of(ids)[-1, :258]))
            if nxt == 256:
                break
            out.append(nxt)
            ids.append(nxt)
            if "\n\n" in bytes(out).decode("utf-8", errors="replace"):
                break
        text = bytes(out).decode("utf-8", errors="replace").split("\n\n")[0]
        gold = norm(it["answer"].split("####")[-1].strip())
        m = strict_re.findall(text)
        f = [x for x in flex_re.findall(text)]
        strict = m[0] if m else "[invalid]"
        flex = [g for g in f[-1] if g][0] if f else "[invalid]"
        em.append(float(norm(strict) == gold))
        em_flex.append(float(norm(flex) == gold))
        found += strict != "[invalid]"
        same_text = same_text and text == s["completion"] and strict == s["strict"] and flex == s["flexible"]
        same_em = same_em and s["exact_match"] == em[-1] and s["exact_match_flexible"] == em_flex[-1]
    print("\n".join(repr(s["completion"]) for s in got[:3]))
    check(same_text, "t-gen: every greedy completion and its strict and flexible answers equal PyTorch's and Python's re")
    check(same_em and found > 0, f"t-gen: exact matches item by item ({found} of {len(got)} completions hold '#### n')")
    r = res["t-gen"]
    long_prompts = sum(len(s["prompt"].encode()) > MAX - NEW for s in got)
    check(r["truncated"] == long_prompts, f"t-gen: {long_prompts} prompts cut to leave room for {NEW} new tokens")
    check(abs(r["exact_match"] - np.mean(em)) < 1e-12 and abs(r["exact_match_flexible"] - np.mean(em_flex)) < 1e-12,
          f"t-gen: exact_match {r['exact_match']:.2f}, flexible {r['exact_match_flexible']:.2f}")

# The project's task files load and score (four tasks, 100 items each).
p = subprocess.run([kumiki, "eval-tasks", "--model", run, *sum((["--tasks", x] for x in sorted(glob.glob(f"{tasks_dir}/*.jsonl"))), []),
                    "--limit", "16", "--max-new-tokens", "24", "--out", f"{work}/all.json", "--quiet"], capture_output=True, text=True)
got = json.load(open(f"{work}/all.json"))["tasks"] if p.returncode == 0 else {}
check(sorted(got) == ["arith-gen-en", "arith-gen-ja", "arith-mc-en", "arith-mc-ja"] and all(v["n"] == 16 for v in got.values()),
      "examples/tasks/*.jsonl score with --limit 16" + ("" if p.returncode == 0 else ": " + p.stderr[-300:]))

# Bad input, in the user's terms.
bad = {
    "unknown key": ('{"task": "a", "kind": "generate", "query": "q", "answer": "#### 1", "anwser": 2}', 'line 1: unknown key "anwser"'),
    "gold range": ('{"task": "a", "kind": "multiple_choice", "query": "q", "choices": ["x", "y"], "gold": 2}', '"gold" is 2 but there are 2 choices'),
    "no ####": ('{"task": "a", "kind": "generate", "query": "q", "answer": "42"}', 'must end in \\"#### <number>\\"'),
    "mixed": ('{"task": "a", "kind": "generate", "query": "q", "answer": "#### 1"}\n'
              '{"task": "a", "kind": "multiple_choice", "query": "q", "choices": ["x", "y"], "gold": 0}', 'line 2: task "a" mixes kinds'),
    "json": ('{"task": "a", "kind": ', "line 1"),
}
for what, (body, message) in bad.items():
    with open(f"{work}/bad.jsonl", "w") as f:
        f.write(body + "\n")
    r = subprocess.run([kumiki, "eval-tasks", "--model", run, "--tasks", f"{work}/bad.jsonl"], capture_output=True, text=True)
    check(r.returncode == 1 and "bad.jsonl" in r.stderr and message.replace('\\"', '"') in r.stderr,
          f"{what}: refused: {r.stderr.strip()[:150]}")
r = subprocess.run([kumiki, "eval-tasks", "--model", run, "--tasks", f"{work}/tasks.jsonl", "--out", f"{work}/no/r.json"],
                   capture_output=True, text=True)
check(r.returncode == 1 and "--out '" in r.stderr and "does not exist; create it first" in r.stderr,
      f"an output in a missing directory: refused before scoring: {r.stderr.strip()[:150]}")
r = subprocess.run([kumiki, "eval-tasks", "--model", run, "--tasks", f"{work}/tasks.jsonl", "--shots", "20"],
                   capture_output=True, text=True)
check(r.returncode == 1 and 'task "t-mc" has 9 few-shot examples for each item, fewer than --shots 20' in r.stderr,
      f"too many shots: refused: {r.stderr.strip()[:150]}")

_t.finish()
