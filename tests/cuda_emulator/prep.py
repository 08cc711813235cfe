#!/usr/bin/env python3
"""prep.py IN OUT: makes a CUDA source compilable by g++ with cuda_emu.hpp force-included.

  - `extern __shared__ <attrs> TYPE NAME[];` -> `TYPE* const NAME = reinterpret_cast<TYPE*>(::emu::dynamic_smem());`
    (attrs: __align__(n) / alignas(n), before or after TYPE)
  - `static __shared__` -> `__shared__` (the emulator's __shared__ is already `static`)
  - `#include <cuda_runtime.h>`, <cuda.h>, <cuda_bf16.h>, <cuda_fp16.h>, <cub/...>, <cuda/...>, <mma.h> -> removed
Line numbers are kept (a `#line 1 "IN"` heads OUT), so compiler messages point into the original file.
Importable: prep_text(text, keep_include=None) is the same on a string; keep_include(path, angle) -> bool
decides other #include lines (default: keep).
"""
import re
import sys

_SHARED = re.compile(r'extern\s+__shared__\s+([^;\[\]]*?)\s*\b([A-Za-z_]\w*)\s*\[\s*\]\s*;')
_ATTR = re.compile(r'(__align__|alignas|__attribute__)\s*\(\s*(\([^()]*\)|[^()])*\)')
_INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
_CUDA_HEADERS = re.compile(r'^(cuda_runtime(_api)?\.h|cuda\.h|cuda_bf16\.h|cuda_fp16\.h|cuda_fp8\.h|mma\.h|'
                           r'cub/.*|cuda/.*|cuda_pipeline.*|device_launch_parameters\.h|cublas.*\.h)$')


def is_cuda_system_include(path):
    return bool(_CUDA_HEADERS.match(path))


def _shared_repl(m):
    decl = _ATTR.sub(' ', m.group(1))
    ty = ' '.join(decl.split())
    if not ty:
        raise SystemExit(f'prep.py: cannot parse {m.group(0)!r}')
    name = m.group(2)
    newlines = m.group(0).count('\n')
    return (f'{ty}* const {name} = reinterpret_cast<{ty}*>(::emu::dynamic_smem());' + '\n' * newlines)


def prep_text(text, keep_include=None):
    out = []
    for line in text.split('\n'):
        m = _INCLUDE.match(line)
        if m:
            angle = m.group(1) == '<'
            path = m.group(2)
            if angle and is_cuda_system_include(path):
                out.append('// [prep] removed: ' + line.strip())
                continue
            if keep_include is not None and not keep_include(path, angle):
                out.append('// [prep] removed: ' + line.strip())
                continue
        out.append(line)
    text = '\n'.join(out)
    text = re.sub(r'\bstatic\s+__shared__\b', '__shared__', text)
    text = _SHARED.sub(_shared_repl, text)
    return text


def prep_file(src, dst, keep_include=None):
    with open(src) as f:
        text = f.read()
    body = prep_text(text, keep_include)
    with open(dst, 'w') as f:
        f.write(f'#line 1 "{src}"\n' + body)


if __name__ == '__main__':
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    prep_file(sys.argv[1], sys.argv[2])
