"""The architecture space of NAS + AWS (awsaa.arch, awsaa.models.choice): its size, the
architecture file, the supernet's paths and the standalone networks built from a file."""

import json
import random
from pathlib import Path

import pytest
import torch

from awsaa import AWSAAError, models
from awsaa.arch import OPS, Arch, slots, space_size
from awsaa.models import ChoiceNet, SuperNet
from awsaa.models.choice import op_parameter_counts


def n_params(params) -> int:
    return sum(p.numel() for p in params)


def test_the_space_holds_millions_of_architectures_spanning_many_times_in_parameters():
    shapes = [(s.cin, s.cout, s.stride) for s in slots()]
    assert shapes == [(16, 16, 1)] * 3 + [(16, 32, 2)] + [(32, 32, 1)] * 2 + [(32, 64, 2)] + [(64, 64, 1)] * 2
    assert [len(s.choices) for s in slots()] == [6, 6, 6, 5, 6, 6, 5, 6, 6]  # no 'zero' where the shape changes
    assert space_size() == 5**2 * 6**7 == 6_998_400
    counts = op_parameter_counts()
    smallest, largest = sum(min(c.values()) for c in counts), sum(max(c.values()) for c in counts)
    assert largest > 10 * smallest  # the blocks alone: 13,584 to 274,720


def test_a_built_network_has_the_supernet_path_s_parameters_and_outputs():
    rng = random.Random(0)
    supernet = SuperNet(num_classes=10, in_channels=1).eval()
    x = torch.randn(4, 1, 28, 28)
    sizes = set()
    for arch in [Arch.uniform_op(op) for op in OPS] + [Arch.sample(rng) for _ in range(8)]:
        built = ChoiceNet(arch, num_classes=10, in_channels=1)
        assert n_params(built.parameters()) == n_params(supernet.path_parameters(arch)), arch.describe()
        extracted = supernet.extract(arch).eval()
        assert torch.equal(extracted(x), supernet(x, arch))  # the path's weights and BN statistics, copied
        sizes.add(n_params(built.parameters()))
    assert len(sizes) > 10


def test_the_architecture_file_round_trips_and_is_written_atomically(tmp_path):
    arch = Arch.sample(random.Random(3))
    arch = Arch(arch.ops, {"found_by": "test", "loop": 4})
    f = tmp_path / "a.json"
    arch.save(f)
    back = Arch.load(f)
    assert back == arch and back.meta == {"found_by": "test", "loop": 4}
    assert json.loads(f.read_text())["format"] == "awsaa.arch" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
    with pytest.raises(AWSAAError, match=r"a\.json: block 6 changes the shape"):
        bad = arch.to_dict()
        bad["ops"][6] = "zero"
        f.write_text(json.dumps(bad))
        Arch.load(f)


def test_the_model_registry_and_the_trainer_build_an_architecture_file(tmp_path):
    from awsaa.config import TrainConfig, load
    from awsaa.train.trainer import Trainer

    f = tmp_path / "mb.json"
    Arch.uniform_op("mb3_e3").save(f)
    net = models.create(str(f), num_classes=5, in_channels=3)
    assert isinstance(net, ChoiceNet) and net.arch == Arch.uniform_op("mb3_e3") and net.fc.out_features == 5
    with pytest.raises(AWSAAError, match="does not support 'drop_path'"):
        models.create(str(f), drop_path=0.1)
    with pytest.raises(AWSAAError, match="does not support 'dropout'; its options: none"):
        models.create(str(f), dropout=0.3)  # the registry's checks of options, not a silent drop
    with pytest.raises(ValueError, match="num_classes must be >= 1"):  # as for a registered model
        models.create(str(f), num_classes=0)
    # a 2-epoch schedule of which one epoch runs: no evaluation over the 1,597 test images
    cfg = load(TrainConfig, Path("configs/train/digits.yaml"), {"model": str(f), "epochs": 2,
                                                               "optim.warmup_epochs": 0})
    t = Trainer(cfg, device="cpu")
    assert isinstance(t.model, ChoiceNet) and t.run_epoch().train_loss > 0


def test_the_training_tool_takes_an_architecture_file_by_its_absolute_path(tmp_path, capsys, monkeypatch):
    from awsaa.cli.train import main

    Arch.uniform_op("wrn").save(tmp_path / "w.json")
    monkeypatch.chdir(tmp_path)
    root = Path(__file__).resolve().parents[1]
    assert main(["-c", str(root / "configs/train/quick_fmnist.yaml"), "--model", "w.json", "--print-config"]) == 0
    assert f"model: {tmp_path / 'w.json'}" in capsys.readouterr().out
