import math

import pytest

from awsaa import AWSAAError, SearchSpace
from awsaa.augment.space import ALL_OPS, FAMILIES, LEVELS, family_of
from awsaa.augment.table import OP_TYPES

SPACE_TYPES = {name: row for name, row in OP_TYPES.items() if row.space}


def test_default_space_has_36_ops_in_sorted_order_and_1296_pairs():
    s = SearchSpace.default()
    assert len(s.ops) == 36 and s.num_pairs == 1296  # the AWS paper's space
    assert list(s.names) == sorted(s.names)
    # every type of the op table's space: at grid steps 3, 6, 9 where it has a grid, else once
    expected = {f"{t}_{lv}" if row.grid else t for t, row in SPACE_TYPES.items() for lv in LEVELS}
    assert set(s.names) == expected
    assert all((op.level is None) == (SPACE_TYPES[op.type].grid is None) for op in s.ops)


@pytest.mark.parametrize("op", ALL_OPS)
def test_every_op_has_a_family_and_a_label(op):
    assert family_of(op) in FAMILIES
    spec = ALL_OPS[op]
    assert spec.label.startswith(spec.type) and (spec.magnitude is None) == (spec.label == spec.type)


@pytest.mark.parametrize(
    "name, magnitude",
    [
        ("ShearX_3", 0.1), ("ShearY_9", 0.3), ("TranslateX_3", 0.151), ("TranslateY_9", 0.453),
        ("Rotate_3", 10), ("Rotate_6", 20), ("Rotate_9", 30), ("Color_3", 0.3), ("Contrast_6", 0.6),
        ("Brightness_9", 0.9), ("Sharpness_3", 0.3), ("Posterize_3", 7), ("Posterize_6", 5),
        ("Posterize_9", 4), ("Solarize_3", 170.667), ("Solarize_6", 85.333), ("Solarize_9", 0),
    ],
)
def test_magnitudes_follow_the_official_grid(name, magnitude):
    assert math.isclose(ALL_OPS[name].magnitude, magnitude, abs_tol=1e-3)


def test_signed_ops_are_exactly_the_symmetric_ones():
    """A geometric or blend op is symmetric about the identity (its magnitude goes either way)
    and takes a random sign; a lut op (Invert, Solarize, Posterize, ...) is not and does not."""
    for op in ALL_OPS.values():
        assert op.signed == (OP_TYPES[op.type].kernel != "lut"), op.name


def test_subset_space_and_pair_indexing():
    s = SearchSpace(["Rotate_9", "Invert", "Equalize"])
    assert s.names == ("Equalize", "Invert", "Rotate_9")
    assert s.num_pairs == 9
    assert s.pair(s.pair_index(2, 1)) == (2, 1)
    assert s.pair_label(2, 0) == "Rotate(±30) -> Equalize"


@pytest.mark.parametrize("ops, message", [(["Nope"], "unknown op"), (["Invert", "Invert"], "duplicate"),
                                          ([], "at least one op")])
def test_bad_spaces_are_refused_with_one_line(ops, message):
    with pytest.raises(AWSAAError, match=message) as e:
        SearchSpace(ops)
    assert "\n" not in str(e.value)
