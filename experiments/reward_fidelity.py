"""Which reward ranks policies the way full training does? The fine-tune reward, the density
reward on the shared weights, the density reward on a network trained without the searched
augmentation (Fast AutoAugment's setting), and the no-training pixel-change baseline, side by
side on the same fixed policies (the 10 op families of ``proxy_fidelity.py``).

    # 1. write the policies and train each from scratch, 3 seeds (the quick training recipe)
    .venv/bin/python experiments/reward_fidelity.py policies --out runs/fidelity
    awsaa-train -c configs/train/quick_fmnist.yaml --aug runs/fidelity/policies/*.json --seeds 0 1 2 \\
                --storage runs/fidelity --name train
    # 2. score every policy with every reward, --repeats times each (cost and noise)
    .venv/bin/python experiments/reward_fidelity.py score --out runs/fidelity --storage runs/controls
    # 3. Kendall tau of each score against the mean test accuracy over the seeds
    .venv/bin/python experiments/reward_fidelity.py table --out runs/fidelity

On digits (RESULTS.md 6.4): train with ``configs/train/digits.yaml`` and seeds 0-4, and score with
``-c configs/search/digits.yaml --rewards finetune "finetune, neg. loss" "density, shared"
"density, shared, neg. loss"``.

Each reward is computed exactly as a search computes it (``FineTuner.run``) from the quick
search config's stage 1 (read from ``<storage>/pretrained/<stage-1 hash>.pt`` and trained
there when missing; the clean network likewise under its own hash). Repeat ``r`` of every
policy uses seed ``r`` (common random numbers across policies, as a search compares its
trajectories). Noise: the standard deviation over the repeats, averaged over the policies.
Cost: seconds per evaluation of one policy, one process with two threads.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics as st
import sys
import time
from pathlib import Path
from typing import Any

import torch
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).parent))
from proxy_fidelity import POLICIES, pixel_change
from reward_noise import shared_state

from awsaa.config import SearchConfig, load
from awsaa.fileio import atomic_write_json
from awsaa.search.stages import FineTuner

REWARDS = {  # name: overrides of the search config
    "finetune": {"reward": "finetune", "finetune.metric": "accuracy"},
    "finetune, neg. loss": {"reward": "finetune", "finetune.metric": "neg_loss"},
    "density, shared": {"reward": "density", "density.source": "shared", "density.metric": "accuracy"},
    "density, shared, neg. loss": {"reward": "density", "density.source": "shared", "density.metric": "neg_loss"},
    "density, clean": {"reward": "density", "density.source": "clean", "density.metric": "accuracy"},
}
DEFAULT_REWARDS = ["finetune", "density, shared", "density, clean"]  # section 5.1's three


def slug(name: str) -> str:
    return re.sub("-+", "-", "".join(c if c.isalnum() else "-" for c in name.split(" (")[0])).strip("-")


def cmd_policies(args: argparse.Namespace) -> None:
    folder = Path(args.out) / "policies"
    folder.mkdir(parents=True, exist_ok=True)
    for name, policy in POLICIES.items():
        policy.save(folder / f"{slug(name)}.json")
    print(f"wrote {len(POLICIES)} policies to {folder}")


def cmd_score(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    rows: dict[str, dict[str, Any]] = {name: {} for name in POLICIES}
    for reward in args.rewards:
        cfg = load(SearchConfig, args.config, REWARDS[reward])
        tuner = FineTuner(cfg, shared_state(cfg, Path(args.storage)))
        if reward == args.rewards[0]:
            images = tuner.trainer.val_set.images.cpu()
            for name, policy in POLICIES.items():
                rows[name]["pixel change"] = {"scores": [-pixel_change(policy, images, tuner.fill)], "seconds": 0.0}
        if cfg.reward == "density":
            print(f"{reward}: clean validation accuracy {tuner.density(None, 0).reward:.2f}%", flush=True)
        for name, policy in POLICIES.items():
            scores, secs = [], []
            for r in range(args.repeats):
                t0 = time.perf_counter()
                scores.append(tuner.run(policy, seed=r, pair_seed=10_000 + r).reward)
                secs.append(time.perf_counter() - t0)
            rows[name][reward] = {"scores": scores, "seconds": st.mean(secs)}
            print(f"{reward:16s} {name:48s} {st.mean(scores):7.3f} +- {st.stdev(scores) if len(scores) > 1 else 0:.3f}"
                  f"  ({st.mean(secs):.1f} s each)", flush=True)
    atomic_write_json(Path(args.out) / "scores.json", {"config": args.config, "repeats": args.repeats,
                                                       "rewards": args.rewards, "rows": rows})


def test_accuracy(train_dir: Path) -> dict[str, list[float]]:
    """Final-epoch test accuracies of ``awsaa-train``'s summary, by policy slug."""
    out: dict[str, list[float]] = {}
    for trial in json.loads((train_dir / "summary.json").read_text()):
        if trial["status"] != "done":
            continue
        label = trial["label"].rsplit("-seed", 1)[0]
        match = [n for n in POLICIES if label.endswith("-" + slug(n))]
        if match:  # the longest slug: "-enhance-mild" before "-mild"
            name = max(match, key=lambda n: len(slug(n)))
            out.setdefault(name, []).append(100.0 - trial["final_test_error"])
    return out


