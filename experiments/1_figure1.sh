#!/usr/bin/env bash
# Claim 1, internal covariate shift (the paper's Figure 1): three hidden layers of 100 sigmoid units, batch 60, with
# and without batch norm; the test accuracy against steps, and the 15th/50th/85th percentiles of the last hidden
# layer's sigmoid input (dense_3 without batch norm, batchnorm_3 with it; dense_3 of the BN run too) on a fixed
# probe of 256 test images. Writes docs/experiments/fig1.png and its section of docs/experiments.md.
source "$(dirname "$0")/lib.sh"
start=$(date +%s)
info=$(machine)
M=models/mlp_sigmoid_bn.bnn
EPOCHS=${EPOCHS:-5}
T="--threads $THREADS --epochs $EPOCHS --trace-every 100 --quiet"
$BNNI train $M $T --set batchnorm=off --trace dense_3 --out $OUT/fig1_nobn.h5 --metrics $OUT/fig1_nobn.csv
$BNNI train $M $T --trace batchnorm_3,dense_3 --out $OUT/fig1_bn.h5 --metrics $OUT/fig1_bn.csv
$BNNI plot $OUT/fig1_nobn.h5 $OUT/fig1_bn.h5 --trace --label "without BN" --label "with BN" -o $IMG/fig1.png \
    --title "Fashion-MNIST, 3x100 sigmoid, batch 60, SGD lr 0.5: test accuracy; last hidden layer's sigmoid input"

# The table: accuracy (trace subset, 2000 test images) at a few steps; the percentiles at the first and last record.
row() { # FILE LAYER LABEL
    local acc n first last
    acc=($(h5vals $1 /trace/test_acc))
    n=${#acc[@]}
    first=$(h5row $1 /trace/layers/$2 1)
    last=$(h5row $1 /trace/layers/$2 $n)
    at() { [ "$1" -lt "$n" ] && printf '%.4f' "${acc[$1]}" || printf -- '-'; } # the record of step 100 * $1
    printf '| %s | %s | %s | %s | %s | %.4f | %s | %s |\n' "$3" "$2" "$(at 5)" "$(at 10)" "$(at 20)" \
        "${acc[$((n - 1))]}" "$(printf '%.2f ' $first)" "$(printf '%.2f ' $last)"
}
{
    echo "Measured $(date -u +%Y-%m-%d) by \`experiments/1_figure1.sh\` ($EPOCHS epochs = $(( EPOCHS * 1000 )) steps per run," \
         "$(($(date +%s) - start)) s; $info)."
    echo
    echo '![Figure 1 on Fashion-MNIST](experiments/fig1.png)'
    echo
    echo '| run | traced layer | acc at 500 steps | 1000 | 2000 | last | 15/50/85th at step 0 | at the last step |'
    echo '| --- | --- | --- | --- | --- | --- | --- | --- |'
    row $OUT/fig1_nobn.h5 dense_3 "without BN"
    row $OUT/fig1_bn.h5 batchnorm_3 "with BN"
    row $OUT/fig1_bn.h5 dense_3 "with BN"
    echo
    echo "Final test accuracy on all 10,000 test images: without BN $(tail -1 $OUT/fig1_nobn.csv | cut -d, -f5)," \
         "with BN $(tail -1 $OUT/fig1_bn.csv | cut -d, -f5)."
} | md_section figure1
echo "1_figure1.sh: $(($(date +%s) - start)) s"
