#!/usr/bin/env python3
"""safetensors parity: kumiki's writer against an independent parser, and kumiki's reader against an
independent writer. Nothing here uses the `safetensors` package or kumiki code: the format is parsed
and written with json + struct + numpy, bf16 rounding comes from torch, f16 from numpy.

usage: safetensors_check.py TOOL WORKDIR   (TOOL = the built safetensors_parity_tool)

The tensors are closed-form functions of the element index i (the C++ tool restates the same spec):
  f32.bits      [10,100] F32  bits = ((i*2654435761 mod 2^32) & 0x807FFFFF) | ((100 + i%60) << 23),
                              and when i%5 == 0 the low 16 bits become 0x8000 (a bf16 tie)
  bf16.from_f32 [10,100] BF16 f32.bits rounded to bf16 (writer's own conversion; checked against torch)
  f16.from_f32  [10,100] F16  f32.bits rounded to f16 (checked against numpy)
  f16.all       [256,256] F16 bits = i
  f32.from_f16  [65536] F32   f16 bit pattern i decoded to f32 (numpy; NaNs compare as NaN)
  f64.lin [4,50] F64 i*0.25-100;  i64.hash [300] I64 i*0x9E3779B97F4A7C15 mod 2^64;
  i32.quad [10,10,3] I32 i*i-1000*i;  i16.lin [500] I16 (i*37 mod 65536)-32768;  u16.lin [500] U16 i*37 mod 65536;
  i8.lin [3,7] I8 (i*7 mod 256)-128;  u8.lin [301] U8 i*3 mod 256;  u32.hash [64] U32 i*2654435761 mod 2^32;
  scalar [] F32 42.5;  empty [0,3] F32;  bf16.r4 [2,3,4,5] BF16 bits = i*331 mod 65536
metadata: {"format": "pt", "producer": "kumiki" | "python"}
"""
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import torch

NP = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64,
      "I32": np.int32, "I16": np.int16, "I8": np.int8, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8}


