"""``awsaa-latency``: measure the architecture space's latency table on this machine's device,
for a NAS + AWS search's hard latency budget (``nas.latency_table``, ``nas.max_latency_ms``).

    awsaa-latency -o lat.json                                     # the GPU if there is one, else the CPU
    awsaa-latency -o lat.json --image-size 16 --channels 1 --classes 10 --batch-size 1 --device cpu

Run it where the network will run (on a cluster: ``ray job submit --entrypoint-num-gpus 1 --
awsaa-latency -o ...`` puts it on a GPU node). It times each op of each block at its input's
shape, the stem and head, then ``--check`` whole networks against the sum it predicts for
them, and prints that error: the table's own accuracy on this device.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from awsaa.cli.common import Parser, float_range, int_range, parse_args, run_main
from awsaa.config import SEED_END
from awsaa.errors import AWSAAError
from awsaa.fileio import check_output_file
from awsaa.terminal import shown

PROG = "awsaa-latency"
PATH_LIMIT = 1000


def _device(text: str) -> str:
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise AWSAAError(f"--device {text[:50]!r} is not a device (cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AWSAAError(f"--device {text[:50]}: CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise AWSAAError(f"--device {text[:50]}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type not in ("cpu", "cuda"):
        raise AWSAAError(f"--device {text[:50]}: only cpu and cuda devices are measured")
    return str(dev)


def run(args: argparse.Namespace) -> None:
    import torch

    from awsaa.latency import measure

    device = _device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = check_output_file(args.output)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    table = measure(device, args.batch_size, args.image_size, args.channels, args.classes, check=args.check,
                    seed=args.seed, min_run_time=args.min_run_time)
    lo, hi = table.span()
    print(f"latency table on {shown(table.device)}, batch {table.batch_size}, {table.shape()}")
    print(f"a network takes {lo:.3f} to {hi:.3f} ms predicted (stem and head {table.ends_ms:.3f} ms)")
    if table.error is not None:
        print(f"check: {len(table.check)} networks timed whole against their predicted sum: mean relative error "
              f"{table.error:.1%} (largest {max(table.relative_errors()):.1%})")
    table.save(out)
    print(shown(str(out), PATH_LIMIT))


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Measure the architecture space's latency table on this machine's device.")
    p.add_argument("-o", "--output", type=Path, required=True, help="the table's JSON file to write")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    p.add_argument("--batch-size", type=int_range(1, 4096), default=1,
                   help="images a forward pass takes (default 1: one image's latency)")
    p.add_argument("--image-size", type=int_range(4, 1024), default=32, help="the images' side, pixels (default 32)")
    p.add_argument("--channels", type=int_range(1, 64), default=3, help="the images' channels (default 3)")
    p.add_argument("--classes", type=int_range(2, 100_000), default=10, help="the head's classes (default 10)")
    p.add_argument("--check", type=int_range(0, 1000), default=5,
                   help="whole networks timed against the table's prediction (default 5)")
    p.add_argument("--min-run-time", type=float_range(0.001), default=0.2,
                   help="seconds each timing runs at least (default 0.2)")
    p.add_argument("--threads", type=int_range(1, 1024), default=None, help="CPU threads (default: torch's)")
    p.add_argument("--seed", type=int_range(0, SEED_END - 1), default=0, help="draws the checked networks")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    if isinstance(args, int):
        return args
    return run_main(lambda: run(args), PROG)


if __name__ == "__main__":
    sys.exit(main())
