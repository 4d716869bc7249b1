#!/usr/bin/env bash
# Claim 3, less sensitivity to initialisation: the Figure 1 network with every dense layer's weights drawn from
# N(0, STD^2) (biases zero), STD from 0.003 to 3, with and without batch norm, seeds 1-3.
# Writes docs/experiments/init.png and its section of docs/experiments.md.
source "$(dirname "$0")/lib.sh"
start=$(date +%s)
info=$(machine)
EPOCHS=${EPOCHS:-2}
D=$OUT/init
$BNNI sweep models/mlp_sigmoid_bn.bnn \
    --set 'dense.init=normal(0.003),normal(0.03),normal(0.3),normal(1),normal(3)' --set batchnorm=on,off \
    --seeds 1-3 --epochs $EPOCHS --target 0.8 --threads $THREADS --out $D --quiet > $OUT/init.txt
cp $D/summary.png $IMG/init.png
{
    echo "Measured $(date -u +%Y-%m-%d) by \`experiments/3_init.sh\` ($EPOCHS epochs per run, 30 runs," \
         "$(($(date +%s) - start)) s; $info)."
    echo
    echo '![Weight scale sweep with and without batch norm](experiments/init.png)'
    echo
    csv_md $D/summary.csv 1,2,4,5,6,7,8,12,13
} | md_section init
echo "3_init.sh: $(($(date +%s) - start)) s"
