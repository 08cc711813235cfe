#!/usr/bin/env python3
"""Independent reference for kumiki's blending: writes Megatron indexed datasets with its own writer
(struct, straight from the .idx layout), runs `kumiki data inspect --dump-index`, and compares it
sample for sample with Megatron-LM's dataset builder (megatron/core/datasets) re-implemented here in
Python with the real numpy:

    normalize(w)   = w / numpy.sum(w)                   (numpy's pairwise float64 sum)
    weighted       w1 = normalize(weights); dataset i built for ceil(ceil(N * w1_i) * (1 + 0.005));
                   blend length sum_i ceil(N * w1_i); index from normalize(w1) (BlendedDataset
                   normalizes again)
    weightless     L_i = samples in one epoch of dataset i's part; length min(N, sum L); index from
                   normalize(L)
    index          for t = 0, 1, ...: i = argmax_i (w_i * max(t, 1) - count_i)   (first index wins ties)
                   dataset_index[t] = i; dataset_sample_index[t] = count_i; count_i += 1
    --split        parse_and_normalize_split, then book-ends 0, s0, s0 + s1, s0 + s1 + s2; part k of a
                   dataset of n sequences is [round(lo * n), round(hi * n)) (Python's round)

It first checks that numpy.sum is the pairwise summation kumiki re-implements (lengths 1..300), then
compares the blending weights to the last bit, the requests, the split ranges, the blend length and
the index, for weighted blends (3 r 6 r 1 r over 100k samples, ten 0.1s, random sets of 2..40
weights), splits and weightless lists; refused inputs (weight 0, mixed forms, bad splits) must fail
with a message. One dataset is written the other way round: `kumiki preprocess --tokenizer bytes` of
the English + Japanese test corpus, read back here with Python's own .idx/.bin reader and decoded.

usage: blend_reference.py KUMIKI_BINARY WORK_DIR CORPUS_DIR
"""
import csv
import functools
import json
import math
import os
import random
import re
import shutil
import struct
import subprocess
import sys

import numpy

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


def sequence_lengths(prefix):
    """Sequence lengths of a Megatron dataset, straight from its .idx."""
    idx = open(prefix + ".idx", "rb").read()
    n = struct.unpack_from("<Q", idx, 18)[0]
    return list(struct.unpack_from("<%di" % n, idx, 34))


# ---- numpy and Megatron, re-implemented (megatron/core/datasets: utils.py, blended_megatron_dataset_builder.py,
# ---- blended_megatron_dataset_config.py, blended_dataset.py, helpers.cpp) -----------------------------------

def pairwise_sum(a):
    """numpy's pairwise float64 summation, the model kumiki's numpy_pairwise_sum implements."""
    n = len(a)
    if n < 8:
        res = 0.0
        for x in a:
            res += x
        return res
    if n <= 128:
        r = list(a[:8])
        i = 8
        while i < n - n % 8:
            for j in range(8):
                r[j] += a[i + j]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for x in a[i:]:
            res += x
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return pairwise_sum(a[:n2]) + pairwise_sum(a[n2:])


def check_numpy_sum(rng):
    """The model above equals the real numpy.sum bit for bit (and differs from Python's sum)."""
    differs_from_sum = 0
    for n in list(range(1, 301)) * 3:
        kind = rng.randrange(4)
        if kind == 0:
            a = [rng.random() for _ in range(n)]
        elif kind == 1:
            a = [rng.random() * 10 ** rng.randint(-12, 12) for _ in range(n)]
        elif kind == 2:
            a = [float(rng.randint(1, 10 ** 6)) / 10 ** rng.randint(0, 7) for _ in range(n)]
        else:
            a = [0.1] * n
        got, want = pairwise_sum(a), float(numpy.sum(numpy.array(a, dtype=numpy.float64)))
        if got != want:
            print("FAIL numpy.sum model: n=%d kind %d: model %r, numpy %r" % (n, kind, got, want))
            return False
        differs_from_sum += got != sum(a)
    print("numpy.sum equals the pairwise model for 900 lists of 1..300 float64s (%d differ from Python's sum): OK"
          % differs_from_sum)
    return True


def normalize(weights):
    """Megatron's utils.normalize."""
    w = numpy.array(weights, dtype=numpy.float64)
    return (w / numpy.sum(w)).tolist()


