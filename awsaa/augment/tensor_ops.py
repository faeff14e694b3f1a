"""Batched tensor implementation of the 36 ops, for uint8 NCHW batches on any device.

Every function takes a ``uint8`` batch of shape ``(N, C, H, W)`` with ``C`` 1 or 3 and
returns a new one; per-sample parameters (signs, magnitudes, crop offsets, ...) are
tensors of length ``N``. The semantics are those of the PIL reference
(:mod:`awsaa.augment.pil_ops`): the colour ops reproduce PIL's integer and float
arithmetic, the geometric ops PIL's affine sampling (pixel centres, nearest or
edge-clamped bicubic taps with ``a = -1``, fill outside the source image).
``tests/test_ops_parity.py`` holds the two paths together.

This module is the batched path's public face; the code lives in:

* :mod:`awsaa.augment.table`: each op type's kernel family and function;
* :mod:`awsaa.augment.kernels`: the kernels, by family (``lut``, ``blend``, ``affine``, ``shear``);
* :mod:`awsaa.augment.dispatch`: the planner, which runs each family's kernel once per pair
  position on all the samples that need it (:func:`apply_pairs`, :func:`apply_per_sample`);
* :mod:`awsaa.augment.standard`: random crop, horizontal flip, Cutout.
"""

from awsaa.augment.dispatch import apply_op, apply_pairs, apply_per_sample, apply_type, draw_signs
from awsaa.augment.kernels.affine import affine_maps as _affine_maps
from awsaa.augment.kernels.cache import CACHED_VALUES as _CACHED_VALUES
from awsaa.augment.standard import cutout, cutout_mask, hflip, random_crop

__all__ = ["_CACHED_VALUES", "_affine_maps", "apply_op", "apply_pairs", "apply_per_sample", "apply_type", "cutout",
           "cutout_mask", "draw_signs", "hflip", "random_crop"]
