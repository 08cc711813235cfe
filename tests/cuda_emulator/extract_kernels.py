#!/usr/bin/env python3
"""extract_kernels.py MAIN_INCLUDE GEN_DIR OUT HEADER:NS[,NS...] ...: device code of CUDA op headers for the emulator.

Writes GEN_DIR/OUT: for each HEADER (relative to MAIN_INCLUDE, in the order given) its #include lines that host
g++ can take (each once), then every top-level `namespace NS { ... }` block of the header (brace-matched), each
inside KUMIKI_NAMESPACE_BEGIN and the namespaces that enclose it in the original (`namespace ops {`,
`namespace optim {`), run through prep.py, with #line directives pointing into the original file.

Inside a block, top-level declarations with host code are left out (each on its own, the rest of the block
is kept): `<<<` launches, cudaXxx( / cublasXxx( runtime calls or types, KUMIKI_CUDA_CHECK, and uses of the
Cuda device tag (`<Cuda>`: Arena<Cuda>, Ctx<Cuda>, Buffer<Cuda>, whose definitions need the CUDA runtime).
The test driver replicates what it needs of them.

Included kumiki/.../cuda/ headers: one with an emulator replacement under fake/ is included as is; pure device
code (no host markers) is prepped into GEN_DIR/kumiki/... (first on the include path), recursively; anything
else is dropped (extract its namespaces too if the kernels need them: HEADER order is the output order).
KUMIKI_EMU_VERBOSE=1 lists what is dropped.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import prep  # noqa: E402

FAKE = os.path.join(HERE, 'fake')
HOST_MARKERS = re.compile(r'<<<|\bcuda[A-Z]\w*\s*\(|KUMIKI_CUDA_CHECK|KUMIKI_CUBLAS_CHECK|\bcublas\w*\s*\(')
# Per declaration inside an extracted namespace: also CUDA runtime / cuBLAS types and the Cuda device tag.
DECL_HOST = re.compile(HOST_MARKERS.pattern + r'|\bcuda[A-Z]\w*_t\b|\bcublas[A-Z]\w*|<\s*Cuda\s*>|\bCUBLAS\w*|\bCUDA_R_\w*')
VERBOSE = bool(os.environ.get('KUMIKI_EMU_VERBOSE'))
MAIN = GEN = None
_done = {}


def note(text):
    if VERBOSE:
        print('extract_kernels: ' + text, file=sys.stderr)


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


def keep_include(path, angle):
    """Decides an include; preps pure-device CUDA headers into GEN as a side effect."""
    if angle and prep.is_cuda_system_include(path):
        return False
    if not path.startswith('kumiki/') or '/cuda/' not in path:
        return True
    if path in _done:
        return _done[path]
    if os.path.exists(os.path.join(FAKE, path)):
        _done[path] = True
        return True
    real = os.path.join(MAIN, path)
    if not os.path.exists(real):
        print(f'extract_kernels: warning: {path} not found; include dropped', file=sys.stderr)
        _done[path] = False
        return False
    with open(real) as f:
        if HOST_MARKERS.search(code_only(f.read())):
            note(f'{path} has host code: include dropped')
            _done[path] = False
            return False
    _done[path] = True
    out = os.path.join(GEN, path)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    prep.prep_file(real, out, keep_include)
    note(f'prepped {path} -> {out}')
    return True


def match_brace(clean, i):
    """Offset of the } matching the { at i."""
    depth = 0
    while i < len(clean):
        if clean[i] == '{':
            depth += 1
        elif clean[i] == '}':
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise SystemExit('extract_kernels: unbalanced braces')


def enclosing(clean, pos):
    """Names of the namespaces open at pos (KUMIKI_NAMESPACE_BEGIN's excluded)."""
    stack = []
    for m in re.finditer(r'\bnamespace\s+([\w:]+)\s*\{|[{}]', clean[:pos]):
        if m.group(0) == '}':
            stack.pop()
        else:
            stack.append(m.group(1))  # None for a plain brace
    return [s for s in stack if s]


def declarations(clean, lo, hi):
    """(start, end) of the top-level declarations in clean[lo:hi] (a namespace body): ends at a `;` at brace
    depth 0, or at a `}` back to depth 0 that is followed by `;` (taken) or by something that cannot continue
    an expression (a function body; `T{1} << 16` goes on)."""
    decls, depth, start, i = [], 0, None, lo
    while i < hi:
        c = clean[i]
        if start is None:
            if c.isspace():
                i += 1
                continue
            start = i
        if c == '{':
            depth += 1
        elif c == '}':
            depth -= 1
            if depth == 0:
                j = i + 1
                while j < hi and clean[j].isspace():
                    j += 1
                if j < hi and clean[j] == ';':
                    decls.append((start, j + 1))
                    start, i = None, j + 1
                    continue
                if j >= hi or clean[j].isalpha() or clean[j] in '_#[}':
                    decls.append((start, i + 1))
                    start = None
        elif c == ';' and depth == 0:
            decls.append((start, i + 1))
            start = None
        i += 1
    if start is not None and clean[start:hi].strip():
        decls.append((start, hi))
    return decls


def extract(header, names):
    src = os.path.join(MAIN, header)
    with open(src) as f:
        text = f.read()
    clean = code_only(text)
    includes = []
    for line in text.split('\n'):
        m = prep._INCLUDE.match(line)
        if m and keep_include(m.group(2), m.group(1) == '<'):
            includes.append(line.strip())
    parts = []
    found = 0
    for name in names:
        for m in re.finditer(r'^namespace\s+' + re.escape(name) + r'\s*\{', clean, re.M):
            found += 1
            open_at = m.end() - 1
            close_at = match_brace(clean, open_at)
            outer = enclosing(clean, m.start())
            body = []
            pos = open_at + 1
            for s, e in declarations(clean, open_at + 1, close_at):
                if DECL_HOST.search(clean[s:e]):
                    first = clean[s:e].split('(')[0].split('{')[0].split()
                    note(f'{header}:{text.count(chr(10), 0, s) + 1}: host declaration left out '
                         f'({" ".join(first[-3:])})')
                    body.append(text[pos:s])
                    body.append('\n' * text.count('\n', s, e))
                    pos = e
            body.append(text[pos:close_at])
            line = text.count('\n', 0, open_at) + 1
            parts += ['KUMIKI_NAMESPACE_BEGIN'] + [f'namespace {o} {{' for o in outer] + [f'namespace {name} {{',
                      f'#line {line} "{src}"', prep.prep_text(''.join(body)),
                      f'#line 100000 "{os.path.basename(src)} (end of namespace {name})"', '}'] + \
                     ['}' for _ in outer] + ['KUMIKI_NAMESPACE_END', '']
    if not found:
        raise SystemExit(f'extract_kernels: no namespace {", ".join(names)} in {src}')
    return includes, parts


def main():
    global MAIN, GEN
    if len(sys.argv) < 5:
        raise SystemExit(__doc__)
    MAIN, GEN, out_name = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(GEN, exist_ok=True)
    all_includes, bodies = [], []
    for spec in sys.argv[4:]:
        header, _, names = spec.partition(':')
        includes, parts = extract(header, [n for n in names.split(',') if n])
        all_includes += [i for i in includes if i not in all_includes]
        bodies += parts
    out = os.path.join(GEN, out_name)
    text = '\n'.join(['// Generated by tests/cuda_emulator/extract_kernels.py: do not edit.', '#pragma once', '']
                     + all_includes + [''] + bodies)
    with open(out, 'w') as f:  # always: the build compares its time with the headers'
        f.write(text)
    note(f'-> {out}')


if __name__ == '__main__':
    main()
