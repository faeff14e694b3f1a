"""The bad-input battery: one table, every case through the command-line tools.

Each case builds its input files in a fresh directory, runs a tool, and asserts: a non-zero
exit, exactly one line on stderr that names the problem, no traceback, and every file in the
directory (inputs and any outputs already there) byte-identical afterwards.

The address cases run in this process too: an address is checked before a Ray connection the
process already holds is reused; one of them also runs in a fresh process."""

from __future__ import annotations

import copy
import gzip
import json
import os
import pickle
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fault_accounting import count
from helpers import plant, synthetic_latency, tiny_search
from PIL import Image

from awsaa import Policy
from awsaa.cli.latency import main as latency_main
from awsaa.cli.policy import main as policy_main
from awsaa.cli.search import main as search_main
from awsaa.cli.train import main as train_main
from awsaa.config import SearchConfig, from_dict
from awsaa.search.state import SearchState

ROOT = Path(__file__).resolve().parents[1]
QUICK_TRAIN = ROOT / "configs" / "train" / "quick_fmnist.yaml"
SEARCH = tiny_search(train_size=400, loops=1, pretrain={"epochs": 2, "stop_epoch": 1},
                     finetune={"epochs": 1, "reward_top_k": 1})
MARKER = "/tmp/awsaa-pwned-by-a-test"


class Evil:
    """Unpickling this runs a shell command: what a malicious checkpoint would carry."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


# ----------------------------------------------------------------------------- builders
# Each takes the case's directory and returns the argv of the tool (files made inside d).


def yaml_file(d: Path, text: str, name: str = "c.yaml") -> Path:
    (d / name).write_text(text)
    return d / name


def train_cfg(d: Path, **changes) -> Path:
    cfg = yaml.safe_load(QUICK_TRAIN.read_text())
    for key, value in changes.items():
        node = cfg
        *path, last = key.split(".")
        for k in path:
            node = node[k]
        node[last] = value
    return yaml_file(d, yaml.safe_dump(cfg))


def policy_file(d: Path, mutate: Callable[[dict], None] | None = None, text: str | None = None) -> Path:
    f = d / "p.json"
    if text is not None:
        f.write_text(text)
        return f
    obj = json.loads(json.dumps(Policy.uniform().to_dict()))
    if mutate:
        mutate(obj)
    f.write_text(json.dumps(obj))
    return f


def _no_params(obj: dict) -> dict:
    obj.pop("params", None)
    return obj


def set_prob(obj: dict, value) -> None:
    obj.pop("params", None)
    obj["probs"][0][0] = value


def trained_checkpoint(d: Path, model: str = "wrn10_1") -> Path:
    """A real trainer checkpoint, written by the trainer for ``model``."""
    from awsaa.config import TrainConfig, load
    from awsaa.train.trainer import Trainer

    cfg = load(TrainConfig, QUICK_TRAIN, {"model": model, "epochs": 1, "train_size": 64, "test_size": 64})
    t = Trainer(cfg, device="cpu")
    path = d / "trainer.pt"
    t.save(path)
    return path


def finished_run(d: Path) -> Path:
    cfg = from_dict(SearchConfig, SEARCH)
    run = d / "runs" / "done"
    state = SearchState.create(run, cfg, {"name": "done", "pretrained": str(d / "none.pt")})
    counts = torch.zeros(36, 36, dtype=torch.long)
    counts[0, 0] = 5
    state.record(0, [{"traj": 0, "loop": 0, "reward": 50.0, "val_accs": [50.0], "counts": counts}], [], 1.0)
    return run


def open_run(d: Path, loops: int = 3) -> Path:
    cfg = from_dict(SearchConfig, dict(SEARCH, loops=loops))
    run = d / "runs" / "open"
    SearchState.create(run, cfg, {"name": "open", "pretrained": str(d / "none.pt")})
    return run


def latency_json(d: Path, image_size: int = 28, channels: int = 1) -> Path:
    """A valid latency table (made-up times) for Fashion-MNIST's images, or others."""
    path = d / f"latency-{image_size}x{channels}.json"
    synthetic_latency(image_size, channels).save(path)
    return path


def policy_json(d: Path) -> Path:
    path = d / "policy.json"
    Policy.uniform().save(path)
    return path


def search_yaml(d: Path, **changes) -> Path:
    return yaml_file(d, yaml.safe_dump({**copy.deepcopy(SEARCH), **changes}), "s.yaml")


def fmnist_copy(d: Path) -> Path:
    root = d / "data" / "fashion-mnist"
    root.mkdir(parents=True)
    for f in Path("/usr/share/datasets/fashion-mnist").glob("*.gz"):
        shutil.copy(f, root / f.name)
    return d / "data"


def truncated_gz(d: Path) -> Path:
    data = fmnist_copy(d)
    f = data / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(f.read_bytes())
    f.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    return data


def cifar_dir(d: Path, corrupt: bool) -> Path:
    root = d / "cifar" / "cifar-10-batches-py"
    root.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": torch.zeros(10, 3072, dtype=torch.uint8).numpy(), b"labels": list(range(10))}
        (root / name).write_bytes(pickle.dumps(batch)[: 100 if corrupt and name == "data_batch_3" else None])
    return d / "cifar"


def pickled_code_cifar(d: Path) -> Path:
    root = cifar_dir(d, corrupt=False) / "cifar-10-batches-py"
    (root / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}))
    return d / "cifar"