def cmd_table(args: argparse.Namespace) -> None:
    data = json.loads((Path(args.out) / "scores.json").read_text())
    acc = test_accuracy(Path(args.out) / args.train_name)
    names = [n for n in POLICIES if n in acc]
    if len(names) < len(POLICIES):
        print(f"note: no training results for {sorted(set(POLICIES) - set(names))}")
    keys = [*data.get("rewards", DEFAULT_REWARDS), "pixel change"]
    seeds = max(len(a) for a in acc.values())
    print(f"| policy | test acc ({seeds} seeds) | " + " | ".join(keys) + " |")
    print("| --- " * (len(keys) + 2) + "|")
    for n in sorted(names, key=lambda n: -st.mean(acc[n])):
        row = data["rows"][n]
        cells = [f"{st.mean(row[k]['scores']):.2f}" for k in keys]
        print(f"| {n} | {st.mean(acc[n]):.2f} ± {st.stdev(acc[n]) if len(acc[n]) > 1 else 0:.2f} | "
              + " | ".join(cells) + " |")
    print("\n| score | Kendall tau vs test acc | p | noise (SD over repeats) | s per policy |")
    print("| --- | --- | --- | --- | --- |")
    for k in keys:
        tau = kendalltau([st.mean(data["rows"][n][k]["scores"]) for n in names], [st.mean(acc[n]) for n in names])
        sds = [st.stdev(data["rows"][n][k]["scores"]) for n in names if len(data["rows"][n][k]["scores"]) > 1]
        noise = f"{st.mean(sds):.3f}" if sds else "0 (deterministic)"
        secs = st.mean(data["rows"][n][k]["seconds"] for n in names)
        print(f"| {k} | {tau.statistic:+.3f} | {tau.pvalue:.3g} | {noise} | {secs:.1f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("policies")
    a.add_argument("--out", default="runs/fidelity")
    b = sub.add_parser("score")
    b.add_argument("--out", default="runs/fidelity")
    b.add_argument("-c", "--config", default="configs/search/quick_fmnist.yaml")
    b.add_argument("--storage", default="runs/search", help="where stage 1 is cached (<storage>/pretrained)")
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--rewards", nargs="+", default=DEFAULT_REWARDS, choices=list(REWARDS))
    c = sub.add_parser("table")
    c.add_argument("--out", default="runs/fidelity")
    c.add_argument("--train-name", default="train")
    args = p.parse_args()
    {"policies": cmd_policies, "score": cmd_score, "table": cmd_table}[args.cmd](args)


if __name__ == "__main__":
    main()