def blending_index(weights, size):
    """helpers.cpp build_blending_indices; Python floats are IEEE doubles, products not fused."""
    counts = [0] * len(weights)
    out = []
    for t in range(size):
        td = max(float(t), 1.0)
        best, best_err = 0, weights[0] * td - counts[0]
        for i in range(1, len(weights)):
            err = weights[i] * td - counts[i]
            if err > best_err:
                best, best_err = i, err
        out.append((best, counts[best]))
        counts[best] += 1
    return out


def parse_split(text):
    """blended_megatron_dataset_config.parse_and_normalize_split."""
    split = [float(x) for x in re.findall(r"[.0-9]+", text)]
    split = split + [0.0] * (3 - len(split))
    assert len(split) == 3 and all(x >= 0.0 for x in split)
    return normalize(split)


def split_part(split, n, part=0):
    """convert_split_vector_to_split_matrix + _build_megatron_dataset_splits: [begin, end) or None."""
    ends = functools.reduce(lambda a, b: a + [a[len(a) - 1] + b], [[0], *split])
    lo, hi = ends[part], ends[part + 1]
    if hi <= lo:
        return None
    return int(round(lo * float(n))), int(round(hi * float(n)))


def megatron_blend(weights, lengths_per_epoch, target):
    """(index weights, requests, blend length, index) of the builder for the train part."""
    if weights is None:
        w = normalize(lengths_per_epoch)
        size = min(target, sum(lengths_per_epoch))
        return w, list(lengths_per_epoch), size, blending_index(w, size)
    once = normalize(weights)
    requests = [int(math.ceil(math.ceil(target * x) * (1 + 0.005))) for x in once]
    size = sum(int(math.ceil(math.ceil(target * x) * (1 + 0.0))) for x in once)
    twice = normalize(once)
    return twice, requests, size, blending_index(twice, size)


# ---- running kumiki --------------------------------------------------------------------------------------------

def run_inspect(kumiki, work, k, data_path, seq_len, samples, split=None, seed=1234):
    dump = os.path.join(work, "index%s.csv" % k)
    cmd = [kumiki, "data", "inspect", "--data-path", *data_path, "--seq-len", str(seq_len), "--samples", str(samples),
           "--seed", str(seed), "--dump-index", dump]
    if split is not None:
        cmd += ["--split", split]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return None, "kumiki failed: %s\n%s%s" % (" ".join(cmd), res.stdout, res.stderr)
    with open(dump) as f:
        rows = list(csv.reader(f))
    return (res.stdout, rows), None


