"""NAS + AWS (issue 27, point 4), the first check: does the best augmentation depend on the
architecture? 4 architectures of the choice-block space x 4 augmentations x 2 seeds, each
trained standalone with ``awsaa-train`` (120 epochs on digits, the regime where augmentation
helps); then, per architecture, each augmentation's final test error (mean of the seeds, and
the seeds' spread), and whether the ranking of the augmentations changes between
architectures by more than the spread.

    .venv/bin/python experiments/arch_policy_interaction.py run [--storage runs/arch-interaction]
    .venv/bin/python experiments/arch_policy_interaction.py table [--storage runs/arch-interaction]

The architectures are the space's four uniform paths of different sizes (every block the same
op; ``zero`` keeps the two blocks where the shape changes as ``wrn``); the augmentations are
none, uniform, TrivialAugment and the policy a digits search found (``aws_digits``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from awsaa.arch import Arch
from awsaa.models import ChoiceNet

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ("wrn", "mb5_e6", "mb3_e3", "zero")
AUGS = ("none", "uniform", "trivialaugment", "aws_digits")
SEEDS = ("0", "1")


def run(storage: Path) -> None:
    storage.mkdir(parents=True, exist_ok=True)
    for op in ARCHS:
        f = storage / f"arch-{op}.json"
        Arch.uniform_op(op).save(f)
        cmd = [str(Path(sys.executable).with_name("awsaa-train")), "-c", str(ROOT / "configs/train/digits.yaml"),
               "--model", str(f), "--aug", *AUGS, "--seeds", *SEEDS, "--cpus-per-trial", "1",
               "--storage", str(storage / "train"), "--name", op]
        with open(storage / f"{op}.log", "w") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)


def table(storage: Path) -> None:
    print("| architecture (blocks' ops) | parameters | " + " | ".join(AUGS) + " | best |")
    print("| --- | --- | " + " | ".join("---" for _ in AUGS) + " | --- |")
    for op in ARCHS:
        arch = Arch.load(storage / f"arch-{op}.json")
        params = sum(p.numel() for p in ChoiceNet(arch, 10, 1).parameters())
        rows = json.loads((storage / "train" / op / "summary.json").read_text())
        errors: dict[str, list[float]] = {aug: [] for aug in AUGS}
        for r in rows:
            if r["status"] == "done":
                aug = next(a for a in AUGS if f"-{a}-seed" in r["label"])
                errors[aug].append(r["final_test_error"])
        cells = [f"{statistics.mean(e):.2f} ({min(e):.2f}-{max(e):.2f})" if e else "-" for e in errors.values()]
        best = min((statistics.mean(e), a) for a, e in errors.items() if e)[1]
        print(f"| {arch.describe()} | {params:,} | " + " | ".join(cells) + f" | {best} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["run", "table"])
    p.add_argument("--storage", type=Path, default=ROOT / "runs" / "arch-interaction")
    args = p.parse_args()
    (run if args.what == "run" else table)(args.storage)


if __name__ == "__main__":
    main()
