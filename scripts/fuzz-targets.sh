#!/usr/bin/env bash
# fuzz-targets.sh prints "package:FuzzName" for every fuzz target in the module, so that
# `make fuzz-short` runs each one briefly (go test -fuzz takes one target at a time).
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files '*_test.go' | xargs grep -l '^func Fuzz' 2>/dev/null | while read -r f; do
  pkg="./$(dirname "$f")"
  grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | while read -r fn; do
    echo "$pkg:$fn"
  done
done
