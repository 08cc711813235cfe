#!/bin/sh
# CTest gpu_check.no_gpu: scripts/gpu-check's GPU run from the stage that gpu_check.prepare made. On a
# machine without a GPU every step still runs and skips at once (exit 77), so that each step's command
# line is exercised; this checks that none failed for another reason, that every step was recorded, and
# that --out holds what the device tool brings back (at most 8 files): report.md, report.json,
# steps.tsv and logs.tar.gz with the steps' logs. On a GPU machine the real run must pass (exit 0).
# usage: gpu_check_no_gpu.sh REPO STAGE OUT
repo=$1 stage=$2 out=$3
fail() { echo "gpu_check.no_gpu: $*" >&2; exit 1; }
bash "$repo/scripts/gpu-check" --stage "$stage" --out "$out" --budget 120
rc=$?
case $rc in
  0) exit 0 ;;
  77) ;;
  *) fail "scripts/gpu-check exited $rc" ;;
esac
n=$(find "$out" -type f | wc -l)
[ "$n" -le 8 ] || fail "$n files under $out: the device tool brings back 8"
for f in report.md report.json steps.tsv logs.tar.gz; do
  [ -s "$out/$f" ] || fail "no $out/$f"
done
tab=$(printf '\t')
grep -q "^cuda.runtime${tab}skipped${tab}" "$out/steps.tsv" || fail "cuda.runtime was not skipped"
for s in binaries cuda.ops.elementwise cuda.ops.norm cuda.ops.gemm cuda.ops.attention cuda.ops.optim \
         cuda.model_step dist.nccl_world1 ceilings benchmarks train.gpu speed.data speed.kumiki.llmjp4_1_3b \
         speed.pytorch.llmjp4_1_3b speed.kumiki.llmjp4_8b speed.pytorch.llmjp4_8b sanitizer; do
  grep -q "^$s" "$out/steps.tsv" || fail "no step $s in steps.tsv"
  tar -tzf "$out/logs.tar.gz" | grep -q "^logs/$s" || [ "$s" = sanitizer ] || fail "no log of $s in logs.tar.gz"
done
# skipped for lack of a GPU, not of time or of a binary; nothing failed
bad=$(awk -F"$tab" '$2 == "FAIL" || $2 == "TIMEOUT" || ($2 == "skipped" && $4 ~ /out of time budget|binary here/)' "$out/steps.tsv")
[ -z "$bad" ] || fail "steps that did not skip for want of a GPU: $bad"
echo "gpu_check.no_gpu: every step skipped for want of a GPU; $n files in $out"
exit 0
