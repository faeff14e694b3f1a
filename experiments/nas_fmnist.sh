#!/usr/bin/env bash
# RESULTS.md 7.10: issue 27's point 4 in Fashion-MNIST's quick regime, in the issue's order, all
# of it resumable: run the same command again after a kill and it goes on where it stopped.
#   experiments/nas_fmnist.sh [STORAGE]      (default runs/nas_fmnist; tens of hours on 2 cores:
#                                             the MBConv networks train slowly on a CPU)
# 1. the interaction check: 4 architectures x none, cutout, uniform, TrivialAugment x 2 seeds,
#    trained standalone with configs/train/quick_fmnist.yaml;
# 2. fidelity: 20 random architectures stratified by size, trained standalone (2 seeds, under
#    uniform), and their one-shot and AWS scores from the supernet of configs/search/nas_fmnist.yaml;
# 3. the campaign (experiments/nas_campaign.sh): joint, null, architecture only, both sequential
#    orders and the gradient search, 3 seeds each, every found network trained with 3 seeds.
# The trainings skip the test set until the last epoch (eval_every=1000): no epoch is picked.
# A new storage of each part starts from its committed record, where there is one
# (experiments/records/nas_fmnist_PART, written by nas_fidelity.py record --storage $S/PART), so
# what an earlier machine finished is not run again, and a search it left unfinished resumes at
# its last saved loop on the recorded stage-1 weights (a training cut short starts again).
# PARTS (default "interaction fidelity campaign") runs some of the three: the interaction record
# holds only mb5_e6's rows (the other networks' runs were lost with a machine; their table in
# RESULTS.md stands), so a new storage trains those again unless PARTS leaves it out, e.g.
#   PARTS=campaign SEARCHES_ONLY=1 experiments/nas_fmnist.sh     (the campaign's searches only)
# Tables: experiments/arch_policy_interaction.py table, nas_fidelity.py table, nas_results.py.
set -euo pipefail
cd "$(dirname "$0")/.."
S=${1:-runs/nas_fmnist}
BIN=${BIN:-.venv/bin}
export BIN
TRAIN=configs/train/quick_fmnist.yaml
mkdir -p "$S"
from_record() {  # from_record PART: $S/PART, new, starts as a copy of PART's record
    local rec=experiments/records/nas_fmnist_$1
    if [ ! -e "$S/$1" ] && [ -d "$rec" ]; then
        mkdir -p "$S/$1" && cp -r "$rec/." "$S/$1/"
    fi
}
PARTS=${PARTS:-interaction fidelity campaign}
part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
if part interaction; then
    from_record interaction
    $BIN/python experiments/arch_policy_interaction.py run --seeds 0 1 --storage "$S/interaction" \
        --train-config $TRAIN --augs none cutout uniform trivialaugment --set eval_every=1000
fi
if part fidelity; then
    from_record fidelity
    $BIN/python experiments/nas_fidelity.py train --storage "$S/fidelity" --train-config $TRAIN --set eval_every=1000
    $BIN/python experiments/nas_fidelity.py scores --storage "$S/fidelity" --search-config configs/search/nas_fmnist.yaml
fi
if part campaign; then
    from_record campaign
    NAS=configs/search/nas_fmnist.yaml TRAIN=$TRAIN TRAIN_SET=eval_every=1000 POLICY=configs/search/quick_fmnist.yaml \
        POLICY_SET="loops=30 agent_config.es_lr=0.3 finetune.metric=neg_loss" experiments/nas_campaign.sh "$S/campaign"
fi
