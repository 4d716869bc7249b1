#!/usr/bin/env bash
# Data-parallel training on this machine (docs/distributed.md): for each model, 2 MPI ranks of 1 thread each
# (`mpirun -np 2 bnni-mpi train ... --threads 1`) against 1 process of 2 threads (`bnni train ... --threads 2`), and
# 1 process of 1 thread for the per-step compute the scaling model starts from. Every setting runs REPS times on
# the first LIMIT images (one epoch, a short test set); the table shows medians of the training images/s (the
# metrics CSV), of the mean step (--profile) and, for the ranks, of the communication per step that rank 0's
# --profile reports: waiting for the gradient sums after the backward pass, and the batchnorm sums inside the
# layers. Run by `make bench` (bench/run.sh); alone:
# usage: bench/dist.sh [MODEL[:LIMIT] ...]   (default: models/lenet_bn.bnn:12800 models/resnet_small.bnn:2560)
# Environment: BNNI (default ./bnni), BNNI_MPI_BIN (default ./bnni-mpi: `make MPI=1`; not BNNI_MPI, which bnni-mpi
# reads: BNNI_MPI=0 under a launcher is refused), REPS (default 3), BUILD (raw outputs go to $BUILD/bench/dist,
# default build).
# shellcheck disable=SC2016,SC2059  # awk programs in single quotes and printf formats in fmt() are meant as written
set -u
cd "$(dirname "$0")/.." || exit 1
. bench/lib.sh # median, calc, fmt

BNNI=${BNNI:-./bnni}
BNNI_MPI_BIN=${BNNI_MPI_BIN:-./bnni-mpi}
REPS=${REPS:-3}
OUT=${BUILD:-build}/bench/dist
case ${1:-} in -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -gt 0 ] || set -- models/lenet_bn.bnn:12800 models/resnet_small.bnn:2560
[ -x "$BNNI" ] || { echo "dist.sh: $BNNI not built (run make)" >&2; exit 1; }
[ -x "$BNNI_MPI_BIN" ] || { echo "dist.sh: $BNNI_MPI_BIN not built (run make MPI=1)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "dist.sh: no mpirun (make MPI=1 deps installs Open MPI)" >&2; exit 1; }
mkdir -p "$OUT" || exit 1
# Open MPI refuses root without the flag; the tests run as root here too (tests/test_dist_mpi.c).
MPIRUN=(mpirun -np 2)
[ "$(id -u)" -eq 0 ] && MPIRUN+=(--allow-run-as-root)

csv_ips() { [ -f "$1" ] && awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "images_per_second") k = i; next }
    k { v = $k } END { if (v != "") print v }' "$1"; }
step_ms() { awk '$1 == "step" { print $2 }' "$1"; }
# The communication line of --profile (profile.c's comm_lines): "total pct grad_wait layer_ms layer_sums bytes buckets".
comm() {
    sed -n 's/^communication (.*): \([0-9.]*\) ms\/step, \([0-9.]*\)% of the step: \([0-9.]*\) waiting for the sums of \([0-9]*\) bytes of gradients in \([0-9]*\) bucket.*, \([0-9.]*\) in \([0-9.]*\) sums per step.*/\1 \2 \3 \6 \7 \4 \5/p' "$1"
}

