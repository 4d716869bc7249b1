#!/usr/bin/env bash
# Claim 5, why gamma and beta: the seed LeNet-BN with batchnorm(affine=false) (every batch norm output is xhat,
# which keeps the sigmoids near their linear middle) against the default, seeds 1-3.
# Writes docs/experiments/affine.png and its section of docs/experiments.md.
source "$(dirname "$0")/lib.sh"
start=$(date +%s)
info=$(machine)
EPOCHS=${EPOCHS:-3}
D=$OUT/affine
$BNNI sweep models/lenet_bn.bnn --set batchnorm.affine=true,false --seeds 1-3 --epochs $EPOCHS --target 0.85 \
    --threads $THREADS --out $D --quiet > $OUT/affine.txt
$BNNI plot $D/batchnorm.affine=true_seed=1/run.h5 $D/batchnorm.affine=false_seed=1/run.h5 \
    --label "affine=true (default)" --label "affine=false" -o $IMG/affine.png \
    --title "LeNet-BN (sigmoid), seed 1: with and without gamma and beta"
{
    echo "Measured $(date -u +%Y-%m-%d) by \`experiments/5_affine.sh\` ($EPOCHS epochs per run, 6 runs," \
         "$(($(date +%s) - start)) s; $info)."
    echo
    echo '![affine=false against the default](experiments/affine.png)'
    echo
    csv_md $D/summary.csv 1,3,4,5,6,7,11,12
    echo
    echo 'The fit of the training set in the last epoch: in training mode (the running mean over its batches, batch'
    echo 'statistics) and in eval mode afterwards (bnni eval on the 60,000 training images, moving statistics):'
    echo
    echo '| batchnorm.affine | seed | train loss (train mode) | train acc (train mode) | train loss (eval mode) |' \
         'train acc (eval mode) | test acc |'
    echo '| --- | --- | --- | --- | --- | --- | --- |'
    for a in true false; do
        for s in 1 2 3; do
            r=$D/batchnorm.affine=${a}_seed=$s
            read -r tl ta <<< "$(train_eval $r/run.h5)"
            IFS=, read -r _ rl ra _ ea _ <<< "$(tail -1 $r/metrics.csv)"
            printf '| %s | %d | %.4f | %.4f | %.4f | %.4f | %.4f |\n' $a $s "$rl" "$ra" "$tl" "$ta" "$ea"
        done
    done
} | md_section affine
echo "5_affine.sh: $(($(date +%s) - start)) s"
