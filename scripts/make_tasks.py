#!/usr/bin/env python3
"""Task files for `kumiki eval-tasks` (docs/tasks.md), written by the project.

  make_tasks.py arithmetic OUT_DIR [--check]
      Arithmetic word problems in English and Japanese, as GSM8K-style generation tasks (the answer
      after "####") and as multiple choice: examples/tasks/arith-{gen,mc}-{en,ja}.jsonl. The same
      seed gives the same files; --check compares with the files in OUT_DIR instead of writing them.
  make_tasks.py cloze --name NAME --text FILE --out FILE.jsonl [--items N] [--seed S] [--lang en|ja]
      Multiple-choice cloze items from held-out text (paragraphs separated by blank lines): the
      beginning of a paragraph, its true next words and three continuations taken from other
      paragraphs at the same place. A model that learned the language prefers the true one.
"""
import argparse
import json
import os
import random
import sys

# Per language: names, things and the four problem forms (question, worked answer) over a, b, c,
# s = a + b and the result r.
WORDS = {
    "en": {
        "names": ["Ken", "Mary", "Taro", "Anna", "Sam", "Yuki", "Lisa", "Tom"],
        "things": ["apple", "pencil", "book", "stamp", "cookie", "card", "marble", "shell"],
        "forms": [
            ("{n} has {a} {t}s and buys {b} more. How many {t}s does {n} have?", "{a} + {b} = {r}. #### {r}"),
            ("{n} has {a} {t}s and gives {b} away. How many {t}s are left?", "{a} - {b} = {r}. #### {r}"),
            ("{n} buys {a} bags with {b} {t}s in each. How many {t}s is that?", "{a} * {b} = {r}. #### {r}"),
            ("{n} has {a} {t}s, buys {b} more and gives {c} away. How many {t}s are left?",
             "{a} + {b} = {s}. {s} - {c} = {r}. #### {r}"),
        ],
    },
    "ja": {
        "names": ["健", "花子", "太郎", "由紀", "翔太", "美咲", "陽菜", "大輔"],
        "things": ["りんご", "鉛筆", "本", "切手", "クッキー", "カード", "ビー玉", "貝殻"],
        "forms": [
            ("{n}さんは{t}を{a}個持っていて、{b}個買いました。{t}は何個ですか。", "{a} + {b} = {r}。#### {r}"),
            ("{n}さんは{t}を{a}個持っていて、{b}個あげました。残りは何個ですか。", "{a} - {b} = {r}。#### {r}"),
            ("{n}さんは{t}が{b}個入った袋を{a}袋買いました。{t}は全部で何個ですか。", "{a} * {b} = {r}。#### {r}"),
            ("{n}さんは{t}を{a}個持っていて、{b}個買い、{c}個あげました。残りは何個ですか。",
             "{a} + {b} = {s}。{s} - {c} = {r}。#### {r}"),
        ],
    },
}


def word_problem(rng, lang):
    """(question, worked answer ending in '#### r') of one of the four forms."""
    form = rng.randrange(4)
    a, b, c = rng.randint(2, 20), rng.randint(2, 9), rng.randint(1, 5)
    if form == 1:
        a += b  # nothing negative
    if form == 2:
        a = rng.randint(2, 9)
    r = [a + b, a - b, a * b, a + b - c][form]
    w = WORDS[lang]
    n, t = rng.choice(w["names"]), rng.choice(w["things"])
    q, ans = w["forms"][form]
    return q.format(n=n, t=t, a=a, b=b, c=c), ans.format(a=a, b=b, c=c, s=a + b, r=r)


def sum_choice(rng, lang):
    """(question, choices, gold) for a + b, a - b or a * b with three near misses."""
    op = rng.choice("+-*")
    a, b = rng.randint(2, 30), rng.randint(2, 9)
    if op == "-":
        a += b
    right = a + b if op == "+" else a - b if op == "-" else a * b
    wrong = set()
    while len(wrong) < 3:
        w = right + rng.choice([-10, -2, -1, 1, 2, 10])
        if w >= 0 and w != right:
            wrong.add(w)
    choices = [str(x) for x in [right, *sorted(wrong)]]
    rng.shuffle(choices)
    q = f"What is {a} {op} {b}?" if lang == "en" else f"{a} {op} {b} はいくつですか。"
    return q, choices, choices.index(str(right))


