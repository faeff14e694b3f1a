"""How noisy is the search's reward? One loop's worth of trajectories (and a few such loops)
under one fixed policy (uniform), for several setups of the quick config.

    .venv/bin/python experiments/reward_noise.py                       # every setup below
    .venv/bin/python experiments/reward_noise.py --setups today crn    # some of them

For each setup: the pooled standard deviation of the rewards within a loop (same policy,
``--loops`` loops of ``--trajectories`` each, so the pooled SD has loops x (M - 1) degrees of
freedom), the mean reward, and the seconds per trajectory relative to ``today``, with two
worker processes of one thread each (as the quick search's two workers). Stage 1 comes from
the search's cache (``<storage>/pretrained/<stage-1 hash>.pt``) and is trained there when
missing (the larger validation splits change stage 1: it trains on the same number of images,
carved from a larger subset).
"""

from __future__ import annotations

import argparse
import statistics as st
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from awsaa.config import SearchConfig, from_dict, load, to_dict
from awsaa.search.report import within_loop_sd

# name: (overrides of the quick config, what it changes)
NO_CRN = {"finetune.common_random_numbers": False}
CRN = {"finetune.common_random_numbers": True}
VAL1K = {"train_size": 5000, "val_size": 1000}  # the quick config before this measurement
SETUPS: dict[str, tuple[dict[str, Any], str]] = {
    "today": ({**NO_CRN, **VAL1K}, "1,000 validation images, 2 fine-tune epochs, every trajectory its own seed"),
    "crn": ({**CRN, **VAL1K}, "common random numbers within a loop"),
    "val5k": ({**NO_CRN, "train_size": 9000, "val_size": 5000},
              "5,000 validation images (training on the same number, 4,000)"),
    "val10k": ({**NO_CRN, "train_size": 14000, "val_size": 10000}, "10,000 validation images"),
    "epochs4": ({**NO_CRN, **VAL1K, "finetune.epochs": 4}, "4 fine-tune epochs (reward: mean of the 2 best)"),
    "crn+val5k": ({**CRN, "train_size": 9000, "val_size": 5000}, "common random numbers + 5,000 validation images"),
    "crn+val10k": ({**CRN, "train_size": 14000, "val_size": 10000},
                   "common random numbers + 10,000 validation images"),
}

_tuner = None


def _init(cfg_dict: dict[str, Any], shared: dict[str, Any]) -> None:
    global _tuner
    from awsaa.search.stages import FineTuner

    torch.set_num_threads(1)
    _tuner = FineTuner(from_dict(SearchConfig, cfg_dict), shared)


def _trajectory(loop: int, traj: int, cfg_dict: dict[str, Any]) -> tuple[int, float, float]:
    from awsaa.policy import Policy
    from awsaa.search.runs import trajectory_seeds

    seed, pair_seed = trajectory_seeds(from_dict(SearchConfig, cfg_dict), loop, traj)
    t0 = time.perf_counter()
    r = _tuner.run(Policy.uniform(), seed, pair_seed=pair_seed)
    return loop, r.reward, time.perf_counter() - t0


def shared_state(cfg: SearchConfig, storage: Path) -> dict[str, Any]:
    from awsaa.search.runs import stage1_cache
    from awsaa.search.stages import pretrain, stage1_hash
    from awsaa.train.checkpoint import load_checkpoint, save_checkpoint

    path = stage1_cache(storage, f"{stage1_hash(cfg)}.pt")
    if path.exists():
        return load_checkpoint(path, kind="shared")
    print(f"  stage 1 for this split (train_size {cfg.train_size}, val_size {cfg.val_size}): training it once, "
          f"cached as {path}", flush=True)
    torch.set_num_threads(2)
    shared = pretrain(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, shared)
    return shared


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-c", "--config", default="configs/search/quick_fmnist.yaml")
    p.add_argument("--setups", nargs="*", default=list(SETUPS), choices=list(SETUPS))
    p.add_argument("--loops", type=int, default=3)
    p.add_argument("--trajectories", type=int, default=4)
    p.add_argument("--storage", default="runs/search")
    args = p.parse_args()
    rows = []
    for name in args.setups:
        overrides, what = SETUPS[name]
        cfg = load(SearchConfig, args.config, overrides)
        print(f"{name}: {what}", flush=True)
        shared = shared_state(cfg, Path(args.storage))
        cfg_dict = to_dict(cfg)
        jobs = [(loop, traj, cfg_dict) for loop in range(args.loops) for traj in range(args.trajectories)]
        with ProcessPoolExecutor(2, initializer=_init, initargs=(cfg_dict, shared)) as pool:
            results = list(pool.map(_trajectory, *zip(*jobs, strict=True)))
        by_loop: dict[int, list[float]] = {}
        for loop, reward, _ in results:
            by_loop.setdefault(loop, []).append(reward)
        sd = within_loop_sd([{"rewards": r} for r in by_loop.values()])
        dof = sum(len(r) - 1 for r in by_loop.values())
        secs = st.mean(s for _, _, s in results)
        rows.append((name, sd, st.mean(x for _, x, _ in results), secs, dof))
        print(f"  pooled within-loop SD {sd:.3f} points ({dof} dof), mean reward {rows[-1][2]:.2f}%, "
              f"{secs:.1f} s per trajectory; by loop: "
              + "; ".join(" ".join(f"{x:.2f}" for x in r) for r in by_loop.values()), flush=True)
    base = next((r for r in rows if r[0] == "today"), rows[0])
    print(f"\n| setup | within-loop SD (points) | vs {base[0]} | mean reward | s per trajectory | time vs {base[0]} |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, sd, mean, secs, dof in rows:
        print(f"| {name} | {sd:.3f} ({dof} dof) | {sd / base[1]:.2f}x | {mean:.2f}% | {secs:.1f} | "
              f"{secs / base[3]:.2f}x |")


if __name__ == "__main__":
    main()
