"""Latency tables of the architecture space (:mod:`awsaa.arch`), for a hard latency budget in
NAS + AWS (``nas.max_latency_ms``), as ProxylessNAS's lookup tables: each op of each block
timed on the target device at its input's shape, the stem and head timed once, and a
network's latency predicted as their sum.

A table records how far that sum is from the truth: ``check`` holds whole networks, drawn
uniformly from the space, timed end to end beside their prediction, and :attr:`error` is the
mean relative error over them. Operations overlap and caches warm across layers, so the sum
is an estimate; the table says by how much on the device it was made on.

Times are medians of :class:`torch.utils.benchmark.Timer` (which synchronizes CUDA and
warms up), in milliseconds, of a forward pass in evaluation mode without gradients.

The file, JSON, version 1 (written atomically; refused with one line unless valid)::

    {"format": "awsaa.latency", "version": 1, "space": "wrn10_choice",
     "device": "cpu (2 threads)", "batch_size": 128, "image_size": 32, "channels": 3,
     "num_classes": 10, "ends_ms": 0.41,
     "blocks": [{"wrn": 1.2, "mb3_e3": 0.8, ...}, ...],        # one per block, its ops
     "check": [{"ops": [...], "predicted_ms": 9.1, "measured_ms": 8.7}, ...],
     "meta": {...}}

Made by ``awsaa-latency`` on the machine the network will run on.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from typing import Any

from awsaa.arch import SPACE, Arch, slots
from awsaa.errors import AWSAAError
from awsaa.fileio import atomic_write_json, check_header, load_json_file

FORMAT = "awsaa.latency"
VERSION = 1
KEYS = {"format", "version", "space", "device", "batch_size", "image_size", "channels", "num_classes", "ends_ms",
        "blocks", "check", "meta"}


MAX_MS = 1e7  # about 3 hours: above it a number is no latency (and would overflow the budget's integers)


def _ms(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or not 0 <= x <= MAX_MS:
        raise AWSAAError(f"{what} must be a number of milliseconds from 0 to {MAX_MS:g}, got {x!r}")
    return float(x)


def _count(x: Any, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x < 1:
        raise AWSAAError(f"{what} must be an integer >= 1, got {x!r}")
    return x


@dataclass(frozen=True)
class LatencyTable:
    """Per-block op latencies on one device, for one input shape and batch size."""

    device: str
    batch_size: int
    image_size: int
    channels: int
    num_classes: int
    ends_ms: float
    blocks: tuple[dict[str, float], ...]
    check: tuple[dict[str, Any], ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        where = slots()
        if len(self.blocks) != len(where):
            raise AWSAAError(f"'blocks' must have {len(where)} entries (one per block), got {len(self.blocks)}")
        for i, (b, slot) in enumerate(zip(self.blocks, where, strict=True)):
            if not isinstance(b, dict) or set(b) != set(slot.choices):
                got = sorted(b) if isinstance(b, dict) else type(b).__name__
                raise AWSAAError(f"block {i} must time exactly its ops {list(slot.choices)}, got {got}")
            for op, v in b.items():
                _ms(v, f"block {i} op {op}")
        _ms(self.ends_ms, "'ends_ms'")
        for what in ("batch_size", "image_size", "channels", "num_classes"):
            _count(getattr(self, what), f"'{what}'")
        for k, c in enumerate(self.check):
            if not isinstance(c, dict) or set(c) != {"ops", "predicted_ms", "measured_ms"}:
                raise AWSAAError(f"check {k} must have exactly 'ops', 'predicted_ms' and 'measured_ms'")
            Arch(tuple(c["ops"]) if isinstance(c["ops"], list) else ())
            _ms(c["predicted_ms"], f"check {k} 'predicted_ms'")
            if _ms(c["measured_ms"], f"check {k} 'measured_ms'") == 0:
                raise AWSAAError(f"check {k} 'measured_ms' must be above 0")

    # ------------------------------------------------------------------ predictions
    def predict(self, arch: Arch) -> float:
        """The network's predicted latency, ms: the stem and head plus each block's op."""
        return self.ends_ms + sum(b[op] for b, op in zip(self.blocks, arch.ops, strict=True))

    def costs_us(self) -> list[list[int]]:
        """Each block's op latencies in whole microseconds, rounded up, in the block's op order
        (what the architecture distribution's exact budget sums: a sum within
        :meth:`budget_us` is a prediction within the budget)."""
        return [[math.ceil(round(b[op] * 1000, 6)) for op in s.choices] for b, s in zip(self.blocks, slots(),
                                                                                         strict=True)]

    def budget_us(self, max_ms: float) -> int:
        """What the blocks may take, in whole microseconds rounded down, for a network within
        ``max_ms`` (the stem and head taken off)."""
        return math.floor(round((max_ms - self.ends_ms) * 1000, 6))

    def span(self) -> tuple[float, float]:
        """The predicted latency of the fastest and of the slowest network of the space, ms."""
        where = slots()
        fastest = Arch(tuple(min(s.choices, key=b.__getitem__) for b, s in zip(self.blocks, where, strict=True)))
        slowest = Arch(tuple(max(s.choices, key=b.__getitem__) for b, s in zip(self.blocks, where, strict=True)))
        return self.predict(fastest), self.predict(slowest)

    def relative_errors(self) -> list[float]:
        """Each checked network's |predicted - measured| / measured."""
        return [abs(c["predicted_ms"] - c["measured_ms"]) / c["measured_ms"] for c in self.check]

    @property
    def error(self) -> float | None:
        """The mean relative error of the predictions over the checked networks (None: none checked)."""
        errors = self.relative_errors()
        return sum(errors) / len(errors) if errors else None

    def shape(self) -> str:
        return f"{self.image_size}x{self.image_size}x{self.channels} images, {self.num_classes} classes"

    # ------------------------------------------------------------------ the file
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "space": SPACE, "device": self.device,
                "batch_size": self.batch_size, "image_size": self.image_size, "channels": self.channels,
                "num_classes": self.num_classes, "ends_ms": self.ends_ms, "blocks": list(self.blocks),
                "check": list(self.check), "meta": self.meta}

    @classmethod
    def from_dict(cls, d: Any) -> LatencyTable:
        d = check_header(d, FORMAT, VERSION, KEYS, "latency table")
        if d.get("space") != SPACE:
            raise AWSAAError(f"latency table of space {d.get('space')!r}; this awsaa has {SPACE!r}")
        missing = sorted(KEYS - {"meta", "check"} - set(d))
        if missing:
            raise AWSAAError(f"latency table lacks {missing}")
        if not isinstance(d["blocks"], list) or not isinstance(d.get("check", []), list):
            raise AWSAAError("latency table 'blocks' and 'check' must be lists")
        if not isinstance(d["device"], str) or not isinstance(d.get("meta", {}), dict):
            raise AWSAAError("latency table 'device' must be a string and 'meta' an object")
        return cls(d["device"], d["batch_size"], d["image_size"], d["channels"], d["num_classes"], d["ends_ms"],
                   tuple(d["blocks"]), tuple(d.get("check", [])), d.get("meta", {}))

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> LatencyTable:
        """Read and validate a table; errors name the file and the problem."""
        return load_json_file(path, "latency table", cls.from_dict)


