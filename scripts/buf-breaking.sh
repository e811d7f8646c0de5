#!/usr/bin/env bash
# Guards the protos against breaking changes relative to the previous commit. A first commit, or
# one whose parent has no protos yet, has nothing to break, so the check says so and passes.
set -euo pipefail
buf=${1:?usage: buf-breaking.sh BUF}
if ! git rev-parse --verify --quiet HEAD~1 >/dev/null; then
  echo "buf breaking: skipped, there is no previous commit to compare with"
  exit 0
fi
if [ -z "$(git ls-tree -r --name-only HEAD~1 -- proto/finance)" ]; then
  echo "buf breaking: skipped, the previous commit has no protos under proto/finance"
  exit 0
fi
"$buf" breaking --against '.git#ref=HEAD~1'
echo "buf breaking: no breaking change against HEAD~1"
