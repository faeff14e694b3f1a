#!/usr/bin/env bash
# RESULTS.md section 6: searches on digits, each beside a null run (shuffled rewards), then every
# found policy trained with 5 seeds; the zero-cost alternatives and a RandAugment grid beside them.
#   experiments/digits_campaign.sh [STORAGE]        (default runs/digits; about 1.5 hours on 2 cores)
# Each search's wall time goes to $STORAGE/walls.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
S=${1:-runs/digits}
BIN=.venv/bin
mkdir -p "$S"
search() {  # search NAME --set ...
    local name=$1; shift
    local t0=$(date +%s)
    $BIN/awsaa-search -c configs/search/digits.yaml --storage "$S/search" --name "$name" "$@" > "$S/$name.log" 2>&1
    echo "$name $(( $(date +%s) - t0 )) s" >> "$S/walls.txt"
}
policies=()
for seed in 0 1 2; do
    for control in none shuffle; do
        search "ftloss-$control-s$seed" --set control=$control seed=$seed finetune.metric=neg_loss
        search "ftacc-$control-s$seed" --set control=$control seed=$seed
        search "density-$control-s$seed" --set control=$control seed=$seed reward=density density.metric=neg_loss \
            density.draws=2
        policies+=("$S/search/ftloss-$control-s$seed/policy.json" "$S/search/ftacc-$control-s$seed/policy.json"
                   "$S/search/density-$control-s$seed/policy.json")
    done
done
train() {  # train NAME AUG...
    local name=$1; shift
    local t0=$(date +%s)
    $BIN/awsaa-train -c configs/train/digits.yaml --aug "$@" --seeds 0 1 2 3 4 --cpus-per-trial 1 \
        --storage "$S/train" --name "$name" > "$S/$name.log" 2>&1
    echo "$name $(( $(date +%s) - t0 )) s" >> "$S/walls.txt"
}
train baseline none cutout uniform trivialaugment randaugment
train found "${policies[@]}"
train ra-grid randaugment_n{1,2,3}_m{5,9,14}
