#!/usr/bin/env python3
"""extract_attention.py MAIN_INCLUDE GEN_DIR: the device code of kumiki/ops/cuda/attention.cuh for the emulator.

Writes GEN_DIR/attention_kernels.hpp: attention.cuh's #include lines that host g++ can take, then every top-level
`namespace attention_cuda { ... }` block of the file (brace-matched; the host struct Attention<Cuda> with its
<<<>>> launches is left out), inside KUMIKI_NAMESPACE_BEGIN / namespace ops { as in the original, run through
prep.py, with #line directives pointing into the original file.

Included kumiki/.../cuda/ headers (and every kumiki/ops/cuda/attention*.cuh besides attention.cuh, e.g.
attention_common.cuh, attention_mma.cuh):
  - one with an emulator replacement under fake/ (mma.cuh): included as is (-I order picks the fake);
  - pure device code (no <<<, no cudaXxx( runtime calls, no KUMIKI_CUDA_CHECK): prepped into GEN_DIR/kumiki/...
    (GEN_DIR comes first in -I, so the prepped copy wins), recursively;
  - anything else (host code): the #include is dropped.
Also warns when the real mma.cuh declares a function the fake lacks.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import prep  # noqa: E402

if len(sys.argv) != 3:
    raise SystemExit(__doc__)
MAIN, GEN = sys.argv[1], sys.argv[2]
FAKE = os.path.join(HERE, 'fake')
SRC = os.path.join(MAIN, 'kumiki/ops/cuda/attention.cuh')

HOST_MARKERS = re.compile(r'<<<|\bcuda[A-Z]\w*\s*\(|KUMIKI_CUDA_CHECK|KUMIKI_CUBLAS_CHECK|\bcublas\w*\s*\(')
_done = {}  # include path -> keep?
VERBOSE = bool(os.environ.get('KUMIKI_EMU_VERBOSE'))  # also say what is prepped and dropped


def note(text):
    if VERBOSE:
        print('extract_attention: ' + text, file=sys.stderr)


def strip_comments(text):
    """Comments and string / char literals blanked (same length, newlines kept), for brace matching."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith('//', i):
            j = text.find('\n', i)
            j = n if j < 0 else j
            out.append(' ' * (j - i))
            i = j
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', text[i:j]))
            i = j
        elif c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            j = min(j + 1, n)
            out.append(c + ' ' * (j - i - 2) + c if j - i >= 2 else c)
            i = j
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def code_only(text):
    return strip_comments(text)


def is_pure_device(path):
    with open(path) as f:
        return not HOST_MARKERS.search(code_only(f.read()))


def keep_include(path, angle):
    """Decides a kumiki include; preps pure-device CUDA headers into GEN as a side effect."""
    if angle and prep.is_cuda_system_include(path):
        return False
    if not path.startswith('kumiki/'):
        return True
    if '/cuda/' not in path:
        return True  # host-compatible C++ (config, bf16, device, ...)
    if path in _done:
        return _done[path]
    if os.path.exists(os.path.join(FAKE, path)):
        _done[path] = True
        return True
    real = os.path.join(MAIN, path)
    if not os.path.exists(real):
        print(f'extract_attention: warning: {path} not found; include dropped', file=sys.stderr)
        _done[path] = False
        return False
    if not is_pure_device(real):
        note(f'{path} has host code (<<<, cuda API calls): include dropped')
        _done[path] = False
        return False
    _done[path] = True  # before recursing (include cycles)
    out = os.path.join(GEN, path)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    prep.prep_file(real, out, keep_include)
    note(f'prepped {path} -> {out}')
    return True


def namespace_blocks(text, name):
    """(start, end) offsets of every top-level `namespace name {` ... matching `}` (end after the brace and the
    rest of its line)."""
    clean = code_only(text)
    blocks = []
    for m in re.finditer(r'^namespace\s+' + re.escape(name) + r'\s*\{', clean, re.M):
        depth, i = 0, m.end() - 1
        while i < len(clean):
            if clean[i] == '{':
                depth += 1
            elif clean[i] == '}':
                depth -= 1
                if depth == 0:
                    break
            i += 1
        if depth != 0:
            raise SystemExit(f'extract_attention: unbalanced braces after offset {m.start()}')
        j = text.find('\n', i)
        blocks.append((m.start(), len(text) if j < 0 else j))
    return blocks


def check_fake_mma():
    real = os.path.join(MAIN, 'kumiki/ops/cuda/mma.cuh')
    fake = os.path.join(FAKE, 'kumiki/ops/cuda/mma.cuh')
    if not os.path.exists(real):
        return
    real_fn = re.compile(r'^__device__[^;{(]*?\b(\w+)\s*\(', re.M)
    fake_fn = re.compile(r'^(?:__device__|inline)[^;{(]*?\b(\w+)\s*\(', re.M)
    have = set(fake_fn.findall(open(fake).read()))
    want = set(real_fn.findall(code_only(open(real).read())))
    for f in sorted(want - have):
        print(f'extract_attention: WARNING: the real mma.cuh declares {f}(), the emulator fake '
              f'{fake} does not: add it', file=sys.stderr)


def main():
    os.makedirs(GEN, exist_ok=True)
    with open(SRC) as f:
        text = f.read()
    includes = []
    for line in text.split('\n'):
        m = prep._INCLUDE.match(line)
        if m and keep_include(m.group(2), m.group(1) == '<'):
            includes.append(line.strip())
    # Every other attention*.cuh next to attention.cuh (the test driver may include them directly).
    cuda_dir = os.path.join(MAIN, 'kumiki/ops/cuda')
    for fn in sorted(os.listdir(cuda_dir)):
        if fn.startswith('attention') and fn.endswith('.cuh') and fn != 'attention.cuh':
            keep_include('kumiki/ops/cuda/' + fn, False)
    blocks = namespace_blocks(text, 'attention_cuda')
    if not blocks:
        raise SystemExit('extract_attention: no `namespace attention_cuda {` block in ' + SRC)
    parts = ['// Generated by tests/cuda_emulator/extract_attention.py from ' + SRC + ': do not edit.',
             '#pragma once', ''] + includes + ['', 'KUMIKI_NAMESPACE_BEGIN', 'namespace ops {']
    for start, end in blocks:
        line = text.count('\n', 0, start) + 1
        body = text[start:end]
        if HOST_MARKERS.search(code_only(body)):
            print('extract_attention: warning: host code (<<< or cuda API) inside namespace attention_cuda',
                  file=sys.stderr)
        parts += [f'#line {line} "{SRC}"', prep.prep_text(body)]
    parts += ['#line 100000 "attention_kernels.hpp"', '}  // namespace ops', 'KUMIKI_NAMESPACE_END', '']
    out = os.path.join(GEN, 'attention_kernels.hpp')
    with open(out, 'w') as f:
        f.write('\n'.join(parts))
    note(f'{len(blocks)} block(s), lines '
         + ', '.join(f'{text.count(chr(10), 0, s) + 1}-{text.count(chr(10), 0, e) + 1}' for s, e in blocks)
         + f' -> {out}')
    check_fake_mma()


if __name__ == '__main__':
    main()
