#!/usr/bin/env bash
# tools/fuzz.sh SECONDS [libFuzzer flags...]: fuzz model loading, verification, compilation and a
# run on small inputs (Tests/Fuzz/FuzzTarget.swift) with libFuzzer and AddressSanitizer.
#
# Builds the library and the target with `-sanitize=fuzzer,address` in .build/fuzz (SwiftPM builds
# the objects only: an executable product would bring its own entry point beside libFuzzer's main,
# and an earlier attempt linking one hit an ld.gold internal error), links them with swiftc and
# lld, and runs for SECONDS
# seconds from the seed corpus (Tests/corpus/fuzz/seed: valid models; Tests/corpus/broken and
# Tests/corpus/compile: every known bad file) plus the working corpus in .build/fuzz/corpus, which
# persists between runs. A finding (crash, sanitizer report, timeout, out-of-memory) is written to
# .build/fuzz/findings/ and the script exits non-zero: add the file to Tests/corpus/broken or
# Tests/corpus/compile with its expected error once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:?usage: tools/fuzz.sh SECONDS [libFuzzer flags...]}"
shift
out=.build/fuzz
mkdir -p "$out/corpus" "$out/findings"

swift build -c release --scratch-path "$out/spm" --target SCMFuzz \
    -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address >"$out/build.log" 2>&1 \
    || { tail -40 "$out/build.log"; exit 1; }
objects=()
for m in CModelProto CKernels SCMGraph SCMRuntime SCMFuzz; do
    for o in "$out/spm/release/$m.build"/*.o; do objects+=("$o"); done
done
swiftc -sanitize=fuzzer,address -use-ld=lld "${objects[@]}" -lprotobuf-c -lopenblas -o "$out/scm-fuzz.new"
mv "$out/scm-fuzz.new" "$out/scm-fuzz"

# LeakSanitizer is off: the Swift runtime's metadata caches read as leaks at exit.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export OPENBLAS_NUM_THREADS=1
set +e
"$out/scm-fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=3072 -max_len=65536 \
    -artifact_prefix="$out/findings/" -print_final_stats=1 "$@" \
    "$out/corpus" Tests/corpus/fuzz/seed Tests/corpus/broken Tests/corpus/compile >"$out/fuzz.log" 2>&1
status=$?
set -e
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/fuzz.log" | grep -o '[0-9]*$' || echo 0)
per=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$out/fuzz.log" | grep -o '[0-9]*$' || echo 0)
seed=$(grep -o 'Seed: [0-9]*' "$out/fuzz.log" | head -1 || true)
echo "fuzz: $seconds s, $execs executions ($per/s), corpus $(ls "$out/corpus" | wc -l) files, ${seed:-no seed printed}, exit $status"
if [ "$status" -ne 0 ]; then
    tail -60 "$out/fuzz.log" >&2
    echo "fuzz: finding(s) in $out/findings (full log: $out/fuzz.log):" >&2
    ls -la "$out/findings" >&2
fi
exit "$status"
