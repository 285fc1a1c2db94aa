#!/usr/bin/env bash
# Regenerates the committed protobuf-c code from schemas/*.proto.
#   tools/gen-proto.sh          write Sources/CModelProto/{model.pb-c.c,include/model.pb-c.h}
#   tools/gen-proto.sh --check  generate into a temporary folder and fail if the committed code differs
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc-c >/dev/null || { echo "gen-proto: protoc-c not found (run tools/setup.sh)" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
protoc-c --proto_path=schemas --c_out="$tmp" model.proto
# The C file includes its header by name; SwiftPM finds it in the target's include/ folder.
dest_c=Sources/CModelProto/model.pb-c.c
dest_h=Sources/CModelProto/include/model.pb-c.h
if [ "${1:-}" = "--check" ]; then
  status=0
  cmp -s "$tmp/model.pb-c.c" "$dest_c" || { echo "gen-proto: $dest_c is stale; run tools/gen-proto.sh" >&2; status=1; }
  cmp -s "$tmp/model.pb-c.h" "$dest_h" || { echo "gen-proto: $dest_h is stale; run tools/gen-proto.sh" >&2; status=1; }
  [ $status -eq 0 ] && echo "gen-proto: committed code is fresh"
  exit $status
fi
mkdir -p Sources/CModelProto/include
cp "$tmp/model.pb-c.c" "$dest_c"
cp "$tmp/model.pb-c.h" "$dest_h"
echo "gen-proto: wrote $dest_c $dest_h"
