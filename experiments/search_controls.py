"""Real searches beside their null runs, over several seeds: did the search hear the policy?

    .venv/bin/python experiments/search_controls.py --real runs/controls/es-real-s{0,1,2} \\
                                                    --null runs/controls/es-null-s{0,1,2}

For every run: the sign-flip test's p-value (ES: did its steps keep pointing one way?
docs/design.md, section 3), the result policy's KL from uniform and each op family's mass
relative to uniform's (section 2 names the families); then the mean and the standard deviation
over the seeds of each group. A fixed-size agent such as ES moves away from uniform even on
pure noise, so distance alone proves little; what separates a search that hears the policy
from one that does not is *consistency*: within a run, steps that keep pointing one way (the
p-value), and across runs, independent seeds of a real search that move the same ops the same
way while independent null runs do not. The last table is that: the Pearson
correlation of the per-op log mass ratios (36 ops) between every two runs, averaged over the
pairs within the real runs, within the null runs, and across the two groups.

Markdown goes to stdout; ``--json`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics as st
from pathlib import Path
from typing import Any

import torch

from awsaa.config import SearchConfig, from_dict, parse_yaml
from awsaa.policy import Policy
from awsaa.search.report import FAMILIES, es_sign_flip, family_masses, kl_from_uniform, op_mass


def log_ratio(policy: Policy) -> torch.Tensor:
    """(K,) log of each op's mass relative to uniform's."""
    return torch.log(op_mass(policy) * policy.space.num_ops)


def corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def mean_sd(xs: list[float]) -> str:
    if len(xs) < 2:
        return f"{xs[0]:.2f}" if xs else "-"
    return f"{st.mean(xs):.2f} ± {st.stdev(xs):.2f}"


def load_run(run: Path) -> dict[str, Any]:
    policy = Policy.load(run / "policy.json")
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines() if line.strip()]
    cfg = from_dict(SearchConfig, parse_yaml((run / "config.yaml").read_text(), "config.yaml"))
    p = es_sign_flip(history, cfg.agent_config, cfg.seed)[0] if cfg.agent == "es" else float("nan")
    return {"run": str(run), "policy": policy, "kl": kl_from_uniform(policy), "families": family_masses(policy),
            "log_ratio": log_ratio(policy), "loops": len(history), "sign_flip_p": p}


def pair_corrs(xs: list[dict[str, Any]], ys: list[dict[str, Any]] | None = None) -> list[float]:
    pairs = itertools.combinations(xs, 2) if ys is None else itertools.product(xs, ys)
    return [corr(a["log_ratio"], b["log_ratio"]) for a, b in pairs]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", nargs="+", type=Path, required=True, help="run directories of the real searches")
    ap.add_argument("--null", nargs="+", type=Path, required=True, help="run directories of their null runs")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    groups = {"real": [load_run(r) for r in args.real], "null": [load_run(r) for r in args.null]}

    print("| run | loops | sign-flip p | KL from uniform | " + " | ".join(FAMILIES) + " |")
    print("| --- | --- | --- | --- | " + " | ".join("---" for _ in FAMILIES) + " |")
    for name, runs in groups.items():
        for r in runs:
            fams = " | ".join(f"{r['families'][f]:.2f}x" for f in FAMILIES)
            print(f"| {name}: {Path(r['run']).name} | {r['loops']} | {r['sign_flip_p']:.3g} | {r['kl']:.2f} | {fams} |")
        fams = " | ".join(mean_sd([r["families"][f] for r in runs]) for f in FAMILIES)
        print(f"| **{name}: mean ± SD** | | | {mean_sd([r['kl'] for r in runs])} | {fams} |")

    agreement = {"real-real": pair_corrs(groups["real"]), "null-null": pair_corrs(groups["null"]),
                 "real-null": pair_corrs(groups["real"], groups["null"])}
    print()
    print("| pairs of runs | pairs | correlation of per-op log mass ratios, mean (min .. max) |")
    print("| --- | --- | --- |")
    for name, cs in agreement.items():
        if cs:
            print(f"| {name} | {len(cs)} | {st.mean(cs):+.2f} ({min(cs):+.2f} .. {max(cs):+.2f}) |")
    if args.json:
        out = {name: [{k: v for k, v in r.items() if k not in ("policy", "log_ratio")} for r in runs]
               for name, runs in groups.items()}
        out["agreement"] = {k: [round(c, 4) for c in v] for k, v in agreement.items()}
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1, default=lambda x: x if not isinstance(x, float) or math.isfinite(x)
                                  else None))
        tmp.replace(args.json)


if __name__ == "__main__":
    main()
