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
from extract_common import HOST_MARKERS, Includes, code_only, match_brace  # noqa: E402

# Per declaration inside an extracted namespace: also CUDA runtime / cuBLAS types and the Cuda device tag.
DECL_HOST = re.compile(HOST_MARKERS.pattern + r'|\bcuda[A-Z]\w*_t\b|\bcublas[A-Z]\w*|<\s*Cuda\s*>|\bCUBLAS\w*|\bCUDA_R_\w*')
MAIN = GEN = INCLUDES = None


def keep_include(path, angle):
    return INCLUDES.keep(path, angle)


def note(text):
    INCLUDES.note(text)


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
    global MAIN, GEN, INCLUDES
    if len(sys.argv) < 5:
        raise SystemExit(__doc__)
    MAIN, GEN, out_name = sys.argv[1], sys.argv[2], sys.argv[3]
    INCLUDES = Includes(MAIN, GEN, 'extract_kernels')
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
