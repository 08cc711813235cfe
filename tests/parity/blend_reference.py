#!/usr/bin/env python3
"""Independent reference for kumiki's blending: writes Megatron indexed datasets with its own writer
(struct, straight from the .idx layout), runs `kumiki data inspect --dump-index`, and compares the
blending index sample for sample with Megatron's greedy rule implemented here in pure Python:

    for t = 0, 1, ...: i = argmax_i (w_i * max(t, 1) - count_i)   (first index wins ties)
    dataset_index[t] = i; dataset_sample_index[t] = count_i; count_i += 1

plus the per-dataset request ceil(ceil(N * w_i) * 1.005), and the documents/tokens kumiki reads.
One dataset of the blend is written the other way round: `kumiki preprocess --tokenizer bytes` of the
English + Japanese test corpus, read back here with Python's own .idx/.bin reader and decoded.

usage: blend_reference.py KUMIKI_BINARY WORK_DIR CORPUS_DIR
"""
import csv
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys

DTYPES = {1: ("B", 1), 4: ("i", 4), 8: ("H", 2)}  # uint8, int32, uint16


def write_indexed(prefix, docs, code):
    """Megatron .bin/.idx: one sequence per document."""
    fmt, size = DTYPES[code]
    with open(prefix + ".bin", "wb") as f:
        for d in docs:
            f.write(struct.pack("<%d%s" % (len(d), fmt), *d))
    lengths = [len(d) for d in docs]
    pointers, at = [], 0
    for n in lengths:
        pointers.append(at)
        at += n * size
    doc_idx = list(range(len(docs) + 1))
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", code))
        f.write(struct.pack("<Q", len(lengths)))
        f.write(struct.pack("<Q", len(doc_idx)))
        f.write(struct.pack("<%di" % len(lengths), *lengths))
        f.write(struct.pack("<%dq" % len(pointers), *pointers))
        f.write(struct.pack("<%dq" % len(doc_idx), *doc_idx))


def read_indexed(prefix):
    """Documents of a Megatron dataset as lists of token ids, read straight from the layout."""
    idx = open(prefix + ".idx", "rb").read()
    assert idx[:9] == b"MMIDIDX\x00\x00", "magic"
    version, code, n, m = struct.unpack_from("<QBQQ", idx, 9)
    assert version == 1
    fmt, size = DTYPES[code]
    lengths = struct.unpack_from("<%di" % n, idx, 34)
    pointers = struct.unpack_from("<%dq" % n, idx, 34 + 4 * n)
    doc_idx = struct.unpack_from("<%dq" % m, idx, 34 + 12 * n)
    assert len(idx) == 34 + 12 * n + 8 * m
    binary = open(prefix + ".bin", "rb").read()
    seqs = [struct.unpack_from("<%d%s" % (lengths[i], fmt), binary, pointers[i]) for i in range(n)]
    return code, [sum((list(seqs[s]) for s in range(doc_idx[d], doc_idx[d + 1])), []) for d in range(m - 1)]


def corpus_documents(corpus):
    """Documents `kumiki preprocess` must produce from the corpus directory (paths sorted)."""
    files = sorted(os.path.join(root, f) for root, _, names in os.walk(corpus) for f in names if not f.startswith("."))
    docs = []
    for path in files:
        if path.endswith(".jsonl"):
            with open(path, encoding="utf-8") as f:
                docs += [json.loads(line)["text"] for line in f if line.strip()]
        else:
            with open(path, encoding="utf-8", newline="") as f:
                docs.append(f.read())
    return docs


def check_preprocess(kumiki, corpus, prefix):
    res = subprocess.run([kumiki, "preprocess", "--input", corpus, "--tokenizer", "bytes", "--output-prefix", prefix,
                          "--append-eod", "--workers", "2"], capture_output=True, text=True)
    if res.returncode != 0:
        print("FAIL preprocess:", res.stdout, res.stderr)
        return False
    if "docs/s" not in res.stderr or "MB/s" not in res.stderr:
        print("FAIL preprocess: no progress line on stderr:", res.stderr)
        return False
    code, docs = read_indexed(prefix)
    want = corpus_documents(corpus)
    ok = code == 8 and len(docs) == len(want)
    for got, text in zip(docs, want):
        expected = list(text.encode("utf-8")) + ([256] if text else [])
        ok = ok and got == expected
    print("preprocess of the corpus (%d documents, uint16) read back by Python: %s" % (len(want), "OK" if ok else "MISMATCH"))
    return ok


def megatron_blending_index(weights, size):
    total = sum(weights)
    w = [x / total for x in weights]
    counts = [0] * len(w)
    out = []
    for t in range(size):
        td = max(float(t), 1.0)
        best, best_err = 0, w[0] * td - counts[0]
        for i in range(1, len(w)):
            err = w[i] * td - counts[i]
            if err > best_err:
                best, best_err = i, err
        out.append((best, counts[best]))
        counts[best] += 1
    return w, out