def check_case(kumiki, work, k, words, seq_len, samples, split=None, label=None):
    """words: --data-path as names under work (weights as written). Returns the number of failures."""
    data_path, names, weights = [], [], []
    numbers = [w for w in words[::2]]
    weighted = len(words) % 2 == 0 and all(re.fullmatch(r"[-+.0-9e]+", w) for w in numbers)
    if weighted:
        for i in range(0, len(words), 2):
            data_path += [words[i], os.path.join(work, words[i + 1])]
            names.append(words[i + 1])
            weights.append(float(words[i]))
    else:
        data_path = [os.path.join(work, w) for w in words]
        names = list(words)
        weights = None
    out, err = run_inspect(kumiki, work, k, data_path, seq_len, samples, split)
    label = label or "case %s" % k
    if err:
        print("FAIL %s: %s" % (label, err))
        return 1
    stdout, rows = out
    split_v = parse_split(split if split is not None else "969,30,1")
    problems = []
    parts, part_tokens, per_epoch = [], [], []
    for name in names:
        lengths = sequence_lengths(os.path.join(work, name))
        part = split_part(split_v, len(lengths))
        parts.append(part)
        tokens = sum(lengths[part[0]:part[1]])
        part_tokens.append(tokens)
        per_epoch.append((tokens - 1) // seq_len)
    if len(names) == 1 and weights is None:
        w, requests, size, ref = [1.0], [samples], samples, [(0, t) for t in range(samples)]
    else:
        w, requests, size, ref = megatron_blend(weights, per_epoch, samples)
    if rows[0] != ["sample", "dataset", "dataset_sample"]:
        problems.append("bad CSV header %s" % rows[0])
    got = [(int(r[1]), int(r[2])) for r in rows[1:]]
    if [int(r[0]) for r in rows[1:]] != list(range(len(got))):
        problems.append("sample column is not 0..N-1")
    if len(got) != size:
        problems.append("blend of %d samples, Megatron's holds %d" % (len(got), size))
    differ = sum(1 for a, b in zip(got, ref) if a != b)
    for t, (a, b) in enumerate(zip(got, ref)):
        if a != b:
            problems.append("sample %d: kumiki %s, Megatron %s (%d positions differ)" % (t, a, b, differ))
            break
    line = [l for l in stdout.splitlines() if l.startswith("blending weights:")]
    got_w = [float(x) for x in line[0].split()[2:]] if line else []
    if got_w != w:
        problems.append("blending weights %s, Megatron %s" % (got_w, w))
    table = [l.split() for l in stdout.splitlines() if l[:1].isdigit()]
    if len(table) != len(names):
        problems.append("inspect printed %d dataset rows, expected %d" % (len(table), len(names)))
    else:
        for i, row in enumerate(table):
            n_docs, n_tokens = truth[names[i]]
            realized = sum(1 for d, _ in ref if d == i)
            want = {2: n_docs, 4: n_tokens, 5: parts[i][0], 6: parts[i][1], 7: part_tokens[i], 8: requests[i], 10: realized}
            for col, value in want.items():
                if int(row[col]) != value:
                    problems.append("dataset %d column %d: kumiki %s, Megatron %d" % (i, col, row[col], value))
    print("%s: %d datasets (%s), %d samples -> %d, seq_len %d, split %s: %s" %
          (label, len(names), "weighted" if weights else "weightless" if len(names) > 1 else "single", samples, size,
           seq_len, split or "default", "OK" if not problems else "MISMATCH"))
    for p in problems[:10]:
        print("   ", p)
    return bool(problems)


def check_refused(kumiki, work, words, split, want):
    data_path = [os.path.join(work, w) if w in truth else w for w in words]
    cmd = [kumiki, "data", "inspect", "--data-path", *data_path, "--seq-len", "8", "--samples", "10"]
    if split is not None:
        cmd += ["--split", split]
    res = subprocess.run(cmd, capture_output=True, text=True)
    ok = res.returncode == 1 and res.stderr.startswith("kumiki: error:") and all(w in res.stderr for w in want)
    print("refused %s%s: %s" % (" ".join(words), " --split " + split if split else "", "OK" if ok else "NOT AS EXPECTED"))
    if not ok:
        print("    exit %d: %s" % (res.returncode, res.stderr.strip()))
    return not ok


truth = {}


def main():
    kumiki, work, corpus = sys.argv[1], sys.argv[2], sys.argv[3]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rng = random.Random(20261129)
    failures = 0 if check_numpy_sum(rng) else 1
    specs = [("web_ja", 300, 1, 400, 8), ("wiki_en", 120, 50, 900, 4), ("code", 40, 200, 3000, 1), ("tiny", 3, 5, 9, 8),
             ("r", 200, 5, 50, 1), ("few", 7, 20, 60, 8), ("mid", 1000, 1, 30, 8)]
    for name, n_docs, lo, hi, code in specs:
        vmax = 255 if code == 1 else 65535
        docs = [[rng.randint(0, vmax) for _ in range(rng.randint(lo, hi))] for _ in range(n_docs)]
        write_indexed(os.path.join(work, name), docs, code)
        truth[name] = (n_docs, sum(len(d) for d in docs))
    if check_preprocess(kumiki, corpus, os.path.join(work, "corpus")):
        _, docs = read_indexed(os.path.join(work, "corpus"))
        truth["corpus"] = (len(docs), sum(len(d) for d in docs))
    else:
        failures += 1

    # (words, seq_len, samples, split)
    cases = [
        (["0.5", "web_ja", "0.3", "wiki_en", "0.2", "code"], 64, 20000, None),
        (["1", "web_ja", "1", "wiki_en", "1", "code"], 32, 9999, None),          # exact ties
        (["1", "web_ja", "2", "wiki_en", "3", "code", "4", "tiny"], 16, 5000, None),  # unnormalized
        (["0.001", "web_ja", "0.999", "wiki_en"], 128, 3001, None),              # tiny weight
        (["0.1", "code", "0.1", "code", "0.8", "web_ja"], 8, 7, None),           # repeated prefix, few samples
        (["0.3333", "web_ja", "0.3333", "wiki_en", "0.3334", "tiny"], 4096, 1, None),
        (["7.5", "wiki_en", "2.5", "web_ja"], 100, 100000, None),
        (["0.9", "web_ja", "0.1", "corpus"], 64, 2000, None),
        (["3", "r", "6", "r", "1", "r"], 2, 100000, None),                        # issue 11: 0.3 / 0.6 / 0.1
        (sum((["0.1", "r"] for _ in range(10)), []), 2, 1000, None),              # issue 11: ten 0.1s
        (["web_ja"], 16, 3000, None),                                             # one prefix, used as is
        # --split
        (["0.6", "mid", "0.4", "web_ja"], 8, 5000, "1,1,1"),
        (["0.6", "mid", "0.4", "few"], 8, 5000, "98,2"),
        (["1", "mid", "1", "few"], 8, 5000, "99.5 0.4 0.1"),
        (["0.5", "few", "0.5", "tiny"], 4, 500, "100,0,0"),
        (["mid"], 8, 2000, "90,9,1"),
        # weightless: in proportion to one epoch of each dataset, capped
        (["web_ja", "wiki_en"], 64, 100000, None),
        (["web_ja", "wiki_en", "code"], 64, 500, None),
        (["mid", "few", "r", "tiny"], 8, 100000, "95,5"),
        (["r", "r", "few"], 4, 700, "1,1,1"),
    ]
    for k, (words, seq_len, samples, split) in enumerate(cases):
        failures += check_case(kumiki, work, k, words, seq_len, samples, split)

    # Random weight sets of 2..40 weights (names drawn with repetition), written in several notations.
    names = ["web_ja", "wiki_en", "code", "r", "few", "mid"]
    n_random = 0
    for k in range(14):
        n = 2 + (k * 38) // 13
        words = []
        for _ in range(n):
            style = rng.randrange(4)
            if style == 0:
                wt = repr(rng.random() + 1e-9)
            elif style == 1:
                wt = "%d" % rng.randint(1, 1000)
            elif style == 2:
                wt = "0.%d" % rng.randint(1, 99)
            else:
                wt = "%de-%d" % (rng.randint(1, 9), rng.randint(1, 4))
            words += [wt, rng.choice(names)]
        split = rng.choice([None, "969,30,1", "1,1,1", "90 5 5", "100"])
        failures += check_case(kumiki, work, "r%d" % k, words, rng.choice([2, 8, 32]), rng.choice([997, 5000, 20000]),
                               split, label="random %d weights" % n)
        n_random += 1

    # What kumiki computed before (one normalization, summed left to right) against Megatron, issue 11's figure.
    once = [x / sum([3.0, 6.0, 1.0]) for x in [3.0, 6.0, 1.0]]
    old = blending_index(once, 100000)
    new = megatron_blend([3.0, 6.0, 1.0], None, 100000)[3][:100000]
    print("for reference: a single left-to-right normalization of 3/6/1 differs from Megatron at %d of 100000 positions"
          % sum(1 for a, b in zip(old, new) if a != b))

    refused = [
        (["0.5", "web_ja", "0", "wiki_en"], None, ["weight 0", "wiki_en"]),
        (["0.5", "web_ja", "-1", "wiki_en"], None, ["weight -1", "wiki_en"]),
        (["nan", "web_ja", "1", "wiki_en"], None, ["weight nan", "web_ja"]),
        (["0.5", "web_ja", "wiki_en", "code"], None, ["wiki_en"]),
        (["0.5", "web_ja", "0.5"], None, ["0.5"]),
        (["web_ja"], "1,2,x", ["--split", "x"]),
        (["web_ja"], "1,1,1,1", ["--split"]),
        (["tiny"], "1,99", ["tiny", "1,99", "train part no sequences"]),  # 3 documents: round(0.03) = 0
        (["few"], "0,1", ["few", "train part no sequences"]),
    ]
    for words, split, want in refused:
        failures += check_refused(kumiki, work, words, split, want)

    shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % failures)
        sys.exit(1)
    print("kumiki equals Megatron-LM's blend builder in all %d cases (%d random weight sets), refusals as Megatron's "
          "asserts or clearer" % (len(cases) + n_random, n_random))


if __name__ == "__main__":
    main()
