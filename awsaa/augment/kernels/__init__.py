"""The op kernels, by family, as torchvision's ``transforms/v2/functional`` splits its own.

Each family module holds, for every op type of that family, the batched kernel (uint8
``(N, C, H, W)`` batches, one parameter per sample) and the PIL reference kernel (one image),
and the family's ``kernel``: one call on a contiguous run of samples sorted by op type.

* :mod:`~awsaa.augment.kernels.lut`: AutoContrast, Equalize, Invert, Posterize, Solarize;
* :mod:`~awsaa.augment.kernels.blend`: Brightness, Color, Contrast, Sharpness;
* :mod:`~awsaa.augment.kernels.affine`: Rotate, TranslateX, TranslateY and the nearest shears;
* :mod:`~awsaa.augment.kernels.shear`: ShearX, ShearY (bicubic).

Which op type uses which kernel is the op table's business (:mod:`awsaa.augment.table`); the
planner that sorts a batch and calls the kernels is :mod:`awsaa.augment.dispatch`.
"""
