"""Property-based fuzzing (hypothesis): arbitrary JSON into the policy loader, arbitrary YAML
into the config loaders. The result is a valid object or an ``AWSAAError``, never another
exception."""

from __future__ import annotations

import contextlib
import json
import math

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from awsaa import Policy
from awsaa.augment.space import ALL_OPS
from awsaa.config import SearchConfig, TrainConfig, load
from awsaa.errors import AWSAAError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=6)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=6), max_leaves=40)


def near_policies():
    """Dicts shaped like policy files with random damage: the interesting part of the space."""
    def build(ops, probs, version, fmt, extra):
        d = {"format": fmt, "version": version, "ops": ops, "probs": probs}
        d.update(extra)
        return d

    ops = st.lists(st.sampled_from(sorted(ALL_OPS)) | st.text(max_size=8), min_size=0, max_size=4)
    probs = st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-2, 2) | st.text(max_size=3),
                              max_size=4), max_size=4)
    return st.builds(build, ops, probs, st.sampled_from([1, 2, "1", None]),
                     st.sampled_from(["awsaa.policy", "x"]), st.dictionaries(st.sampled_from(["params", "meta"]),
                                                                                json_values, max_size=2))


def check_policy(p: Policy) -> None:
    probs = p.probs()
    assert torch.isfinite(probs).all() and (probs >= 0).all()
    assert math.isclose(float(probs.sum()), 1.0, abs_tol=1e-4)


@FUZZ
@given(json_values | near_policies())
def test_policy_loader_takes_any_json(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("p") / "p.json"
    try:
        path.write_text(json.dumps(value))
    except ValueError:
        return
    try:
        p = Policy.load(path)
    except AWSAAError as e:
        assert "\n" not in str(e)
    else:
        check_policy(p)


@FUZZ
@given(st.binary(max_size=300))
def test_policy_loader_takes_any_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("p") / "p.json"
    path.write_bytes(data)
    with contextlib.suppress(AWSAAError):
        check_policy(Policy.load(path))


train_keys = st.sampled_from(["model", "dataset", "epochs", "batch_size", "aug", "cutout", "optim", "seed", "fill",
                              "train_size", "val_size", "ema_decay", "label_smoothing", "x"])
optim_keys = st.sampled_from(["lr", "momentum", "nesterov", "weight_decay", "warmup_epochs", "schedule",
                              "milestones", "gamma", "final_lr", "y"])
config_docs = st.dictionaries(train_keys, json_values | st.dictionaries(optim_keys, json_values, max_size=4),
                              max_size=6)


@FUZZ
@given(config_docs | json_values)
def test_config_loaders_take_any_yaml_document(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("c") / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    for cls in (TrainConfig, SearchConfig):
        try:
            load(cls, path)
        except AWSAAError as e:
            assert "\n" not in str(e)


@FUZZ
@given(st.text(max_size=200))
def test_config_loaders_take_any_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("c") / "c.yaml"
    path.write_bytes(text.encode("utf-8", errors="replace"))
    for cls in (TrainConfig, SearchConfig):
        try:
            load(cls, path)
        except AWSAAError as e:
            assert "\n" not in str(e)


def test_random_bytes_as_a_checkpoint_are_one_line_errors(tmp_path):
    """Random bytes reach the unpickler's internals in many ways (seen: a KeyError from a
    dangling memo reference, which once escaped as a traceback); 300 seeded tries, each
    must be the one-line "corrupt" error."""
    import random

    from awsaa import AWSAAError
    from awsaa.train.checkpoint import load_checkpoint

    path = tmp_path / "p.pt"
    for seed in range(300):
        rng = random.Random(seed)
        path.write_bytes(rng.randbytes(rng.randrange(1, 8192)))
        with pytest.raises(AWSAAError, match="is corrupt or not a torch checkpoint"):
            load_checkpoint(path)
