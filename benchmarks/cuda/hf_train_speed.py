#!/usr/bin/env python3
"""PyTorch's training speed on kumiki's shapes: Hugging Face LlamaForCausalLM built with the shape of
kumiki's llmjp4_1_3b / llmjp4_8b (include/kumiki/models/configs.hpp), trained on random tokens the way
a PyTorch user would train it on one GPU: bf16 weights (torch_dtype=bfloat16), attention through
PyTorch's SDPA (flash attention), torch.optim.AdamW(fused=True) with LLM-jp-4's hyper-parameters and
Megatron's no-decay rule for 1-D tensors, gradient clipping at 1.0. scripts/gpu-check runs it beside
`kumiki train --device cuda` on the same micro-batch and sequence length.

Reports JSON: tokens/s and MFU from the median timed step (Megatron's FLOPs per token exactly as
kumiki's TransformerConfig::flops_per_token counts them, against --peak-flops), the peak of
torch.cuda.max_memory_allocated, and "fits": false with the message when the GPU runs out of memory.
It prints each step as it ends and rewrites --json after each ("complete": false until the last, the
figures from the steps timed so far), so that a run stopped at scripts/gpu-check's limit still reports;
any other error is written into the JSON ("error") too, and exits 1.

usage: hf_train_speed.py --model llmjp4_1_3b|llmjp4_8b [--micro-batch B] [--seq T] [--steps M]
                         [--warmup N] [--json OUT] [--device cuda|cpu] [--tiny] [--print-flops]
"""
import argparse
import contextlib
import gc
import json
import math
import os
import statistics
import sys
import time
import traceback

