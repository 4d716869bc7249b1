# Helpers the bench scripts share (sourced by run.sh, models.sh and dist.sh): statistics and arithmetic on the
# numbers they collect, reading the files the measured programs write, the sgemm probe's build, and the targets'
# [PASS]/[FAIL] lines.
# shellcheck shell=bash disable=SC2016,SC2046,SC2059  # awk in single quotes, pkg-config's words, fmt()'s formats

# Median of the numeric arguments ("-" and empty ones ignored); "-" when there are none.
median() {
    printf '%s\n' "$@" | grep -E '^[0-9.eE+-]+$' | grep -v '^-$' | sort -g |
        awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2];
              else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# calc EXPR a b ...: awk arithmetic on $1, $2, ...; "-" if any operand is missing.
calc() {
    local expr=$1; shift
    for x in "$@"; do case $x in '' | -) echo -; return ;; esac; done
    awk "BEGIN { \$0 = \"$*\"; print $expr }" </dev/null
}

# The larger of two numbers, "-" when neither is one.
max2() { printf '%s\n' "$1" "$2" | grep -E '^[0-9.]+$' | sort -g | tail -n 1 | grep . || echo -; }

fmt() { case ${2:-} in '' | -) printf '%s' -;; *) printf "$1" "$2";; esac; }

# The last value of `key value` lines in a file; prints nothing when absent.
val() { [ -f "$2" ] && awk -v k="$1" '$1 == k { v = $2 } END { if (v != "") print v }' "$2"; }

# The last row's value of a column of a CSV file, looked up by its header name.
csv_col() {
    [ -f "$2" ] && awk -F, -v c="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next }
        k && NF >= k { v = $k } END { if (v != "") print v }' "$2"
}

# Peak RSS in MB from a `/usr/bin/time -v` report.
rss_mb() { [ -f "$1" ] && awk -F': ' '/Maximum resident set size/ { printf "%.1f\n", $2 / 1024 }' "$1"; }

# Runs a command under /usr/bin/time -v when available; stdout/stderr/time report go to $1.out/.err/.time.
timed() {
    local base=$1; shift
    rm -f "$base.time"
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -v -o "$base.time" "$@" >"$base.out" 2>"$base.err"
    else
        "$@" >"$base.out" 2>"$base.err"
    fi
}

# The images/s of a `bnni eval` run (its first output line: "evaluated in S s, N images/s").
eval_ips() {
    awk '/images\/s/ { for (i = 2; i <= NF; i++) if ($i ~ /^images\/s/) v = $(i - 1) } END { if (v != "") print v }' \
        "$@"
}

# Builds bench/sgemm_probe.c into $1 against the OpenBLAS pthread build bnni links (compiler errors in $2).
build_probe() {
    local pc
    pc=/usr/lib/$(gcc -print-multiarch 2>/dev/null)/openblas-pthread/pkgconfig
    gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -o "$1" bench/sgemm_probe.c \
        $(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs openblas) \
        -Wl,-rpath,"$(PKG_CONFIG_PATH=$pc pkg-config --variable=libdir openblas)" 2>"$2"
}

# check DESCRIPTION MEASURED OP BOUND: one [PASS], [FAIL] or [SKIP] line for a target, counted in the caller's
# met and missed.
check() {
    local d=$1 v=$2 op=$3 bound=$4 ok
    if [ "$v" = - ] || [ -z "$v" ] || [ "$bound" = - ]; then
        printf '[SKIP] %s: not measured\n' "$d"; return
    fi
    ok=$(awk "BEGIN { print ($v $op $bound) ? 1 : 0 }")
    if [ "$ok" = 1 ]; then printf '[PASS] '; met=$((met + 1)); else printf '[FAIL] '; missed=$((missed + 1)); fi
    printf '%s: %s (needs %s %s)\n' "$d" "$v" "$op" "$bound"
}
