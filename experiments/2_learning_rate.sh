#!/usr/bin/env bash
# Claim 2, higher learning rates: LeNet with and without batch norm (the seed model and the same network with
# --set batchnorm=off) over lr 0.01 to 3, seeds 1-3. Writes docs/experiments/learning_rate.png and its section.
source "$(dirname "$0")/lib.sh"
start=$(date +%s)
info=$(machine)
EPOCHS=${EPOCHS:-2}
D=$OUT/learning_rate
$BNNI sweep models/lenet_bn.bnn --set optimizer.lr=0.01,0.03,0.1,0.3,1,3 --set batchnorm=on,off --seeds 1-3 \
    --epochs $EPOCHS --target 0.8 --threads $THREADS --out $D --quiet > $OUT/learning_rate.txt
cp $D/summary.png $IMG/learning_rate.png
{
    echo "Measured $(date -u +%Y-%m-%d) by \`experiments/2_learning_rate.sh\` ($EPOCHS epochs per run, 36 runs," \
         "$(($(date +%s) - start)) s; $info)."
    echo
    echo '![LeNet with and without batch norm over learning rates](experiments/learning_rate.png)'
    echo
    csv_md $D/summary.csv 1,2,4,5,6,7,8,12,13
} | md_section learning_rate
echo "2_learning_rate.sh: $(($(date +%s) - start)) s"
