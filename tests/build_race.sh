#!/usr/bin/env bash
# A clean build with many parallel jobs, three times: make must run bison and flex once each however many jobs
# start at once (Makefile: grouped targets). Before that was so, `make -j` could run bison twice at the same time
# and leave a corrupt parser.c ("null character(s) ignored", then unknown type names). Run by `make test`.
# Usage: tests/build_race.sh [ROUNDS] [JOBS]; builds in a scratch copy of the tracked files, never in the tree.
set -euo pipefail
rounds=${1:-3}
jobs=${2:-8}
top=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/bnni-race.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
for i in $(seq 1 "$rounds"); do
    rm -rf "$scratch/src" && mkdir "$scratch/src"
    if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$top" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - 2>/dev/null) |
            tar -xf - -C "$scratch/src"
    else
        tar -C "$top" --exclude='./build*' --exclude=./bnni -cf - . | tar -xf - -C "$scratch/src"
    fi
    # -O0: the race is in the generators, not the compiler; a quick compile keeps three rounds short.
    if ! make -C "$scratch/src" -j"$jobs" OPT=-O0 bnni >"$scratch/log" 2>&1; then
        echo "build_race: round $i of a clean make -j$jobs failed:" >&2
        tail -n 20 "$scratch/log" >&2
        exit 1
    fi
    runs=$(grep -c '^bison ' "$scratch/log" || true)
    if [ "$runs" -ne 1 ]; then
        echo "build_race: round $i ran bison $runs times (want 1)" >&2
        exit 1
    fi
done
echo "build_race: $rounds clean builds with make -j$jobs, each running bison once"
