#!/usr/bin/env python3
"""What extract_attention.py and extract_kernels.py share: host-code markers, comment stripping and the
include decisions (pure-device kumiki CUDA headers prepped into the generated tree, fakes kept, host headers
dropped)."""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import prep  # noqa: E402

FAKE = os.path.join(HERE, 'fake')
HOST_MARKERS = re.compile(r'<<<|\bcuda[A-Z]\w*\s*\(|KUMIKI_CUDA_CHECK|KUMIKI_CUBLAS_CHECK|\bcublas\w*\s*\(')
VERBOSE = bool(os.environ.get('KUMIKI_EMU_VERBOSE'))  # also say what is prepped and dropped


def code_only(text):
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


def match_brace(clean, i):
    """Offset of the } matching the { at i of comment-free text (SystemExit when unbalanced)."""
    depth = 0
    while i < len(clean):
        if clean[i] == '{':
            depth += 1
        elif clean[i] == '}':
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise SystemExit(f'unbalanced braces in extracted code (from offset {i})')


class Includes:
    """Decides the #include lines of extracted code (keep(path, angle)); preps each pure-device kumiki CUDA
    header it keeps into gen (first on the include path) as a side effect, recursively, once."""

    def __init__(self, main, gen, prog):
        self.main, self.gen, self.prog, self.done = main, gen, prog, {}

    def note(self, text):
        if VERBOSE:
            print(f'{self.prog}: {text}', file=sys.stderr)

    def keep(self, path, angle):
        if angle and prep.is_cuda_system_include(path):
            return False
        if not path.startswith('kumiki/') or '/cuda/' not in path:
            return True  # host-compatible C++ (config, bf16, device, ...)
        if path in self.done:
            return self.done[path]
        if os.path.exists(os.path.join(FAKE, path)):
            self.done[path] = True
            return True
        real = os.path.join(self.main, path)
        if not os.path.exists(real):
            print(f'{self.prog}: warning: {path} not found; include dropped', file=sys.stderr)
            self.done[path] = False
            return False
        with open(real) as f:
            if HOST_MARKERS.search(code_only(f.read())):
                self.note(f'{path} has host code (<<<, cuda API calls): include dropped')
                self.done[path] = False
                return False
        self.done[path] = True  # before recursing (include cycles)
        out = os.path.join(self.gen, path)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        prep.prep_file(real, out, self.keep)
        self.note(f'prepped {path} -> {out}')
        return True
