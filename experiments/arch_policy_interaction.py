"""NAS + AWS (issue 27, point 4), the first check: does the best augmentation depend on the
architecture? 4 architectures of the choice-block space x 4 augmentations x 5 seeds (the
issue asks for 2; 2 proved too few, RESULTS.md 7.1), each trained standalone with
``awsaa-train`` (120 epochs on digits, the regime where augmentation helps); then, per
architecture, each augmentation's final test error (mean ± standard deviation of the seeds),
the best one, and how far behind the next is in standard errors.

    .venv/bin/python experiments/arch_policy_interaction.py run [--seeds 0 1 2 3 4] [--storage DIR]
    .venv/bin/python experiments/arch_policy_interaction.py table [--storage DIR]

Another regime: ``--train-config`` (a training recipe; ``--set`` overrides its keys) and
``--augs`` (four augmentations, or policy files) with both commands, e.g. Fashion-MNIST's
quick regime, where augmentation costs accuracy at WRN-10-1's size (RESULTS.md 1)::

    .venv/bin/python experiments/arch_policy_interaction.py run --seeds 0 1 --storage runs/arch-interaction-fmnist \
        --train-config configs/train/quick_fmnist.yaml --augs none cutout uniform trivialaugment \
        --set eval_every=1000

``run`` trains each architecture a seed at a time, skips a seed the storage already holds (one
made from a record among them) and continues what it finds unfinished (the same command after a
kill resumes it); ``--archs`` limits it to some rows. ``table`` reads every experiment there.

The architectures are the space's four uniform paths of different sizes (every block the same
op; ``zero`` keeps the two blocks where the shape changes as ``wrn``); the augmentations are
none, uniform, TrivialAugment and the policy a digits search found (``aws_digits``).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from nas_fidelity import awsaa_train

from awsaa.arch import Arch
from awsaa.models import ChoiceNet

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ("wrn", "mb5_e6", "mb3_e3", "zero")
# by training time on a CPU, fastest first: a depthwise convolution's backward pass is slow there,
# so mb5_e6 x 9 trains about 5x slower than wrn x 9 at a third fewer parameters
RUN_ORDER = ("zero", "mb3_e3", "wrn", "mb5_e6")
AUGS = ("none", "uniform", "trivialaugment", "aws_digits")


def run(storage: Path, seeds: list[str], config: Path, augs: list[str], sets: list[str],
        archs: list[str]) -> None:
    """Train what is missing of ``archs``, the fastest network first, a seed at a time (an
    experiment ``OP-seedsS`` each): a seed whose every augmentation is done in some experiment of
    the storage (one made from a record among them) is skipped, and an interrupted one continued
    (nas_fidelity.awsaa_train: the same command resumes a killed run)."""
    from awsaa.cli.train import aug_labels

    storage.mkdir(parents=True, exist_ok=True)
    names = list(aug_labels(augs).values())
    for op in (op for op in RUN_ORDER if op in archs):
        f = storage / f"arch-{op}.json"
        if not f.exists():
            Arch.uniform_op(op).save(f)
        done = _errors(storage, op, names)
        for seed in seeds:
            if all(int(seed) in done[aug] for aug in names):
                print(f"{op}: seed {seed} done, skipped", flush=True)
                continue
            awsaa_train(storage, f"{op}-seeds{seed}",
                        ["-c", str(config), "--model", str(f), "--aug", *augs, "--seeds", seed,
                         "--cpus-per-trial", "1", *(["--set", *sets] if sets else [])])


def _errors(storage: Path, op: str, names: list[str]) -> dict[str, dict[int, float]]:
    """{augmentation: {seed: final test error}} of ``op`` over every finished trial of the
    storage's experiments of it (a seed trained twice counts once: the experiment last by name)."""
    errors: dict[str, dict[int, float]] = {aug: {} for aug in names}
    for summary in sorted((storage / "train").glob(f"{op}-seeds*/summary.json")):
        for r in json.loads(summary.read_text()):
            if r["status"] == "done":
                aug = next(a for a in names if f"-{a}-seed" in r["label"])
                errors[aug][int(r["label"].rsplit("-seed", 1)[1])] = r["final_test_error"]
    return errors


def table(storage: Path, augs: list[str]) -> None:
    from awsaa.cli.train import aug_labels  # how awsaa-train labels the trials (a policy file by its stem)

    labels = aug_labels(augs)
    names = [labels[a] for a in augs]
    print("| architecture (blocks' ops) | parameters | " + " | ".join(names) + " | best, and the next |")
    print("| --- | --- | " + " | ".join("---" for _ in names) + " | --- |")
    for op in ARCHS:
        f = storage / f"arch-{op}.json"
        arch = Arch.load(f) if f.exists() else Arch.uniform_op(op)  # a row not started in this storage
        params = sum(p.numel() for p in ChoiceNet(arch, 10, 1).parameters())
        errors = {aug: list(by_seed.values()) for aug, by_seed in _errors(storage, op, names).items()}
        # one seed so far (a row trained a seed per session): its errors, with no spread to judge by
        stats = {a: (statistics.mean(e), statistics.stdev(e) if len(e) > 1 else None, len(e))
                 for a, e in errors.items() if e}
        if len(stats) < 2:  # not trained yet (or one augmentation only): nothing to compare
            print(f"| {arch.describe()} | {params:,} | " + " | ".join("-" for _ in names) + " | not trained yet |")
            continue
        cells = ["-" if a not in stats else f"{stats[a][0]:.2f} (n=1)" if stats[a][1] is None
                 else f"{stats[a][0]:.2f} ± {stats[a][1]:.2f} (n={stats[a][2]})" for a in names]
        best, nxt = sorted(stats, key=lambda a: stats[a][0])[:2]
        gap = stats[nxt][0] - stats[best][0]
        sds = (stats[best][1], stats[nxt][1])
        if sds[0] is None or sds[1] is None:
            judged = "one seed: no SE"
        else:
            judged = f"{gap / (sds[0] ** 2 / stats[best][2] + sds[1] ** 2 / stats[nxt][2]) ** 0.5:.1f} SE"
        print(f"| {arch.describe()} | {params:,} | " + " | ".join(cells)
              + f" | {best}; {nxt} {gap:.2f} behind ({judged}) |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["run", "table"])
    p.add_argument("--storage", type=Path, default=ROOT / "runs" / "arch-interaction")
    p.add_argument("--seeds", nargs="+", default=["0", "1", "2", "3", "4"])
    p.add_argument("--train-config", type=Path, default=ROOT / "configs/train/digits.yaml")
    p.add_argument("--augs", nargs=4, default=list(AUGS), help="four augmentations (names or policy files)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="awsaa-train --set for every training")
    p.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS),
                   help="run: train these rows only (a session too short for all four)")
    args = p.parse_args()
    if args.what == "run":
        run(args.storage, args.seeds, args.train_config, args.augs, args.set, args.archs)
    else:
        table(args.storage, args.augs)


if __name__ == "__main__":
    main()