def f32_bits():
    i = np.arange(1000, dtype=np.uint64)
    u = (i * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    u = (u & np.uint64(0x807FFFFF)) | ((np.uint64(100) + i % np.uint64(60)) << np.uint64(23))
    tie = (i % np.uint64(5)) == 0
    u[tie] = (u[tie] & np.uint64(0xFFFF0000)) | np.uint64(0x8000)
    return u.astype(np.uint32).view(np.float32).reshape(10, 100)


def expected():
    """name -> (dtype, shape, numpy array holding the exact element values / bit patterns)"""
    x = f32_bits()
    bf = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    with np.errstate(over="ignore", under="ignore"):
        f16 = x.astype(np.float16)
    all16 = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    i = lambda n: np.arange(n, dtype=np.int64)
    u = lambda n: np.arange(n, dtype=np.uint64)
    t = {
        "f32.bits": ("F32", [10, 100], x),
        "bf16.from_f32": ("BF16", [10, 100], bf),
        "f16.from_f32": ("F16", [10, 100], f16),
        "f16.all": ("F16", [256, 256], all16.view(np.float16).reshape(256, 256)),
        "f32.from_f16": ("F32", [65536], all16.view(np.float16).astype(np.float32)),
        "f64.lin": ("F64", [4, 50], (i(200) * 0.25 - 100.0).reshape(4, 50)),
        "i64.hash": ("I64", [300], (u(300) * np.uint64(0x9E3779B97F4A7C15)).view(np.int64)),
        "i32.quad": ("I32", [10, 10, 3], (i(300) * i(300) - 1000 * i(300)).astype(np.int32).reshape(10, 10, 3)),
        "i16.lin": ("I16", [500], ((i(500) * 37) % 65536 - 32768).astype(np.int16)),
        "u16.lin": ("U16", [500], ((i(500) * 37) % 65536).astype(np.uint16)),
        "i8.lin": ("I8", [3, 7], ((i(21) * 7) % 256 - 128).astype(np.int8).reshape(3, 7)),
        "u8.lin": ("U8", [301], ((i(301) * 3) % 256).astype(np.uint8)),
        "u32.hash": ("U32", [64], ((u(64) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)),
        "scalar": ("F32", [], np.array(42.5, dtype=np.float32)),
        "empty": ("F32", [0, 3], np.zeros((0, 3), dtype=np.float32)),
        "bf16.r4": ("BF16", [2, 3, 4, 5], ((i(120) * 331) % 65536).astype(np.uint16).reshape(2, 3, 4, 5)),
    }
    return t


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def parse_file(path):
    """Own minimal parser with the format's rules; returns (metadata, {name: (dtype, shape, array)}, info)."""
    raw = open(path, "rb").read()
    if len(raw) < 8:
        fail(f"{path}: shorter than 8 bytes")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        fail(f"{path}: header length {n} beyond file")
    header_bytes = raw[8:8 + n]
    header = json.loads(header_bytes.decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors, spans = {}, []
    for name, e in header.items():
        dt, shape, (b, end) = e["dtype"], e["shape"], e["data_offsets"]
        itemsize = np.dtype(NP[dt]).itemsize
        if end - b != int(np.prod(shape, dtype=np.int64)) * itemsize or end > len(data):
            fail(f"{path}: bad offsets for {name}")
        tensors[name] = (dt, shape, np.frombuffer(data[b:end], dtype=np.dtype(NP[dt]).newbyteorder("<")).reshape(shape))
        spans.append((b, end, name, itemsize))
    spans.sort()
    pos = 0
    for b, end, name, _ in spans:
        if b != pos:
            fail(f"{path}: {name} at {b}, expected {pos} (hole or overlap)")
        pos = end
    if pos != len(data):
        fail(f"{path}: {len(data) - pos} trailing bytes")
    info = {"header_len": n, "header_text": header_bytes, "spans": spans}
    return meta, tensors, info


def same(dt, got, want, nan_equal):
    if dt == "BF16":
        want = want.view(np.uint16) if want.dtype != np.uint16 else want
    g = np.ascontiguousarray(got).reshape(-1).view(np.uint8)
    w = np.ascontiguousarray(want).reshape(-1).view(np.uint8)
    if g.shape == w.shape and np.array_equal(g, w):
        return True
    if nan_equal:
        a, b = got.reshape(-1), want.reshape(-1)
        return bool(np.all((a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))))
    return False


def check_tensors(where, meta, tensors, producer):
    exp = expected()
    if meta != {"format": "pt", "producer": producer}:
        fail(f"{where}: metadata {meta}")
    if set(tensors) != set(exp):
        fail(f"{where}: names differ: {sorted(set(tensors) ^ set(exp))}")
    for name, (dt, shape, want) in exp.items():
        gdt, gshape, got = tensors[name]
        if gdt != dt or list(gshape) != shape:
            fail(f"{where}: {name} is {gdt} {gshape}, expected {dt} {shape}")
        if not same(dt, got, want, name == "f32.from_f16"):
            fail(f"{where}: values of {name} differ")


def check_kumiki_file(path):
    meta, tensors, info = parse_file(path)
    if (8 + info["header_len"]) % 8 != 0:
        fail("kumiki header not padded to a multiple of 8")
    text = info["header_text"]
    if len(text) - len(text.rstrip(b" ")) > 7 or not text.rstrip(b" ").endswith(b"}"):
        fail("kumiki header padding is not 0-7 spaces after the JSON object")
    # Writer order: element size descending, then name; so every tensor is aligned to its element size.
    order = [(-s[3], s[2]) for s in info["spans"]]
    if order != sorted(order):
        fail(f"kumiki tensor order is not (size desc, name): {[s[2] for s in info['spans']]}")
    for b, _, name, itemsize in info["spans"]:
        if (8 + info["header_len"] + b) % itemsize != 0:
            fail(f"{name} not aligned in kumiki's file")
    check_tensors(path, meta, tensors, "kumiki")
    print(f"python read kumiki file {os.path.basename(path)}: {len(tensors)} tensors OK")


def check_kumiki_dir(d, limit):
    index = json.load(open(os.path.join(d, "model.safetensors.index.json")))
    files = sorted(set(index["weight_map"].values()))
    n = len(files)
    want_names = [f"model-{k:05d}-of-{n:05d}.safetensors" for k in range(1, n + 1)]
    if files != want_names or n < 2:
        fail(f"shard names {files}")
    meta_all, tensors_all = None, {}
    total = 0
    for f in files:
        meta, tensors, info = parse_file(os.path.join(d, f))
        shard_bytes = sum(e - b for b, e, _, _ in info["spans"])
        if shard_bytes > limit and len(tensors) > 1:
            fail(f"{f} holds {shard_bytes} tensor bytes > limit {limit}")
        total += shard_bytes
        for name in tensors:
            if index["weight_map"][name] != f or name in tensors_all:
                fail(f"{name} misplaced")
        tensors_all.update(tensors)
        meta_all = meta
    if index["metadata"]["total_size"] != total:
        fail(f"total_size {index['metadata']['total_size']} != {total}")
    check_tensors(d, meta_all, tensors_all, "kumiki")
    print(f"python read kumiki sharded dir: {n} shards, {len(tensors_all)} tensors, total_size {total} OK")


def write_python_file(path, names, pad=False):
    """Own writer. No padding and a U8 tensor of odd length first, so later tensors are unaligned."""
    exp = expected()
    header, blobs, off = {"__metadata__": {"format": "pt", "producer": "python"}}, [], 0
    for name in names:
        dt, shape, arr = exp[name]
        b = np.ascontiguousarray(arr).astype(np.dtype(arr.dtype).newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode("utf-8")
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def run(tool, *args):
    r = subprocess.run([tool, *args], capture_output=True, text=True)
    print(r.stdout.strip(), r.stderr.strip())
    if r.returncode != 0:
        fail(f"{' '.join(args)} exited {r.returncode}")


def main():
    tool, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)

    # 1. kumiki writes, python reads.
    run(tool, "write", os.path.join(work, "kumiki.safetensors"))
    check_kumiki_file(os.path.join(work, "kumiki.safetensors"))
    limit = 200000
    run(tool, "write-sharded", os.path.join(work, "kumiki_sharded"), str(limit))
    check_kumiki_dir(os.path.join(work, "kumiki_sharded"), limit)

    # 2. python writes (unaligned, unpadded, odd order), kumiki reads.
    names = list(expected().keys())
    names.remove("u8.lin")
    names = ["u8.lin"] + names[::-1]
    write_python_file(os.path.join(work, "python.safetensors"), names)
    run(tool, "check", os.path.join(work, "python.safetensors"), "python")

    # 3. python writes a sharded directory with its own index, kumiki reads it.
    d = os.path.join(work, "python_sharded")
    os.makedirs(d)
    shards = [names[:5], names[5:11], names[11:]]
    weight_map = {}
    for k, part in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        write_python_file(os.path.join(d, fname), part, pad=(k == 1))
        weight_map.update({n: fname for n in part})
    total = sum(np.ascontiguousarray(expected()[n][2]).nbytes for n in names)
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, open(os.path.join(d, "model.safetensors.index.json"), "w"), indent=2)
    run(tool, "check", d, "python")

    # 4. and kumiki also reads its own files back through the same check.
    run(tool, "check", os.path.join(work, "kumiki.safetensors"), "kumiki")
    run(tool, "check", os.path.join(work, "kumiki_sharded"), "kumiki")
    print("safetensors parity OK")


if __name__ == "__main__":
    main()