def main():
    kumiki, work, corpus = sys.argv[1], sys.argv[2], sys.argv[3]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rng = random.Random(20261129)
    specs = [("web_ja", 300, 1, 400, 8), ("wiki_en", 120, 50, 900, 4), ("code", 40, 200, 3000, 1), ("tiny", 3, 5, 9, 8)]
    truth = {}
    for name, n_docs, lo, hi, code in specs:
        vmax = 255 if code == 1 else 65535
        docs = [[rng.randint(0, vmax) for _ in range(rng.randint(lo, hi))] for _ in range(n_docs)]
        write_indexed(os.path.join(work, name), docs, code)
        truth[name] = (n_docs, sum(len(d) for d in docs))
    failures = 0
    if check_preprocess(kumiki, corpus, os.path.join(work, "corpus")):
        _, docs = read_indexed(os.path.join(work, "corpus"))
        truth["corpus"] = (len(docs), sum(len(d) for d in docs))
    else:
        failures += 1

    cases = [
        (["0.5", "web_ja", "0.3", "wiki_en", "0.2", "code"], 64, 20000),
        (["1", "web_ja", "1", "wiki_en", "1", "code"], 32, 9999),          # exact ties
        (["1", "web_ja", "2", "wiki_en", "3", "code", "4", "tiny"], 16, 5000),  # unnormalized
        (["0.001", "web_ja", "0.999", "wiki_en"], 128, 3001),              # tiny weight
        (["0.1", "code", "0.1", "code", "0.8", "web_ja"], 8, 7),           # repeated prefix, few samples
        (["0.3333", "web_ja", "0.3333", "wiki_en", "0.3334", "tiny"], 4096, 1),
        (["7.5", "wiki_en", "2.5", "web_ja"], 100, 100000),
        (["0.9", "web_ja", "0.1", "corpus"], 64, 2000),
    ]
    for k, (path, seq_len, samples) in enumerate(cases):
        args = []
        for i in range(0, len(path), 2):
            args += [path[i], os.path.join(work, path[i + 1])]
        dump = os.path.join(work, "index%d.csv" % k)
        cmd = [kumiki, "data", "inspect", "--data-path", *args, "--seq-len", str(seq_len), "--samples", str(samples),
               "--seed", str(1000 + k), "--dump-index", dump]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print("FAIL case %d: %s\n%s%s" % (k, " ".join(cmd), res.stdout, res.stderr))
            failures += 1
            continue
        weights = [float(path[i]) for i in range(0, len(path), 2)]
        names = [path[i + 1] for i in range(0, len(path), 2)]
        w, ref = megatron_blending_index(weights, samples)
        with open(dump) as f:
            rows = list(csv.reader(f))
        problems = []
        if rows[0] != ["sample", "dataset", "dataset_sample"]:
            problems.append("bad CSV header %s" % rows[0])
        got = [(int(r[1]), int(r[2])) for r in rows[1:]]
        if [int(r[0]) for r in rows[1:]] != list(range(samples)):
            problems.append("sample column is not 0..N-1")
        if len(got) != len(ref):
            problems.append("%d rows, expected %d" % (len(got), len(ref)))
        for t, (a, b) in enumerate(zip(got, ref)):
            if a != b:
                problems.append("sample %d: kumiki %s, reference %s" % (t, a, b))
                break
        # The per-dataset table: documents and tokens as written here, requests with the 0.5% surplus,
        # realized counts.
        table = [line.split() for line in res.stdout.splitlines() if line[:1].isdigit()]
        if len(table) != len(names):
            problems.append("inspect printed %d dataset rows, expected %d" % (len(table), len(names)))
        else:
            for i, row in enumerate(table):
                n_docs, n_tokens = truth[names[i]]
                requested = math.ceil(math.ceil(samples * w[i]) * 1.005)
                realized = sum(1 for d, _ in ref if d == i)
                want = {2: n_docs, 4: n_tokens, 5: requested, 7: realized}
                for col, value in want.items():
                    if int(row[col]) != value:
                        problems.append("dataset %d column %d: kumiki %s, reference %d" % (i, col, row[col], value))
        print("case %d: %d datasets, %d samples, seq_len %d: %s" %
              (k, len(names), samples, seq_len, "OK" if not problems else "MISMATCH"))
        for p in problems[:10]:
            print("   ", p)
        failures += bool(problems)
    shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("%d case(s) failed" % failures)
        sys.exit(1)
    print("blending index equals the Megatron greedy reference in all %d cases" % len(cases))


if __name__ == "__main__":
    main()