def sparse(path: Path, size: int = 2 * 2**30) -> Path:
    """A file of ``size`` bytes that takes no disk (a sparse hole)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))


# ----------------------------------------------------------------------------- the table
# (id, tool, argv builder, what stderr must name)

CASES = [
    # configs
    ("yaml-malformed", "train", lambda d: ["-c", str(yaml_file(d, "model: [wrn10_1\nepochs: 3\n"))], "YAML"),
    ("yaml-not-a-mapping", "train", lambda d: ["-c", str(yaml_file(d, "- 1\n- 2\n"))], "mapping"),
    ("yaml-missing", "train", lambda d: ["-c", str(d / "nope.yaml")], "does not exist"),
    ("yaml-unknown-key", "train", lambda d: ["-c", str(train_cfg(d, epochz=3))], "unknown key epochz"),
    ("yaml-wrong-type", "train", lambda d: ["-c", str(train_cfg(d, epochs="ten"))], "epochs"),
    ("yaml-negative-lr", "train", lambda d: ["-c", str(train_cfg(d, **{"optim.lr": -0.1}))],
     "optim.lr must be in (0, 100], got -0.1"),
    ("yaml-unknown-model", "train", lambda d: ["-c", str(train_cfg(d, model="wrn99_9"))], "wrn99_9"),
    ("yaml-unknown-aug", "train", lambda d: ["-c", str(QUICK_TRAIN), "--aug", "autoaugmnt"], "autoaugmnt"),
    ("set-bad-value", "train", lambda d: ["-c", str(QUICK_TRAIN), "--set", "batch_size=-4"], "batch_size"),
    ("search-zero-trajectories", "search", lambda d: ["-c", str(search_yaml(d, trajectories=0))], "trajectories"),
    ("search-bad-agent", "search", lambda d: ["-c", str(search_yaml(d, agent="a2c"))], "agent must be one of ppo"),
    ("search-bad-reward", "search", lambda d: ["-c", str(search_yaml(d, reward="fast"))],
     "reward must be finetune or density, got 'fast'"),
    ("search-density-no-draws", "search", lambda d: ["-c", str(search_yaml(d, reward="density",
                                                                           density={"draws": 0}))],
     "density.draws must be >= 1, got 0"),
    ("search-density-bad-source", "search", lambda d: ["-c", str(search_yaml(d, reward="density",
                                                                             density={"source": "val"}))],
     "density.source must be shared or clean, got 'val'"),
    ("search-per-call-zero", "search", lambda d: ["-c", str(search_yaml(d, workers={"count": 2, "per_call": 0}))],
     "workers.per_call must be >= 1, got 0"),
    ("search-per-call-with-spread-eval", "search",
     lambda d: ["-c", str(search_yaml(d, workers={"count": 2, "per_call": 2}))],
     "workers.per_call 2 runs several fine-tunes per call, but workers.spread_eval makes each its own calls"),
    ("search-spread-eval-not-bool", "search",
     lambda d: ["-c", str(search_yaml(d, workers={"count": 2, "spread_eval": "yes"}))], "workers.spread_eval"),
    ("search-top-k-too-big", "search", lambda d: ["-c", str(search_yaml(d, finetune={"epochs": 1, "reward_top_k": 3}))],
     "reward_top_k"),
    # NAS + AWS (nas:)
    ("nas-not-the-supernet", "search", lambda d: ["-c", str(search_yaml(d, nas={"archs": 2}))],
     "a nas: search trains the supernet: set model: supernet"),
    ("nas-supernet-without-nas", "search", lambda d: ["-c", str(search_yaml(d, model="supernet"))],
     "add a nas: section"),
    ("nas-archs-do-not-divide", "search",
     lambda d: ["-c", str(search_yaml(d, model="supernet", nas={"archs": 3}))], "must be a multiple of nas.archs"),
    ("nas-archs-zero", "search", lambda d: ["-c", str(search_yaml(d, model="supernet", nas={"archs": 0}))],
     "nas.archs must be >= 1"),
    ("nas-budget-admits-nothing", "search",
     lambda d: ["-c", str(search_yaml(d, model="supernet", nas={"max_block_params": 1000}))],
     "nas.max_block_params 1000 admits no architecture"),
    ("nas-bad-learn", "search", lambda d: ["-c", str(search_yaml(d, model="supernet", nas={"learn": "all"}))],
     "nas.learn"),
    ("nas-density-reward", "search",
     lambda d: ["-c", str(search_yaml(d, model="supernet", nas={}, reward="density"))], "nas: needs reward: finetune"),
    ("nas-bad-method", "search", lambda d: ["-c", str(search_yaml(d, model="supernet", nas={"method": "darts"}))],
     "nas.method"),
    ("nas-one-arch-loop-baseline", "search",
     lambda d: ["-c", str(search_yaml(d, model="supernet", trajectories=2, nas={"archs": 1}))],
     "nas.archs 1 with nas.baseline_momentum 0 learns no architecture"),
    ("nas-latency-budget-without-table", "search",
     lambda d: ["-c", str(search_yaml(d, model="supernet", nas={"max_latency_ms": 5}))],
     "nas.max_latency_ms needs nas.latency_table"),
    ("nas-two-budgets", "search", lambda d: ["-c", str(search_yaml(d, model="supernet", nas={
        "max_latency_ms": 5, "latency_table": str(latency_json(d)), "max_block_params": 100_000}))],
     "choose one budget"),
    ("nas-latency-table-missing", "search", lambda d: ["-c", str(search_yaml(d, model="supernet", nas={
        "max_latency_ms": 5, "latency_table": str(d / "none.json")}))], "latency table"),
    ("nas-latency-table-is-a-policy", "search", lambda d: ["-c", str(search_yaml(d, model="supernet", nas={
        "max_latency_ms": 5, "latency_table": str(policy_json(d))}))], "not an awsaa latency table"),
    ("nas-latency-table-for-other-images", "search", lambda d: ["-c", str(search_yaml(d, model="supernet", nas={
        "max_latency_ms": 5, "latency_table": str(latency_json(d, image_size=32, channels=3))}))],
     "was measured for 32x32x3 images"),
    ("nas-latency-budget-admits-nothing", "search", lambda d: ["-c", str(search_yaml(d, model="supernet", nas={
        "max_latency_ms": 0.5, "latency_table": str(latency_json(d))}))], "admits no architecture"),
    ("nas-fixed-policy-with-learning-policy", "search", lambda d: ["-c", str(search_yaml(d, model="supernet", nas={
        "policy": str(policy_json(d))}))], "nas.policy fixes the policy, so it needs nas.learn arch"),
    ("nas-fixed-policy-missing", "search", lambda d: ["-c", str(search_yaml(d, model="supernet", nas={
        "learn": "arch", "policy": str(d / "none.json")}))], "policy file"),
    ("nas-fixed-policy-is-a-latency-table", "search", lambda d: ["-c", str(search_yaml(d, model="supernet", nas={
        "learn": "arch", "policy": str(latency_json(d))}))], "not an awsaa policy"),
    ("latency-bad-device", "latency", lambda d: ["-o", str(d / "t.json"), "--device", "tpu:0"], "is not a device"),
    ("latency-no-such-gpu", "latency", lambda d: ["-o", str(d / "t.json"), "--device", "cuda:99"], "--device cuda:99"),
    ("latency-output-is-a-directory", "latency", lambda d: ["-o", str(_mkdir(d / "out")), "--device", "cpu"],
     "is a directory"),
    ("nas-negative-zero-cap", "search",
     lambda d: ["-c", str(search_yaml(d, model="supernet", nas={"max_zero_blocks": -1}))], "nas.max_zero_blocks"),
    ("nas-budget-with-zero-cap-admits-nothing", "search",
     lambda d: ["-c", str(search_yaml(d, model="supernet", nas={"max_block_params": 60000, "max_zero_blocks": 1}))],
     "with at most 1 zero blocks"),
    ("nas-es-odd-policies", "search",
     lambda d: ["-c", str(search_yaml(d, model="supernet", agent="es", trajectories=6, nas={"archs": 2}))],
     "even number of policies per loop"),
    # policy files
    ("policy-truncated", "policy", lambda d: ["show", str(policy_file(d, text='{"format": "awsaa.policy", "ver'))],
     "not valid JSON"),
    ("policy-wrong-shape", "policy", lambda d: ["show", str(policy_file(d, lambda o: (o.pop("params"),
                                                                                      o["probs"].pop())))], "36"),
    ("policy-wrong-version", "policy", lambda d: ["show", str(policy_file(d, lambda o: o.update(version=2)))],
     "version"),
    ("policy-nan", "policy", lambda d: ["show", str(policy_file(d, lambda o: set_prob(o, float("nan"))))], "NaN"),
    ("policy-infinite", "policy", lambda d: ["show", str(policy_file(d, text=json.dumps(
        _no_params(Policy.uniform().to_dict())).replace("0.0007716", "1e999", 1)))], "finite"),
    ("policy-negative", "policy", lambda d: ["show", str(policy_file(d, lambda o: set_prob(o, -0.5)))], "negative"),
    ("policy-unknown-op", "policy", lambda d: ["show", str(policy_file(
        d, lambda o: o.update(ops=[*o["ops"][:-1], "Zoom_3"])))], "Zoom_3"),
    ("policy-not-normalized", "policy", lambda d: ["show", str(policy_file(d, lambda o: set_prob(o, 0.5)))], "sum"),
    ("policy-as-aug", "train", lambda d: ["-c", str(QUICK_TRAIN), "--aug", str(policy_file(
        d, lambda o: o.update(format="something.else")))], "format"),
    # checkpoints
    ("ckpt-truncated", "train", lambda d: ["-c", str(QUICK_TRAIN), "--only-eval", "--save", str(
        _truncate(trained_checkpoint(d)))], "corrupt"),
    ("ckpt-other-architecture", "train", lambda d: ["-c", str(QUICK_TRAIN), "--only-eval", "--save",
                                                    str(trained_checkpoint(d, "wrn16_2"))], "wrn16_2"),
    ("ckpt-pickled-code", "train", lambda d: ["-c", str(QUICK_TRAIN), "--only-eval", "--save", str(
        _evil_checkpoint(d / "evil.pt"))], "refused"),
    ("pretrained-random-bytes", "search", lambda d: ["-c", str(search_yaml(d)), "--pretrained", str(
        _write(d / "p.pt", random.Random(1).randbytes(4096)))], "corrupt"),
    ("state-pickled-code", "search", lambda d: ["--resume", str(_evil_state(open_run(d)))], "refused"),
    # datasets
    ("dataset-missing", "train", lambda d: ["-c", str(QUICK_TRAIN), "--dataset", "cifar10", "--dataroot",
                                            str(_mkdir(d / "empty"))], "cifar10"),
    ("dataroot-not-a-dir", "train", lambda d: ["-c", str(QUICK_TRAIN), "--dataroot", str(d / "nowhere")],
     "does not exist"),
    ("fmnist-truncated", "train", lambda d: ["-c", str(QUICK_TRAIN), "--dataroot", str(truncated_gz(d))],
     "corrupted dataset file"),
    ("cifar-truncated", "train", lambda d: ["-c", str(QUICK_TRAIN), "--dataset", "cifar10", "--dataroot",
                                            str(cifar_dir(d, corrupt=True))], "corrupted dataset file"),
    ("cifar-pickled-code", "train", lambda d: ["-c", str(QUICK_TRAIN), "--dataset", "cifar10", "--dataroot",
                                               str(pickled_code_cifar(d))], "corrupted dataset file"),
    # run directories
    ("resume-not-a-run", "search", lambda d: ["--resume", str(_mkdir(d / "just-a-dir"))], "not an awsaa search run"),
    ("resume-finished-run", "search", lambda d: ["--resume", str(finished_run(d))], "already finished"),
    ("resume-config-changed", "search", lambda d: ["--resume", str(open_run(d)), "-c", str(search_yaml(d, loops=7))],
     "differs"),
    ("run-name-taken", "search", lambda d: ["-c", str(search_yaml(d)), "--storage", str(open_run(d).parent),
                                            "--name", "open"], "already exists"),
    ("train-resume-nothing", "train", lambda d: ["-c", str(QUICK_TRAIN), "--storage", str(_mkdir(d / "t")),
                                                 "--name", "x", "--resume"], "nothing to resume"),
    # arguments and --set
    ("policy-top-negative", "policy", lambda d: ["show", str(policy_file(d)), "--top", "-3"], "--top"),
    ("policy-top-not-a-number", "policy", lambda d: ["show", str(policy_file(d)), "--top", "ten"], "--top"),
    ("search-zero-loops", "search", lambda d: ["-c", str(search_yaml(d)), "--loops", "0"], "--loops"),
    ("train-zero-epochs", "train", lambda d: ["-c", str(QUICK_TRAIN), "--epochs", "0"], "--epochs"),
    ("train-negative-failures", "train", lambda d: ["-c", str(QUICK_TRAIN), "--max-failures", "-1"], "--max-failures"),
    ("train-nan-gpus", "train", lambda d: ["-c", str(QUICK_TRAIN), "--gpus-per-trial", "nan"], "--gpus-per-trial"),
    ("set-unparseable", "train", lambda d: ["-c", str(QUICK_TRAIN), "--set", "optim.milestones=[1"],
     "--set optim.milestones"),
    ("set-yaml-tag", "train", lambda d: ["-c", str(QUICK_TRAIN), "--set", "seed=!!python/object/apply:os.system [id]"],
     "--set seed"),
    ("set-into-a-value", "search", lambda d: ["-c", str(search_yaml(d)), "--set", "loops.x=1"], "loops is a value"),
    ("set-empty-key-part", "search", lambda d: ["-c", str(search_yaml(d)), "--set", "finetune..epochs=1"],
     "dotted key"),
    ("set-twice", "train", lambda d: ["-c", str(QUICK_TRAIN), "--set", "epochs=2", "epochs=3"], "epochs twice"),
    ("yaml-duplicate-key", "train", lambda d: ["-c", str(yaml_file(d, QUICK_TRAIN.read_text() + "epochs: 3\n"))],
     "duplicate key 'epochs'"),
    ("yaml-python-tag", "train", lambda d: ["-c", str(yaml_file(d, "model: !!python/name:os.system\n"))], "YAML"),
    # files
    ("yaml-billion-laughs", "search", lambda d: ["-c", str(yaml_file(d, BILLION_LAUGHS))], "expands"),
    ("yaml-2gb", "train", lambda d: ["-c", str(sparse(d / "big.yaml"))], "limit"),
    ("policy-2gb", "policy", lambda d: ["show", str(sparse(d / "big.json"))], "limit"),
    ("policy-nested-deep", "policy", lambda d: ["show", str(policy_file(d, text="[" * 200_000))], "nested too deeply"),
    ("policy-fifo", "policy", lambda d: ["show", str(fifo(d / "p.json"))], "not a regular file"),
    ("policy-a-directory", "policy", lambda d: ["show", str(_mkdir(d / "p.json"))], "directory"),
    ("yaml-a-directory", "search", lambda d: ["-c", str(_mkdir(d / "s.yaml"))], "directory"),
    ("plot-parent-is-a-file", "policy", lambda d: ["plot", str(policy_file(d)), "-o",
                                                   str(_write(d / "afile", b"x") / "heat.png")], "not a directory"),
    # configs that cannot work
    ("search-finetune-at-lr-0", "search", lambda d: ["-c", str(search_yaml(d, pretrain={
        "epochs": 2, "optim": {"schedule": "cosine", "final_lr": 0.0}}))], "learning rate 0"),
    # names stay inside storage
    ("train-name-escapes", "train", lambda d: ["-c", str(QUICK_TRAIN), "--name", "../../escaped"], "not a run name"),
    ("search-name-escapes", "search", lambda d: ["-c", str(search_yaml(d)), "--name", "../../../x"], "not a run name"),
    ("search-name-too-long", "search", lambda d: ["-c", str(search_yaml(d)), "--name", "x" * 300], "not a run name"),
    # statistics
    ("seeds-repeated", "train", lambda d: ["-c", str(QUICK_TRAIN), "--seeds", "0", "0"], "repeats seed 0"),
    ("seeds-negative", "train", lambda d: ["-c", str(QUICK_TRAIN), "--seeds", "-1"], "--seeds"),
    ("save-without-only-eval", "train", lambda d: ["-c", str(QUICK_TRAIN), "--save", str(d / "model.pth")],
     "--only-eval"),
    ("aug-repeated", "train", lambda d: ["-c", str(QUICK_TRAIN), "--aug", "none", "none"], "given twice"),
    ("storage-is-a-file", "train", lambda d: ["-c", str(QUICK_TRAIN), "--storage", str(_write(d / "f", b"x") / "s")],
     "cannot write to the storage"),
]

# Untrusted storage (anyone who can write in a run directory): a link or a special file in
# place of any file a resume would lock, write or rename over, for both tools. The target
# outside the run (``victim``) must stay byte-identical; the snapshot checks it.
VICTIM = b"another user's file\n"


def planted(d: Path, where: Path, kind: str) -> None:
    """Put ``kind`` at ``where`` in place of whatever was there."""
    victim = d / "victim.txt"
    victim.write_bytes(VICTIM)
    where.parent.mkdir(parents=True, exist_ok=True)
    if where.exists() or where.is_symlink():
        where.unlink()
    plant(kind, where, victim)


def search_run_with(d: Path, name: str, kind: str) -> list[str]:
    run = open_run(d)
    planted(d, run / name, kind)
    return ["--resume", str(run)]


def train_exp_with(d: Path, name: str, kind: str) -> list[str]:
    planted(d, d / "t" / "x" / name, kind)
    return ["-c", str(QUICK_TRAIN), "--storage", str(d / "t"), "--name", "x", "--resume"]


LINK_NAMES = {"search": [".awsaa.lock", ".awsaa.holder", "state.pt", "history.jsonl", "policy_last.json",
                         ".state.pt.x1y2z3.tmp"],
              "train": [".awsaa.lock", "awsaa-experiment.json", "summary.json", "policies/0-p.json",
                        ".summary.json.x1y2z3.tmp"]}
LINK_WORDS = {"symlink": "symbolic link", "hardlink": "hard links", "fifo": "FIFO", "devnull": "symbolic link"}
for _tool, _names in LINK_NAMES.items():
    for _name in _names:
        for _kind, _word in LINK_WORDS.items():
            _build = search_run_with if _tool == "search" else train_exp_with
            CASES.append((f"{_tool}-resume-{_kind}-as-{_name.strip('.').replace('/', '-')}", _tool,
                          lambda d, b=_build, n=_name, k=_kind: b(d, n, k), _word))


def copied_state(d: Path) -> list[str]:
    """state.pt of another run (same config, another name) copied into this one."""
    run = open_run(d)
    cfg = from_dict(SearchConfig, dict(SEARCH, loops=3))
    other = SearchState.create(d / "runs" / "other", cfg, {"name": "other", "pretrained": str(d / "none.pt")})
    shutil.copy(other.run_dir / "state.pt", run / "state.pt")
    return ["--resume", str(run)]


def edited_config_and_record(d: Path) -> list[str]:
    """config.yaml edited and run.json's hash made to match it: state.pt still knows."""
    from awsaa.config import config_hash

    run = open_run(d)
    data = yaml.safe_load((run / "config.yaml").read_text())
    data["agent_config"]["lr"] = 0.05
    (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    info = json.loads((run / "run.json").read_text())
    info["config_hash"] = config_hash(data)
    (run / "run.json").write_text(json.dumps(info))
    return ["--resume", str(run)]


CASES += [
    # a run's files belong to the run
    ("resume-state-of-another-run", "search", copied_state, "belongs to run 'other'"),
    ("resume-config-and-record-edited", "search", edited_config_and_record, "config was changed"),
    ("resume-config-edited", "search", lambda d: ["--resume", str(_edit(open_run(d) / "config.yaml", "seed: 0",
                                                                       "seed: 1"))], "config.yaml was changed"),
    # values no update can survive
    ("search-advantage-scale-huge", "search", lambda d: ["-c", str(search_yaml(d)), "--set", "agent=ppo",
                                                         "agent_config.advantage_scale=1e308"],
     "agent_config.advantage_scale must be in (0, 100]"),
    ("search-es-lr-huge", "search", lambda d: ["-c", str(search_yaml(d)), "--set", "agent=es", "trajectories=2",
                                               "agent_config.es_lr=1e300"], "agent_config.es_lr"),
    ("search-noise-sd-huge", "search", lambda d: ["-c", str(search_yaml(d)), "--set", "control=noise",
                                                  "control_noise_sd=1e308"], "control_noise_sd"),
    ("search-sigma-inf", "search", lambda d: ["-c", str(search_yaml(d)), "--set", "agent_config.sigma=.inf"],
     "agent_config.sigma must be a finite number"),
    ("search-lr-nan", "search", lambda d: ["-c", str(search_yaml(d)), "--set", "agent_config.lr=.nan"],
     "agent_config.lr must be a finite number"),
    ("train-lr-inf", "train", lambda d: ["-c", str(QUICK_TRAIN), "--set", "optim.lr=.inf"], "optim.lr"),
    # untrusted text is shown escaped (check() refuses any control character on stderr)
    ("policy-name-with-escapes", "policy", lambda d: ["show", str(d / "\x1b]0;pwned\x07\x1b[2J\x9b31m.json")],
     "does not exist"),
    ("resume-name-with-escapes", "search", lambda d: ["--resume", str(d / "run\x1b[32mverdict: moved\r")],
     "does not exist"),
]


# Your own data: a folder or an .npz file given as the dataset (issue 24).
DIGITS_TRAIN = ROOT / "configs" / "train" / "digits.yaml"


def image_folder(d: Path, classes=("a", "b"), per_class: int = 3, size=(8, 8)) -> Path:
    root = d / "data"
    for c in classes:
        (root / "train" / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("L", size, color=40 * i).save(root / "train" / c / f"{i}.png")
    return root


def own(d: Path, root: Path) -> list[str]:
    return ["-c", str(DIGITS_TRAIN), "--dataset", str(root)]


def npz(d: Path, **arrays) -> Path:
    base = {"x": np.zeros((6, 8, 8), np.uint8), "y": np.array([0, 1, 0, 1, 0, 1])}
    f = d / "data.npz"
    np.savez(f, **{**base, **arrays})
    return f


def _broken_image(d: Path, truncated: bool) -> Path:
    root = image_folder(d)
    f = root / "train" / "a" / "0.png"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2] if truncated else b"\x89PNG\r\n\x1a\n" + bytes(64))
    return root


