"""NAS + AWS (RESULTS.md 7, digits; 7.10, Fashion-MNIST): the tables of
experiments/nas_campaign.sh, read beside the 20 random architectures of experiments/nas_fidelity.py.

* **Found against random.** Each search's architecture trained standalone under the uniform
  policy (3 seeds), placed among the random architectures trained the same way (every seed
  of experiments/nas_fidelity.py's truth so far):
  its size bin (the bins' parameter ranges of the fidelity draw), its rank in that bin and among
  all 20, by mean final test error (lower is better).
* **The pairs.** Each search's architecture with its own policy, and the sequential pairs
  (architecture only, then a policy search on it; a policy-only search, then an architecture
  search under that policy), mean ± SD over 3 seeds.
* **By variant** (joint, null, archonly, grad, seq, and seqarch: policy then architecture), over
  the search seeds run so far: each seed's rank in its bin, how many are in the top 20% of their
  bin (issue 27's goal), and the mean over seeds of the found network's error under `uniform` and
  of the pair's.

    .venv/bin/python experiments/nas_results.py [--campaign runs/nas] [--fidelity runs/nas_fidelity]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def errors(summary: Path, aug: str | None = None) -> list[float]:
    """The final test errors in a training's summary (of the trials whose label names ``aug``)."""
    rows = json.loads(summary.read_text())
    return [r["final_test_error"] for r in rows if r["status"] == "done" and (aug is None or f"-{aug}-seed" in
                                                                               r["label"])]


def main() -> None:
    from awsaa.arch import Arch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--campaign", type=Path, default=ROOT / "runs/nas")
    p.add_argument("--fidelity", type=Path, default=ROOT / "runs/nas_fidelity")
    a = p.parse_args()
    from nas_fidelity import seed_errors  # every training seed of the truth so far

    random = []
    for f in sorted(a.fidelity.glob("arch-*.json")):
        by_seed = seed_errors(a.fidelity, f.stem)
        if by_seed:
            arch = Arch.load(f)
            random.append({"bin": arch.meta["bin"], "params": arch.block_params,
                           "err": statistics.mean(by_seed.values())})
    bins = sorted({r["bin"] for r in random})
    edges = {b: (min(r["params"] for r in random if r["bin"] == b), max(r["params"] for r in random if r["bin"] == b))
             for b in bins}

    def bin_of(params: int) -> int:
        return min(bins, key=lambda b: 0 if edges[b][0] <= params <= edges[b][1] else
                   min(abs(params - edges[b][0]), abs(params - edges[b][1])))

    print(f"{len(random)} random architectures trained (the fidelity draw); bins by block parameters: "
          + ", ".join(f"{b}: {lo:,}-{hi:,}" for b, (lo, hi) in edges.items()))
    print()
    print("| search | architecture | block params | bin | test error %, uniform policy (3 seeds) | rank in its bin "
          "| rank among all |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    pairs = []
    variants: dict[str, dict[str, list]] = {}
    for run in sorted((a.campaign / "search").glob("*-s*")):
        if not (run / "arch.json").exists() or not (a.campaign / "train" / run.name / "summary.json").exists():
            continue
        arch = Arch.load(run / "arch.json")
        summary = a.campaign / "train" / run.name / "summary.json"
        uni = errors(summary, "uniform")
        own = errors(summary, "policy")  # a policy file's trials are labelled "policy"
        if run.name.startswith("seqarch-"):  # policy then architecture: its pair trained apart (seqpa)
            pair = a.campaign / "train" / f"seqpa-{run.name.rsplit('-', 1)[1]}" / "summary.json"
            own = errors(pair) if pair.exists() else []
        m = statistics.mean(uni)
        b = bin_of(arch.block_params)
        in_bin = sorted(r["err"] for r in random if r["bin"] == b)
        rank_bin = 1 + sum(e < m for e in in_bin)
        rank_all = 1 + sum(r["err"] < m for r in random)
        print(f"| {run.name} | {arch.describe()} | {arch.block_params:,} | {b} | {m:.2f} ± "
              f"{statistics.pstdev(uni):.2f} | {rank_bin} of {len(in_bin) + 1} | {rank_all} of {len(random) + 1} |")
        pairs.append((run.name, own))
        v = variants.setdefault(run.name.rsplit("-s", 1)[0], {"ranks": [], "uniform": [], "pair": []})
        v["ranks"].append((rank_bin, len(in_bin) + 1))
        v["uniform"].append(m)
        if own:
            v["pair"].append(statistics.mean(own))
    # the sequential pair architecture then policy (seq: archonly's network, seqpolicy's policy);
    # policy then architecture is the seqarch run above, its pair trained as seqpa
    for seq in sorted((a.campaign / "train").glob("seq-s*")):
        errs = errors(seq / "summary.json")
        s = seq.name.rsplit("-", 1)[1]
        pairs.append((f"{seq.name} (archonly-{s}'s architecture, seqpolicy-{s}'s policy)", errs))
        if errs:
            variants.setdefault("seq", {"ranks": [], "uniform": [], "pair": []})["pair"].append(statistics.mean(errs))
    print()
    print("| pair | test error %, its architecture with its policy (3 seeds) |")
    print("| --- | --- |")
    for name, errs in pairs:
        if errs:
            sd = statistics.pstdev(errs) if len(errs) > 1 else 0.0
            print(f"| {name} | {statistics.mean(errs):.2f} ± {sd:.2f} ({', '.join(f'{e:.2f}' for e in errs)}) |")
    print()
    print("| variant | search seeds | rank in its bin, each seed | in the top 20% of its bin | test error %, "
          "uniform policy (mean over seeds ± SD) | its pair (mean over seeds ± SD) |")
    print("| --- | --- | --- | --- | --- | --- |")

    def spread(xs: list[float]) -> str:
        if not xs:
            return "-"
        return f"{statistics.mean(xs):.2f} ± {statistics.pstdev(xs):.2f}" if len(xs) > 1 else f"{xs[0]:.2f}"

    for name, v in variants.items():
        ranks = v["ranks"]
        top = f"{sum(r <= 0.2 * n for r, n in ranks)} of {len(ranks)}" if ranks else "-"
        each = ", ".join(f"{r} of {n}" for r, n in ranks) or "-"
        print(f"| {name} | {max(len(ranks), len(v['pair']))} | {each} | {top} | {spread(v['uniform'])} | "
              f"{spread(v['pair'])} |")


if __name__ == "__main__":
    main()