# ---------------------------------------------------------------------- measuring
def _median_ms(fn: Any, x: Any, min_run_time: float) -> float:
    import logging

    import torch

    # importing the benchmark utilities warns, on a machine without CUDA, about CUDA_HOME
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils.benchmark import Timer

    with torch.no_grad():
        m = Timer("fn(x)", globals={"fn": fn, "x": x}).blocked_autorange(min_run_time=min_run_time)
    return float(m.median) * 1000.0


def device_name(device: Any) -> str:
    """What a table says it was measured on: the GPU's name, or the CPU and its threads."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"{device.type} ({torch.get_num_threads()} threads)"


def measure(device: str = "cpu", batch_size: int = 128, image_size: int = 32, channels: int = 3,
            num_classes: int = 10, check: int = 5, seed: int = 0, min_run_time: float = 0.2) -> LatencyTable:
    """Time every op of every block on ``device`` at its input's shape, the stem and head, and
    ``check`` whole networks drawn uniformly (seeded) against their predicted sum."""
    import torch

    from awsaa.models.choice import ChoiceNet, make_op

    dev = torch.device(device)
    for what, v in (("batch_size", batch_size), ("image_size", image_size), ("channels", channels),
                    ("num_classes", num_classes)):
        _count(v, what)
    ends = ChoiceNet(Arch.uniform_op("zero"), num_classes, channels).to(dev).eval()
    x = torch.randn(batch_size, channels, image_size, image_size, device=dev)
    blocks: list[dict[str, float]] = []
    with torch.no_grad():
        h = ends.stem(x)
        stem_ms = _median_ms(ends.stem, x, min_run_time)
        for slot in slots():
            times = {}
            for op in slot.choices:
                module = make_op(op, slot).to(dev).eval()
                times[op] = round(_median_ms(module, h, min_run_time), 6)
            blocks.append(times)
            h = make_op("wrn", slot).to(dev).eval()(h)  # the next block's input shape
        ends_ms = round(stem_ms + _median_ms(ends.head, h, min_run_time), 6)
    table = LatencyTable(device_name(dev), batch_size, image_size, channels, num_classes, ends_ms, tuple(blocks))
    rng = random.Random(seed)
    checked = []
    for _ in range(check):
        arch = Arch.sample(rng)
        net = ChoiceNet(arch, num_classes, channels).to(dev).eval()
        checked.append({"ops": list(arch.ops), "predicted_ms": round(table.predict(arch), 6),
                        "measured_ms": round(_median_ms(net, x, min_run_time), 6)})
    return LatencyTable(table.device, batch_size, image_size, channels, num_classes, ends_ms, tuple(blocks),
                        tuple(checked), {"torch": torch.__version__, "min_run_time_s": min_run_time, "seed": seed})