def _mixed_sizes(d: Path) -> Path:
    root = image_folder(d)
    Image.new("L", (12, 9)).save(root / "train" / "b" / "big.png")
    return root


def _turned_by_exif(d: Path) -> Path:
    """Images of one stored size, one of them turned a quarter by its EXIF orientation: upright,
    they are of two sizes (it used to get past the size check and fail while stacking)."""
    root = image_folder(d, size=(8, 6))
    img = Image.new("L", (8, 6))
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(root / "train" / "a" / "turned.jpg", exif=exif)
    return root


def _loop(d: Path) -> Path:
    root = image_folder(d)
    (root / "train" / "a" / "again").symlink_to(root / "train", target_is_directory=True)
    return root


CASES += [
    ("own-no-train-folder", "train", lambda d: own(d, _mkdir(d / "data")), "has no train/ folder"),
    ("own-empty-train", "train", lambda d: own(d, _mkdir(d / "data" / "train").parent), "holds no class folders"),
    ("own-one-class", "train", lambda d: own(d, image_folder(d, classes=("only",))), "needs at least 2"),
    ("own-class-without-images", "train", lambda d: own(d, _with(image_folder(d), "train/c/readme.txt")),
     "holds no images"),
    ("own-corrupt-image", "train", lambda d: own(d, _broken_image(d, truncated=False)), "0.png cannot be read"),
    ("own-truncated-image", "train", lambda d: own(d, _broken_image(d, truncated=True)), "0.png cannot be read"),
    ("own-mixed-sizes", "train", lambda d: own(d, _mixed_sizes(d)), "set image_size"),
    ("own-symlink-loop", "train", lambda d: own(d, _loop(d)), "symbolic link loop"),
    ("own-sizes-after-exif", "train", lambda d: own(d, _turned_by_exif(d)), "2 sizes (6x8, 8x6)"),
    ("own-not-a-dataset", "train", lambda d: own(d, _write(d / "data.csv", b"1,2")), "dataset"),
    ("own-missing", "train", lambda d: own(d, d / "nowhere" / "data"), "does not exist"),
    ("npz-label-out-of-range", "train", lambda d: own(d, npz(d, classes=np.array(["a"]))), "out of range"),
    ("npz-labels-not-integers", "train", lambda d: own(d, npz(d, y=np.array([0, 1, 0.5, 1, 0, 1]))),
     "must hold integers"),
    ("npz-lengths-differ", "train", lambda d: own(d, npz(d, y=np.array([0, 1, 0, 1]))), "4 labels for 6 images"),
    ("npz-nan", "train", lambda d: own(d, npz(d, x=np.full((6, 8, 8), np.nan, np.float32))), "NaN"),
    ("npz-float-out-of-range", "train", lambda d: own(d, npz(d, x=np.full((6, 8, 8), 3.0, np.float32))),
     "must lie in [0, 1]"),
    ("npz-negative-label", "train", lambda d: own(d, npz(d, y=np.array([0, -1, 0, 1, 0, 1]))), "negative label"),
    ("npz-pickled-object", "train", lambda d: own(d, npz(d, y=np.array([0, 1, 0, 1, 0, None], dtype=object))),
     "without unpickling"),
    ("npz-no-x", "train", lambda d: own(d, _npz_only_y(d)), "must hold arrays named x and y"),
    ("own-val-size-too-large", "train", lambda d: [*own(d, image_folder(d)), "--set", "val_size=10"],
     "val_size 10 leaves no training images (of 4)"),
    ("search-val-size-too-large", "search", lambda d: ["-c", str(ROOT / "configs/search/digits.yaml"), "--set",
                                                       "val_size=10000"], "val_size 10000 leaves no training images"),
    ("train-size-too-large", "train", lambda d: ["-c", str(DIGITS_TRAIN), "--set", "train_size=500"],
     "train_size 500 exceeds the 200 training images of digits"),
]


