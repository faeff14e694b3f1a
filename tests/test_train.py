"""The trainer, without Ray: recipe pieces, augmentation by name, checkpoints, resume."""

import itertools
import math
import pickle

import pytest
import torch

from awsaa import AWSAAError, Policy, SearchSpace
from awsaa.config import TrainConfig, from_dict
from awsaa.train import Trainer
from awsaa.train.checkpoint import load_checkpoint
from awsaa.train.trainer import make_scheduler, param_groups


def tiny(**kw) -> TrainConfig:
    base = {"model": "wrn10_1", "dataset": "fashion_mnist", "epochs": 2, "batch_size": 64, "train_size": 256,
            "test_size": 200, "eval_batch_size": 200, "optim": {"lr": 0.05}}
    base.update(kw)
    return from_dict(TrainConfig, base)


@pytest.fixture(scope="module")
def data(fmnist):
    return fmnist


def test_weight_decay_spares_batchnorm_and_biases():
    from awsaa import models

    net = models.create("wrn10_1", 10, 1)
    decay, no_decay = param_groups(net, 5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0
    bn_and_bias = {id(p) for n, p in net.named_parameters() if ".bn" in n or n.startswith("bn") or n.endswith("bias")}
    assert {id(p) for p in no_decay["params"]} == bn_and_bias
    assert all(p.dim() > 1 for p in decay["params"])


def lr_trace(cfg: TrainConfig, steps_per_epoch: int) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.optim.lr)
    sched = make_scheduler(opt, cfg, steps_per_epoch=steps_per_epoch)
    lrs = []
    for _ in range(cfg.epochs * steps_per_epoch):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_warmup_then_cosine_per_step():
    lrs = lr_trace(tiny(epochs=10, optim={"lr": 0.4, "warmup_epochs": 1.5, "warmup_from": 0.1, "final_lr": 0.0}), 10)
    assert math.isclose(lrs[0], 0.1) and math.isclose(lrs[15], 0.4, rel_tol=1e-6)
    assert lrs[7] < lrs[8] < lrs[14]  # linear rise
    assert all(a >= b for a, b in itertools.pairwise(lrs[15:]))  # cosine fall
    assert lrs[-1] < 0.001


def test_multistep_schedule():
    lrs = lr_trace(tiny(epochs=10, optim={"lr": 0.2, "schedule": "multistep", "milestones": [4, 8], "gamma": 0.1}), 5)
    assert math.isclose(lrs[19], 0.2) and math.isclose(lrs[20], 0.02) and math.isclose(lrs[40], 0.002)


def test_training_learns_and_reports_the_final_epoch(data):
    t = Trainer(tiny(epochs=3, train_size=1024, aug="cutout"), data=data)
    seen = []
    final = t.fit(on_epoch=seen.append)
    assert [s.epoch for s in seen] == [1, 2, 3] and final is seen[-1]
    assert final.test_error == 100 - final.test_acc and final.test_error < 80  # chance is 90%
    assert seen[0].train_loss > seen[-1].train_loss


@pytest.mark.parametrize("aug", ["none", "uniform", "autoaugment", "randaugment", "trivialaugment",
                                 "fa_reduced_cifar10", "fa_reduced_imagenet"])
def test_every_aug_name_trains(data, aug):
    """Each aug trains, and the trainer's pipeline changes the images exactly as that
    augmentation does (checked against the augmentation run on its own with the same random
    state), and changes most of them."""
    from awsaa.train.pipeline import make_policy_augment

    t = Trainer(tiny(epochs=1, train_size=128, aug=aug), data=data)
    images = t.train_set.images[:64]
    labels = t.train_set.labels[:64]
    t.pipeline.crop_padding, t.pipeline.hflip, t.pipeline.cutout = 0, False, 0  # the policy step alone
    torch.manual_seed(0)
    out, _, _ = t.pipeline(images, labels, torch.Generator().manual_seed(0))
    step = make_policy_augment(aug, t.info.fill, "fashion_mnist")
    if step is None:
        assert aug == "none" and torch.equal(out, images)
    else:
        torch.manual_seed(0)
        ref, _ = step(images, 1, torch.Generator().manual_seed(0))
        assert torch.equal(out, ref)
        changed = (out != images).flatten(1).any(1).float().mean().item()
        assert changed > 0.5, f"{aug} changed only {changed:.0%} of the images"
    stats = t.run_epoch()
    assert math.isfinite(stats.train_loss) and stats.train_loss > 0


def test_policy_file_aug_and_pair_counts(tmp_path, data):
    space = SearchSpace.default()
    probs = torch.zeros(36, 36, dtype=torch.float64)
    probs[space.index("Invert"), space.index("Rotate_9")] = 1.0
    Policy(space, probs).save(tmp_path / "p.json")
    t = Trainer(tiny(epochs=1, aug=str(tmp_path / "p.json")), data=data)
    counts = torch.zeros(36, 36, dtype=torch.long)
    t.train_epoch(pair_counts=counts)
    assert counts.sum() == 256 and counts[space.index("Invert"), space.index("Rotate_9")] == 256


