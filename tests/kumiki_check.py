"""Shared plumbing of kumiki's Python system tests: a fresh work directory and soft checks that
print `ok` / `FAIL` lines and set the exit status at the end.

    from kumiki_check import Checks
    t = Checks()                        # argv: KUMIKI_BINARY WORK_DIR; WORK_DIR is emptied
    t.check(cond, "what was expected")
    t.finish()                          # prints the count, exits 1 if any check failed
    write_indexed(prefix, docs)         # a small Megatron .bin/.idx dataset (uint16 tokens)
"""
import os
import shutil
import struct
import sys


class Checks:
    def __init__(self, argv=None):
        argv = sys.argv if argv is None else argv
        if len(argv) < 3:
            sys.exit(f"usage: {os.path.basename(argv[0])} KUMIKI_BINARY WORK_DIR")
        self.kumiki, self.work = argv[1], argv[2]
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        self.failures = []

    def check(self, ok, what):
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if not ok:
            self.failures.append(what)
        return ok

    def finish(self):
        print(f"{len(self.failures)} failure(s)")
        sys.exit(1 if self.failures else 0)


def write_indexed(prefix, docs):
    """A Megatron .bin/.idx pair (uint16 tokens, one sequence per document), written from the layout."""
    with open(prefix + ".bin", "wb") as f:
        for d in docs:
            f.write(struct.pack("<%dH" % len(d), *d))
    lengths = [len(d) for d in docs]
    pointers = [2 * sum(lengths[:i]) for i in range(len(docs))]
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, 8, len(docs), len(docs) + 1))
        f.write(struct.pack("<%di" % len(docs), *lengths))
        f.write(struct.pack("<%dq" % len(docs), *pointers))
        f.write(struct.pack("<%dq" % (len(docs) + 1), *range(len(docs) + 1)))