# Lenient inputs: what a reader took without a word although it cannot be what was meant.
CASES += [
    ("policy-duplicate-key", "policy", lambda d: ["show", str(policy_file(
        d, text='{"version": 1, ' + json.dumps(Policy.uniform().to_dict())[1:]))], "duplicate key 'version'"),
    ("run-record-duplicate-key", "search", lambda d: ["--resume", str(_twice_in_run_json(open_run(d)))],
     "duplicate key 'name'"),
    ("policy-version-true", "policy", lambda d: ["show", str(policy_file(d, lambda o: o.update(version=True)))],
     "version True"),
    ("yaml-1.1-boolean", "train", lambda d: ["-c", str(yaml_file(d, QUICK_TRAIN.read_text() + "hflip: off\n"))],
     "hflip"),
    ("set-yaml-1.1-boolean", "train", lambda d: ["-c", str(QUICK_TRAIN), "--set", "hflip=yes"], "hflip"),
    ("milestones-repeated", "train", lambda d: ["-c", str(QUICK_TRAIN), "--set", "optim.schedule=multistep",
                                                "optim.milestones=[5,5]"], "milestones"),
]


# Numbers the libraries underneath cannot hold: refused at load, not after stage 1.
CASES += [
    ("set-seed-beyond-32-bits", "search", lambda d: ["-c", str(search_yaml(d)), "--set", f"seed={2**64}"], "seed"),
    ("set-seed-negative", "train", lambda d: ["-c", str(QUICK_TRAIN), "--set", "seed=-1"], "seed"),
    ("seeds-beyond-32-bits", "train", lambda d: ["-c", str(QUICK_TRAIN), "--seeds", str(2**32)], "--seeds"),
    ("gallery-seed-beyond-32-bits", "policy", lambda d: ["gallery", "-o", str(d / "g.png"), "--seed", str(2**70)],
     "--seed"),
    ("num-cpus-below-ray-step", "search", lambda d: ["-c", str(search_yaml(d)), "--set", "workers.num_cpus=1e-300"],
     "num_cpus"),
    ("num-gpus-below-ray-step", "search", lambda d: ["-c", str(search_yaml(d)), "--set", "workers.num_gpus=1e-300"],
     "num_gpus"),
    ("gpus-per-trial-below-ray-step", "train", lambda d: ["-c", str(QUICK_TRAIN), "--gpus-per-trial", "1e-300"],
     "--gpus-per-trial"),
    ("pretrain-lr-inf", "search", lambda d: ["-c", str(search_yaml(d)), "--set", "pretrain.optim.lr=.inf"], "lr"),
]

