"""The proxy's fidelity, the paper's central claim: does the fine-tune reward rank fixed
policies the way full training does?

For each of N fixed policies (families of the 36 ops: geometric, colour, mild, strong,
destructive, ...):

* the **proxy reward**: stage 1 of the search config once, then one fine-tune trajectory
  per policy (the mean of the best-2 validation accuracies), as the search computes it;
* the **full-training result**: the training config (quick_fmnist by default), from
  scratch, with the policy, final-epoch test accuracy;
* a **no-training baseline**: the mean absolute pixel change the policy causes on the
  validation images (a policy that barely changes images scores "best").

Prints Kendall's tau of the proxy reward and of the baseline against the test accuracy,
and writes every number to a JSON file.

    .venv/bin/python experiments/proxy_fidelity.py [--out runs/proxy_fidelity.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import torch
from scipy.stats import kendalltau

from awsaa import Policy, SearchSpace
from awsaa import config as C
from awsaa.augment import tensor_ops
from awsaa.data import load_dataset
from awsaa.fileio import atomic_write_json
from awsaa.search.stages import FineTuner, pretrain
from awsaa.train import Trainer

SPACE = SearchSpace.default()


def family(predicate) -> Policy:
    """The uniform distribution over the pairs whose two ops both satisfy ``predicate``."""
    ok = torch.tensor([predicate(op) for op in SPACE.ops], dtype=torch.float64)
    probs = ok[:, None] * ok[None, :]
    return Policy(SPACE, probs / probs.sum())


GEOMETRIC = {"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"}
ENHANCE = {"Brightness", "Color", "Contrast", "Sharpness"}
POLICIES = {
    "uniform": Policy.uniform(SPACE),
    "geometric": family(lambda op: op.type in GEOMETRIC),
    "colour": family(lambda op: op.type not in GEOMETRIC),
    "mild (step 3)": family(lambda op: op.level == 3),
    "strong (step 9)": family(lambda op: op.level == 9),
    "enhance, mild": family(lambda op: op.type in ENHANCE and op.level == 3),
    "translate": family(lambda op: op.type in ("TranslateX", "TranslateY")),
    "rotate + shear": family(lambda op: op.type in ("Rotate", "ShearX", "ShearY")),
    "histogram (AutoContrast, Equalize, Posterize)": family(
        lambda op: op.type in ("AutoContrast", "Equalize", "Posterize")),
    "destructive (Invert, Solarize)": family(lambda op: op.type in ("Invert", "Solarize")),
}


def pixel_change(policy: Policy, images: torch.Tensor, fill: int) -> float:
    g = torch.Generator().manual_seed(0)
    pairs = policy.sample(len(images), g)
    out = tensor_ops.apply_pairs(images, pairs, SPACE, fill=fill, generator=g)
    return float((out.float() - images.float()).abs().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--search-config", default="configs/search/quick_fmnist.yaml")
    ap.add_argument("--train-config", default="configs/train/quick_fmnist.yaml")
    ap.add_argument("--finetune-epochs", type=int, default=None, help="override finetune.epochs")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="fine-tune seeds averaged per policy")
    ap.add_argument("--out", default="runs/proxy_fidelity.json")
    ap.add_argument("--pretrained", help="stage-1 checkpoint of the same search config (e.g. awsaa-search's "
                                         "<storage>/pretrained/<hash>.pt) instead of running stage 1 again")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    scfg = C.load(C.SearchConfig, args.search_config)
    if args.finetune_epochs:
        scfg = dataclasses.replace(scfg, finetune=dataclasses.replace(scfg.finetune, epochs=args.finetune_epochs))
    tcfg = C.load(C.TrainConfig, args.train_config)
    data = load_dataset(scfg.dataset, scfg.dataroot)
    start = time.time()
    if args.pretrained:
        from awsaa.search.runs import load_shared

        shared = load_shared(Path(args.pretrained), scfg)  # refused unless made by this stage-1 config
    else:
        shared = pretrain(scfg, data=data)
    print(f"stage 1: val acc {shared['val_acc']:.2f}%, fine-tune LR {shared['lr']:.4g} ({time.time() - start:.0f} s)")
    tuner = FineTuner(scfg, shared, data=data)
    val_images = tuner.trainer.val_set.images.cpu()
    rows = []
    for name, policy in POLICIES.items():
        rewards = [tuner.run(policy, seed).reward for seed in args.seeds]
        reward = sum(rewards) / len(rewards)
        change = pixel_change(policy, val_images, tuner.fill)
        path = Path(args.out).with_suffix("") / f"{len(rows)}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        policy.save(path)
        trainer = Trainer(dataclasses.replace(tcfg, aug=str(path), eval_every=tcfg.epochs), data=data)
        final = trainer.fit()
        rows.append({"policy": name, "proxy_reward": reward, "proxy_rewards": rewards, "pixel_change": change,
                     "test_acc": final.test_acc})
        print(f"{name:48s} proxy {reward:6.2f}  pixel change {change:6.2f}  full training test acc "
              f"{final.test_acc:6.2f}  ({time.time() - start:.0f} s)", flush=True)
    acc = [r["test_acc"] for r in rows]
    tau_proxy = kendalltau([r["proxy_reward"] for r in rows], acc)
    tau_pixels = kendalltau([-r["pixel_change"] for r in rows], acc)
    print(f"Kendall tau, proxy reward vs test accuracy: {tau_proxy.statistic:.3f} (p = {tau_proxy.pvalue:.3g})")
    print(f"Kendall tau, -pixel change (no training) vs test accuracy: {tau_pixels.statistic:.3f} "
          f"(p = {tau_pixels.pvalue:.3g})")
    atomic_write_json(args.out, {"search_config": args.search_config, "train_config": args.train_config,
                                 "finetune_epochs": scfg.finetune.epochs, "seeds": args.seeds, "rows": rows,
                                 "tau_proxy": tau_proxy.statistic, "p_proxy": tau_proxy.pvalue,
                                 "tau_pixel_change": tau_pixels.statistic, "p_pixel_change": tau_pixels.pvalue})


if __name__ == "__main__":
    main()
