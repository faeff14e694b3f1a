"""The tables of RESULTS.md section 6 from ``awsaa-train`` experiments: every arm's final-epoch
test error by seed, its mean and standard deviation, and each arm's difference from reference
arms with the standard error of the difference (Welch: sqrt(s_a^2/n_a + s_b^2/n_b)).

    .venv/bin/python experiments/arm_table.py runs/digits/train/baseline runs/digits/train/found \\
        [--ref none uniform trivialaugment] [--seeds 0 1 2 3 4]

An arm is a trial label without its ``-seed<N>``; labels of policy files keep the name of the
folder the file was in (``digits-ftloss-none-s0-policy``). Seeds from several experiments of the
same arm are pooled (e.g. seeds 0-4 from one and 5-9 from another).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics as st
from pathlib import Path


def arms(experiments: list[str], seeds: set[int] | None) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for exp in experiments:
        for trial in json.loads((Path(exp) / "summary.json").read_text()):
            m = re.fullmatch(r"(.*)-seed(\d+)", trial["label"])
            if trial["status"] != "done" or m is None or (seeds is not None and int(m[2]) not in seeds):
                continue
            # "digits-digits-uniform": the experiment's and the dataset's prefixes go
            name = re.sub(r"^(?:[^-]+-){2}", "", m[1])
            out.setdefault(name, {})[int(m[2])] = trial["final_test_error"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("experiments", nargs="+", help="awsaa-train experiment folders (each holds summary.json)")
    p.add_argument("--ref", nargs="*", default=["none", "uniform", "trivialaugment"])
    p.add_argument("--seeds", type=int, nargs="*", help="only these seeds")
    args = p.parse_args()
    data = arms(args.experiments, set(args.seeds) if args.seeds else None)
    print("| arm | n | test error % by seed | mean ± std |\n| --- | --- | --- | --- |")
    for name, by_seed in data.items():
        v = [by_seed[s] for s in sorted(by_seed)]
        sd = st.stdev(v) if len(v) > 1 else float("nan")
        print(f"| {name} | {len(v)} | {' '.join(f'{x:.2f}' for x in v)} | {st.mean(v):.2f} ± {sd:.2f} |")
    refs = [r for r in args.ref if r in data]
    if not refs:
        return
    print("\n| arm | " + " | ".join(f"vs {r}" for r in refs) + " |")
    print("| --- " * (len(refs) + 1) + "|")
    for name, by_seed in data.items():
        cells = []
        for r in refs:
            a, b = list(by_seed.values()), list(data[r].values())
            if name == r or len(a) < 2 or len(b) < 2:
                cells.append("")
                continue
            d = st.mean(a) - st.mean(b)
            se = math.sqrt(st.variance(a) / len(a) + st.variance(b) / len(b))
            cells.append(f"{d:+.2f} ({d / se:+.1f} SE)" if se > 0 else f"{d:+.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
