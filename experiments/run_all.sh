#!/usr/bin/env bash
# Runs the five experiment scripts one after another and records the total time in docs/experiments.md.
source "$(dirname "$0")/lib.sh"
start=$(date +%s)
info=$(machine)
for s in 1_figure1 2_learning_rate 3_init 4_regularization 5_affine; do
    bash "experiments/$s.sh"
done
total=$(($(date +%s) - start))
echo "Measured $(date -u +%Y-%m-%d): all five scripts in $total s ($((total / 60)) min $((total % 60)) s), $THREADS" \
     "thread(s); $info." | md_section total
echo "run_all.sh: $total s"
