"""The Python API refuses what it cannot use where the call is made, with a TypeError or a
ValueError naming the argument (issue 25's red team found each of these failing later, deep
inside torch, or not at all)."""

import pytest
import torch
from PIL import Image

from awsaa import AWSAugment, Cutout, Policy, SearchSpace, models
from awsaa.search.registry import make_agent

SMALL = SearchSpace(["Invert", "Rotate_3"])


@pytest.mark.parametrize(("call", "error", "names"), [
    (lambda: make_agent("es", seed="0"), TypeError, "seed must be an int"),
    (lambda: make_agent("es", seed=1.5), TypeError, "seed must be an int"),
    (lambda: make_agent("es", seed=True), TypeError, "seed must be an int"),
    (lambda: make_agent("es", seed=2**32), ValueError, "seed must be in [0, 4294967296)"),
    (lambda: make_agent("es", seed=-1), ValueError, "seed must be in"),
    (lambda: make_agent("ppo", config=[1, 2]), TypeError, "config must be an AgentConfig"),
    (lambda: make_agent("ppo", space="all"), TypeError, "space must be a SearchSpace"),
    (lambda: models.create("wrn10_1", num_classes=0), ValueError, "num_classes must be >= 1"),
    (lambda: models.create("wrn10_1", num_classes=2.0), TypeError, "num_classes must be an int"),
    (lambda: models.create("wrn10_1", in_channels=0), ValueError, "in_channels must be >= 1"),
    (lambda: Policy.uniform().sample(-1), ValueError, "n must be >= 0"),
    (lambda: Policy.uniform().sample(2.5), TypeError, "n must be an int"),
    (lambda: Policy.uniform().sample(3, generator=2**70), ValueError, "generator seed"),
    (lambda: Policy.uniform().top(-1), ValueError, "k must be >= 0"),
    (lambda: Policy.uniform().kl_from(Policy.uniform(SMALL)), ValueError, "another op space"),
    (lambda: Policy.uniform().kl_from("uniform"), TypeError, "other must be a Policy"),
    (lambda: Cutout(4)(torch.zeros(1, 0, 0, dtype=torch.uint8)), ValueError, "empty image (0x0"),
    (lambda: AWSAugment(Policy.uniform())(torch.zeros(3, 0, 5, dtype=torch.uint8)), ValueError, "empty image"),
    (lambda: Cutout(4)(Image.new("L", (0, 0))), ValueError, "empty image"),
])
def test_bad_arguments_are_refused_where_the_call_is_made(call, error, names):
    with pytest.raises(error) as e:
        call()
    assert names in str(e.value) and "\n" not in str(e.value)


def test_a_config_dict_is_taken_as_the_agent_config():
    agent = make_agent("es", config={"es_lr": 0.5, "sigma": 0.2}, seed=3)
    assert agent.config.es_lr == 0.5 and agent.config.sigma == 0.2 and agent.seed == 3
    with pytest.raises(Exception, match="es_lr"):
        make_agent("es", config={"es_lr": -1})


def test_a_format_version_of_true_is_no_version(tmp_path):
    """true == 1 in Python: a checkpoint or run record whose version is a boolean is refused,
    as a policy's is (battery case policy-version-true)."""
    import json

    import torch

    from awsaa import AWSAAError
    from awsaa.fileio import same_version
    from awsaa.train.checkpoint import load_checkpoint, save_checkpoint

    assert same_version(1, 1) and not same_version(True, 1) and not same_version(1.0, 1)
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"kind": "train", "x": torch.zeros(1)})
    state = torch.load(path, weights_only=True)
    torch.save({**state, "version": True}, path)
    with pytest.raises(AWSAAError, match="has version True"):
        load_checkpoint(path)
    from helpers import tiny_search

    from awsaa.config import SearchConfig, from_dict
    from awsaa.search.state import SearchState

    SearchState.create(tmp_path / "run", from_dict(SearchConfig, tiny_search()), {"name": "run", "pretrained": "x"})
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    (tmp_path / "run" / "run.json").write_text(json.dumps({**record, "version": True}))
    with pytest.raises(AWSAAError, match="has version True"):
        SearchState.read_run(tmp_path / "run")