def query(lang, q):
    return f"Question: {q}\nAnswer:" if lang == "en" else f"問題: {q}\n答え:"


def arithmetic(items=100, seed=2026):
    """{file name: JSON lines text}."""
    files = {}
    for lang in ("en", "ja"):
        rng = random.Random(f"{seed}-gen-{lang}")
        lines = []
        for _ in range(items):
            q, a = word_problem(rng, lang)
            lines.append({"task": f"arith-gen-{lang}", "kind": "generate", "query": query(lang, q), "answer": a})
        files[f"arith-gen-{lang}.jsonl"] = lines
        rng = random.Random(f"{seed}-mc-{lang}")
        lines = []
        for _ in range(items):
            q, choices, gold = sum_choice(rng, lang)
            lines.append({"task": f"arith-mc-{lang}", "kind": "multiple_choice", "query": query(lang, q),
                          "choices": choices, "gold": gold})
        files[f"arith-mc-{lang}.jsonl"] = lines
    return {k: "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in v) for k, v in files.items()}


def cloze(name, text, items, seed, lang):
    """Cloze items: context = a paragraph's first `ctx` characters (English: up to a space), choices =
    the next `cont` characters of it and of three other paragraphs at the same place (English: whole
    words, so that no choice gives itself away by starting mid-word)."""
    ctx, cont = (80, 24) if lang == "en" else (40, 12)
    paras = [" ".join(p.split()) for p in text.split("\n\n")]
    paras = [p for p in paras if len(p) >= ctx + cont + 8]
    if len(paras) < 4:
        sys.exit(f"make_tasks.py: {name}: the text has {len(paras)} paragraphs of {ctx + cont + 8} characters or more; "
                 "4 are needed")
    rng = random.Random(f"{seed}-{name}")

    def words_from(p, at):
        """English: the whole words of p from the first word start at or after `at`, up to `cont` characters."""
        if at > 0 and p[at - 1] != " ":
            at = p.find(" ", at) + 1
            if at == 0:
                return ""
        w = p[at:at + cont + 1]
        return w[:w.rfind(" ")].strip() if " " in w else ""

    out = []
    for k in rng.sample(range(len(paras)), min(items, len(paras))):
        cut = ctx
        if lang == "en":  # the context ends before a space; choices are whole words
            cut = paras[k].rfind(" ", 20, ctx)
            if cut < 0:
                continue
            cut += 1
        pick = (lambda p: words_from(p, cut)) if lang == "en" else (lambda p: p[cut:cut + cont])
        true = pick(paras[k])
        wrong = []
        for i in rng.sample(range(len(paras)), 8):
            w = pick(paras[i])
            if i != k and w and w != true and w not in wrong:
                wrong.append(w)
        if len(wrong) < 3 or not true:
            continue
        choices = [true, *wrong[:3]]
        rng.shuffle(choices)
        query = paras[k][:cut - 1] if lang == "en" else paras[k][:cut]
        out.append({"task": name, "kind": "multiple_choice", "query": query, "choices": choices,
                    "gold": choices.index(true), "target_delimiter": " " if lang == "en" else ""})
    return "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    ar = sub.add_parser("arithmetic")
    ar.add_argument("out_dir")
    ar.add_argument("--check", action="store_true")
    cl = sub.add_parser("cloze")
    cl.add_argument("--name", required=True)
    cl.add_argument("--text", required=True)
    cl.add_argument("--out", required=True)
    cl.add_argument("--items", type=int, default=100)
    cl.add_argument("--seed", type=int, default=1)
    cl.add_argument("--lang", choices=["en", "ja"], default="en")
    a = ap.parse_args()
    if a.what == "arithmetic":
        stale = []
        for name, body in arithmetic().items():
            path = os.path.join(a.out_dir, name)
            if a.check:
                old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
                if old != body:
                    stale.append(path)
            else:
                os.makedirs(a.out_dir, exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(body)
        if stale:
            sys.exit("make_tasks.py: these differ from what `make_tasks.py arithmetic` writes: " + ", ".join(stale))
    else:
        with open(a.text, encoding="utf-8", errors="replace") as f:
            body = cloze(a.name, f.read(), a.items, a.seed, a.lang)
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(body)
        print(f"make_tasks.py: {a.out}: {body.count(chr(10))} items of {a.name}")


if __name__ == "__main__":
    main()
