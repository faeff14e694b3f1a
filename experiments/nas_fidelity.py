"""NAS + AWS (issue 27, point 4), fidelity: does a short AWS fine-tune from the supernet's
shared weights rank architectures better than the one-shot score or the parameter count?

20 architectures of the choice-block space, stratified by block parameters (4 bins of the
space's quartiles, 5 drawn at random in each), are

* trained standalone with ``awsaa-train`` (configs/train/digits.yaml: 120 epochs on the pool of
  200 digits under the uniform policy, 2 seeds); the truth is the final test error (1,597
  images the search never sees; the last epoch, no epoch picking);
* scored from the supernet of ``configs/search/nas_digits.yaml`` (stage 1 trained here, on the
  search's own 100 + 100 images): the **one-shot** score (the path's batch-norm statistics
  recomputed, its validation loss, no training) and the **AWS** score (the path fine-tuned 10
  epochs from the shared weights under the uniform policy: the search's reward, the mean of
  the 2 best epochs' negative validation loss), each averaged over 2 seeds;
* and ranked by **parameters** alone (more is better).

Kendall's tau of each against the truth, over the 20 and within each bin (the mean of the 4
bins' taus), with 95% bootstrap intervals (2,000 resamples of the architectures, within bins
for the within-bin tau), and the paired bootstrap interval of the AWS score's lead over the
others.

    .venv/bin/python experiments/nas_fidelity.py scores [--storage DIR]   # minutes
    .venv/bin/python experiments/nas_fidelity.py train [--storage DIR]    # 40 trainings, about 40 min on 2 cores
    .venv/bin/python experiments/nas_fidelity.py table [--storage DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEARCH = ROOT / "configs/search/nas_digits.yaml"
N_BINS, PER_BIN, SEEDS = 4, 5, (0, 1)


def archs(storage: Path) -> list[Path]:
    """The 20 architecture files (drawn once; the same on every call)."""
    from awsaa.arch import Arch

    files = sorted(storage.glob("arch-*.json"))
    if files:
        return files
    storage.mkdir(parents=True, exist_ok=True)
    rng = random.Random(2027)
    pool = sorted({Arch.sample(rng) for _ in range(20_000)}, key=lambda a: a.block_params)
    bins = [pool[i * len(pool) // N_BINS:(i + 1) * len(pool) // N_BINS] for i in range(N_BINS)]
    for b, members in enumerate(bins):
        for j, arch in enumerate(rng.sample(members, PER_BIN)):
            Arch(arch.ops, {"bin": b, "block_params": arch.block_params}).save(storage / f"arch-{b}{j}.json")
    return sorted(storage.glob("arch-*.json"))


def scores(storage: Path) -> None:
    import torch

    from awsaa.arch import Arch
    from awsaa.config import SearchConfig, load
    from awsaa.policy import Policy
    from awsaa.search.stages import FineTuner, pretrain
    from awsaa.train.checkpoint import load_checkpoint, save_checkpoint

    torch.set_num_threads(1)
    cfg = load(SearchConfig, SEARCH)
    stage1 = storage / "supernet.pt"
    if not stage1.exists():
        shared = pretrain(cfg, on_epoch=lambda e, n, loss, acc, s: print(f"stage 1 {e}/{n} loss {loss:.3f} "
                                                                          f"val {acc:.1f}", flush=True)
                          if e % 50 == 0 else None)
        save_checkpoint(stage1, shared)
    shared = load_checkpoint(stage1, kind="shared")
    tuner = FineTuner(cfg, shared)
    out = {}
    for f in archs(storage):
        arch = Arch.load(f)
        one, aws = [], []
        for seed in SEEDS:
            tuner.one_shot(arch, seed)
            one.append(-tuner.trainer.evaluate(tuner.trainer.val_set)[1])
            pol = Policy.from_dict({**Policy.uniform().to_dict(), "meta": {"arch": list(arch.ops)}})
            aws.append(tuner.run(pol, seed=100 + seed).reward)
        out[f.stem] = {"one_shot": statistics.mean(one), "aws": statistics.mean(aws), "one_shot_seeds": one,
                       "aws_seeds": aws}
        print(f.stem, arch.describe(), out[f.stem], flush=True)
    (storage / "scores.json").write_text(json.dumps(out, indent=1))


def train(storage: Path) -> None:
    exe = str(Path(sys.executable).with_name("awsaa-train"))
    for f in archs(storage):
        if (storage / "train" / f.stem / "summary.json").exists():
            continue
        cmd = [exe, "-c", str(ROOT / "configs/train/digits.yaml"), "--model", str(f), "--aug", "uniform",
               "--seeds", *map(str, SEEDS), "--cpus-per-trial", "1", "--storage", str(storage / "train"),
               "--name", f.stem]
        with open(storage / f"{f.stem}.log", "w") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)


def _tau(x: list[float], y: list[float]) -> float:
    from scipy.stats import kendalltau

    t = kendalltau(x, y).statistic
    return 0.0 if t != t else float(t)  # nan (a constant side) counts as no agreement


def table(storage: Path, resamples: int = 2000) -> None:
    from awsaa.arch import Arch

    sc = json.loads((storage / "scores.json").read_text())
    rows = []
    for f in archs(storage):
        errs = [r["final_test_error"] for r in json.loads((storage / "train" / f.stem / "summary.json").read_text())
                if r["status"] == "done"]
        a = Arch.load(f)
        rows.append({"name": f.stem, "bin": a.meta["bin"], "params": a.block_params, "err": statistics.mean(errs),
                     "errs": errs, "one_shot": sc[f.stem]["one_shot"], "aws": sc[f.stem]["aws"]})
    truth = [-r["err"] for r in rows]
    proxies = {"AWS fine-tune score": "aws", "one-shot score": "one_shot", "parameters alone": "params"}
    rng = random.Random(0)
    n = len(rows)
    boots = [[rng.randrange(n) for _ in range(n)] for _ in range(resamples)]
    bins = sorted({r["bin"] for r in rows})
    in_bin = {b: [i for i, r in enumerate(rows) if r["bin"] == b] for b in bins}
    boots_bin = [{b: [rng.choice(ix) for _ in ix] for b, ix in in_bin.items()} for _ in range(resamples)]

    def overall(key: str, idx: list[int]) -> float:
        return _tau([rows[i][key] for i in idx], [truth[i] for i in idx])

    def within(key: str, pick: dict[int, list[int]]) -> float:
        return statistics.mean(overall(key, ix) for ix in pick.values())

    def ci(vals: list[float]) -> str:
        v = sorted(vals)
        return f"[{v[int(0.025 * len(v))]:+.2f}, {v[int(0.975 * len(v)) - 1]:+.2f}]"

    print("| ranking by | Kendall tau, all 20 (95% CI) | tau within size bins, mean of 4 (95% CI) |")
    print("| --- | --- | --- |")
    for label, key in proxies.items():
        t_all = overall(key, list(range(n)))
        t_bin = within(key, in_bin)
        print(f"| {label} | {t_all:+.2f} {ci([overall(key, b) for b in boots])} | "
              f"{t_bin:+.2f} {ci([within(key, b) for b in boots_bin])} |")
    print()
    for other in ("one_shot", "params"):
        d_all = [overall("aws", b) - overall(other, b) for b in boots]
        d_bin = [within("aws", b) - within(other, b) for b in boots_bin]
        print(f"AWS minus {other}: all {overall('aws', list(range(n))) - overall(other, list(range(n))):+.2f} "
              f"{ci(d_all)}, within bins {within('aws', in_bin) - within(other, in_bin):+.2f} {ci(d_bin)}")
    print()
    print("| arch | bin | block params | test error % (2 seeds) | one-shot (-val loss) | AWS (-val loss) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in sorted(rows, key=lambda r: r["err"]):
        seeds = ", ".join(f"{e:.2f}" for e in r["errs"])
        print(f"| {r['name']} | {r['bin']} | {r['params']:,} | {r['err']:.2f} ({seeds}) | {r['one_shot']:.3f} | "
              f"{r['aws']:.3f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["scores", "train", "table"])
    p.add_argument("--storage", type=Path, default=ROOT / "runs/nas_fidelity")
    a = p.parse_args()
    a.storage.mkdir(parents=True, exist_ok=True)
    {"scores": scores, "train": train, "table": table}[a.what](a.storage)


if __name__ == "__main__":
    main()
