#!/usr/bin/env python3
"""The torchrun-style rendezvous (kumiki/dist/rendezvous.hpp) between local processes over TCP:

- three ranks, the others started before rank 0, all receive rank 0's payload;
- a rank started with another WORLD_SIZE than rank 0's: both fail, each naming both sizes;
- two processes with the same RANK: every process fails, naming the RANK;
- a rank whose rank 0 never starts fails within its timeout (plus slack) with "could not reach";
- rank 0 whose other ranks never start fails within its timeout, naming the missing ranks;
- a bad RANK ("x", or >= WORLD_SIZE) or a missing variable fails at once, naming the variable;
- a payload size that differs from rank 0's fails on both sides;
- MASTER_PORT held by another listener (torchrun's agent store): rank 0 fails at once naming the port
  and KUMIKI_RENDEZVOUS_PORT; with TORCHELASTIC_USE_AGENT_STORE=True (as torchrun sets it) the ranks
  meet on MASTER_PORT + 1; KUMIKI_RENDEZVOUS_PORT chooses the port.

usage: rendezvous_test.py RENDEZVOUS_MAIN WORK_DIR
"""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from kumiki_check import Checks  # noqa: E402

_t = Checks(sys.argv[:3])
binary, check = _t.kumiki, _t.check
TIMEOUT = 2.0  # the rendezvous timeout given to the processes that are expected to give up, seconds
SLACK = 1.5  # what a process may take beyond its timeout (start-up, the last poll)
EXPECTED = bytes((37 * i + 11) % 256 for i in range(128)).hex()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(rank, world, port, timeout=5.0, payload=None, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                                                            "TORCHELASTIC_USE_AGENT_STORE", "KUMIKI_RENDEZVOUS_PORT")}
    env.update({"RANK": str(rank), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    env.update(extra)
    args = [binary, str(timeout)] + ([str(payload)] if payload is not None else [])
    p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.started = time.monotonic()
    return p


def finish(p, limit=15):
    """(exit code, stdout, stderr, seconds from start to exit) of a started process."""
    try:
        out, err = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return None, out, err + "\n(killed: it hung)", time.monotonic() - p.started
    return p.returncode, out, err, time.monotonic() - p.started


def payload_of(out):
    return next((line.split()[1] for line in out.splitlines() if line.startswith("payload ")), None)


t_all = time.monotonic()

# Three ranks; ranks 1 and 2 start first and retry until rank 0 listens.
port = free_port()
others = [start(r, 3, port) for r in (1, 2)]
time.sleep(0.3)
ranks = [start(0, 3, port)] + others
results = [finish(p) for p in ranks]
check(all(rc == 0 for rc, *_ in results), "3 ranks: every rank exits 0" +
      "".join(f"\n    rank {r}: rc {rc} {err.strip()}" for r, (rc, _, err, _) in enumerate(results) if rc != 0))
check(all(payload_of(out) == EXPECTED for _, out, _, _ in results), "3 ranks: every rank receives rank 0's 128 bytes")

# WORLD_SIZE 2 on rank 0, 3 on rank 1: both fail, naming both sizes.
port = free_port()
r0 = start(0, 2, port)
r1 = start(1, 3, port)
(rc0, _, err0, _), (rc1, _, err1, _) = finish(r0), finish(r1)
check(rc0 == 1 and "WORLD_SIZE=3" in err0 and "WORLD_SIZE=2" in err0,
      f"a mismatched WORLD_SIZE fails rank 0, naming both sizes: {err0.strip()}")
check(rc1 == 1 and "WORLD_SIZE=3" in err1 and "WORLD_SIZE=2" in err1,
      f"a mismatched WORLD_SIZE fails the other rank, naming both sizes: {err1.strip()}")

# Two processes say RANK=1.
port = free_port()
procs = [start(0, 3, port), start(1, 3, port), start(1, 3, port)]
res = [finish(p) for p in procs]
check(all(rc == 1 and "RANK=1" in err for rc, _, err, _ in res),
      "a RANK given twice fails every process, naming it: " + res[0][2].strip())

# Rank 0 never starts: rank 1 gives up after its timeout.
port = free_port()
rc, _, err, took = finish(start(1, 2, port, timeout=TIMEOUT))
check(rc == 1 and "could not reach the rendezvous at 127.0.0.1:" in err and TIMEOUT <= took <= TIMEOUT + SLACK,
      f"without rank 0, rank 1 fails in {took:.2f} s (timeout {TIMEOUT} s): {err.strip()}")

# Ranks 2 and 3 never start: rank 0 gives up after its timeout and tells rank 1.
port = free_port()
r0 = start(0, 4, port, timeout=TIMEOUT)
r1 = start(1, 4, port, timeout=30)
(rc0, _, err0, took0), (rc1, _, err1, took1) = finish(r0), finish(r1)
check(rc0 == 1 and "missing: ranks 2, 3" in err0 and took0 <= TIMEOUT + SLACK,
      f"with ranks missing, rank 0 fails in {took0:.2f} s naming them: {err0.strip()}")
check(rc1 == 1 and "missing: ranks 2, 3" in err1 and took1 <= TIMEOUT + SLACK,
      f"... and the rank that arrived is told why in {took1:.2f} s: {err1.strip()}")

# Bad variables fail at once, naming the variable and its value.
for extra, names in [({"RANK": "x"}, ["RANK='x'"]), ({"RANK": "3"}, ["RANK=3", "WORLD_SIZE=3"]),
                     ({"WORLD_SIZE": "0"}, ["WORLD_SIZE=0"]), ({"MASTER_PORT": "http"}, ["MASTER_PORT='http'"]),
                     ({"LOCAL_RANK": "-1"}, ["LOCAL_RANK=-1"])]:
    rc, _, err, took = finish(start(1, 3, free_port(), **extra))
    check(rc == 1 and all(n in err for n in names) and took < 2, f"{extra} fails at once: {err.strip()}")

# Payload sizes that differ (builds that disagree on the NCCL id's size).
port = free_port()
r0 = start(0, 2, port, payload=128)
r1 = start(1, 2, port, payload=64)
(rc0, _, err0, _), (rc1, _, err1, _) = finish(r0), finish(r1)
check(rc0 == 1 and rc1 == 1 and "expects 64 bytes" in err1, f"differing payload sizes fail both ranks: {err1.strip()}")

# torchrun's agent keeps its store listening on MASTER_PORT (a listener that never answers stands for it).
def held_port_pair():
    """A listening socket on some port P whose P + 1 is free, and P."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("", 0))
        s.listen(8)
        p = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind(("", p + 1))
            return s, p
        except OSError:
            s.close()
    raise RuntimeError("no pair of free ports")


store, port = held_port_pair()
rc, _, err, took = finish(start(0, 2, port, timeout=TIMEOUT))
check(rc == 1 and f"MASTER_PORT={port}" in err and "KUMIKI_RENDEZVOUS_PORT" in err and took < 2,
      f"MASTER_PORT held by another listener: rank 0 fails at once, naming it and the way out: {err.strip()}")
agent = {"TORCHELASTIC_USE_AGENT_STORE": "True"}
ranks = [start(1, 2, port, **agent), start(0, 2, port, **agent)]
results = [finish(p) for p in ranks]
check(all(rc == 0 and payload_of(out) == EXPECTED for rc, out, _, _ in results),
      "under torchrun (TORCHELASTIC_USE_AGENT_STORE=True, its store on MASTER_PORT) the ranks meet on MASTER_PORT + 1" +
      "".join(f"\n    rc {rc} {err.strip()}" for rc, _, err, _ in results if rc != 0))
own = {"KUMIKI_RENDEZVOUS_PORT": str(free_port())}
ranks = [start(0, 2, port, **own), start(1, 2, port, **own)]
results = [finish(p) for p in ranks]
check(all(rc == 0 and payload_of(out) == EXPECTED for rc, out, _, _ in results),
      f"KUMIKI_RENDEZVOUS_PORT={own['KUMIKI_RENDEZVOUS_PORT']} moves the rendezvous off a held MASTER_PORT" +
      "".join(f"\n    rc {rc} {err.strip()}" for rc, _, err, _ in results if rc != 0))
rc, _, err, took = finish(start(1, 2, port, KUMIKI_RENDEZVOUS_PORT="70000"))
check(rc == 1 and "KUMIKI_RENDEZVOUS_PORT=70000" in err and took < 2, f"a bad KUMIKI_RENDEZVOUS_PORT fails at once: {err.strip()}")
store.close()

print(f"rendezvous tests took {time.monotonic() - t_all:.1f} s")
_t.finish()