# Flags silently ignored: with --resume a run continues as it was started.
CASES += [
    ("resume-with-loops", "search", lambda d: ["--resume", str(open_run(d)), "--loops", "9"],
     "--loops cannot be used with --resume"),
    ("resume-print-config-with-loops", "search", lambda d: ["--print-config", "--resume", str(open_run(d)),
                                                            "--loops", "9"], "--loops cannot be used with --resume"),
    ("resume-with-set-and-name", "search", lambda d: ["--resume", str(open_run(d)), "--set", "seed=3", "--name",
                                                      "other"], "--name, --set cannot be used with --resume"),
    ("resume-with-pretrained", "search", lambda d: ["--resume", str(open_run(d)), "--pretrained",
                                                    str(d / "x.pt")], "--pretrained cannot be used with --resume"),
    ("resume-with-other-storage", "search", lambda d: ["--resume", str(open_run(d)), "--storage",
                                                       str(_mkdir(d / "elsewhere"))], "is not where the run lies"),
]

# Resources a local Ray cannot provide (it would wait for them forever): one line before it starts.
CASES += [
    ("search-workers-need-more-gpus", "search", lambda d: ["-c", str(search_yaml(d)), "--set",
                                                           "workers.num_gpus=1000"], "more GPUs than this machine"),
    ("search-workers-need-more-cpus", "search", lambda d: ["-c", str(search_yaml(d)), "--set",
                                                           "workers.num_cpus=1000"], "more CPUs than this machine"),
    ("train-trial-needs-more-gpus", "train", lambda d: ["-c", str(QUICK_TRAIN), "--gpus-per-trial", "1000"],
     "--gpus-per-trial 1000 asks for more GPUs"),
    ("train-trial-needs-more-cpus", "train", lambda d: ["-c", str(QUICK_TRAIN), "--cpus-per-trial", "100000"],
     "--cpus-per-trial 100000 asks for more CPUs"),
]

