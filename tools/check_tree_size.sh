#!/usr/bin/env bash
# Fails when the repository carries what belongs outside it: a tracked file over 6 MiB outside
# models/ and Tests/fixtures/, a training checkpoint anywhere, or a tracked tree over 80 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
limit_file=$((6 * 1024 * 1024)) limit_tree=$((80 * 1000 * 1000))
status=0 total=0
while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue
  size=$(stat -c %s "$f")
  total=$((total + size))
  case "$f" in
    *.ckpt) echo "size-check: $f is a training checkpoint; checkpoints stay outside the repository"; status=1 ;;
  esac
  case "$f" in
    models/*|Tests/fixtures/*) ;;
    *) if [ "$size" -gt "$limit_file" ]; then echo "size-check: $f is $size bytes, over 6 MiB"; status=1; fi ;;
  esac
done < <(git ls-files -z)
if [ "$total" -gt "$limit_tree" ]; then echo "size-check: the tracked tree is $total bytes, over 80 MB"; status=1; fi
[ "$status" -eq 0 ] && echo "size-check: ok ($total bytes tracked)"
exit "$status"
