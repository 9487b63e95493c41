#!/usr/bin/env bash
# `make test`: every package's tests with the race detector against a real Postgres, then each
# fuzz target for FUZZTIME, then one summary line a person and CI can read.
# `scripts/test.sh --fuzz-only` runs only the fuzz targets (`make fuzz`).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5s}
log=$(mktemp); trap 'rm -f "$log"' EXIT

packages=0
if [[ ${1:-} != --fuzz-only ]]; then
  # tee keeps go test's own output (CI reads its closing lines); pipefail keeps its exit status.
  $GO test -race -count=1 -timeout 15m ./... 2>&1 | tee "$log"
  packages=$(grep -c '^ok ' "$log" || true)
fi

targets=0
for pkg in $($GO list ./...); do
  dir=$($GO list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "fuzz $pkg $f ($FUZZTIME)"
    if ! $GO test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" "$pkg" >"$log" 2>&1; then
      cat "$log"
      echo "make test: fuzz target $f in $pkg failed"
      exit 1
    fi
    targets=$((targets + 1))
  done
done

if [[ ${1:-} == --fuzz-only ]]; then
  echo "make fuzz: $targets fuzz targets ok"
else
  echo "make test: $packages packages ok, $targets fuzz targets ok"
fi