printf 'data-parallel bench: %s, %s CPUs, %s; %s runs per setting, median reported\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    "$(nproc)" "$(mpirun --version 2>/dev/null | head -n 1)" "$REPS"
rows=()
for arg in "$@"; do
    model=${arg%%:*} limit=${arg#*:}
    [ "$limit" = "$arg" ] && limit=2560
    name=$(basename "$model" .bnn)
    common=(train "$model" --epochs 1 --limit "$limit" --test-limit 256 --quiet --profile)
    declare -A ips=() step=() ctot=() cpct=() cgrad=() clay=() csums=()
    bytes=- buckets=-
    for r in $(seq "$REPS"); do
        for s in 1x1 1x2 2x1; do
            b=$OUT/${name}_${s}_$r
            rm -f "$b.csv" "$b.h5"
            case $s in
                1x1) "$BNNI" "${common[@]}" --threads 1 --metrics "$b.csv" --out "$b.h5" >"$b.out" 2>"$b.err" ;;
                1x2) "$BNNI" "${common[@]}" --threads 2 --metrics "$b.csv" --out "$b.h5" >"$b.out" 2>"$b.err" ;;
                2x1) "${MPIRUN[@]}" "$BNNI_MPI_BIN" "${common[@]}" --threads 1 --metrics "$b.csv" --out "$b.h5" \
                         >"$b.out" 2>"$b.err" ;;
            esac || { echo "dist.sh: $name $s failed: $(grep -m1 'bnni' "$b.err")" >&2; continue; }
            # No communication line: each rank trained alone (BNNI_MPI=0 in the environment does that).
            if [ "$s" = 2x1 ] && [ -z "$(comm "$b.err")" ]; then
                echo "dist.sh: $name: the 2 ranks did not train together (no communication line in $b.err;" \
                    "is BNNI_MPI=0 set?)" >&2
                continue
            fi
            ips[$s]+=" $(csv_ips "$b.csv")" step[$s]+=" $(step_ms "$b.err")"
            line="$name $s run $r/$REPS: $(csv_ips "$b.csv") img/s, step $(step_ms "$b.err") ms"
            if [ "$s" = 2x1 ]; then
                read -r tot pct grad lay sums by bu <<<"$(comm "$b.err")"
                ctot[$s]+=" $tot" cpct[$s]+=" $pct" cgrad[$s]+=" $grad" clay[$s]+=" $lay" csums[$s]+=" $sums"
                bytes=$by buckets=$bu
                line+=", communication $tot ms/step ($grad gradients, $lay in $sums batchnorm sums)"
            fi
            echo "$line"
        done
    done
    for s in 1x1 1x2 2x1; do
        # shellcheck disable=SC2086  # the lists are space-separated on purpose
        ips[$s]=$(median ${ips[$s]:-}) step[$s]=$(median ${step[$s]:-})
    done
    # shellcheck disable=SC2086
    rows+=("$(printf '%-14s %-22s %10s %9s %s' "$name" "1 process x 1 thread" "$(fmt %.0f "${ips[1x1]}")" \
               "$(fmt %.3f "${step[1x1]}")" -)"
           "$(printf '%-14s %-22s %10s %9s %s' "$name" "1 process x 2 threads" "$(fmt %.0f "${ips[1x2]}")" \
               "$(fmt %.3f "${step[1x2]}")" -)"
           "$(printf '%-14s %-22s %10s %9s %s ms/step (%s%% of the step): %s waiting for %s bytes of gradients in %s bucket(s), %s in %s batchnorm sums' \
               "$name" "2 ranks x 1 thread" "$(fmt %.0f "${ips[2x1]}")" "$(fmt %.3f "${step[2x1]}")" \
               "$(median ${ctot[2x1]:-})" "$(median ${cpct[2x1]:-})" "$(median ${cgrad[2x1]:-})" "$bytes" "$buckets" \
               "$(median ${clay[2x1]:-})" "$(median ${csums[2x1]:-})")"
           "$(printf '%-14s %-22s %10s %9s' "$name" "2 ranks / 2 threads" \
               "$(fmt %.2fx "$(calc '$1 / $2' "${ips[2x1]}" "${ips[1x2]}")")" \
               "$(fmt %.2fx "$(calc '$1 / $2' "${step[2x1]}" "${step[1x2]}")")")")
    unset ips step ctot cpct cgrad clay csums
done
echo
printf '%-14s %-22s %10s %9s %s\n' model setting "train img/s" "step ms" "communication (rank 0)"
# the ratio rows: images/s of the ranks over the threads' (above 1: the ranks train faster), and their steps' ms
printf '%s\n' "${rows[@]}"
echo "(step ms: mean training step of the run, a batch of 128 for the whole job; the ranks' is rank 0's, half the batch each)"
echo "raw outputs in $OUT/"
