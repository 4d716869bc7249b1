#!/usr/bin/env bash
# The data side of `make bench` (bench/run.sh calls it): the share of a LeNet-BN training step spent preparing
# batches (`bnni train --profile`'s "data" phase), and the epoch time of Fashion-MNIST read from an HDF5 copy,
# streamed (--mem-cap below the data's size) against held in memory. Prints `key value` lines for run.sh, and what
# it did on stderr. Environment: BNNI, OUT (a scratch directory), REPS, MODEL (the seed model).
set -u
BNNI=${BNNI:-./bnni}
OUT=${OUT:-build/bench}
REPS=${REPS:-3}
MODEL=${MODEL:-models/lenet_bn.bnn}
PY=/usr/bin/python3
TIME=/usr/bin/time
mkdir -p "$OUT" || exit 1
note() { printf 'bench: %s\n' "$*" >&2; }
median() { printf '%s\n' "$@" | grep -E '^[0-9.eE+-]+$' | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'; }
csv_col() { awk -F, -v c="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next } k { v = $k } END { print v }' "$2"; }

# ---- the data phase of a step
shares=() ms=()
for r in $(seq "$REPS"); do
    b=$OUT/data_profile_$r
    if ! "$BNNI" train "$MODEL" --epochs 1 --profile --quiet --out "$b.h5" >"$b.out" 2>"$b.err"; then
        note "bnni train --profile failed: $(tail -n 1 "$b.err")"
        continue
    fi
    shares+=("$(awk '$1 == "data" { sub("%", "", $4); print $4 }' "$b.err")")
    ms+=("$(awk '$1 == "data" { print $2 }' "$b.err")")
    note "profile run $r/$REPS: data $(tail -n 1 <<<"${ms[*]: -1}") ms per step, ${shares[-1]}% of the step"
done
echo "data_share_percent $(median "${shares[@]}")"
echo "data_ms_per_step $(median "${ms[@]}")"

# ---- Fashion-MNIST as HDF5, in memory and streamed
h5=$OUT/fashion.h5
if [ ! -s "$h5" ]; then
    "$PY" - "$h5" <<'PYEOF' || { note "cannot write $h5 (python3-h5py, python3-numpy?)"; exit 0; }
import gzip, sys, h5py, numpy as np
d = "/usr/share/datasets/fashion-mnist/"
def idx(name, off):
    with gzip.open(d + name + ".gz") as f:
        return np.frombuffer(f.read(), np.uint8, offset=off)
with h5py.File(sys.argv[1], "w") as f:
    for split, pre in (("train", "train"), ("test", "t10k")):
        f[split + "/x"] = idx(pre + "-images-idx3-ubyte", 16).reshape(-1, 1, 28, 28)   # contiguous: pread
        f[split + "/y"] = idx(pre + "-labels-idx1-ubyte", 8)
PYEOF
fi
sed "s|^data .*|data hdf5(\"$h5\", batch=128)|" "$MODEL" >"$OUT/lenet_bn_hdf5.bnn"
mem=() str=() rss=() same=yes
for r in $(seq "$REPS"); do
    for how in mem str; do
        b=$OUT/data_${how}_$r
        cap=(); [ "$how" = str ] && cap=(--mem-cap 48M) # the process needs ~40 MiB, the 55 MB of images do not fit
        rm -f "$b.h5" "$b.csv"
        if ! "$TIME" -v -o "$b.time" "$BNNI" train "$OUT/lenet_bn_hdf5.bnn" --epochs 1 --quiet --out "$b.h5" \
            --metrics "$b.csv" "${cap[@]}" >"$b.out" 2>"$b.err"; then
            note "bnni train ($how) failed: $(tail -n 1 "$b.err")"
            continue
        fi
        v=$(csv_col images_per_second "$b.csv")
        if [ "$how" = mem ]; then mem+=("$v"); else str+=("$v"); fi
        [ "$how" = str ] && rss+=("$(awk -F': ' '/Maximum resident/ { printf "%.1f", $2 / 1024 }' "$b.time")")
    done
    cmp -s <(cut -d, -f1-5 "$OUT/data_mem_$r.csv") <(cut -d, -f1-5 "$OUT/data_str_$r.csv") || same=no
    note "hdf5 run $r/$REPS: in memory ${mem[-1]:--} img/s, streamed ${str[-1]:--} img/s (peak RSS ${rss[-1]:--} MB)"
done
m=$(median "${mem[@]}") s=$(median "${str[@]}")
echo "hdf5_memory_images_per_second $m"
echo "hdf5_streamed_images_per_second $s"
[ -n "$m" ] && [ -n "$s" ] && echo "streamed_epoch_ratio $(awk -v m="$m" -v s="$s" 'BEGIN { printf "%.3f", m / s }')"
echo "streamed_peak_rss_mb $(median "${rss[@]}")"
echo "streamed_equals_memory $same"
