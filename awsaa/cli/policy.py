"""``awsaa-policy``: look at policy files and at the ops.

    awsaa-policy show FILE [--top 10]        top sub-policies, their probabilities, entropy
                                             (FILE: a policy file, or a published policy's name)
    awsaa-policy plot FILE -o heat.png       36 x 36 probability heatmap, op names on the axes
    awsaa-policy gallery -o ops.png          every op applied to real images of a dataset
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from awsaa.augment.space import SearchSpace
from awsaa.augs import policy_file
from awsaa.cli.common import Parser, finish_output, int_range, parse_args, run_main
from awsaa.config import SEED_END
from awsaa.errors import AWSAAError
from awsaa.fileio import check_output_file
from awsaa.plots import plot_op_gallery, plot_policy
from awsaa.policy import Policy
from awsaa.search import report
from awsaa.terminal import shown

PROG = "awsaa-policy"
PATH_LIMIT = 1000  # characters of a file name as printed


def _check_output(path: Path) -> None:
    if path.suffix.lower() not in (".png", ".pdf", ".svg", ".jpg", ".jpeg"):
        raise AWSAAError(f"output {path} must end in .png, .pdf, .svg or .jpg")
    check_output_file(path)


def cmd_show(args: argparse.Namespace) -> None:
    pol = Policy.load(policy_file(str(args.file)))  # a file, or a published policy by name
    space = pol.space
    h, hmax = pol.entropy(), math.log(space.num_pairs)
    print(f"{shown(args.file, PATH_LIMIT)}: {space.num_ops} ops, {space.num_pairs} sub-policies")
    print(f"entropy {h:.4f} nats ({h / hmax:.1%} of uniform's {hmax:.4f}); "
          f"perplexity {math.exp(h):.1f} sub-policies")
    if pol.meta:
        # meta is free-form text from the file: escaped, so it cannot move the cursor or forge rows
        print("meta: " + ", ".join(f"{shown(k)}={shown(v)}" for k, v in pol.meta.items()))
    if space.names == SearchSpace.default().names:
        print(f"KL from uniform {report.kl_from_uniform(pol):.4f} nats; op families, mass relative to uniform: "
              + ", ".join(f"{k} {v:.2f}x" for k, v in report.family_masses(pol).items()))
    print(f"\n{'rank':>4}  {'prob':>8}  {'x uniform':>9}  sub-policy")
    for rank, (i, j, p) in enumerate(pol.top(args.top), 1):
        print(f"{rank:>4}  {p:8.5f}  {p * space.num_pairs:9.2f}  {space.pair_label(i, j)}")
    finish_output()  # what it shows is its result


def cmd_plot(args: argparse.Namespace) -> None:
    pol = Policy.load(policy_file(str(args.file)))
    _check_output(args.output)
    plot_policy(pol, args.output, title=args.title or Path(args.file).name)
    print(shown(args.output, PATH_LIMIT))


def cmd_gallery(args: argparse.Namespace) -> None:
    _check_output(args.output)
    plot_op_gallery(args.output, dataset=args.dataset, dataroot=args.dataroot, n_images=args.images,
                    seed=args.seed, download=args.download)
    print(shown(args.output, PATH_LIMIT))


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Inspect awsaa policy files and the op space.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("show", help="print the top sub-policies and the entropy of a policy file")
    s.add_argument("file", type=Path)
    s.add_argument("--top", type=int_range(1), default=10, help="how many sub-policies to list (default 10)")
    s.set_defaults(fn=cmd_show)
    s = sub.add_parser("plot", help="draw the op1 x op2 probability heatmap of a policy file")
    s.add_argument("file", type=Path)
    s.add_argument("-o", "--output", type=Path, required=True, help="image file to write (.png/.pdf/.svg)")
    s.add_argument("--title", default=None)
    s.set_defaults(fn=cmd_plot)
    s = sub.add_parser("gallery", help="draw every op applied to real images of a dataset")
    s.add_argument("-o", "--output", type=Path, required=True)
    s.add_argument("--dataset", default="fashion_mnist")
    s.add_argument("--dataroot", default=None)
    s.add_argument("--download", action="store_true", help="download the dataset if it is missing")
    s.add_argument("--images", type=int_range(1, 64), default=4, help="test images per op (default 4)")
    s.add_argument("--seed", type=int_range(0, SEED_END - 1), default=0)
    s.set_defaults(fn=cmd_gallery)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    if isinstance(args, int):
        return args
    return run_main(lambda: args.fn(args), PROG)


if __name__ == "__main__":
    sys.exit(main())