def arch_file(d: Path, mutate: Callable[[dict], None] | None = None, text: str | None = None) -> list[str]:
    """``awsaa-train --model a.json``: the WRN-style path of the space, changed by ``mutate``."""
    from awsaa.arch import Arch

    f = d / "a.json"
    if text is None:
        obj = Arch.uniform_op("wrn").to_dict()
        if mutate:
            mutate(obj)
        text = json.dumps(obj)
    f.write_text(text)
    return ["-c", str(QUICK_TRAIN), "--model", str(f)]


def _set_op(obj: dict, block: int, op) -> None:
    obj["ops"][block] = op


# the architecture file (awsaa.arch): NAS + AWS
CASES += [
    ("arch-truncated", "train", lambda d: arch_file(d, text='{"format": "awsaa.arch", "ver'), "a.json"),
    ("arch-not-an-arch", "train", lambda d: arch_file(d, text=json.dumps(Policy.uniform().to_dict())),
     "not an awsaa architecture"),
    ("arch-wrong-version", "train", lambda d: arch_file(d, lambda o: o.update(version=2)), "version 2"),
    ("arch-other-space", "train", lambda d: arch_file(d, lambda o: o.update(space="darts")), "space 'darts'"),
    ("arch-unknown-op", "train", lambda d: arch_file(d, lambda o: _set_op(o, 4, "mb7_e9")), "unknown op 'mb7_e9'"),
    ("arch-op-not-a-string", "train", lambda d: arch_file(d, lambda o: _set_op(o, 0, 3)), "unknown op 3"),
    ("arch-zero-changing-shape", "train", lambda d: arch_file(d, lambda o: _set_op(o, 3, "zero")),
     "block 3 changes the shape"),
    ("arch-too-few-blocks", "train", lambda d: arch_file(d, lambda o: o["ops"].pop()), "has 9 blocks, got 8"),
    ("arch-unknown-key", "train", lambda d: arch_file(d, lambda o: o.update(width=2)), "unknown key(s) ['width']"),
    ("arch-missing", "train", lambda d: ["-c", str(QUICK_TRAIN), "--model", str(d / "none.json")], "does not exist"),
    ("arch-a-directory", "train", lambda d: ["-c", str(QUICK_TRAIN), "--model", str(_mkdir(d / "dir.json"))],
     "dir.json"),
]


