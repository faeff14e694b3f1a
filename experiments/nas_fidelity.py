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
    .venv/bin/python experiments/nas_fidelity.py train --seeds 2 3        # more seeds for the truth
    .venv/bin/python experiments/nas_fidelity.py table [--storage DIR]
    .venv/bin/python experiments/nas_fidelity.py record --storage DIR --to RECORD

``scores`` and ``train`` continue a killed run where it stopped (the same command). Every seed
trained so far counts in the truth (``train --seeds`` adds runs beside the first). On a run in
progress ``table`` ranks the networks scored and trained with seeds 0 and 1 so far, and names
the others. The table also says whether the truth replicates: Kendall's tau between the
architectures' errors under one training seed and under another, for each pair of seeds.

``record`` copies what the tables read (the architecture files, ``scores.json``, each
training's ``summary.json``, the logs: kilobytes) into a folder to commit, so a run longer than
one machine's life goes on elsewhere: copy the record into a new storage (``cp -r RECORD/.
DIR/``) and run the same command; what is recorded is not trained or scored again. It records
a campaign's storage (experiments/nas_campaign.sh) too: its finished searches and trainings,
and, so that a search longer than one machine's life goes on where it stopped on the same
shared weights, each unfinished search's saved state and the stage-1 checkpoint it resumes on
(7 MB, weights and optimizer state, written once; ``--resume`` finds it in the new storage
although ``run.json`` names the old one's path).

Another regime: ``--search-config`` and ``--train-config`` (a NAS search config and a
training recipe on the same data).
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
TRAIN = ROOT / "configs/train/digits.yaml"
N_BINS, PER_BIN, SEEDS = 4, 5, (0, 1)


def archs(storage: Path) -> list[Path]:
    """The 20 architecture files: drawn once, and the same draw in every process (architectures
    of equal size are ordered by their ops, not by the set's hash order, which Python seeds anew
    in each process)."""
    from awsaa.arch import Arch

    files = sorted(storage.glob("arch-*.json"))
    if files:
        return files
    storage.mkdir(parents=True, exist_ok=True)
    rng = random.Random(2027)
    pool = sorted({Arch.sample(rng) for _ in range(20_000)}, key=lambda a: (a.block_params, a.ops))
    bins = [pool[i * len(pool) // N_BINS:(i + 1) * len(pool) // N_BINS] for i in range(N_BINS)]
    for b, members in enumerate(bins):
        for j, arch in enumerate(rng.sample(members, PER_BIN)):
            Arch(arch.ops, {"bin": b, "block_params": arch.block_params}).save(storage / f"arch-{b}{j}.json")
    return sorted(storage.glob("arch-*.json"))


def scores(storage: Path, search: Path = SEARCH) -> None:
    import torch

    from awsaa.arch import Arch
    from awsaa.config import SearchConfig, load
    from awsaa.fileio import atomic_open
    from awsaa.policy import Policy
    from awsaa.search.stages import FineTuner, pretrain
    from awsaa.train.checkpoint import load_checkpoint, save_checkpoint

    torch.set_num_threads(1)
    cfg = load(SearchConfig, search)
    path = storage / "scores.json"
    out = json.loads(path.read_text()) if path.exists() else {}  # a killed run keeps what it scored
    todo = [f for f in archs(storage) if f.stem not in out]
    if not todo:
        print("every architecture is scored", flush=True)
        return
    stage1 = storage / "supernet.pt"
    if not stage1.exists():
        shared = pretrain(cfg, on_epoch=lambda e, n, loss, acc, s: print(f"stage 1 {e}/{n} loss {loss:.3f} "
                                                                          f"val {acc:.1f}", flush=True)
                          if e % 50 == 0 else None)
        save_checkpoint(stage1, shared)
    shared = load_checkpoint(stage1, kind="shared")
    tuner = FineTuner(cfg, shared)
    for f in todo:
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
        with atomic_open(path) as fh:
            fh.write(json.dumps(out, indent=1))


def awsaa_train(storage: Path, name: str, args: list[str], log_file: bool = True) -> None:
    """``awsaa-train ARGS`` as experiment ``name`` in ``storage``/train (its log: ``storage``/NAME.log,
    or with ``log_file=False`` this process's output), or the rest of it: an experiment whose
    trials are all done is skipped and an interrupted one (killed, or a trial failed) resumed, so
    the same command continues a killed run. The campaign's shell script calls it too
    (``nas_fidelity.py awsaa-train STORAGE NAME ARGS...``): one rule for every experiment."""
    exp = storage / "train" / name
    summary = exp / "summary.json"
    if summary.exists() and all(r["status"] == "done" for r in json.loads(summary.read_text())):
        print(f"{name}: done, skipped", flush=True)
        return
    resume = exp.is_dir()
    print(f"{name}: {'resuming' if resume else 'training'}", flush=True)
    cmd = [str(Path(sys.executable).with_name("awsaa-train")), *args, "--storage", str(storage / "train"),
           "--name", name, *(["--resume"] if resume else [])]
    if not log_file:
        subprocess.run(cmd, check=True)
        return
    with open(storage / f"{name}.log", "a") as fh:
        subprocess.run(cmd, check=True, stdout=fh, stderr=subprocess.STDOUT)


def train(storage: Path, seeds: tuple[int, ...] = SEEDS, recipe: Path = TRAIN, sets: list[str] | None = None) -> None:
    for f in archs(storage):
        if set(seeds) <= set(seed_errors(storage, f.stem)):
            print(f"{f.stem}: seeds {', '.join(map(str, seeds))} known, skipped", flush=True)
            continue
        name = f.stem if seeds == SEEDS else f"{f.stem}-seeds-{'-'.join(map(str, seeds))}"
        awsaa_train(storage, name, ["-c", str(recipe), "--model", str(f), "--aug", "uniform",
                                    "--seeds", *map(str, seeds), "--cpus-per-trial", "1",
                                    *(["--set", *sets] if sets else [])])


def seed_errors(storage: Path, stem: str) -> dict[int, float]:
    """An architecture's final test error by training seed, over every run of it in
    ``storage``/train so far."""
    out: dict[int, float] = {}
    for summary in sorted([storage / "train" / stem / "summary.json",
                           *(storage / "train").glob(f"{stem}-seeds-*/summary.json")]):
        if summary.exists():
            for r in json.loads(summary.read_text()):
                if r["status"] == "done":
                    out[int(r["label"].rsplit("-seed", 1)[1])] = r["final_test_error"]  # labels end "-seedN"
    return out


def record(storage: Path, to: Path) -> None:
    """Copy what holds an experiment's results into ``to`` (created; a file already there is
    replaced by the storage's): the architecture files, ``scores.json``, ``walls.txt``, the logs,
    each training's ``summary.json``, each search's exports and saved state (``state.pt`` and
    what ``--resume`` reads beside it; 0.2 MB), finished or not (finished: its log says how to
    train with it, nas_campaign.sh's rule), and the stage-1 checkpoints the unfinished ones resume on
    (``search/pretrained``). A storage made from a record skips what is finished (``train`` and
    ``scores`` here, the campaign's searches and trainings) and resumes an unfinished search at
    its last saved loop. Trainings' checkpoints and Ray Tune's folders stay behind (a training
    cut short starts again). Works for this experiment's storage and for the campaign's."""
    from awsaa.fileio import atomic_open
    from awsaa.search.runs import stage1_cache
    from awsaa.search.state import FIXED_POLICY

    # what a search's record holds: its state and what --resume reads beside it, and its exports
    files = ("run.json", "config.yaml", "state.pt", FIXED_POLICY, "latency.json", "history.jsonl", "policy.json",
             "policy_last.json", "arch.json")

    def finished(search: str) -> bool:
        log = storage / f"{search}.log"
        return log.exists() and any(line.startswith("train with it")
                                    for line in log.read_text(errors="replace").splitlines())

    searches = sorted(d.name for d in (storage / "search").glob("*") if d.is_dir() and d.name != "pretrained")
    done = [name for name in searches if finished(name)]
    resumable = [name for name in searches if name not in done and (storage / "search" / name / "state.pt").exists()]
    trainings = sorted((storage / "train").glob("*/summary.json"))
    # the stage-1 checkpoints an unfinished search resumes on (one a search started and finished
    # on one machine never needs to travel): 7 MB each, weights and optimizer state
    named = [json.loads((storage / "search" / name / "run.json").read_text()).get("pretrained") for name in resumable]
    stage1 = [f for f in sorted({stage1_cache(storage / "search", Path(n).name) for n in named if n}) if f.exists()]
    small = [*sorted(storage.glob("arch-*.json")), storage / "scores.json", storage / "walls.txt",
             *sorted(storage.glob("*.log")), *trainings, *stage1,
             *(storage / "search" / name / f for name in [*done, *resumable] for f in files)]
    copied = 0
    for f in small:
        if f.exists():
            target = to / f.relative_to(storage)
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_open(target, "wb") as fh:  # a record is never left half-written
                fh.write(f.read_bytes())
            copied += 1
    print(f"recorded {copied} files in {to}: {len(trainings)} trainings, {len(done)} finished searches, "
          f"{len(resumable)} unfinished ones at their last saved loop, {len(stage1)} stage-1 checkpoints")


def _tau(x: list[float], y: list[float]) -> float:
    from scipy.stats import kendalltau

    t = kendalltau(x, y).statistic
    return 0.0 if t != t else float(t)  # nan (a constant side) counts as no agreement


def table(storage: Path, resamples: int = 2000) -> None:
    from awsaa.arch import Arch

    sc = json.loads((storage / "scores.json").read_text()) if (storage / "scores.json").exists() else {}
    rows, missing = [], []
    for f in archs(storage):
        by_seed = seed_errors(storage, f.stem)
        if f.stem not in sc or not set(SEEDS) <= set(by_seed):
            missing.append(f.stem)
            continue
        a = Arch.load(f)
        rows.append({"name": f.stem, "bin": a.meta["bin"], "params": a.block_params,
                     "err": statistics.mean(by_seed.values()), "errs": [by_seed[k] for k in sorted(by_seed)],
                     "by_seed": by_seed,
                     "one_shot": sc[f.stem]["one_shot"], "aws": sc[f.stem]["aws"]})
    if missing:  # a run in progress: the table over the networks with scores and seeds 0, 1 trained
        print(f"partial: {len(rows)} of {len(rows) + len(missing)} networks scored and trained with seeds "
              f"{', '.join(map(str, SEEDS))} (not yet: {', '.join(missing)})\n")
    truth = [-r["err"] for r in rows]
    proxies = {"AWS fine-tune score": "aws", "one-shot score": "one_shot", "parameters alone": "params"}
    rng = random.Random(0)
    n = len(rows)
    boots = [[rng.randrange(n) for _ in range(n)] for _ in range(resamples)]
    bins = sorted({r["bin"] for r in rows})
    in_bin = {b: ix for b in bins if len(ix := [i for i, r in enumerate(rows) if r["bin"] == b]) > 1}
    if not in_bin:
        raise SystemExit("nas_fidelity.py table: no size bin has 2 networks scored and trained yet; nothing to rank")
    boots_bin = [{b: [rng.choice(ix) for _ in ix] for b, ix in in_bin.items()} for _ in range(resamples)]

    def overall(key: str, idx: list[int]) -> float:
        return _tau([rows[i][key] for i in idx], [truth[i] for i in idx])

    def within(key: str, pick: dict[int, list[int]]) -> float:
        return statistics.mean(overall(key, ix) for ix in pick.values())

    def ci(vals: list[float]) -> str:
        v = sorted(vals)
        return f"[{v[int(0.025 * len(v))]:+.2f}, {v[int(0.975 * len(v)) - 1]:+.2f}]"

    print(f"| ranking by | Kendall tau, all {n} (95% CI) | tau within size bins, mean of {len(in_bin)} (95% CI) |")
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
    seeds = sorted(set.intersection(*(set(r["by_seed"]) for r in rows)))
    pairs = [(s, t) for i, s in enumerate(seeds) for t in seeds[i + 1:]]
    if pairs:
        taus = [_tau([r["by_seed"][s] for r in rows], [r["by_seed"][t] for r in rows]) for s, t in pairs]
        print()
        print("Does the truth replicate? Kendall tau between two training seeds' errors: "
              + ", ".join(f"seeds {s}/{t} {x:+.2f}" for (s, t), x in zip(pairs, taus, strict=True))
              + f"; mean {statistics.mean(taus):+.2f}")
    print()
    print(f"| arch | bin | block params | test error % ({len(seeds)} seeds) | one-shot (-val loss) | AWS (-val loss) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in sorted(rows, key=lambda r: r["err"]):
        seeds = ", ".join(f"{e:.2f}" for e in r["errs"])
        print(f"| {r['name']} | {r['bin']} | {r['params']:,} | {r['err']:.2f} ({seeds}) | {r['one_shot']:.3f} | "
              f"{r['aws']:.3f} |")


def main() -> None:
    if sys.argv[1:2] == ["awsaa-train"]:  # the campaign's trainings, under awsaa_train's rule
        t = argparse.ArgumentParser(prog="nas_fidelity.py awsaa-train", description=awsaa_train.__doc__)
        t.add_argument("storage", type=Path)
        t.add_argument("name")
        t.add_argument("args", nargs=argparse.REMAINDER, help="awsaa-train's arguments")
        b = t.parse_args(sys.argv[2:])
        awsaa_train(b.storage, b.name, b.args, log_file=False)  # the shell script logs it
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["scores", "train", "table", "record"])
    p.add_argument("--storage", type=Path, default=ROOT / "runs/nas_fidelity")
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="train: the training seeds")
    p.add_argument("--search-config", type=Path, default=SEARCH, help="scores: the NAS search config")
    p.add_argument("--train-config", type=Path, default=TRAIN, help="train: the training recipe")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="train: awsaa-train --set")
    p.add_argument("--to", type=Path, help="record: the folder to copy the record into")
    a = p.parse_args()
    a.storage.mkdir(parents=True, exist_ok=True)
    if a.what == "scores":
        scores(a.storage, a.search_config)
    elif a.what == "train":
        train(a.storage, tuple(a.seeds), a.train_config, a.set)
    elif a.what == "record":
        if a.to is None:
            p.error("record needs --to FOLDER")
        record(a.storage, a.to)
    else:
        table(a.storage)


if __name__ == "__main__":
    main()
