import os

import pytest
import torch

# Ray 2.60 turns token auth on for new local clusters; tests never want it.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def fmnist():
    """The real Fashion-MNIST (Debian package or ./data)."""
    from awsaa.data import load_dataset

    return load_dataset("fashion_mnist")


@pytest.fixture(scope="session")
def gray_images(fmnist):
    """64 real test images, (64, 1, 28, 28) uint8."""
    return fmnist.test.images[:64].clone()


@pytest.fixture(scope="session")
def rgb_images(fmnist):
    """64 real RGB-like images: three different real test images as the R, G and B planes
    (so the colour ops see genuinely different channels)."""
    x = fmnist.test.images[:, 0]
    return torch.stack([x[64:128], x[128:192], x[192:256].flip(2)], dim=1).contiguous()


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the tests that need it (no dashboard, small object store)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2,
                 logging_level="WARNING")
    yield ray
    ray.shutdown()