def _twice_in_run_json(run: Path) -> Path:
    f = run / "run.json"
    f.write_text('{"name": "other", ' + f.read_text().lstrip()[1:])
    return run


def _with(root: Path, rel: str) -> Path:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text("x")
    return root


def _npz_only_y(d: Path) -> Path:
    np.savez(d / "data.npz", y=np.array([0, 1]))
    return d / "data.npz"


def _edit(path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path.parent


ADDRESS_CASES = [
    ("address-unreachable", "search", lambda d: ["-c", str(search_yaml(d)), "--address", "127.0.0.1:1"],
     "cannot reach the Ray cluster at 127.0.0.1:1"),
    ("jobs-address-unreachable", "train", lambda d: ["-c", str(QUICK_TRAIN), "--address", "http://127.0.0.1:1"],
     "cannot reach the Ray Jobs server"),
    ("address-not-an-address", "search", lambda d: ["-c", str(search_yaml(d)), "--address", "nohost"],
     "nohost"),
    ("address-unknown-scheme", "train", lambda d: ["-c", str(QUICK_TRAIN), "--address", "ftp://127.0.0.1:21"],
     "unknown scheme 'ftp'"),
]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _evil_checkpoint(path: Path) -> Path:
    torch.save({"format": "awsaa.checkpoint", "version": 1, "kind": "train", "payload": Evil()}, path)
    return path


def _evil_state(run: Path) -> Path:
    _evil_checkpoint(run / "state.pt")
    return run


MAINS = {"train": train_main, "search": search_main, "policy": policy_main, "latency": latency_main}


def snapshot(d: Path) -> dict[str, object]:
    """Every file's bytes (a file over 64 MiB, e.g. a sparse one: its size and mtime)."""
    def content(p: Path) -> object:
        st = p.stat()
        return (st.st_size, st.st_mtime_ns) if st.st_size > 2**26 else p.read_bytes()
    return {str(p.relative_to(d)): content(p) for p in sorted(d.rglob("*")) if p.is_file()}


def check(rc: int, err: str, names: str, before: dict, d: Path) -> None:
    assert rc != 0
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.endswith("\n"), f"not one line: {err!r}"
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]", err), \
        f"a control character reached the terminal: {err!r}"
    assert names.lower() in err.lower(), f"{names!r} not named in: {err!r}"
    assert snapshot(d) == before, "a file changed"
    assert not os.path.exists(MARKER), "a pickled payload ran"
    count("bad inputs refused")


