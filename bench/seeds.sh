#!/usr/bin/env bash
# The spread of a model's final test accuracy over seeds: trains MODEL once per seed FIRST..LAST with bnni (and,
# with --torch, the PyTorch reference bench/torch_lenet.py of LeNet-BN with the same seeds: its own initialisation
# and shuffle, not bnni's), then prints every run's per-epoch test accuracy, and the minimum, median and maximum
# of the last epoch's with how many reach THRESHOLD. One run of LeNet-BN takes ~6 s with bnni, ~35 s with torch.
# usage: bench/seeds.sh [--torch] [--epochs N] [--threshold A] [MODEL [FIRST [LAST]]]
set -u
cd "$(dirname "$0")/.." || exit 1

BNNI=${BNNI:-./bnni}
PY=/usr/bin/python3
torch=0 epochs=10 threshold=0.86
while [ $# -gt 0 ]; do
    case $1 in
    --torch) torch=1; shift ;;
    --epochs) epochs=${2:?--epochs needs a number}; shift 2 ;;
    --threshold) threshold=${2:?--threshold needs a number}; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "seeds.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
MODEL=${1:-models/lenet_bn.bnn} FIRST=${2:-1} LAST=${3:-10}
case "$epochs$FIRST$LAST" in *[!0-9]*) echo "seeds.sh: epochs and seeds must be whole numbers" >&2; exit 2 ;; esac
[ -x "$BNNI" ] || { echo "seeds.sh: $BNNI not built (run make)" >&2; exit 1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# Prints "min median max n_at_least_threshold n" of the numbers on stdin.
summary() {
    sort -g | awk -v t="$threshold" '{ v[NR] = $1; if ($1 >= t) k++ }
        END { if (!NR) exit 1; m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "min %.4f median %.4f max %.4f; %d of %d runs >= %s\n", v[1], m, v[NR], k, NR, t }'
}

echo "bnni: $MODEL, $epochs epochs, seeds $FIRST..$LAST (test accuracy after each epoch)"
for s in $(seq "$FIRST" "$LAST"); do
    if ! "$BNNI" train "$MODEL" --seed "$s" --epochs "$epochs" --quiet --out "$tmp/$s.h5" \
            --metrics "$tmp/$s.csv" 2>"$tmp/$s.err"; then
        echo "seed $s: failed: $(head -n 1 "$tmp/$s.err")" >&2
        continue
    fi
    accs=$(awk -F, 'NR > 1 { printf "%s ", $5 }' "$tmp/$s.csv")
    echo "seed $s: $accs"
    echo "$accs" | awk '{ print $NF }' >>"$tmp/bnni.final"
done
[ -s "$tmp/bnni.final" ] && echo "bnni final: $(summary <"$tmp/bnni.final")"

[ "$torch" = 1 ] || exit 0
if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "torch: SKIPPED ($PY has no torch module; apt-get install python3-torch)"
    exit 0
fi
echo "torch: bench/torch_lenet.py, $epochs epochs, seeds $FIRST..$LAST"
for s in $(seq "$FIRST" "$LAST"); do
    if ! "$PY" bench/torch_lenet.py --seed "$s" --epochs "$epochs" --warmup-batches 0 >"$tmp/t$s.out" 2>&1; then
        echo "torch seed $s: failed: $(tail -n 1 "$tmp/t$s.out")" >&2
        continue
    fi
    accs=$(awk '$1 == "epoch" { printf "%s ", $NF }' "$tmp/t$s.out")
    echo "seed $s: $accs"
    awk '$1 == "test_accuracy" { print $2 }' "$tmp/t$s.out" >>"$tmp/torch.final"
done
[ -s "$tmp/torch.final" ] && echo "torch final: $(summary <"$tmp/torch.final")"
exit 0
