"""The model zoo: published parameter counts, forward/backward, the random regularizers."""

import pytest
import torch

from awsaa import AWSAAError, models

# Published parameter counts (millions), 10 classes for CIFAR nets, 1000 for ImageNet:
# WRN: Zagoruyko & Komodakis 2016 (Table 1: WRN-40-2 2.2M, WRN-28-10 36.5M);
# Shake-Shake: Gastaldi 2017 (2x32d 2.9M, 2x96d 26.2M) and AutoAugment (Cubuk et al. 2019,
# Table 2: 2x112d 35.6M); PyramidNet-272 alpha 200 + ShakeDrop: AutoAugment Table 2 (26.0M);
# ResNet-50 25.6M and ResNet-200 64.7M: He et al. 2016 (identity mappings, Table 4).
PUBLISHED = {
    "wrn40_2": 2.2, "wrn28_10": 36.5, "shakeshake26_2x32d": 2.9, "shakeshake26_2x96d": 26.2,
    "shakeshake26_2x112d": 35.6, "pyramidnet272_a200": 26.0, "resnet50": 25.6, "resnet200": 64.7,
}


def count(name: str, num_classes: int) -> float:
    with torch.device("meta"):  # no memory, no init cost
        net = models.create(name, num_classes=num_classes, in_channels=3)
    return sum(p.numel() for p in net.parameters()) / 1e6


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_matches_published(name):
    """Within 1% of the published count, widened by the published figure's own rounding
    (0.05M): WRN-40-2 has 2.244M, published as 2.2M, 2% apart but the same to one decimal."""
    got = count(name, 1000 if name.startswith("resnet") else 10)
    assert abs(got - PUBLISHED[name]) <= 0.01 * PUBLISHED[name] + 0.05, f"{name}: {got:.3f}M"
    assert round(got, 1) == PUBLISHED[name] or abs(got - PUBLISHED[name]) <= 0.01 * PUBLISHED[name]


def test_registry_lists_every_network():
    assert set(PUBLISHED) | {"wrn10_1", "wrn16_2"} == set(models.list_models())


@pytest.mark.parametrize("name, shape", [("wrn10_1", (4, 1, 28, 28)), ("wrn10_1", (4, 3, 32, 32)),
                                         ("wrn16_2", (4, 3, 32, 32)), ("wrn40_2", (2, 3, 32, 32)),
                                         ("shakeshake26_2x32d", (2, 3, 32, 32))])
def test_forward_backward(name, shape):
    torch.manual_seed(0)
    net = models.create(name, num_classes=7, in_channels=shape[1])
    out = net(torch.randn(shape))
    assert out.shape == (shape[0], 7)
    out.sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_unknown_model_and_unsupported_option():
    with pytest.raises(AWSAAError, match="unknown model 'vgg16'") as e:
        models.create("vgg16")
    assert "\n" not in str(e.value)
    with pytest.raises(AWSAAError, match="does not support 'drop_path'"):
        models.create("shakeshake26_2x32d", drop_path=0.1)


def test_shake_shake_forward_and_backward_use_independent_draws():
    from awsaa.models.shakeshake import ShakeShakeMix

    torch.manual_seed(0)
    a = torch.ones(512, 1, 1, 1, requires_grad=True)
    b = torch.zeros(512, 1, 1, 1, requires_grad=True)
    out = ShakeShakeMix.apply(a, b, True)
    alpha = out.detach().flatten()  # forward mix: alpha * 1 + (1 - alpha) * 0
    out.sum().backward()
    beta = a.grad.flatten()
    assert alpha.std() > 0.2 and beta.std() > 0.2  # uniform per sample
    assert torch.allclose(a.grad + b.grad, torch.ones_like(a.grad))
    assert abs(torch.corrcoef(torch.stack([alpha, beta]))[0, 1]) < 0.15  # independent
    ev = ShakeShakeMix.apply(a, b, False)
    assert torch.allclose(ev, torch.full_like(ev, 0.5))


def test_shakedrop_and_stochastic_depth_are_random_in_training_only():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    for name, kwargs in [("shakeshake26_2x32d", {}), ("wrn16_2", {"drop_path": 0.3})]:
        net = models.create(name, **kwargs)
        net.train()
        assert not torch.allclose(net(x), net(x))
        net.eval()
        assert torch.equal(net(x), net(x))
    from awsaa.models.pyramidnet import ShakeDropScale

    y = torch.ones(4096, 1, 1, 1, requires_grad=True)
    out = ShakeDropScale.apply(y, 0.5, True)
    scale = out.detach().flatten()
    assert 0.4 < (scale == 1).float().mean() < 0.6  # kept with probability 1 - p
    assert scale.min() < -0.5  # alpha in [-1, 1] for the dropped ones
    out.sum().backward()
    assert y.grad.min() >= 0  # beta in [0, 1]
    assert torch.allclose(ShakeDropScale.apply(y, 0.5, False), torch.full_like(y, 0.5))