@pytest.mark.parametrize("tool, build, names", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, capsys, tool, build, names):
    d = _mkdir(tmp_path / "case")
    argv = build(d)
    if tool in ("train", "search") and "--storage" not in argv:
        argv += ["--storage", str(d / "runs")]
    before = snapshot(d)
    capsys.readouterr()
    rc = MAINS[tool](argv)
    check(rc, capsys.readouterr().err, names, before, d)


@pytest.mark.parametrize("tool, build, names", [c[1:] for c in ADDRESS_CASES], ids=[c[0] for c in ADDRESS_CASES])
def test_bad_address(tmp_path, capsys, tool, build, names):
    """In this process, whether or not it already holds a Ray connection: an address is checked
    before the tools' Ray is reused (one fresh process below covers the tools' start)."""
    test_bad_input(tmp_path, capsys, tool, build, names)


@pytest.mark.parametrize("tool", ["train", "search"])
def test_an_unreachable_ray_address_creates_nothing(tmp_path, capsys, monkeypatch, tool):
    """$RAY_ADDRESS naming nothing: one line, exit 2, and no storage or run directory left behind."""
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    store = tmp_path / "store"
    config = QUICK_TRAIN if tool == "train" else search_yaml(_mkdir(tmp_path / "cfg"))
    assert MAINS[tool](["-c", str(config), "--storage", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach" in err, err
    assert not store.exists()


def test_the_tools_own_process_refuses_an_unreachable_address(tmp_path):
    """The same from the command line, in a fresh process (no Ray connection to reuse)."""
    store = tmp_path / "store"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": "127.0.0.1:1"}
    r = subprocess.run([sys.executable, "-m", "awsaa.cli.search", "-c", str(search_yaml(_mkdir(tmp_path / "cfg"))),
                        "--storage", str(store)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cannot reach" in r.stderr, r.stderr
    assert not store.exists()


def test_ray_address_set_to_a_dashboard_url_is_taken_as_the_job_address(tmp_path, capsys, monkeypatch):
    """$RAY_ADDRESS=http://... (as Ray's job CLI uses it) is the job address, like --address
    http://...: here an unreachable one, so one line naming the Jobs server, nothing created."""
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:1")
    store = tmp_path / "store"
    assert train_main(["-c", str(QUICK_TRAIN), "--storage", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the Ray Jobs server" in err, err
    assert not store.exists()


def test_a_head_that_refuses_the_token(tmp_path, ray_nodes):
    """A head with token auth; the client holds another token: one line, the token never printed."""
    from helpers import free_port, wait_port

    gcs_port, dash = free_port(), free_port()
    token = tmp_path / "token"
    token.write_text("a" * 64)
    ray_nodes.env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    ray_nodes.start("--head", f"--port={gcs_port}", "--num-cpus=1", "--include-dashboard=true",
                    "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}")
    wait_port(dash)
    d = _mkdir(tmp_path / "case")
    wrong = _write(d / "wrong", b"b" * 64)
    before = snapshot(d)
    env = {**ray_nodes.env, "RAY_AUTH_TOKEN_PATH": str(wrong)}
    r = subprocess.run([sys.executable, "-m", "awsaa.cli.search", "--address", f"http://127.0.0.1:{dash}", "-c",
                        str(ROOT / "configs/search/quick_fmnist.yaml")], env=env, capture_output=True, text=True,
                       timeout=300)
    check(r.returncode, r.stderr, "refused the token", before, d)
    assert "a" * 64 not in r.stdout + r.stderr  # the token is never printed


def test_the_battery_is_big_enough():
    assert len(CASES) + len(ADDRESS_CASES) + 1 >= 25
