#!/usr/bin/env bash
# Claim 4, batch norm regularises: the half-width ReLU CNN (models/cnn_relu_bn.bnn) with dropout only, batch norm
# only, both and neither; the train/test gap after the last epoch, both sides measured in eval mode (the training
# set through bnni eval; the per-epoch train accuracy is a running mean in training mode, with dropout active and
# batch statistics, so it is not comparable). Writes docs/experiments/regularization.png (loss and accuracy per
# epoch, train dashed, test solid) and its section of docs/experiments.md.
source "$(dirname "$0")/lib.sh"
start=$(date +%s)
info=$(machine)
EPOCHS=${EPOCHS:-4}
D=$OUT/regularization
$BNNI sweep models/cnn_relu_bn.bnn --set batchnorm=on,off --set dropout=on,off --epochs $EPOCHS \
    --threads $THREADS --out $D --quiet > $OUT/regularization.txt
name() { case $1 in on,on) echo "BN and dropout" ;; on,off) echo "BN only" ;; off,on) echo "dropout only" ;;
                    *) echo "neither" ;; esac; }
runs=() labels=()
for bn in on off; do
    for dr in on off; do
        runs+=("$D/batchnorm=${bn}_dropout=${dr}/run.h5")
        labels+=(--label "$(name $bn,$dr)")
    done
done
$BNNI plot "${runs[@]}" "${labels[@]}" -o $IMG/regularization.png \
    --title "half-width ReLU CNN on Fashion-MNIST, Adam 1e-3: train dashed, test solid"
{
    echo "Measured $(date -u +%Y-%m-%d) by \`experiments/4_regularization.sh\` ($EPOCHS epochs per run, seed 1," \
         "$(($(date +%s) - start)) s; $info)."
    echo
    echo '![Dropout, batch norm, both, neither](experiments/regularization.png)'
    echo
    echo '| configuration | train acc (eval mode) | test acc | gap | train loss (eval mode) | test loss |' \
         'train acc during training (running, train mode) |'
    echo '| --- | --- | --- | --- | --- | --- | --- |'
    for bn in on off; do
        for dr in on off; do
            r=$D/batchnorm=${bn}_dropout=${dr}
            read -r tl ta <<< "$(train_eval $r/run.h5)"
            awk -F, -v n="$(name $bn,$dr)" -v tl="$tl" -v ta="$ta" 'NR > 1 { last = $0 }
                END { split(last, v, ","); printf "| %s | %.4f | %.4f | %+.4f | %.4f | %.4f | %.4f |\n",
                      n, ta, v[5], ta - v[5], tl, v[4], v[3] }' $r/metrics.csv
        done
    done
} | md_section regularization
echo "4_regularization.sh: $(($(date +%s) - start)) s"