# kumiki's configurations (include/kumiki/models/configs.hpp), Megatron's flag names. `tiny` is a shape
# for checking this script on a CPU (the byte vocabulary of kumiki's demo).
CONFIGS = {
    "llmjp4_1_3b": dict(vocab_size=99487, make_vocab_divisible_by=128, hidden=2048, ffn_hidden=7168, num_layers=16,
                        num_heads=16, num_query_groups=8, rope_base=500000.0, rms_eps=1e-6, max_seq_len=8192),
    "llmjp4_8b": dict(vocab_size=99487, make_vocab_divisible_by=128, hidden=4096, ffn_hidden=14336, num_layers=32,
                      num_heads=32, num_query_groups=8, rope_base=500000.0, rms_eps=1e-6, max_seq_len=8192),
    "tiny": dict(vocab_size=258, make_vocab_divisible_by=128, hidden=64, ffn_hidden=176, num_layers=2,
                 num_heads=4, num_query_groups=2, rope_base=10000.0, rms_eps=1e-5, max_seq_len=64),
}
# LLM-jp-4 phase 1 (shared/reference/llmjp-recipes.md section 1): Adam(0.9, 0.95, eps 1e-8), weight
# decay 0.1, clip 1.0, peak lr 3e-4 (a speed run holds it constant).
ADAMW = dict(lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
CLIP = 1.0
H200_PEAK = 989e12  # H100 / H200 SXM dense bf16, kumiki's MFU denominator


def padded_vocab(c):
    d = c["make_vocab_divisible_by"]
    return -(-c["vocab_size"] // d) * d


def num_params(c):
    """TransformerConfig::num_params: padded, untied embedding and LM head, two norms a block, no biases."""
    h, kv = c["hidden"], c["num_query_groups"] * c["hidden"] // c["num_heads"]
    block = 2 * h + 2 * h * h + 2 * kv * h + 3 * h * c["ffn_hidden"]
    return 2 * padded_vocab(c) * h + c["num_layers"] * block + h


def flops_per_token(c, seq):
    """TransformerConfig::flops_per_token(seq), restated: 6 x matmul parameters (the projections and the
    h x V_padded LM head; forward, input gradient, weight gradient) + 6 x layers x hidden x seq (causal
    attention's QK^T and PV, halved by the mask, forward and backward)."""
    h, kv, L = c["hidden"], c["num_query_groups"] * c["hidden"] // c["num_heads"], c["num_layers"]
    matmul = L * (2 * h * h + 2 * kv * h + 3 * h * c["ffn_hidden"]) + padded_vocab(c) * h
    return 6.0 * matmul + 6.0 * L * h * seq


def build_model(c, device, torch, transformers):
    """LlamaForCausalLM of shape `c` with bf16 weights, made on `device` directly (no CPU init of 8B
    weights). The default dtype set to bf16 around the constructor is what from_config(torch_dtype=
    torch.bfloat16) does, without that keyword's renames across transformers versions."""
    config = transformers.LlamaConfig(
        vocab_size=padded_vocab(c), hidden_size=c["hidden"], intermediate_size=c["ffn_hidden"],
        num_hidden_layers=c["num_layers"], num_attention_heads=c["num_heads"], num_key_value_heads=c["num_query_groups"],
        max_position_embeddings=c["max_seq_len"], rope_theta=c["rope_base"], rms_norm_eps=c["rms_eps"],
        tie_word_embeddings=False, attention_bias=False, mlp_bias=False, hidden_act="silu", initializer_range=0.02,
        use_cache=False, attn_implementation="sdpa")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device) if device == "cuda" else contextlib.nullcontext():
            model = transformers.LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(old)
    return model  # no .to(bfloat16): RoPE's inverse frequencies stay in fp32, as from_config keeps them


def optimizer(model, device, torch):
    """AdamW with Megatron's rule: no weight decay on 1-D tensors (norm weights). fused=True runs one
    kernel over all tensors on the GPU; the CPU takes PyTorch's default implementation."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, **ADAMW, **({"fused": True} if device == "cuda" else {}))


def write_report(path, report):
    """The JSON file, replaced whole (written beside and renamed): a reader never sees half of it."""
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(json.dumps(report, indent=1) + "\n")
        os.replace(path + ".tmp", path)


def measure(args, c, report, torch, transformers):
    cuda = args.device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(1234)
    t0 = time.perf_counter()
    model = build_model(c, args.device, torch, transformers)
    model.train()
    opt = optimizer(model, args.device, torch)
    report["params"] = sum(p.numel() for p in model.parameters())
    report["attn_implementation"] = getattr(model.config, "_attn_implementation", "?")
    # Random tokens of the real vocabulary (not the padding rows), a few batches reused in turn.
    batches = [torch.randint(0, c["vocab_size"], (args.micro_batch, args.seq), device=args.device) for _ in range(4)]
    sync()
    report["init_s"] = time.perf_counter() - t0
    print(f"hf_train_speed: model of {report['params']:,} parameters built in {report['init_s']:.1f} s", flush=True)
    step_s, losses = [], []
    for i in range(args.warmup + args.steps):
        x = batches[i % len(batches)]
        sync()
        t = time.perf_counter()
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        dt = time.perf_counter() - t
        if i >= args.warmup:  # the first steps allocate AdamW's state and warm the kernels up
            step_s.append(dt)
        losses.append(loss.item())
        print(f"hf_train_speed: step {i + 1}/{args.warmup + args.steps}{' (warmup)' if i < args.warmup else ''}: "
              f"{dt:.3f} s, loss {losses[-1]:.4f}", flush=True)
        if step_s:  # the figures of the steps timed so far, in case the run is stopped before the end
            median = statistics.median(step_s)
            tokens_per_s = args.micro_batch * args.seq / median
            report.update(fits=True, step_s=step_s, step_s_median=median, steps_timed=len(step_s),
                          tokens_per_s=tokens_per_s, model_flops_per_s=tokens_per_s * report["flops_per_token"],
                          mfu=tokens_per_s * report["flops_per_token"] / args.peak_flops)
        report.update(losses=losses, finite=all(math.isfinite(x) for x in losses))
        if cuda:
            report["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
        write_report(args.json, report)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["llmjp4_1_3b", "llmjp4_8b"], default="llmjp4_1_3b")
    ap.add_argument("--tiny", action="store_true", help="a tiny shape instead of --model, for checking the script on a CPU")
    ap.add_argument("--micro-batch", type=int, default=None, help="sequences a step (default: 8 for 1.3B, 1 for 8B, 2 tiny)")
    ap.add_argument("--seq", type=int, default=None, help="sequence length (default 4096; tiny 64)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--peak-flops", type=float, default=H200_PEAK, help="MFU denominator (default: H200 dense bf16)")
    ap.add_argument("--json", help="write the report here too")
    ap.add_argument("--print-flops", action="store_true", help="print the shape's FLOPs per token at --seq and exit")
    args = ap.parse_args()
    name = "tiny" if args.tiny else args.model
    c = CONFIGS[name]
    if args.micro_batch is None:
        args.micro_batch = 2 if args.tiny else {"llmjp4_1_3b": 8, "llmjp4_8b": 1}[name]
    if args.seq is None:
        args.seq = c["max_seq_len"] if args.tiny else 4096
    if args.steps < 1 or args.warmup < 0 or args.micro_batch < 1 or not 1 <= args.seq <= c["max_seq_len"]:
        ap.error(f"need --steps >= 1, --warmup >= 0, --micro-batch >= 1 and 1 <= --seq <= {c['max_seq_len']}")
    if args.print_flops:
        print(json.dumps({"model": name, "seq": args.seq, "flops_per_token": flops_per_token(c, args.seq),
                          "params": num_params(c)}))
        return 0

    # After the argument checks: --help and --print-flops need neither. 77: skipped (CTest's and
    # scripts/gpu-check's convention), with the reason on the last line.
    t0 = time.perf_counter()
    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"skipped: {e.name} is not installed for {sys.executable}")
        return 77
    import_s = time.perf_counter() - t0
    print(f"hf_train_speed: torch {torch.__version__} and transformers {transformers.__version__} imported in "
          f"{import_s:.1f} s", flush=True)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("skipped: no CUDA device visible to PyTorch")
        return 77
    report = {"framework": "pytorch", "model": name, "device": args.device, "complete": False,
              "torch": torch.__version__, "transformers": transformers.__version__, "import_s": import_s,
              "micro_batch": args.micro_batch, "seq": args.seq, "warmup": args.warmup, "steps": args.steps,
              "dtype": "bfloat16 weights, gradients and AdamW state", "optimizer": "AdamW fused" if args.device == "cuda" else "AdamW",
              "params_kumiki": num_params(c), "flops_per_token": flops_per_token(c, args.seq), "peak_flops": args.peak_flops}
    rc = 0
    try:
        report["gpu"] = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        measure(args, c, report, torch, transformers)
    except torch.cuda.OutOfMemoryError as e:  # a result, not a failure: this shape does not fit so
        report.update(fits=False, error=str(e).strip().splitlines()[0][:400])
    except Exception as e:  # anything else: into the report too (scripts/gpu-check shows it), and exit 1
        traceback.print_exc()
        report.update(error=f"{type(e).__name__}: {str(e).strip()[:400]}",
                      traceback=traceback.format_exc().splitlines()[-12:])
        rc = 1
    report["complete"] = rc == 0
    # The model and AdamW's state died with measure()'s frame (and the exception's traceback): give
    # their memory back before reading the peak, so that a run after this one in the process starts clean.
    gc.collect()
    if args.device == "cuda":
        try:
            report["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
            report["peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
            torch.cuda.empty_cache()
        except Exception as e:  # a broken CUDA context after an error: the error above says why
            report.setdefault("error", f"{type(e).__name__}: {str(e).strip()[:400]}")
            rc = 1
    print(json.dumps(report, indent=1))
    write_report(args.json, report)
    return rc


def _json_arg():
    for i, a in enumerate(sys.argv):
        if a == "--json" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--json="):
            return a[len("--json="):]
    return None


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # before the report existed (PyTorch's CUDA probe, say): the error as the report
        traceback.print_exc()
        path = _json_arg()
        if path:
            try:  # what was written so far, if anything, with the error
                with open(path) as f:
                    report = json.load(f)
            except (OSError, ValueError):
                report = {"framework": "pytorch"}
            report.update(complete=False, error=report.get("error") or f"{type(e).__name__}: {str(e).strip()[:400]}")
            write_report(path, report)
        sys.exit(1)
