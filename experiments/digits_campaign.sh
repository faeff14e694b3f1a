#!/usr/bin/env bash
# RESULTS.md section 6: searches on digits (and mnist5k), each beside a null run (shuffled rewards), then every
# found policy trained with 5 seeds; the zero-cost alternatives and a RandAugment grid beside them.
#   experiments/digits_campaign.sh [STORAGE]        (default runs/digits; about 2.5 hours on 2 cores)
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
# 6.4: the 10 op families trained, and every reward's fidelity on them
.venv/bin/python experiments/reward_fidelity.py policies --out "$S/fidelity"
$BIN/awsaa-train -c configs/train/digits.yaml --aug "$S"/fidelity/policies/*.json --seeds 0 1 2 3 4 --cpus-per-trial 1 \
    --storage "$S/fidelity" --name train > "$S/fidelity-train.log" 2>&1
.venv/bin/python experiments/reward_fidelity.py score --out "$S/fidelity" -c configs/search/digits.yaml \
    --storage "$S/search" --rewards finetune "finetune, neg. loss" "density, shared" "density, shared, neg. loss"
.venv/bin/python experiments/reward_fidelity.py table --out "$S/fidelity"
# 6.5: the fine-tune (loss) policies and the density policy of seed 0, mixed 50/50 with uniform
mkdir -p "$S/mix"
.venv/bin/python - "$S" <<'PY'
import sys
from awsaa import Policy
s = sys.argv[1]
for name in ["ftloss-none-s0", "ftloss-none-s1", "ftloss-none-s2", "density-none-s0"]:
    p = Policy.load(f"{s}/search/{name}/policy.json")
    Policy(p.space, 0.5 * p.probs() + 0.5 * Policy.uniform().probs(), None,
           {**p.meta, "mixed_with_uniform": 0.5}).save(f"{s}/mix/{name}-mix50.json")
PY
train mix "$S"/mix/*.json
# 6.6: seeds 5-9 for the close calls
$BIN/awsaa-train -c configs/train/digits.yaml --aug none uniform trivialaugment aws_digits --seeds 5 6 7 8 9 \
    --cpus-per-trial 1 --storage "$S/train" --name seeds5-9 > "$S/seeds5-9.log" 2>&1
.venv/bin/python experiments/arm_table.py "$S"/train/baseline "$S"/train/found "$S"/train/seeds5-9
# 6.7: mnist5k, the alternatives, then density searches beside null runs and their policies
$BIN/awsaa-train -c configs/train/mnist5k.yaml --aug none cutout uniform trivialaugment randaugment \
    --seeds 0 1 2 3 4 --cpus-per-trial 1 --storage "$S/train" --name mnist5k-baseline > "$S/mnist5k-baseline.log" 2>&1
m5=()
for seed in 0 1 2; do
    for control in none shuffle; do
        t0=$(date +%s)
        $BIN/awsaa-search -c configs/search/mnist5k.yaml --storage "$S/search" --name "m5-density-$control-s$seed" \
            --set control=$control seed=$seed > "$S/m5-density-$control-s$seed.log" 2>&1
        echo "m5-density-$control-s$seed $(( $(date +%s) - t0 )) s" >> "$S/walls.txt"
        m5+=("$S/search/m5-density-$control-s$seed/policy.json")
    done
done
$BIN/awsaa-train -c configs/train/mnist5k.yaml --aug "${m5[@]}" --seeds 0 1 2 3 4 --cpus-per-trial 1 \
    --storage "$S/train" --name mnist5k-found > "$S/mnist5k-found.log" 2>&1
.venv/bin/python experiments/arm_table.py "$S"/train/mnist5k-baseline "$S"/train/mnist5k-found
