#!/usr/bin/env bash
# RESULTS.md section 7: NAS + AWS on digits (configs/search/nas_digits.yaml) with controls.
#   experiments/nas_campaign.sh [STORAGE]          (default runs/nas; hours on 2 cores)
#   SEEDS="0 1" experiments/nas_campaign.sh ...   (the search seeds, default 0 1 2)
# Another regime: NAS (the NAS search config), TRAIN (the training recipe) and TRAIN_SET (its
# --set), POLICY (the policy search of the sequential architecture-then-policy order) and
# POLICY_SET (its --set); Fashion-MNIST's quick regime: experiments/nas_fmnist.sh.
# 1. searches, 3 seeds each: joint (architecture and policy), null (the same with shuffled
#    rewards: control=shuffle, both agents), architecture only (nas.learn=arch: the policy stays
#    uniform), gradient (nas.method=gradient: stage 1 learns the logits, stage 2 starts there).
#    A seed's first search trains its supernet; the others reuse it (same stage-1 config), but
#    the gradient search trains its own (its stage 1 differs: about 22 minutes on a core).
# 2. every found architecture trained standalone (configs/train/digits.yaml, 3 seeds) under the
#    uniform policy (the truth of experiments/nas_fidelity.py, so it ranks against that
#    experiment's 20 random architectures of its size bin) and under its own found policy.
# 3. sequential, architecture then policy: an AWS policy search (configs/search/digits.yaml,
#    validation-loss reward) on each architecture-only result, then that pair trained.
# 4. sequential, policy then architecture: a policy-only search on the supernet (nas.learn=policy:
#    architectures drawn uniformly, the same stage 1), then an architecture-only search under that
#    policy, fixed (nas.policy), then that pair trained, and that architecture under uniform.
# Seed by seed. A finished run is skipped and an unfinished one resumed, so the script continues
# where it stopped. Wall times: $S/walls.txt. SEARCHES_ONLY=1 runs the searches and skips every
# training (each search's inputs are other searches' results, never a training's): the searches
# need one storage to go on in, the trainings can run later, elsewhere, all at once.
set -euo pipefail
cd "$(dirname "$0")/.."
S=${1:-runs/nas}
BIN=${BIN:-.venv/bin}
NAS=${NAS:-configs/search/nas_digits.yaml}
TRAIN=${TRAIN:-configs/train/digits.yaml}
POLICY=${POLICY:-configs/search/digits.yaml}
POLICY_SET=${POLICY_SET:-finetune.metric=neg_loss}
TRAIN_SET=${TRAIN_SET:-}
mkdir -p "$S"
timed() {  # timed NAME CMD...: run CMD, log to (the end of) $S/NAME.log, its wall time to walls.txt
    local name=$1; shift
    local t0=$(date +%s)
    "$@" >> "$S/$name.log" 2>&1
    echo "$name $(( $(date +%s) - t0 )) s" >> "$S/walls.txt"
}
search() {  # search NAME CONFIG --set ...: a new run, or the rest of an unfinished one
    local name=$1 config=$2; shift 2
    if [ -e "$S/search/$name/run.json" ]; then
        grep -q "^train with it" "$S/$name.log" 2>/dev/null && return 0
        timed "$name" $BIN/awsaa-search --resume "$S/search/$name"
    else
        timed "$name" $BIN/awsaa-search -c "$config" --storage "$S/search" --name "$name" "$@"
    fi
}
train() {  # train NAME ARCH AUG...: skipped when all its trials are done, else resumed or started
    local name=$1 arch=$2; shift 2
    [ "${SEARCHES_ONLY:-0}" = 1 ] && return 0
    timed "train-$name" $BIN/python experiments/nas_fidelity.py awsaa-train "$S" "$name" -c "$TRAIN" \
        --model "$arch" --aug "$@" --seeds 0 1 2 --cpus-per-trial 1 ${TRAIN_SET:+--set $TRAIN_SET}
}
for seed in ${SEEDS:-0 1 2}; do
    search "joint-s$seed" "$NAS" --set seed=$seed
    search "null-s$seed" "$NAS" --set seed=$seed control=shuffle
    search "archonly-s$seed" "$NAS" --set seed=$seed nas.learn=arch
    search "polfirst-s$seed" "$NAS" --set seed=$seed nas.learn=policy
    search "seqarch-s$seed" "$NAS" --set seed=$seed nas.learn=arch \
        nas.policy="$(realpath "$S/search/polfirst-s$seed/policy.json")"
    train "seqpa-s$seed" "$S/search/seqarch-s$seed/arch.json" "$S/search/seqarch-s$seed/policy.json"
    train "seqarch-s$seed" "$S/search/seqarch-s$seed/arch.json" uniform  # its rank among the random ones
    search "grad-s$seed" "$NAS" --set seed=$seed nas.method=gradient
    for run in joint null grad; do
        r="$S/search/$run-s$seed"
        train "$run-s$seed" "$r/arch.json" uniform "$r/policy.json"
    done
    train "archonly-s$seed" "$S/search/archonly-s$seed/arch.json" uniform  # its policy.json is uniform
    a="$S/search/archonly-s$seed/arch.json"
    # shellcheck disable=SC2086  # POLICY_SET: several KEY=VALUE words
    search "seqpolicy-s$seed" "$POLICY" --set seed=$seed model="$(realpath "$a")" $POLICY_SET
    train "seq-s$seed" "$a" "$S/search/seqpolicy-s$seed/policy.json"
done