def test_enlarged_batch_draws_distinct_pairs_per_image(data):
    t = Trainer(tiny(epochs=1, aug="uniform", enlarged_batch=4), data=data)
    images, labels = t.train_set.images[:8], t.train_set.labels[:8]
    out, out_labels, pairs = t.pipeline(images, labels, torch.Generator().manual_seed(0))
    assert out.shape[0] == 32 and torch.equal(out_labels, labels.repeat_interleave(4))
    for i in range(8):
        assert len({tuple(p) for p in pairs[4 * i:4 * i + 4].tolist()}) == 4


def test_ema_and_stochastic_depth(data):
    t = Trainer(tiny(epochs=1, ema_decay=0.9, drop_path=0.2), data=data)
    t.run_epoch()
    ema_w = next(iter(t.ema.module.parameters()))
    w = next(iter(t.model.parameters()))
    assert not torch.equal(ema_w, w)
    with pytest.raises(AWSAAError, match="does not support 'drop_path'"):
        Trainer(tiny(model="shakeshake26_2x32d", drop_path=0.1), data=data)


def test_eval_every_and_last_epoch(data):
    t = Trainer(tiny(epochs=3, eval_every=2), data=data)
    stats = [t.run_epoch() for _ in range(3)]
    assert stats[0].test_acc is None and stats[1].test_acc is not None and stats[2].test_acc is not None


def test_resume_from_checkpoint_is_exact(tmp_path, data):
    """Two epochs straight == one epoch, save, load into a fresh trainer, one more epoch."""
    cfg = tiny(epochs=2, aug="uniform")
    a = Trainer(cfg, data=data)
    a.run_epoch()
    a.save(tmp_path / "e1.pt")
    a.run_epoch()
    b = Trainer(cfg, data=data)
    b.load(tmp_path / "e1.pt")
    assert b.epoch == 1
    b.run_epoch()
    for (n, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(p, q), n
    assert [h["epoch"] for h in b.history] == [1, 2]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_bad_checkpoints_are_refused(tmp_path, data, capsys):
    t = Trainer(tiny(), data=data)
    t.save(tmp_path / "ok.pt")
    raw = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AWSAAError, match="corrupt"):
        t.load(tmp_path / "trunc.pt")
    other = Trainer(tiny(model="wrn16_2"), data=data)
    with pytest.raises(AWSAAError, match="holds a 'wrn10_1' model, but this config builds 'wrn16_2'"):
        other.load(tmp_path / "ok.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"format": "awsaa.checkpoint", "x": Evil()}, f)
    torch.save({"format": "awsaa.checkpoint", "version": 1, "kind": "train", "x": Evil()}, tmp_path / "evil2.pt")
    with pytest.raises(AWSAAError, match="is refused: it holds pickled objects"):  # torch.save'd payload
        load_checkpoint(tmp_path / "evil2.pt")
    with pytest.raises(AWSAAError, match="corrupt or not a torch checkpoint"):  # a bare pickle
        load_checkpoint(tmp_path / "evil.pt")
    assert "pwned" not in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "ok.pt", kind="train")["epoch"] == 0


def test_train_size_larger_than_dataset(data):
    with pytest.raises(AWSAAError, match="train_size 100000 exceeds"):
        Trainer(tiny(train_size=100000), data=data)


def test_a_randaugment_grid_cell_by_name():
    """randaugment_n{N}_m{M}: torchvision's RandAugment with N ops of magnitude M (a grid's cell)."""
    from awsaa.train.pipeline import check_aug, make_policy_augment

    aug = make_policy_augment("randaugment_n3_m14", fill=0)
    assert (aug.transform.num_ops, aug.transform.magnitude, aug.transform.fill) == (3, 14, 0)
    default = make_policy_augment("randaugment", fill=0)
    assert (default.transform.num_ops, default.transform.magnitude) == (2, 9)
    for bad in ("randaugment_n0_m9", "randaugment_n2_m31", "randaugment_n2"):
        with pytest.raises(AWSAAError):
            check_aug(bad)


def test_the_ranking_line_says_whether_the_best_beats_the_runner_up():
    from awsaa.cli.train import ranking

    line = ranking({"none": [3.2, 3.8, 2.3], "policy": [2.0, 2.1, 2.2], "one-seed": [1.0]})
    assert line == ("ranking: policy 2.10% < none 3.10%; policy beats none by 1.00 points, "
                    "2.3x the standard error of the difference")
    close = ranking({"uniform": [2.4, 2.5, 2.3], "policy": [2.3, 2.5, 2.3]})
    assert close is not None
    assert close.endswith("is within twice the standard error (0.09) of uniform: not a difference")
    assert ranking({"none": [3.0, 3.1]}) is None


def test_the_published_digits_policy_trains_by_name_with_its_provenance():
    """awsaa/policies/aws_digits.json: a search's result shipped with the package, trained by
    name, its meta saying how it was found and what it measured."""
    from awsaa.train.pipeline import PUBLISHED, PolicyAugment, check_aug, make_policy_augment
    from awsaa.train.trainer import policy_data

    assert "aws_digits" in PUBLISHED
    check_aug("aws_digits")
    aug = make_policy_augment("aws_digits", fill=0)
    assert isinstance(aug, PolicyAugment) and aug.policy == Policy.load(PUBLISHED["aws_digits"])
    meta = aug.policy.meta
    assert meta["commit"] and meta["seed"] == 0 and meta["config"]["dataset"] == "digits"
    assert meta["config"]["reward"] == "density" and "2.20" in meta["result"]
    assert policy_data("aws_digits") == meta["data"] and meta["data"]["fill"] == 0
