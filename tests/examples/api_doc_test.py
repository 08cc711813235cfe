#!/usr/bin/env python3
"""docs/api.md quotes the programs of examples/embed exactly: each code block after a
`<!-- quote: FILE api:NAME -->` line is the region between `// [api:NAME]` and `// [api:end]` of FILE
(dedented), one after `<!-- quote: FILE -->` the whole file, and every region of a quoted file is quoted.
Those programs are built and run as an outside project by `ctest -R package`, so the tour's code compiles
and runs.

usage: api_doc_test.py SOURCE_DIR
"""
import os
import re
import sys
import textwrap

root = sys.argv[1]
doc = open(os.path.join(root, "docs", "api.md")).read()
failures = []
quoted = {}
for m in re.finditer(r"<!-- quote: (\S+)(?: api:(\w+))? -->\n```cpp\n(.*?)\n```", doc, re.S):
    path, name, block = m.group(1), m.group(2), m.group(3)
    text = open(os.path.join(root, path)).read()
    regions = dict(re.findall(r"// \[api:(\w+)\]\n(.*?)\n *// \[api:end\]", text, re.S))
    quoted.setdefault(path, (regions, set()))
    if name is None:
        want = text.rstrip()
    elif name not in regions:
        failures.append(f"{path} has no region api:{name}")
        continue
    else:
        want = textwrap.dedent(regions[name])
        quoted[path][1].add(name)
    what = f"{path}" + (f" api:{name}" if name else "")
    if block != want:
        failures.append(f"the quote of {what} differs from the file")
    print(("ok   " if block == want else "FAIL ") + f"docs/api.md quotes {what} exactly")
for path, (regions, seen) in quoted.items():
    for name in regions:
        if name not in seen:
            failures.append(f"region api:{name} of {path} is not quoted in docs/api.md")
if not quoted:
    failures.append("docs/api.md quotes nothing")
for f in failures:
    print("FAIL " + f)
print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
