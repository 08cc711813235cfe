#!/usr/bin/env bash
# Runs one fuzz target for as long as wanted (docs/fuzzing.md), at the lowest CPU priority.
# Usage: tests/fuzz/campaign.sh NAME [libFuzzer options...]
#   e.g. tests/fuzz/campaign.sh manifest -max_total_time=3600
#        tests/fuzz/campaign.sh safetensors -runs=10000000 -jobs=2 -workers=2
# The corpus grows in $KUMIKI_FUZZ_WORK/NAME/corpus (default build/fuzz-campaign; kept between runs,
# so a campaign continues where the last one stopped) on top of the committed tests/fuzz/corpus/NAME,
# which is only read. Crashes land in $KUMIKI_FUZZ_WORK/NAME/ as crash-*, leak-*, timeout-*, oom-*.
# Environment: KUMIKI_FUZZ_BIN, the directory of the fuzz_* executables (default
# build/release/tests/fuzz/libfuzzer, built by `cmake --build build/release --target kumiki_fuzzers`).
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${1:?usage: tests/fuzz/campaign.sh NAME [libFuzzer options...]}
shift
bin=${KUMIKI_FUZZ_BIN:-build/release/tests/fuzz/libfuzzer}/fuzz_$name
[[ -x $bin ]] || { echo "no $bin: build the kumiki_fuzzers target first (docs/fuzzing.md)" >&2; exit 1; }
dict=tests/fuzz/$name.dict
[[ -f $dict ]] || dict=tests/fuzz/json.dict
work=${KUMIKI_FUZZ_WORK:-build/fuzz-campaign}/$name
mkdir -p "$work/corpus"
seeds=()
[[ -d tests/fuzz/corpus/$name ]] && seeds=("tests/fuzz/corpus/$name")
# -timeout=60: every input runs in milliseconds, but a nice-19 process on a busy machine can be kept off
# the CPU for seconds, which libFuzzer would report as a hang; a real endless loop is still caught.
exec nice -n 19 "$bin" -dict="$dict" -artifact_prefix="$work/" -timeout=60 -rss_limit_mb=2048 \
  -print_final_stats=1 "$@" "$work/corpus" "${seeds[@]}"
